"""TLS listeners that record every handshake — the certificate check outcome of each client —
for the harness's own servers (`harness.fileserver`).

A phone that refuses a server certificate sends an alert and closes the connection: no HTTP
request ever reaches the application, so an access log alone cannot tell "refused the
certificate" from "never came". `HandshakeSite` accepts TCP, runs the TLS handshake itself
(`loop.start_tls`) and hands the connection to aiohttp only after it completed; each attempt,
completed or not, becomes a `Handshake` record (client address, and the TLS alert or error
that ended it). That is the evidence a physical phone's observer
needs to end a wait at "refused the server" instead of "silent" (`harness.physical.device`).

Decisions:
- The record is made when the handshake ends, not at TCP accept. A client that refuses the
  certificate with an alert gives its reason (curl, OpenSSL, phones: `TLSV1_ALERT_UNKNOWN_CA`,
  `SSLV3_ALERT_BAD_CERTIFICATE`); one that just closes the connection — asyncio's TLS client,
  so the simulated phones, sends no alert — or a port probe is recorded as failed with reason
  `closed-during-handshake`.
- The handshake has its own deadline (`HANDSHAKE_TIMEOUT`, 30 s), as asyncio's default.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["HANDSHAKE_TIMEOUT", "Handshake", "HandshakeSite"]

HANDSHAKE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Handshake:
    """One TLS handshake as the server saw it: `ok`, else `reason` (the alert the client sent,
    e.g. `TLSV1_ALERT_UNKNOWN_CA`, or what ended it)."""

    client: str | None
    time: float
    ok: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "ok": self.ok, "reason": self.reason}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.__class__.__name__)
    if isinstance(exc, TimeoutError):
        return "handshake-timeout"
    if isinstance(exc, ConnectionError | EOFError):
        return "closed-during-handshake"
    return exc.__class__.__name__


class _Gate(asyncio.Protocol):
    """The TCP side of one connection until its TLS handshake ended."""

    def __init__(self, app: Callable[[], asyncio.BaseProtocol], context: ssl.SSLContext,
                 record: Callable[[Handshake], None], clock: Callable[[], float]) -> None:
        self._app = app
        self._context = context
        self._record = record
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello is for the TLS layer start_tls puts in place
        self._task = asyncio.get_running_loop().create_task(self._upgrade(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else None
        app = self._app()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, app, self._context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, EOFError, TimeoutError, ConnectionError) as exc:
            self._record(Handshake(client, self._clock(), False, _reason(exc)))
            transport.abort()
            return
        if tls is None:  # the transport closed as the handshake ended
            self._record(Handshake(client, self._clock(), False, "closed-during-handshake"))
            return
        self._record(Handshake(client, self._clock(), True))
        app.connection_made(tls)


class HandshakeSite(web.SockSite):
    """An aiohttp site on a listening socket whose TLS handshakes are recorded (`record`)."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, context: ssl.SSLContext,
                 record: Callable[[Handshake], None], *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(runner, sock)  # plain TCP: TLS is the gate's
        self._context = context
        self._record = record
        self._clock = clock
        self._name = self._name.replace("http://", "https://", 1)

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Gate(server, self._context, self._record, self._clock), sock=self._sock, backlog=self._backlog)
