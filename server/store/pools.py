"""Connection pools of server processes sharing one PostgreSQL database (issue 17).

A server process opens up to `PoolSizes.total` connections: the admin API's pool (`admin`, and
`overflow` more under a burst) and the enrollment hot path's kept connections (`hot`,
server.store.db). One process uses the defaults, 42, well under PostgreSQL's usual
`max_connections` of 100. N processes (`enrollab serve --workers N`) would open N × 42: with three
that is more than PostgreSQL allows, and the process that meets the limit fails requests.

Decisions [inf]:
- The database's own limit is split: `max_connections` less its reserved superuser slots and a
  spare tenth (at least 10) for psql, backups and the CLI's other commands, divided by the
  processes. A process never gets more than the defaults: on this 2-core machine more
  connections than that only queue inside PostgreSQL (measured in bench/enroll_throughput.py:
  12 kept connections serve 32 concurrent enrollments).
- Below the defaults the hot path keeps two fifths (at least 2) and the admin API's steady pool
  half of the rest (at least 1), the rest its overflow.
- Fewer than 4 connections per process is refused before any process starts: a worker with
  fewer would stall its own requests; fewer workers, or a higher `max_connections`, is the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.errors import DomainError

MIN_PER_PROCESS = 4


@dataclass(frozen=True)
class PoolSizes:
    admin: int = 10
    overflow: int = 20
    hot: int = 12

    @property
    def total(self) -> int:
        return self.admin + self.overflow + self.hot


def split_connections(max_connections: int, reserved: int, processes: int) -> PoolSizes:
    """Each of `processes` processes' pools under the database's limits (module docstring)."""
    spare = max(10, max_connections // 10)
    per_process = (max_connections - reserved - spare) // max(1, processes)
    if per_process < MIN_PER_PROCESS:
        raise DomainError(
            "too-many-workers",
            f"PostgreSQL allows {max_connections} connections ({reserved} reserved, {spare} kept spare): "
            f"{processes} server processes would get {max(per_process, 0)} each, fewer than {MIN_PER_PROCESS}; "
            "start fewer workers or raise max_connections",
            400,
        )
    default = PoolSizes()
    if per_process >= default.total:
        return default
    hot = max(2, min(default.hot, per_process * 2 // 5))
    admin = max(1, (per_process - hot) // 2)
    return PoolSizes(admin=admin, overflow=per_process - hot - admin, hot=hot)
