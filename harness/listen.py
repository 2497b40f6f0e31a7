"""Listeners of the harness's own servers (file server, scripted enrollment server): an aiohttp
app on free ports of one host, and TLS server contexts from PEM bytes."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["server_context", "start_sites"]


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


async def start_sites(
    app: web.Application, host: str, contexts: Sequence[ssl.SSLContext | None]
) -> tuple[web.AppRunner, list[int]]:
    """Serve `app` on one free port of `host` per context (None: plain HTTP); the runner and the
    ports, in the order of `contexts`. Nothing is left listening if a site fails to start."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    try:
        for context in contexts:
            site = web.TCPSite(runner, host, 0, ssl_context=context)
            await site.start()
            server: Any = site._server
            ports.append(int(list(server.sockets)[0].getsockname()[1]))
    except BaseException:
        await runner.cleanup()
        raise
    return runner, ports
