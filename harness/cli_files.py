"""The files an `enrollab` command reads or writes for its user: input text (device lists,
certificates) read as UTF-8, and a fresh output directory for secrets; each problem a `fail`
(error id + sentence, exit 2), never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from harness.admin_cli import fail


def read_text(path: Path, invalid_id: str, what: str, encoding: str = "utf-8-sig") -> str:
    """The text of PATH; `cannot-read`, or `invalid_id` when it is not `encoding` text (`what` it should be)."""
    try:
        return path.read_text(encoding=encoding)
    except OSError as exc:
        fail("cannot-read", f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(invalid_id, f"{path} is not {what}")


def fresh_directory(out: Path) -> None:
    """OUT for files that are keys: a new directory (mode 700), or an empty one made so. A
    directory with files in it is refused (`out-not-empty`) before anything is asked of the
    server, so nothing is overwritten and a parent such as the home directory keeps its mode."""
    try:
        if out.exists():
            if not out.is_dir():
                fail("out-not-a-directory", f"--out {out} exists and is not a directory")
            if any(out.iterdir()):
                fail("out-not-empty", f"--out {out} has files in it already: give a new or empty directory")
            os.chmod(out, 0o700)
        else:
            out.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        fail("cannot-write", f"cannot create {out}: {exc.strerror or exc}")
