"""Opening the store: engine, sessions, migrations to head (Alembic), first data.

`--db` takes `sqlite:///path` or `postgresql://user@host/db`; the async drivers are chosen here.

Decisions:
- Hot paths (device enrollment) write their store code once: reads as plans (below), writes as
  plain functions of a synchronous SQLAlchemy Core `Connection` run by `Store.run_write` (and
  `run_read` for other reads). On PostgreSQL that is `AsyncConnection.run_sync` on a kept
  connection (asyncpg: one round trip per statement). On a
  SQLite file it is a synchronous pysqlite connection in a worker thread: aiosqlite costs a
  hand-off to its thread and back for every cursor call — four per statement, five for a
  lone SELECT — where the worker thread costs one per call of `run_plan`/`run_write`.
  Everything else (the admin API's ORM sessions) stays on the async engines.
- PostgreSQL: the admin API's pool pings a connection before each use; SQLAlchemy's asyncpg ping
  is BEGIN, `;`, ROLLBACK (pgbouncer-safe), three round trips, more than an enrollment's read
  itself. The hot path instead keeps up to `HOT_POOL` connections checked out
  (`server.store.hot`), without the ping: a connection that died with the server fails the one
  call that meets it and is replaced.
- Hot reads are plans (`ReadPlan`): generators that yield `(CompiledSelect, params)` and are sent
  each row back, so that the deciding code is written once and each backend runs it its own way
  — on SQLite in a worker thread on one snapshot, on PostgreSQL on the asyncpg connection
  itself, in the event loop, without SQLAlchemy's per-use machinery or a greenlet hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Select, Table, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from server.domain.errors import DomainError
from server.store.hot import HotConnections
from server.store.pools import PoolSizes

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
NO_BEGIN = "enrollab_no_begin"  # execution option: no BEGIN, each statement on its own (`Store.run_read`)
WRITE = "enrollab_write"  # execution option: BEGIN IMMEDIATE (`Store.run_write` on SQLite)
READ_THREADS = 4  # SQLite readers run at once (sqlite3 lets go of the GIL while it reads)
# PostgreSQL connections of `run_plan` / `run_read` / `run_write`, kept open, and no more: each
# new connection costs a backend, authentication, cold caches and SQLAlchemy's set-up queries (a
# pool that opened extra ones under a burst of 32 enrollments opened one every four
# enrollments). Above this many, a caller waits its turn.
HOT_POOL = PoolSizes().hot

T = TypeVar("T")
Query = tuple["CompiledSelect", dict[str, Any]]
# A hot read (module docstring): yields the point reads it needs, one at a time, is sent each
# one's row (or None), and returns its answer.
ReadPlan = Generator[Query, Any, T]


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

    def __init__(self, url: str, *, echo: bool = False, pools: PoolSizes | None = None) -> None:
        """`pools`: PostgreSQL pool sizes (server.store.pools; default: one process's)."""
        self.url = url
        pools = pools or PoolSizes()
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
            kwargs.update(pool_size=pools.admin, max_overflow=pools.overflow, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(aurl, **kwargs)
        self.is_sqlite = aurl.startswith("sqlite")
        self.read_engine = self.engine
        # `run_read` / `run_write` on PostgreSQL: a pool without the ping before each use (module
        # docstring). Engines connect lazily: a store that never enrolls opens no connection here.
        self.hot_engine = self.engine
        self.hot: HotConnections | None = None
        if not self.is_sqlite:
            hot = {**kwargs, "pool_size": pools.hot, "max_overflow": 0, "pool_pre_ping": False}
            self.hot_engine = create_async_engine(aurl, **hot)
            self.hot = HotConnections(self.hot_engine, pools.hot)
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
        # SQLite files: the synchronous engine and the threads of `run_read` / `run_write` (module
        # docstring). An in-memory database cannot be shared by a second engine: it runs on aiosqlite.
        self.sync_engine: Engine | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._thread_local = threading.local()
        self._thread_connections: list[Connection] = []
        self._thread_connections_lock = threading.Lock()
        database = make_url(aurl).database
        if self.is_sqlite and database and database != ":memory:" and not database.startswith("file:"):
            self.sync_engine = create_engine(
                make_url(aurl).set(drivername="sqlite+pysqlite"),
                echo=echo,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=READ_THREADS + 1,  # one kept open by each worker thread
            )
            event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.sync_engine, "begin", _sqlite_begin)
            self._read_threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="ThreadPoolExecutor-sqlite-read")
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="ThreadPoolExecutor-sqlite-write")

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

    async def run_plan(self, plan: ReadPlan[T], *, snapshot: bool = True) -> T:
        """The answer of a hot read `plan` (module docstring). With `snapshot` its reads see one
        state of the database on SQLite; on PostgreSQL (READ COMMITTED) each read sees the latest
        committed state, in a transaction or not, so no transaction is opened there."""
        if self.hot is not None:
            async with self.hot.connection() as hot:
                dialect = self.hot_engine.dialect
                try:
                    query = next(plan)
                    while True:
                        select, params = query
                        query = plan.send(await select.first_async(hot.driver, dialect, params))
                except StopIteration as done:
                    answer: T = done.value
                    return answer
        return await self.run_read(lambda conn: run_plan(conn, plan), snapshot=snapshot)

    async def run_read(self, work: Callable[[Connection], T], *, snapshot: bool = True) -> T:
        """`work(connection)` for reading, never waiting for SQLite's write lock (`reading()` for
        Core; module docstring). With `snapshot=False` no transaction is opened and each statement
        sees the latest committed state on its own: one statement then reads without BEGIN and
        ROLLBACK."""
        if self.sync_engine is not None and self._read_threads is not None:
            return await asyncio.get_running_loop().run_in_executor(self._read_threads, self._read, work, snapshot)
        if self.hot is not None:
            # PostgreSQL (READ COMMITTED) gives each statement its own snapshot, in a transaction or
            # not; the connection is kept, so a transaction SQLAlchemy began is ended here.
            async with self.hot.connection() as hot:
                try:
                    return await hot.connection.run_sync(work)
                finally:
                    if hot.connection.in_transaction():
                        await hot.connection.rollback()
        async with self.read_engine.connect() as conn:
            if not snapshot:
                await conn.execution_options(**{NO_BEGIN: True})
                return await conn.run_sync(work)
            async with conn.begin():
                return await conn.run_sync(work)

    async def run_write(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in one transaction, committed or rolled back whole (`transaction()`
        for Core; module docstring), behind the same in-process queue for SQLite's write lock."""
        if self.hot is not None:
            async with self.hot.connection() as hot, hot.connection.begin():
                return await hot.connection.run_sync(work)
        assert self._write_lock is not None  # SQLite: every store without hot connections
        async with self._write_lock:
            if self.sync_engine is None or self._write_thread is None:
                async with self.engine.begin() as conn:
                    return await conn.run_sync(work)
            return await asyncio.get_running_loop().run_in_executor(self._write_thread, self._write, work)

    def _read(self, work: Callable[[Connection], T], snapshot: bool) -> T:
        conn = self._thread_connection()
        try:
            if snapshot:
                conn.exec_driver_sql("BEGIN")  # the connection's own BEGIN stands down (NO_BEGIN)
            return work(conn)
        except BaseException:
            self._drop_thread_connection()
            raise
        finally:
            if not conn.closed:
                conn.rollback()

    def _write(self, work: Callable[[Connection], T]) -> T:
        conn = self._thread_connection(write=True)
        try:
            with conn.begin():
                return work(conn)
        except BaseException:
            self._drop_thread_connection()
            raise

    def _thread_connection(self, *, write: bool = False) -> Connection:
        """The calling worker thread's own connection, kept open (a pool check-out and check-in
        cost as much as the statement); closed by `close()`."""
        conn: Connection | None = getattr(self._thread_local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            assert self.sync_engine is not None
            conn = self.sync_engine.connect()
            conn.execution_options(**({WRITE: True} if write else {NO_BEGIN: True}))
            self._thread_local.conn = conn
            with self._thread_connections_lock:
                self._thread_connections.append(conn)
        return conn

    def _drop_thread_connection(self) -> None:
        """After an error the connection may be unusable: the thread's next call opens another."""
        conn: Connection | None = getattr(self._thread_local, "conn", None)
        self._thread_local.conn = None
        if conn is not None:
            with self._thread_connections_lock:
                if conn in self._thread_connections:
                    self._thread_connections.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()

    async def refresh_statistics(self, table: str, added: int | None = None) -> None:
        """After a bulk load: PostgreSQL plans on stale row counts until autovacuum catches up, and
        picks sequential scans for lookups on a table it believes empty (DEV-1 imports hit this).
        With `added`, only when the load grew the table by a tenth or more of what the planner
        believes it holds: a 10,000-row import into 1,000,000 devices changes no plan, and ANALYZE
        of a large table costs a quarter of a second (autovacuum's own threshold is a tenth too)."""
        if self.is_sqlite:
            return
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            if added is not None:
                believed = await conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                                             {"t": table})
                if believed is not None and believed >= 0 and added < believed / 10:
                    return
            await conn.execute(text(f'ANALYZE "{table}"'))

    async def insert_many(self, session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert `rows` (dicts of the same columns) in `session`'s transaction: on PostgreSQL by
        COPY (asyncpg's binary copy, 4× the rows per second of a multi-row INSERT), elsewhere by
        executemany. Scalar column defaults are filled in and each value goes through its column
        type's bind processing, as an INSERT would."""
        if not rows:
            return
        if self.is_sqlite:
            await session.execute(table.insert(), rows)
            return
        connection = await session.connection()
        dialect = connection.dialect
        given = list(rows[0])
        defaults = {c.name: getattr(c.default, "arg", None) for c in table.columns
                    if c.name not in given and c.default is not None and c.default.is_scalar}
        columns = [*given, *defaults]
        processors = [(i, fn) for i, name in enumerate(columns)
                      if (fn := table.columns[name].type.bind_processor(dialect)) is not None]
        tail = list(defaults.values())
        records = []
        for row in rows:
            values = [*(row[name] for name in given), *tail]
            for i, fn in processors:
                if values[i] is not None:
                    values[i] = fn(values[i])
            records.append(tuple(values))
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=records, columns=columns, schema_name=self.schema)

    async def close(self) -> None:
        for threads in (self._read_threads, self._write_thread):
            if threads is not None:
                threads.shutdown(wait=True)
        with self._thread_connections_lock:
            connections, self._thread_connections = self._thread_connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        if self.sync_engine is not None:
            self.sync_engine.dispose()
        if self.hot is not None:
            await self.hot.close()
        for engine in {self.engine, self.read_engine, self.hot_engine}:
            await engine.dispose()


class CompiledSelect:
    """A Core SELECT that a hot path runs many times, compiled once per dialect and run on the
    driver itself — sqlite3's cursor, or asyncpg's `fetchrow` (its own prepared-statement cache)
    through `AdaptedConnection.run_async` — each value passed through the result processor of its
    column type: the values `Connection.execute(...).first()` gives, without SQLAlchemy's
    per-execution machinery, which costs several times a point read by key and is paid while
    holding the GIL the event loop needs. Other drivers get `Connection.execute`.

    A driver error bypasses SQLAlchemy's disconnect detection, so it invalidates the connection:
    the next use opens a new one."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.row = _row_type([str(column.key) for column in statement.selected_columns])
        self._compiled: dict[str, tuple[str, list[tuple[str, Any]], list[Any]]] = {}

    def first(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The first row (attributes named by the statement's column labels), or None."""
        dialect = conn.dialect
        driver = f"{dialect.name}+{dialect.driver}"
        if driver not in ("sqlite+pysqlite", "postgresql+asyncpg"):
            return conn.execute(self.statement, params).first()
        sql, args, processors = self._bound(driver, dialect, params)
        try:
            raw = self._fetch(conn, driver, sql, args)
        except Exception:
            conn.invalidate()
            raise
        return self._row(raw, processors)

    async def first_async(self, driver_connection: Any, dialect: Any, params: dict[str, Any]) -> Any:
        """`first` on an asyncpg connection itself, in the event loop (`Store.run_plan`)."""
        sql, args, processors = self._bound("postgresql+asyncpg", dialect, params)
        return self._row(await driver_connection.fetchrow(sql, *args), processors)

    def _bound(self, driver: str, dialect: Any, params: dict[str, Any]) -> tuple[str, list[Any], list[Any]]:
        compiled = self._compiled.get(driver)
        if compiled is None:
            compiled = self._compiled[driver] = self._compile(dialect)
        sql, binds, processors = compiled
        return sql, [bind(params[name]) if bind else params[name] for name, bind in binds], processors

    def _row(self, raw: Any, processors: list[Any]) -> Any:
        if raw is None:
            return None
        return self.row._make(value if p is None else p(value) for p, value in zip(processors, raw, strict=True))

    def _compile(self, dialect: Any) -> tuple[str, list[tuple[str, Any]], list[Any]]:
        compiled = self.statement.compile(dialect=dialect)
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        ]
        processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in self.statement.selected_columns
        ]
        return str(compiled), binds, processors

    @staticmethod
    def _fetch(conn: Connection, driver: str, sql: str, args: list[Any]) -> Any:
        dbapi_connection: Any = conn.connection.dbapi_connection
        if driver == "postgresql+asyncpg":
            return dbapi_connection.run_async(lambda asyncpg_connection: asyncpg_connection.fetchrow(sql, *args))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, args)
            return cursor.fetchone()
        finally:
            cursor.close()


def run_plan(conn: Connection, plan: ReadPlan[T]) -> T:
    """Run a hot read `plan` on a synchronous connection, one `CompiledSelect.first` per read."""
    try:
        query = next(plan)
        while True:
            select, params = query
            query = plan.send(select.first(conn, params))
    except StopIteration as done:
        answer: T = done.value
        return answer


def _row_type(names: list[str]) -> Any:
    """Rows read by attribute, like SQLAlchemy's, at a tuple's cost."""
    return namedtuple("Row", names)  # noqa: PYI024 - the fields are known only at run time


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would defer BEGIN; we issue it ourselves (below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_deferred(conn: Any) -> None:
    if conn.get_execution_options().get(NO_BEGIN):
        return  # `run_read(snapshot=False)`: every statement is its own transaction
    conn.exec_driver_sql("BEGIN")


def _sqlite_begin(conn: Any) -> None:
    """The synchronous engine: reads as `_sqlite_begin_deferred`, writes as `_sqlite_begin_immediate`."""
    options = conn.get_execution_options()
    if options.get(WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif not options.get(NO_BEGIN):
        conn.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN so read-then-write transactions serialise instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
