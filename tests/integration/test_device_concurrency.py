"""EC-3 and LCK-3 under real concurrency: many phones (or one phone many times) on their own
mutual-TLS connections at once, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest
from sqlalchemy import select

from server.device import enroll as enroll_module
from server.runner import Running
from server.store.enrollment import LostRace
from server.store.models import Device
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Phone,
    device_row,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
)


@pytest.fixture
def lost_races(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every conditional update that found its row changed (decided again afterwards)."""
    lost: list[str] = []
    original = enroll_module.apply_decision

    async def counting(*args: Any, **kwargs: Any) -> None:
        try:
            await original(*args, **kwargs)
        except LostRace as race:
            lost.append(str(race))
            raise

    monkeypatch.setattr(enroll_module, "apply_decision", counting)
    return lost


async def test_ec3_hundred_phones_at_once_on_a_code_for_ten(
    server: Running, admin: ApiClient, lost_races: list[str]
) -> None:
    """EC-3: 100 approved phones send one NEC of total 10 at the same moment: exactly 10 enroll."""
    phones = [Phone.make(server) for _ in range(100)]
    await import_phones(admin, phones)
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site, total=10)
    for phone in phones:
        assert phone.ssl is not None  # contexts built before the clock starts: only requests race

    started = time.perf_counter()
    answers = await asyncio.gather(*(phone.enroll(code=code) for phone in phones))
    elapsed = time.perf_counter() - started

    counted = collections.Counter((a.status, a["result"]) for a in answers)
    print(f"\nEC-3: 100 concurrent enrollments in {elapsed:.2f} s: {dict(counted)}; lost races {len(lost_races)}")
    assert counted == {(200, "redirect"): 10, (422, "code_invalid"): 90}
    assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 10
    winners = {p.mac for p, a in zip(phones, answers, strict=True) if a.status == 200}
    async with server.opened.ctx.store.transaction() as s:
        rows = {d.mac: d for d in await s.scalars(select(Device))}
    enrolled = {mac for mac, d in rows.items() if d.owner_id == cust.id and d.activated and d.site_id == site}
    assert enrolled == winners
    # ENR-5: every attempt has its entry, exactly once (lost races left nothing behind).
    log = await enrollment_log(server)
    assert len(log) == 100
    assert collections.Counter(e.status for e in log) == {"SUCCESS": 10, "FAIL": 90}


async def test_lck3_twenty_wrong_codes_at_once_count_three(
    server: Running, admin: ApiClient, lost_races: list[str]
) -> None:
    """LCK-3: one phone sends 20 wrong codes concurrently: L=3 count, the rest meet the lock."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site)
    wrong = "55555555" if code != "55555555" else "66666666"

    started = time.perf_counter()
    answers = await asyncio.gather(*(phone.enroll(code=wrong) for _ in range(20)))
    elapsed = time.perf_counter() - started

    statuses = collections.Counter((a.status, a["result"]) for a in answers)
    print(f"\nLCK-3: 20 concurrent wrong codes in {elapsed:.2f} s: {dict(statuses)}; lost races {len(lost_races)}")
    assert statuses == {(422, "code_invalid"): 2, (423, "locked"): 18}
    assert sorted(a["attempts_left"] for a in answers if a.status == 422) == [1, 2]
    row = await device_row(server, phone.mac)
    assert row.failed_attempts == 3 and row.locked_until is not None
    right = await phone.enroll(code=code)
    assert (right.status, right["result"]) == (423, "locked")
    assert (await device_row(server, phone.mac)).failed_attempts == 3
    assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 0
    assert len(await enrollment_log(server)) == 21
