"""Writing PKI files safely: atomic replace, private keys 0600, private directories 0700."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

KEY_MODE = 0o600
PUBLIC_MODE = 0o644
DIR_MODE = 0o700


def write_file(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> Path:
    """Write `data` to `path` atomically (temporary file in the same directory, then rename).

    The file gets exactly `mode` whatever the umask; a reader never sees half a file. OSError
    (missing directory, no permission) propagates for the caller to word.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_private(path: Path, data: bytes) -> Path:
    """A private key: mode 0600."""
    return write_file(path, data, KEY_MODE)


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if missing; a directory this module creates is 0700."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(path, DIR_MODE)
    return path


def append_line(path: Path, line: str) -> None:
    """Append one line (a single write with O_APPEND, so concurrent writers do not interleave)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PUBLIC_MODE)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing), for read-modify-write of the PKI.

    Serialises first start and revocations between processes sharing a data directory (a server
    and the CLI). Where `fcntl` does not exist the lock is a no-op.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, KEY_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
