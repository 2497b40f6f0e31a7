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

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["NETNS_DIR", "NetnsError", "connect_in", "entered", "exists", "socket_factory", "socket_in"]

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
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
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


async def connect_in(name: str | None, host: str, port: int, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket made in namespace `name` and connected to (host, port), non-blocking."""
    sock = socket_in(name, family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def socket_factory(name: str | None) -> Callable[[Any], socket.socket]:
    """For aiohttp's `TCPConnector(socket_factory=…)`: its sockets are made in namespace `name`
    (aiohttp connects them; an address-info tuple is (family, type, proto, canonname, sockaddr))."""

    def make(addr_info: Any) -> socket.socket:
        family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
        sock = socket_in(name, family, type_, proto)
        sock.setblocking(False)
        return sock

    return make
