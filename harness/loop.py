"""The event loop of the long-running commands (`enrollab serve`, `enrollab fleet run`, the
benchmarks): uvloop where it is installed, asyncio's own loop otherwise.

Decision: uvloop (libuv, with its own TLS transport in Cython) costs a TLS connection about a
sixth less CPU in the fleet and in the server than asyncio's selector loop and its Python
`SSLProtocol` — a boot storm is mostly TLS connections. Nothing here depends on it: the phones'
own handshake checks (`simulators.tls.HandshakePolicy`, through `SSLContext.sslobject_class`)
and the server's peer certificate (`transport.get_extra_info("ssl_object")`) work on both loops,
and `tests/integration/test_uvloop.py` proves it. `ENROLLAB_LOOP=asyncio` forces asyncio's loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["loop_name", "run"]


def loop_name() -> str:
    """`uvloop` or `asyncio`: the loop `run` uses here."""
    if os.environ.get("ENROLLAB_LOOP", "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` on the loop `loop_name()` names."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
