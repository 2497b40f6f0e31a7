"""Clocks for simulated phones: `now()` in seconds since the epoch and `await sleep(s)`.

- `VirtualClock`: time that moves only when a phone sleeps or a test moves it, so a 60 s
  prompt timeout or a 90 s reboot costs no real time.
  * `auto=True` (default): a sleeper waits only until the tasks that are ready to run have had
    their turn (a couple of event-loop rounds, no real time); then the clock jumps to the
    earliest deadline and wakes whoever is due. Deadlines, not durations, move it: a thousand
    phones sleeping 60 s from the same instant move it by 60 s once, not by 60,000 s. A task
    busy with real I/O meanwhile simply sees the time move on.
  * `auto=False`: sleepers wait until the test calls `advance(s)` / `advance_to(t)`;
    `sleepers` says how many wait, so a test can wait for a phone to reach its timeout.
- `RealClock`: wall time and `asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_START", "Clock", "RealClock", "VirtualClock", "iso"]

DEFAULT_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).timestamp()
_AUTO_ROUNDS = 2


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def iso(t: float) -> str:
    """ISO 8601 UTC with milliseconds, for events and reports."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RealClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Simulated time (module docstring)."""

    def __init__(self, start: float | datetime = DEFAULT_START, *, auto: bool = True) -> None:
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self.auto = auto
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driving = False

    def now(self) -> float:
        return self._now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def sleepers(self) -> int:
        """How many sleepers wait for the test to move the clock (auto=False)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + max(0.0, seconds)
        if deadline <= self._now:
            await asyncio.sleep(0)  # still a point where other tasks run
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        if self.auto and not self._driving:
            self._driving = True
            loop.call_soon(self._drive, loop, _AUTO_ROUNDS)
        await future

    def _drive(self, loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        """auto: after `rounds` turns of the ready tasks, jump to the earliest deadline."""
        if rounds > 0:
            loop.call_soon(self._drive, loop, rounds - 1)
            return
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        if self._sleepers:
            self.advance_to(max(self._now, self._sleepers[0][0]))
        if self.sleepers:
            loop.call_soon(self._drive, loop, _AUTO_ROUNDS)
        else:
            self._driving = False

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake every sleeper whose deadline has come."""
        self.advance_to(self._now + seconds)

    def advance_to(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"a clock does not go back ({iso(t)} < {iso(self._now)})")
        self._now = t
        while self._sleepers and self._sleepers[0][0] <= t:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def wait_for_sleepers(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Yield (real time) until at least `count` tasks sleep on this clock (auto=False)."""
        deadline = time.monotonic() + timeout
        while self.sleepers < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.sleepers} sleepers on the virtual clock, waited for {count}")
            await asyncio.sleep(0.001)
