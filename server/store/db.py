"""Opening the store: engine, sessions, migrations to head (Alembic), first data.

`--db` takes `sqlite:///path` or `postgresql://user@host/db`; the async drivers are chosen here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from server.domain.errors import DomainError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def async_url(url: str) -> str:
    """Map a user-facing database URL to its async driver (aiosqlite / asyncpg)."""
    try:
        u = make_url(url)
    except Exception as exc:
        raise DomainError("invalid-db-url", f"not a database URL: {exc}", 400, url) from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        return str(u.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DomainError("invalid-db-url", "only sqlite:/// and postgresql:// databases are supported", 400, url)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


class Store:
    """One database: an engine and a session factory. Every state change is one transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        aurl = async_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        self.schema: str | None = None
        if aurl.startswith("postgresql"):
            # `?schema=NAME` keeps one lab (or one test) in its own schema of a shared database.
            u = make_url(aurl)
            self.schema = u.query.get("schema")  # type: ignore[assignment]
            if self.schema is not None:
                if not self.schema.replace("_", "").isalnum():
                    raise DomainError("invalid-db-url", "schema names are letters, digits and _", 400, self.schema)
                aurl = u.difference_update_query(["schema"]).render_as_string(hide_password=False)
                kwargs["connect_args"] = {"server_settings": {"search_path": self.schema}}
        if aurl.startswith("sqlite"):
            # One writer at a time; a busy writer waits instead of failing (concurrent enrollments).
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(aurl, **kwargs)
        self.is_sqlite = aurl.startswith("sqlite")
        self.read_engine = self.engine
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
            # Readers need no write lock: under WAL they see a consistent snapshot beside the writer.
            self.read_engine = create_async_engine(aurl, **kwargs)
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.read_engine.sync_engine, "begin", _sqlite_begin_deferred)
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    async def migrate(self) -> None:
        if self.schema:
            from sqlalchemy import text

            async with self.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits as one transaction, or rolls back whole on error.

        SQLite has one writer at a time; this process's writers queue on a lock instead of
        meeting in SQLite's busy handler, whose back-off sleeps cost hundreds of milliseconds
        under load. Other processes sharing the file still wait in the busy handler."""
        if self._write_lock is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only snapshot that never waits for SQLite's write lock. Decisions made on it are
        written later with conditional updates (EC-3, LCK-3), so a stale read loses a race, never a rule."""
        async with self.read_sessions() as session, session.begin():
            yield session

    async def refresh_statistics(self, table: str) -> None:
        """After a bulk load: PostgreSQL plans on stale row counts until autovacuum catches up, and
        picks sequential scans for lookups on a table it believes empty (DEV-1 imports hit this)."""
        if self.is_sqlite:
            return
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text(f'ANALYZE "{table}"'))

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would defer BEGIN; we issue it ourselves (below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN so read-then-write transactions serialise instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
