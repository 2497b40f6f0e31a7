"""Sockets inside a named network namespace (`ip netns add NAME`), from a process that stays in
its own: a socket belongs to the namespace it was created in, so the calling thread enters the
namespace with setns(2) for the creation only and returns at once.

    sock = socket_in("enrollab-p1", socket.AF_PACKET, socket.SOCK_RAW, ETH_P_ALL)
    with entered("enrollab-lab"):          # anything created here lives in that namespace
        listener = socket.socket()

`None` as the name is the caller's own namespace (no switch). Needs CAP_SYS_ADMIN (root).
Python 3.11 has no `os.setns`, hence libc through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["NETNS_DIR", "NetnsError", "entered", "exists", "socket_in"]

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_lock = threading.Lock()
_libc: ctypes.CDLL | None = None


class NetnsError(OSError):
    """A namespace that does not exist or cannot be entered."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(errno, f"setns: {os.strerror(errno)}")


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """The calling thread is in namespace `name` inside the block (module docstring). Keep the
    block synchronous: no await inside, or other coroutines would run in the namespace too."""
    if name is None:
        yield
        return
    path = NETNS_DIR / name
    with _lock:
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsError(2, f"no network namespace {name!r} (ip netns add {name})") from None
        own = os.open(f"/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)


def socket_in(name: str | None, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
              ) -> socket.socket:
    """A new socket created in namespace `name` (module docstring)."""
    with entered(name):
        return socket.socket(family, type, proto)
