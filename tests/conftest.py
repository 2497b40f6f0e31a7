"""Shared fixtures: an injected clock, and a real server on a real socket (SQLite, or PostgreSQL when
ENROLLAB_TEST_DB is set — the tox `postgres` env)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

ADMIN_PASSWORD = "Platform-Admin-Pw-1"

# Cheap argon2 parameters for the suite's many logins (production keeps the default profile).
os.environ.setdefault("ENROLLAB_PASSWORD_HASH", "test")


class FakeClock:
    """A clock tests move by hand (lockout, expiry, reset tokens)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _postgres_reachable(url: str) -> str | None:
    import asyncpg  # type: ignore[import-untyped]

    async def probe() -> None:
        conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


@pytest.fixture(scope="session")
def db_backend() -> str | None:
    url = os.environ.get("ENROLLAB_TEST_DB")
    if not url:
        return None
    problem = _postgres_reachable(url)
    if problem:
        pytest.skip(f"PostgreSQL at {url} is not reachable ({problem}); the postgres env needs it")
    return url


@pytest.fixture
async def db_url(db_backend: str | None, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """SQLite in the test's tmp dir, or a fresh PostgreSQL schema per test (dropped afterwards)."""
    if db_backend is None:
        yield f"sqlite:///{tmp_path / 'enrollab.db'}"
        return
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    sep = "&" if "?" in db_backend else "?"
    yield f"{db_backend}{sep}schema={schema}"
    conn = await asyncpg.connect(db_backend.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A leaked aiosqlite connection keeps a non-daemon worker thread alive, and the interpreter
    then waits for it forever after the last test: CI sees a hang, not a failure. Stop such
    connections here and say which threads leaked, so the leak is visible and the run ends."""
    import gc
    import sys
    import threading

    import aiosqlite

    # Executor workers (asyncio.to_thread) are joined by the interpreter itself; others are not.
    leaked = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread()
        and t.is_alive()
        and not t.daemon
        and not t.name.startswith(("ThreadPoolExecutor", "asyncio_"))
    ]
    if not leaked:
        return
    stopped = 0
    for obj in gc.get_objects():
        if isinstance(obj, aiosqlite.Connection) and obj._running:
            try:
                obj.stop()
            except Exception as exc:  # a closed loop: stop() still queues the sentinel first
                print(f"enrollab tests: stopping a leaked aiosqlite connection: {exc!r}", file=sys.stderr)
            stopped += 1
    names = ", ".join(sorted({t.name for t in leaked}))
    print(
        f"\nenrollab tests: {len(leaked)} non-daemon thread(s) still alive after the session ({names}); "
        f"stopped {stopped} leaked aiosqlite connection(s)",
        file=sys.stderr,
    )
