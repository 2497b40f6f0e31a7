"""Child processes the harness (and its tests) start and must not leave behind: one place that
runs a command in a session of its own, waits with a deadline, and kills its whole process group
when the deadline passes or the caller is cancelled (`ip netns exec …` leaves grandchildren)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

__all__ = ["run_bounded"]


async def run_bounded(*argv: str, timeout: float, **options: Any) -> tuple[int, bytes, bytes]:
    """Run `argv` to its end within `timeout` seconds: (exit status, stdout, stderr), output
    piped unless `options` say otherwise. `TimeoutError` after the group was killed."""
    options.setdefault("stdout", asyncio.subprocess.PIPE)
    options.setdefault("stderr", asyncio.subprocess.PIPE)
    process = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **options)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return process.returncode or 0, out or b"", err or b""
