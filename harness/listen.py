"""Listeners of the harness's own servers (file server, scripted enrollment server): an aiohttp
app on free ports of one host — in the caller's network namespace, or inside a lab network's
(`netns`, sockets made there with `simulators.l2.netns`) — and TLS server contexts from PEM bytes."""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.tls_gate import Handshake, HandshakeSite
from simulators.l2.netns import socket_in

__all__ = ["listening_socket", "server_context", "start_sites"]


def server_context(cert_pem: bytes, key_pem: bytes, *, client_cas: str | None = None) -> ssl.SSLContext:
    """TLS 1.2+ server context; with `client_cas` (PEM text) a client certificate chaining to
    them is required (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="enrollab-tls-") as tmp:
        chain = Path(tmp) / "server.pem"  # the ssl module loads keys from files only
        chain.write_bytes(cert_pem + key_pem)
        context.load_cert_chain(chain)
    if client_cas is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_cas)
    return context


def listening_socket(host: str, port: int, netns: str | None) -> socket.socket:
    """A bound, listening TCP socket on (host, port) made in `netns`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket_in(netns, family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_sites(
    app: web.Application,
    host: str,
    contexts: Sequence[ssl.SSLContext | None],
    *,
    netns: str | None = None,
    ports: Sequence[int] | None = None,
    on_handshake: Callable[[Handshake], None] | None = None,
) -> tuple[web.AppRunner, list[int]]:
    """Serve `app` on one port of `host` per context (None: plain HTTP; `ports` fixes them, else
    free ones); the runner and the ports, in the order of `contexts`. With `netns` the sockets
    live in that namespace; with `on_handshake` every TLS handshake, completed or refused, is
    recorded (`harness.tls_gate`). Nothing is left listening if a site fails to start."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    found: list[int] = []
    try:
        for i, context in enumerate(contexts):
            wanted = ports[i] if ports is not None else 0
            site: web.BaseSite
            if context is not None and on_handshake is not None:
                site = HandshakeSite(runner, listening_socket(host, wanted, netns), context, on_handshake)
            elif netns is None:
                site = web.TCPSite(runner, host, wanted, ssl_context=context)
            else:
                site = web.SockSite(runner, listening_socket(host, wanted, netns), ssl_context=context)
            await site.start()
            server: Any = site._server
            found.append(int(list(server.sockets)[0].getsockname()[1]))
    except BaseException:
        await runner.cleanup()
        raise
    return runner, found
