"""DEV-11: filters run as SQL on the real database, with the same answers on SQLite and PostgreSQL,
and a MAC prefix search is served by an index, not a table scan."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from server.domain.search import DEVICE_FIELDS, parse_filter
from server.store.db import Store
from server.store.models import Device
from server.store.search import to_sql

ROWS = [
    ("A4251B000001", "21WZ5_0001", "J179"),
    ("A4251B000002", "21wz5%0002", "J179"),
    ("A4251C000003", "AB*[X]0003", "K175"),
    ("C81FEA000004", "22KX6/0004", "B199"),
]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = Store(db_url)
    await s.migrate()
    async with s.transaction() as session:
        for mac, serial, model in ROWS:
            session.add(Device(mac=mac, serial=serial, model=model))
    yield s
    await s.close()


async def _search(store: Store, q: dict) -> list[str]:
    columns = {n: getattr(Device, n) for n in DEVICE_FIELDS if n not in ("label", "enrolled")}
    cond = to_sql(parse_filter(q, DEVICE_FIELDS), columns)
    async with store.transaction() as session:
        return sorted(await session.scalars(select(Device.mac).where(cond)))


def one(field: str, op: str, value: str) -> dict:
    return {"all": [{"field": field, "op": op, "value": value}]}


async def test_dev11_each_operator_exact(store: Store) -> None:
    assert await _search(store, one("mac", "starts_with", "A4251B")) == ["A4251B000001", "A4251B000002"]
    assert await _search(store, one("mac", "ends_with", "0004")) == ["C81FEA000004"]
    assert await _search(store, one("mac", "contains", "251C")) == ["A4251C000003"]
    assert await _search(store, one("model", "eq", "J179")) == ["A4251B000001", "A4251B000002"]
    assert len(await _search(store, one("model", "ne", "J179"))) == 2


async def test_dev11_and_or(store: Store) -> None:
    q_and = {
        "all": [{"field": "mac", "op": "starts_with", "value": "A425"}, {"field": "model", "op": "eq", "value": "K175"}]
    }
    q_or = {"any": [{"field": "model", "op": "eq", "value": "B199"}, {"field": "model", "op": "eq", "value": "K175"}]}
    assert await _search(store, q_and) == ["A4251C000003"]
    assert await _search(store, q_or) == ["A4251C000003", "C81FEA000004"]


async def test_dev11_wildcards_in_values_are_literal(store: Store) -> None:
    assert await _search(store, one("serial", "contains", "_")) == ["A4251B000001"]
    assert await _search(store, one("serial", "contains", "%")) == ["A4251B000002"]
    assert await _search(store, one("serial", "starts_with", "AB*[X]")) == ["A4251C000003"]
    assert await _search(store, one("serial", "contains", "/")) == ["C81FEA000004"]


async def test_dev11_text_operators_are_case_sensitive_on_every_backend(store: Store) -> None:
    assert await _search(store, one("serial", "starts_with", "21WZ")) == ["A4251B000001"]
    assert await _search(store, one("serial", "starts_with", "21wz")) == ["A4251B000002"]


async def test_dev11_mac_prefix_uses_an_index(store: Store) -> None:
    cond = to_sql(parse_filter(one("mac", "starts_with", "A425"), DEVICE_FIELDS), {"mac": Device.mac})
    stmt = select(Device.mac).where(cond)
    async with store.transaction() as session:
        compiled = stmt.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True})
        if store.is_sqlite:
            plan = " ".join(str(r[-1]) for r in await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            assert plan.startswith("SEARCH") and "INDEX" in plan, plan  # not "SCAN devices"
        else:
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            sql = str(compiled).replace("%%", "%")
            plan = " ".join(r[0] for r in await session.execute(text(f"EXPLAIN {sql}")))
            assert "Index" in plan, plan
