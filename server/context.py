"""What every request handler can reach: the store, the clock, the data directory, identity."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.domain.failure_notices import NoticeLimiter
from server.domain.login_throttle import LoginGate
from server.domain.throttle import CLAIM_PROOF, FailureBudget, GuessGate
from server.store.db import Store

if TYPE_CHECKING:
    from server.pki.store import Pki


log = logging.getLogger("enrollab.server")


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServerContext:
    store: Store
    data_dir: Path
    name: str = "enrollab"
    device_url: str = ""  # https://host:port of the device listener (PROTOCOL §2), set once it listens
    est_url: str = ""  # <device_url>/.well-known/est (ENR-8)
    pki: Pki | None = None  # DATA/pki, loaded (or created) at start
    # Injected in tests (lockout and expiry times, USR-2) — rules never read the wall clock.
    clock: Callable[[], datetime] = system_clock
    token_hours: int = 12
    # USR-3 certificate login (issue 16): the admin listener's TLS context when it serves HTTPS
    # with client certificates (`enrollab serve --admin-tls`), and whether public CAs log in.
    admin_ssl: ssl.SSLContext | None = None
    login_public_cas: bool = False
    background: set[asyncio.Task[None]] = field(default_factory=set)
    guessing: GuessGate = field(default_factory=GuessGate)  # enrollment-code guessing budgets (issue 13)
    claims: FailureBudget = field(default_factory=lambda: FailureBudget(CLAIM_PROOF))  # DEV-3 claim proof
    login_throttle: LoginGate = field(default_factory=LoginGate)  # failed-login limits (issue 13)
    failure_notices: NoticeLimiter = field(default_factory=NoticeLimiter)  # NTF-1 failure-notice limits (issue 13)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a job in the background, keeping a reference so it is not collected mid-way."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def stop_background(self, grace: float = 5.0) -> None:
        """Cancel every background task and wait (up to `grace` seconds) until each has ended, so
        none outlives the server and touches a closed store; a task that will not end is logged."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=grace)
        for task in stuck:
            log.warning("background task %s did not end within %.0f s of shutdown", task.get_coro(), grace)
