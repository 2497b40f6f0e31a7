"""`enrollab serve` as its own OS process, for tests that need a server the test process does not
run (issue 17: several processes on one PostgreSQL database)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ENROLLAB = Path(sys.executable).with_name("enrollab")


def serve_command(data_dir: Path, db_url: str, *extra: str) -> list[str]:
    return [str(ENROLLAB), "serve", "--data", str(data_dir), "--db", db_url, "--admin-port", "0",
            "--device-port", "0", *extra]


def popen_serve(data_dir: Path, db_url: str, *extra: str) -> subprocess.Popen[str]:
    """Started without ENROLLAB_ADMIN_PASSWORD (the data directory already has its administrator);
    the announcement goes to stderr (the CLI's console), read by `announced`."""
    env = {k: v for k, v in os.environ.items() if k != "ENROLLAB_ADMIN_PASSWORD"}
    return subprocess.Popen(serve_command(data_dir, db_url, *extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def announced(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str, list[str]]:
    """The admin and device URLs `enrollab serve` prints, and the lines before them."""
    assert proc.stderr is not None
    deadline, admin, lines = time.monotonic() + timeout, "", []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"enrollab serve exited with {proc.returncode}: {''.join(lines)}")
        lines.append(line)
        if m := re.search(r"admin API on (https?://\S+)/api/v1", line):
            admin = m.group(1)
        if m := re.search(r"device API \(mutual TLS\) on (https://\S+)/device/v1", line):
            return admin, m.group(1), lines
    pytest.fail("enrollab serve did not announce its URLs")


def stop(proc: subprocess.Popen[str], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def cli_servers(data_dir: Path, db_url: str, n: int) -> Iterator[list[str]]:
    """`n` single `enrollab serve` processes on one data directory and database: their device URLs."""
    procs: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for _ in range(n):
            procs.append(popen_serve(data_dir, db_url))
            urls.append(announced(procs[-1])[1])
        yield urls
    finally:
        for proc in procs:
            stop(proc)
