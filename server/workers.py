"""`enrollab serve --workers N` (issue 17): N server processes behind the same admin and device
ports, sharing one PostgreSQL database.

    supervisor = Supervisor(config, workers=2)
    supervisor.run(announce)           # blocks until SIGINT/SIGTERM; workers started again if they die

How:
- The parent opens the server once — data directory, PKI, migrations to head, the platform and
  its first administrator (the password is printed once) — and closes it again, so the workers
  start on a database at head and never race each other to migrate or bootstrap. It reads
  PostgreSQL's `max_connections` and splits it over the workers (server.store.pools).
- The parent binds both ports with SO_REUSEPORT without listening: that fixes the port numbers
  (`--admin-port 0` picks one for all workers) and holds them. Each worker binds and listens on
  the same ports with SO_REUSEPORT; the kernel spreads new connections over the listening sockets,
  and the parent's, which never listen, take none.
- Workers are spawned, not forked: no event loop, thread or connection of the parent's goes along.
- The rules that are exact in one process stay exact over several, because they are decided in
  the database: enrollment-code totals (EC-3) and lockouts (LCK-3) by conditional updates, bulk
  jobs by leases (a job whose worker died is resumed by another, DEV-10), the audit log by its
  sequence. What each process keeps in memory: the guessing and failed-login budgets (each worker
  allows its share, server.domain.throttle), the platform cache (other workers see an edit within
  5 s, server.store.platform_cache), TLS trust (re-read every 5 minutes; accounts' login CAs
  every 10 s, server.runner).
- Worker 0 alone runs the delivery loops (SMTP outbox, webhooks), so a message is not sent by two.
- A worker that exits while serving is started again, with its index, after a second (logged).
  A worker that fails while starting stops them all: the next one would fail the same way.
- SIGINT/SIGTERM to the parent: SIGTERM to every worker (each stops listening, finishes its
  requests and closes its store), then, after `STOP_GRACE` seconds, SIGKILL to any left.
- SQLite is refused [inf]: one database file takes one writer at a time, so more processes add
  waiting (its busy handler's back-off), not throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any

from server.domain.errors import DomainError
from server.runner import ServeConfig, start
from server.store.pools import PoolSizes, split_connections

log = logging.getLogger(__name__)

MAX_WORKERS = 64
STOP_GRACE = 30.0  # seconds the workers get to finish their requests after SIGTERM
START_TIMEOUT = 120.0  # seconds a worker may take to start (migrations are done by then)
RESTART_DELAY = 1.0


@dataclass(frozen=True)
class Started:
    """What the parent announces once every worker listens."""

    admin_url: str
    device_url: str
    warnings: list[str]
    first_password: str | None
    pids: list[int]
    pools: PoolSizes


def check_workers(workers: int, db_url: str | None) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise DomainError("invalid-workers", f"--workers is 1..{MAX_WORKERS}", 400, workers)
    if workers > 1 and not (db_url or "").startswith(("postgresql:", "postgres:")):
        raise DomainError(
            "workers-need-postgresql",
            "--workers N shares one PostgreSQL database (--db postgresql://…); an SQLite file takes one writer "
            "at a time, so more processes would only wait for each other",
            400,
        )


async def _prepare(config: ServeConfig, workers: int) -> tuple[str | None, PoolSizes]:
    """The parent's one opening (module docstring): first password and each worker's pools."""
    from sqlalchemy import text

    from server.bootstrap import open_server

    opened = await open_server(config.data_dir, config.db_url, name=config.name, hostnames=config.hostnames)
    try:
        async with opened.ctx.store.engine.connect() as conn:
            limit = int(await conn.scalar(text("SHOW max_connections")))
            reserved = int(await conn.scalar(text("SHOW superuser_reserved_connections")))
    finally:
        await opened.ctx.store.close()
    return opened.first_password, split_connections(limit, reserved, workers)


def _hold(host: str, port: int) -> socket.socket:
    """Bind (not listen) host:port with SO_REUSEPORT: fixes a port 0 and keeps it ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DomainError("port-in-use", f"cannot listen on {host}:{port}: {exc.strerror}", 400) from None
    return sock


def _worker_main(config: ServeConfig, conn: multiprocessing.connection.Connection) -> None:
    """A worker process: serve until SIGTERM; tell the parent its URLs, or why it could not start."""
    from server.runner import Running

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            running: Running = await start(config)
        except DomainError as err:
            conn.send(("failed", f"{err.error}: {err.detail}"))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which says it and stops
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            return
        conn.send(("ready", (running.admin_url, running.device_url, running.warnings)))
        try:
            await stop.wait()
        finally:
            await running.stop()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    asyncio.run(serve())


class Supervisor:
    def __init__(self, config: ServeConfig, workers: int) -> None:
        check_workers(workers, config.db_url)
        if config.device_socket is not None:
            raise DomainError("invalid-workers", "workers listen on host:port, not on a given socket", 400)
        self.config = config
        self.workers = workers
        self._spawn = multiprocessing.get_context("spawn")
        self._procs: dict[int, tuple[BaseProcess, multiprocessing.connection.Connection]] = {}
        self._stopping = False

    def run(self, announce: Callable[[Started], None]) -> None:
        first_password, pools = asyncio.run(_prepare(self.config, self.workers))
        admin_hold = _hold(self.config.host, self.config.admin_port)
        device_hold = _hold(self.config.host, self.config.effective_device_port)
        try:
            self.config = replace(
                self.config,
                admin_port=admin_hold.getsockname()[1],
                device_port=device_hold.getsockname()[1],
                workers=self.workers,
                pools=pools,
            )
            stop = self._signals()
            first = [self._start(index) for index in range(self.workers)]
            urls = [self._ready(index) for index in range(self.workers)]
            admin_url, device_url, warnings = urls[0]
            announce(Started(admin_url, device_url, warnings, first_password,
                             [proc.pid or 0 for proc in first], pools))
            self._watch(stop)
        finally:
            self._stop_all()
            admin_hold.close()
            device_hold.close()

    def _signals(self) -> list[bool]:
        stop = [False]

        def on_signal(signum: int, frame: Any) -> None:
            stop[0] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        return stop

    def _start(self, index: int) -> BaseProcess:
        parent, child = self._spawn.Pipe(duplex=False)
        config = replace(self.config, worker_index=index)
        proc = self._spawn.Process(target=_worker_main, args=(config, child), name=f"enrollab-worker-{index}",
                                   daemon=True)
        proc.start()
        child.close()
        self._procs[index] = (proc, parent)
        return proc

    def _ready(self, index: int) -> tuple[str, str, list[str]]:
        proc, conn = self._procs[index]
        if not conn.poll(START_TIMEOUT):
            raise DomainError("worker-failed", f"worker {index} did not start within {START_TIMEOUT:.0f} s", 500)
        try:
            state, value = conn.recv()
        except EOFError:
            proc.join(5)
            raise DomainError("worker-failed", f"worker {index} exited while starting (status {proc.exitcode})",
                              500) from None
        if state != "ready":
            raise DomainError("worker-failed", f"worker {index} could not start: {value}", 500)
        return value

    def _watch(self, stop: list[bool]) -> None:
        while not stop[0]:
            sentinels = {proc.sentinel: index for index, (proc, _) in self._procs.items()}
            done = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
            for sentinel in done:
                if stop[0]:
                    break
                index = sentinels[sentinel]  # type: ignore[index]
                proc, _ = self._procs[index]
                proc.join()
                log.warning("worker %d (pid %s) exited with status %s; starting it again", index, proc.pid,
                            proc.exitcode)
                time.sleep(RESTART_DELAY)
                self._start(index)
                self._ready(index)

    def _stop_all(self) -> None:
        for proc, _ in self._procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc, conn in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker %s did not stop within %.0f s; killing it", proc.pid, STOP_GRACE)
                proc.kill()
                proc.join(5)
            conn.close()
        self._procs.clear()
