"""The platform's catalog (FW-1) and lockout policy (LCK-1), cached for the enrollment hot path.

They change rarely and are read on every enrollment. A platform edit through this process's
admin API invalidates the cache at once; other processes sharing the database see it within
`TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

TTL_SECONDS = 5.0

_entries: dict[str, tuple[float, Any]] = {}


async def cached(name: str, session: AsyncSession, load: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    now = time.monotonic()
    hit = _entries.get(name)
    if hit is not None and now - hit[0] < TTL_SECONDS:
        return hit[1]
    value = await load(session)
    _entries[name] = (now, value)
    return value


def invalidate() -> None:
    """After a platform edit (PUT /settings/lockout, PUT /device-families/{model})."""
    _entries.clear()
