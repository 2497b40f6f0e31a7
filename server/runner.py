"""Running the server: the admin listener (HTTP, or HTTPS with `admin_tls`) and the device
listener (HTTPS, mutual TLS, PROTOCOL §2).

Decisions:
- `device_port` None means 8443 (PROTOCOL §2's default), or any free port when `admin_port` is
  0: a server started on a free admin port (tests, the demo, a second server on one machine)
  must not fight over 8443.
- The device URL that answers name (`/api/v1/info`, firmware URLs, the DES files URL, the EST
  URL) is `https://<host>:<port>` with host the first `hostnames` entry that is no wildcard
  (without `hostnames`: the first such extra name the server certificate already has)
  (PRF-6: a wildcard name in the certificate is allowed but warned about, as some devices
  refuse wildcard certificates), else the listen
  address (127.0.0.1 for a wildcard address: PRF-2 URLs take an FQDN or an IPv4 address, not
  `localhost`). The server certificate names it (its SAN has localhost, 127.0.0.1, ::1 and the
  host names). Devices on other machines need `--hostname`.
- `device_socket`: a listening socket made by the caller (e.g. inside a lab network namespace,
  `harness.listen.listening_socket`) that the device listener serves on instead of binding
  host:port itself; the server knows nothing about namespaces. Device URLs then name the
  first `hostnames` entry (give the lab address there) [inf].
- `admin_tls` (issue 16, USR-3): the admin listener serves the server certificate and asks for
  an optional client certificate, trusting every account's client root CA at start and each
  one uploaded while serving (`server.pki.tls.login_server_context`); the admin URL is https.
- Trust is re-read from DATA/pki every `trust_reload_seconds` (revocations by
  `enrollab pki revoke` in another process, new trusted manufacturers) without a restart;
  `Running.reload_device_trust()` does it at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from server.api.app import create_admin_app
from server.api.jobs import recovery_sweep
from server.bootstrap import Opened, open_server
from server.context import ServerContext
from server.domain.errors import DomainError
from server.domain.login_throttle import LoginGate, LoginThrottlePolicy
from server.domain.throttle import Budget, GuessGate, GuessingPolicy
from server.pki.store import DEFAULT_SERVER_NAMES
from server.store.pools import PoolSizes

# What the harness's embedded servers use: a simulated fleet's phones all come from one address
# and type wrong codes on purpose, so the per-address and global budgets are as wide as they go.
SIMULATION_GUESSING = GuessingPolicy(Budget(100_000, 1), Budget(100_000, 1))

log = logging.getLogger(__name__)

DEFAULT_DEVICE_PORT = 8443
LOGIN_CA_POLL_SECONDS = 10.0  # workers: how soon another worker's login-CA upload is trusted here


@dataclass
class ServeConfig:
    data_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    admin_port: int = 8080
    device_port: int | None = None  # None: 8443, or any free port when admin_port is 0
    name: str = "enrollab"
    smtp: tuple[str, int] | None = None  # NTF-1: deliver the outbox through this relay
    smtp_interval: float = 30.0
    hostnames: Sequence[str] | None = None  # server certificate SAN extras; None keeps the current
    trust_reload_seconds: float = 300.0
    device_socket: socket.socket | None = None  # listen on this socket instead of host:device_port
    # Enrollment-code guessing budgets until the platform stores its own (PUT /settings/guessing);
    # None: `GuessingPolicy()`'s defaults. A simulated fleet comes from one address: see SIMULATION_GUESSING.
    guessing: GuessingPolicy | None = None
    # Failed-login limits until the platform stores its own (PUT /settings/login-throttle); None:
    # `LoginThrottlePolicy()`'s defaults (the harness's suites type no wrong passwords).
    login_throttle: LoginThrottlePolicy | None = None
    # Issue 16: signed webhook deliveries run in the background every `webhook_interval` seconds
    # (at once when events are queued); 0 starts no delivery loop.
    webhook_interval: float = 5.0
    webhook_timeout: float = 10.0  # seconds one delivery attempt may take
    # USR-3 certificate login (issue 16): the admin listener serves HTTPS with the server
    # certificate and asks for an optional client certificate (the accounts' client root CAs,
    # and the system's public CAs with `login_public_cas`).
    admin_tls: bool = False
    login_public_cas: bool = False
    # Issue 17 (server/workers.py): this process is worker `worker_index` of `workers` sharing both
    # ports (SO_REUSEPORT) and one PostgreSQL database. Worker 0 alone runs the SMTP and webhook
    # delivery loops; the in-memory guessing and login budgets are split between the workers.
    workers: int = 1
    worker_index: int = 0
    pools: PoolSizes | None = None  # PostgreSQL pool sizes (server.store.pools); None: one process's

    @property
    def effective_device_port(self) -> int:
        if self.device_port is not None:
            return self.device_port
        return 0 if self.admin_port == 0 else DEFAULT_DEVICE_PORT


@dataclass
class Running:
    opened: Opened
    runner: web.AppRunner
    admin_url: str
    device_runner: web.AppRunner | None = None
    device_url: str = ""
    device_ssl: ssl.SSLContext | None = None
    warnings: list[str] = field(default_factory=list)  # for the operator: PKI problems, PRF-6

    def reload_device_trust(self) -> None:
        """Apply DATA/pki's current CRLs and trusted manufacturers to the running device listener."""
        from server.pki.tls import reload_device_context

        pki = self.opened.ctx.pki
        if self.device_ssl is not None and pki is not None:
            reload_device_context(self.device_ssl, pki)

    async def stop(self) -> None:
        if self.device_runner is not None:
            await self.device_runner.cleanup()
        await self.runner.cleanup()  # its shutdown ends the background loops (server.api.app)
        await self.opened.ctx.stop_background()  # and any spawned since
        await self.opened.ctx.store.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def device_host(config: ServeConfig, certificate_names: Sequence[str] = ()) -> str:
    """The host name device URLs carry (module docstring); `certificate_names` are the server
    certificate's names, used when `config.hostnames` is None (kept from an earlier start)."""
    names = config.hostnames if config.hostnames is not None else certificate_names
    named = [name for name in names if not name.startswith("*") and name not in DEFAULT_SERVER_NAMES]
    if named:
        return named[0]
    try:
        if ipaddress.ip_address(config.host).is_unspecified:
            return "127.0.0.1"
    except ValueError:
        pass
    return config.host


async def _listen(runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                  sock: socket.socket | None = None, reuse_port: bool = False) -> int:
    site: web.BaseSite = (web.SockSite(runner, sock, ssl_context=ssl_context) if sock is not None
                          else web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None))
    try:
        await site.start()
    except OSError as exc:
        raise DomainError("port-in-use", f"cannot listen on {host}:{port}: {exc.strerror}", 400) from None
    return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


async def start(config: ServeConfig, **open_kwargs: Any) -> Running:
    from server.device.app import create_device_app
    from server.pki.tls import device_server_context

    opened = await open_server(
        config.data_dir, config.db_url, name=config.name, hostnames=config.hostnames, pools=config.pools,
        **open_kwargs
    )
    ctx = opened.ctx
    ctx.guessing = GuessGate(config.guessing, share=config.workers)
    ctx.login_throttle = LoginGate(config.login_throttle, share=config.workers)
    app = create_admin_app(ctx)
    # DEV-10: resume (or fail) the jobs a stopped server left IN PROGRESS, now and every 15 s while
    # serving; the same sweep renews the leases of this process's jobs (server/api/jobs/recovery.py).
    app.cleanup_ctx.append(recovery_sweep(ctx))
    runner = web.AppRunner(app, access_log=None)
    device_runner: web.AppRunner | None = None
    try:
        await runner.setup()
        assert ctx.pki is not None  # open_server loaded it
        admin_ssl = await _admin_tls(ctx, config) if config.admin_tls or config.login_public_cas else None
        shared = config.workers > 1
        port = await _listen(runner, config.host, config.admin_port, admin_ssl, reuse_port=shared)
        device_ssl = device_server_context(ctx.pki)
        device_runner = web.AppRunner(create_device_app(ctx), access_log=None)
        await device_runner.setup()
        device_port = await _listen(device_runner, config.host, config.effective_device_port, device_ssl,
                                    config.device_socket, reuse_port=shared)
    except BaseException:
        if device_runner is not None:
            await device_runner.cleanup()
        await runner.cleanup()
        await ctx.store.close()
        raise
    ctx.device_url = f"https://{_url_host(device_host(config, ctx.pki.server_names))}:{device_port}"
    ctx.est_url = ctx.device_url + "/.well-known/est"
    scheme = "https" if admin_ssl is not None else "http"
    running = Running(opened, runner, f"{scheme}://{_url_host(config.host)}:{port}", device_runner, ctx.device_url)
    running.device_ssl = device_ssl
    running.warnings = [*ctx.pki.warnings, *_wildcard_warnings(ctx.pki.server_names, ctx.device_url)]
    delivers = config.worker_index == 0  # one delivery loop of each kind for all workers
    if config.smtp is not None and delivers:
        from server.store.mailer import delivery_loop

        ctx.spawn(delivery_loop(ctx.store, *config.smtp, interval=config.smtp_interval, clock=ctx.clock))
    if config.webhook_interval > 0 and delivers:
        from server.store.webhooks import delivery_loop as webhook_loop

        ctx.spawn(webhook_loop(ctx.store, ctx.clock, interval=config.webhook_interval, timeout=config.webhook_timeout))
    if config.trust_reload_seconds > 0:
        ctx.spawn(_reload_trust(running, config.trust_reload_seconds))
    if admin_ssl is not None and shared:
        ctx.spawn(_follow_login_cas(ctx, LOGIN_CA_POLL_SECONDS))
    return running


async def _login_ca_pems(ctx: ServerContext) -> list[str]:
    from sqlalchemy import select

    from server.store.models import Account

    async with ctx.store.reading() as session:
        return [pem for pem in await session.scalars(select(Account.login_ca_pem)) if pem]


async def _admin_tls(ctx: ServerContext, config: ServeConfig) -> ssl.SSLContext:
    """The admin listener's TLS context with certificate login, trusting every account's client root CA."""
    from server.pki.tls import login_server_context

    pems = await _login_ca_pems(ctx)
    assert ctx.pki is not None
    ctx.admin_ssl = login_server_context(ctx.pki, pems, public_cas=config.login_public_cas)
    ctx.login_public_cas = config.login_public_cas
    return ctx.admin_ssl


async def _follow_login_cas(ctx: ServerContext, interval: float) -> None:
    """With several workers: a client root CA uploaded through another worker is trusted by this
    one's admin listener within `interval` seconds (the uploading worker trusts it at once)."""
    from server.pki.tls import add_login_ca

    seen = set(await _login_ca_pems(ctx))
    while True:
        await asyncio.sleep(interval)
        try:
            for pem in set(await _login_ca_pems(ctx)) - seen:
                if ctx.admin_ssl is not None:
                    add_login_ca(ctx.admin_ssl, pem)
                seen.add(pem)
        except Exception:
            log.exception("reading the accounts' client root CAs failed")


def _wildcard_warnings(certificate_names: Sequence[str], device_url: str) -> list[str]:
    wildcards = [name for name in certificate_names if name.startswith("*")]
    if not wildcards:
        return []
    return [
        f"the server certificate names {', '.join(wildcards)}: some devices refuse wildcard certificates "
        f"(PRF-6); device URLs use {device_url}"
    ]


async def _reload_trust(running: Running, interval: float) -> None:
    """Re-read DATA/pki now and then (module docstring); a failure is logged, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(running.reload_device_trust)
        except Exception:
            log.exception("reloading the device listener's trust from DATA/pki failed")


async def serve_forever(config: ServeConfig, announce: Callable[[Running], None]) -> None:
    running = await start(config)
    announce(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()
