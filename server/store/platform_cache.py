"""The platform's catalog (FW-1) and lockout policy (LCK-1), cached for the enrollment hot path.

They change rarely and are read on every enrollment. A platform edit through this process's
admin API invalidates the cache at once; other processes sharing the database see it within
`TTL_SECONDS`.

Decisions:
- One load at a time per value and store: requests that find the value stale while it is being
  read again wait for that read instead of starting their own (with 32 enrollments in flight,
  every one of them used to read the catalog when it expired).
- A read that started before an invalidation is not kept: the requests already waiting for it
  get its value (they began before the edit), later ones read again.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.store.db import Store

TTL_SECONDS = 5.0

Loader = Callable[[AsyncSession], Awaitable[Any]]


@dataclass
class _StoreCache:
    values: dict[str, tuple[float, Any]] = field(default_factory=dict)
    loading: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    generation: int = 0


# Per store: one process may open several (tests, a lab with two servers).
_caches: weakref.WeakKeyDictionary[Store, _StoreCache] = weakref.WeakKeyDictionary()


async def cached(name: str, store: Store, load: Loader) -> Any:
    """`load`'s value for `store`, read again (on a read snapshot) once it is `TTL_SECONDS` old."""
    cache = _caches.get(store)
    if cache is None:
        cache = _caches[store] = _StoreCache()
    hit = cache.values.get(name)
    if hit is not None and time.monotonic() - hit[0] < TTL_SECONDS:
        return hit[1]
    pending = cache.loading.get(name)
    if pending is None:
        pending = asyncio.ensure_future(_load(cache, name, store, load))
        cache.loading[name] = pending
    # A waiter that goes away (its request cancelled) must not cancel the others' read.
    return await asyncio.shield(pending)


async def _load(cache: _StoreCache, name: str, store: Store, load: Loader) -> Any:
    started, generation = time.monotonic(), cache.generation
    try:
        async with store.reading() as session:
            value = await load(session)
    finally:
        if cache.generation == generation:
            cache.loading.pop(name, None)
    if cache.generation == generation:
        cache.values[name] = (started, value)
    return value


def invalidate() -> None:
    """After a platform edit (PUT /settings/lockout, PUT /device-families/{model})."""
    for cache in list(_caches.values()):
        cache.generation += 1
        cache.values.clear()
        cache.loading.clear()
