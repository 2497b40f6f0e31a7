"""`server.store.pools`: connection pools of server processes sharing one PostgreSQL (issue 17)."""

from __future__ import annotations

import pytest

from server.domain.errors import DomainError
from server.store.pools import PoolSizes, split_connections


def test_one_or_two_processes_keep_the_defaults_under_postgresqls_usual_limit() -> None:
    assert split_connections(100, 3, 1) == PoolSizes()
    assert split_connections(100, 3, 2) == PoolSizes()  # 2 × 42 = 84 ≤ 100 - 3 - 10


@pytest.mark.parametrize("processes", [3, 4, 8, 20])
def test_more_processes_share_what_postgresql_allows_and_leave_a_spare_tenth(processes: int) -> None:
    sizes = split_connections(100, 3, processes)
    assert sizes.total * processes <= 100 - 3 - 10
    assert sizes.hot >= 2 and sizes.admin >= 1 and sizes.overflow >= 0
    assert sizes.total == 87 // processes  # none of the share is wasted


def test_a_large_server_is_split_with_a_tenth_spare() -> None:
    assert split_connections(1000, 3, 30) == PoolSizes(admin=9, overflow=9, hot=11)  # 29 each
    assert 30 * 29 <= 1000 - 3 - 100


def test_too_many_processes_for_the_database_are_refused_before_they_start() -> None:
    with pytest.raises(DomainError) as err:
        split_connections(100, 3, 40)
    assert err.value.error == "too-many-workers"
    assert "max_connections" in err.value.detail
