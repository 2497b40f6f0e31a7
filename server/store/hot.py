"""PostgreSQL connections the enrollment hot path keeps checked out (`Store.run_plan`,
`Store.run_write`).

Decisions:
- A pool check-out and check-in (SQLAlchemy's `AsyncConnection` start and close, its events, the
  greenlet hop) cost about 0.2 ms of the event loop's CPU per use, more than the point read they
  serve (measured on this machine: 388 µs per read through the pool, 191 µs on a connection
  kept checked out, 109 µs for the same statement on the asyncpg connection itself). So the
  store checks out at most `size` connections once and lends them, one user at a time: the
  reads run on the asyncpg connection underneath (`Store.run_plan`), the batched writes on the
  SQLAlchemy connection (`Store.run_write`). The asyncpg connections come through SQLAlchemy's
  pool, so they carry the dialect's type codecs (JSON) and the schema's `search_path`.
- The connections wait in a stack (`asyncio.LifoQueue`), so the most recently used one is lent
  first and quiet times keep using the same few. A free slot is a `None` in it: the user who
  takes it opens a connection. A connection whose user was cancelled (the driver may be
  mid-statement), or that is closed or invalidated after an error, is closed and its slot
  freed; after any other error it is lent again. A connection that died with the server fails
  the one call that meets it.
- Connections older than `recycle` seconds are closed when they come back, as the pool's
  `pool_recycle` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(eq=False)
class HotConnection:
    """A checked-out SQLAlchemy connection and the asyncpg connection underneath it."""

    connection: AsyncConnection
    driver: Any
    opened: float = field(default_factory=time.monotonic)

    def healthy(self) -> bool:
        if self.connection.closed or self.connection.invalidated:
            return False
        is_closed = getattr(self.driver, "is_closed", None)
        return not (is_closed is not None and is_closed())


class HotConnections:
    """At most `size` connections of `engine`, each lent to one user at a time (module docstring)."""

    def __init__(self, engine: AsyncEngine, size: int, *, recycle: float = 1800) -> None:
        self.engine = engine
        self.size = size
        self.recycle = recycle
        self._slots: asyncio.LifoQueue[HotConnection | None] | None = None
        self._closed = False

    def _queue(self) -> asyncio.LifoQueue[HotConnection | None]:
        # Made on first use, inside the event loop that uses it.
        if self._slots is None:
            self._slots = asyncio.LifoQueue()
            for _ in range(self.size):
                self._slots.put_nowait(None)
        return self._slots

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[HotConnection]:
        """A connection for the caller alone until the block ends."""
        if self._closed:
            raise RuntimeError("the store is closed")
        slots = self._queue()
        hot = await slots.get()
        if hot is None:
            try:
                hot = await self._open()
            except BaseException:
                slots.put_nowait(None)
                raise
        try:
            yield hot
        except Exception:
            await self._give_back(hot, keep=hot.healthy())
            raise
        except BaseException:  # cancelled: the driver may be mid-statement
            await self._give_back(hot, keep=False)
            raise
        else:
            await self._give_back(hot, keep=hot.healthy())

    async def _open(self) -> HotConnection:
        connection = await self.engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        return HotConnection(connection, raw.driver_connection)

    async def _give_back(self, hot: HotConnection, *, keep: bool) -> None:
        slots = self._queue()
        if keep and not self._closed and time.monotonic() - hot.opened < self.recycle:
            slots.put_nowait(hot)
            return
        slots.put_nowait(None)
        await _close(hot, invalidate=not keep)

    async def close(self) -> None:
        """Close every idle connection; connections still lent are closed when they come back."""
        self._closed = True
        if self._slots is None:
            return
        while not self._slots.empty():
            hot = self._slots.get_nowait()
            if hot is not None:
                await _close(hot, invalidate=False)


async def _close(hot: HotConnection, *, invalidate: bool) -> None:
    with contextlib.suppress(Exception):
        if invalidate:
            await hot.connection.invalidate()
        await hot.connection.close()
