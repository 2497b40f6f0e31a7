"""Enrollment codes over the admin API: EC-1, EC-2, EC-4, EC-5, EC-6, EC-8, ACC-7, roles, LOG-1."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from server.runner import Running
from server.store.models import AuditLog, EnrollmentCode
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.test_api_sites import make_site, setup

TWO_DAYS = {"unit": "days", "value": 2}
THREE_HOURS = {"unit": "hours", "value": 3}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def set_enrolled(server: Running, site_id: int, enrolled: int) -> None:
    """What successful code enrollments (EC-7) do to the counter."""
    async with server.opened.ctx.store.transaction() as s:
        await s.execute(update(EnrollmentCode).where(EnrollmentCode.site_id == site_id).values(enrolled=enrolled))


# EC-1 -------------------------------------------------------------------------------------------


async def test_ec1_nec_8_digits_with_total_and_expiry_from_the_clock(admin: ApiClient, clock: FakeClock) -> None:
    sp, _, _, site = await setup(admin)
    nec = (await sp.post(f"/sites/{site['id']}/nec", {"length": 8, "total_devices": 25, "expiry": TWO_DAYS})).ok()
    assert len(nec["code"]) == 8 and nec["code"].isdigit()
    assert (nec["length"], nec["total_devices"], nec["enrolled"], nec["expiry"]) == (8, 25, 0, TWO_DAYS)
    assert at(nec["expires_at"]) == at("2026-11-25T09:00:00+00:00")  # the injected clock + 2 days
    assert nec["status"] == "active"
    assert (await sp.get(f"/sites/{site['id']}/nec")).ok() == nec


async def test_ec1_nec_12_digits_never_expiring(admin: ApiClient) -> None:
    sp, _, _, site = await setup(admin)
    nec = (await sp.post(f"/sites/{site['id']}/nec", {"length": 12, "total_devices": 1, "expiry": None})).ok()
    assert len(nec["code"]) == 12 and nec["code"].isdigit() and nec["expires_at"] is None
    assert nec["code"][0] == "0"  # never equal to a PEC, whose account ID never starts with 0


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ({"unit": "hours", "value": 72}, "2026-11-26T09:00:00+00:00"),
        ({"unit": "weeks", "value": 12}, "2027-02-15T09:00:00+00:00"),
        ({"unit": "months", "value": 3}, "2027-02-23T09:00:00+00:00"),
        ({"unit": "days", "value": 90}, "2027-02-21T09:00:00+00:00"),
    ],
)
async def test_ec1_expiry_bounds_are_accepted(admin: ApiClient, expiry: dict[str, Any], expected: str) -> None:
    sp, _, _, site = await setup(admin)
    nec = (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5, "expiry": expiry})).ok()
    assert at(nec["expires_at"]) == at(expected) and nec["length"] == 8  # length defaults to 8


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"total_devices": 5, "expiry": {"unit": "hours", "value": 73}}, "invalid-expiry"),
        ({"total_devices": 5, "expiry": {"unit": "days", "value": 0}}, "invalid-expiry"),
        ({"total_devices": 5, "expiry": {"unit": "months", "value": 4}}, "invalid-expiry"),
        ({"total_devices": 5, "expiry": {"unit": "years", "value": 1}}, "invalid-expiry"),
        ({"total_devices": 5, "expiry": "2 days"}, "invalid-expiry"),
        ({"total_devices": 5, "length": 10}, "invalid-code-length"),
        ({"total_devices": 0}, "invalid-total"),
        ({"total_devices": "ten"}, "invalid-total"),
    ],
)
async def test_ec1_bad_settings_are_refused_and_nothing_stored(
    admin: ApiClient, body: dict[str, Any], error: str
) -> None:
    sp, _, _, site = await setup(admin)
    ans = await sp.post(f"/sites/{site['id']}/nec", body)
    assert ans.status == 422 and ans["error"] == error
    assert (await sp.get(f"/sites/{site['id']}/nec"))["error"] == "no-nec"


async def test_ec1_one_nec_per_site(admin: ApiClient) -> None:
    sp, _, _, site = await setup(admin)
    first = (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5})).ok()
    ans = await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5})
    assert ans.status == 409 and ans["error"] == "nec-exists"
    assert (await sp.get(f"/sites/{site['id']}/nec")).ok()["code"] == first["code"]


async def test_ec1_code_expires_at_its_instant(admin: ApiClient, clock: FakeClock) -> None:
    sp, _, _, site = await setup(admin)
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5, "expiry": {"unit": "hours", "value": 1}})).ok()
    clock.advance(minutes=59)
    assert (await sp.get(f"/sites/{site['id']}/nec")).ok()["status"] == "active"
    clock.advance(minutes=1)
    assert (await sp.get(f"/sites/{site['id']}/nec")).ok()["status"] == "expired"


# EC-2 -------------------------------------------------------------------------------------------


async def test_ec2_site_without_profile_gets_no_nec(admin: ApiClient) -> None:
    sp, customer, _, _ = await setup(admin)
    bare = await make_site(sp, customer, None)
    ans = await sp.post(f"/sites/{bare['id']}/nec", {"total_devices": 5})
    assert ans.status == 409 and ans["error"] == "site-without-profile"
    assert (await sp.get(f"/sites/{bare['id']}/nec")).status == 404


# EC-4 -------------------------------------------------------------------------------------------


async def test_ec4_update_total_keeps_clock_new_expiry_counts_from_now(admin: ApiClient, clock: FakeClock) -> None:
    sp, _, _, site = await setup(admin)
    nec = (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5, "expiry": TWO_DAYS})).ok()
    clock.advance(hours=5)
    upd = (await sp.call("PATCH", f"/sites/{site['id']}/nec", {"total_devices": 50})).ok()
    assert (upd["code"], upd["total_devices"], upd["expires_at"]) == (nec["code"], 50, nec["expires_at"])
    upd = (await sp.call("PATCH", f"/sites/{site['id']}/nec", {"expiry": {"unit": "hours", "value": 3}})).ok()
    assert at(upd["expires_at"]) == at("2026-11-23T17:00:00+00:00")  # 14:00 now + 3 hours
    upd = (await sp.call("PATCH", f"/sites/{site['id']}/nec", {"expiry": None})).ok()
    assert upd["expires_at"] is None and upd["code"] == nec["code"]
    bad = await sp.call("PATCH", f"/sites/{site['id']}/nec", {"total_devices": -1})
    assert bad.status == 422 and bad["error"] == "invalid-total"


async def test_ec4_used_up_total_is_read_back(admin: ApiClient, server: Running) -> None:
    sp, _, _, site = await setup(admin)
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 3})).ok()
    await set_enrolled(server, site["id"], 3)
    nec = (await sp.get(f"/sites/{site['id']}/nec")).ok()
    assert (nec["enrolled"], nec["remaining"], nec["status"]) == (3, 0, "used-up")
    raised = (await sp.call("PATCH", f"/sites/{site['id']}/nec", {"total_devices": 4})).ok()
    assert (raised["enrolled"], raised["remaining"], raised["status"]) == (3, 1, "active")


# EC-5 -------------------------------------------------------------------------------------------


async def test_ec5_regenerate_new_code_same_settings_count_kept(
    admin: ApiClient, server: Running, clock: FakeClock
) -> None:
    sp, _, _, site = await setup(admin)
    old = (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 10, "expiry": THREE_HOURS})).ok()
    await set_enrolled(server, site["id"], 4)
    clock.advance(hours=4)
    assert (await sp.get(f"/sites/{site['id']}/nec")).ok()["status"] == "expired"
    new = (await sp.post(f"/sites/{site['id']}/nec/regenerate", {"length": 12})).ok()
    assert new["code"] != old["code"] and len(new["code"]) == 12
    assert (new["total_devices"], new["enrolled"], new["expiry"]) == (10, 4, THREE_HOURS)
    assert at(new["expires_at"]) == at("2026-11-23T16:00:00+00:00")  # restarted at regeneration (13:00)
    assert new["status"] == "active"
    again = (await sp.post(f"/sites/{site['id']}/nec/regenerate")).ok()
    assert len(again["code"]) == 12 and again["code"] != new["code"]  # keeps the current length


async def test_ec5_regenerate_without_nec_or_profile(admin: ApiClient) -> None:
    sp, _, _, site = await setup(admin)
    ans = await sp.post(f"/sites/{site['id']}/nec/regenerate")
    assert ans.status == 404 and ans["error"] == "no-nec"
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 1})).ok()
    (await sp.call("PATCH", f"/sites/{site['id']}", {"profile_id": None})).ok()
    ans = await sp.post(f"/sites/{site['id']}/nec/regenerate")
    assert ans.status == 409 and ans["error"] == "site-without-profile"


async def test_nec_delete(admin: ApiClient) -> None:
    sp, _, _, site = await setup(admin)
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 1})).ok()
    assert (await sp.call("DELETE", f"/sites/{site['id']}/nec")).ok() == {"deleted": site["id"]}
    assert (await sp.get(f"/sites/{site['id']}/nec"))["error"] == "no-nec"
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 1})).ok()  # a new one may follow


# EC-6 -------------------------------------------------------------------------------------------


async def test_ec6_pec_is_account_id_plus_pin(admin: ApiClient) -> None:
    sp, customer, profile, _ = await setup(admin)
    site = await make_site(sp, customer, profile["id"], pin="0042")
    pec = (await sp.get(f"/sites/{site['id']}/pec")).ok()
    assert pec["code"] == customer + "0042" and pec["expires_at"] is None
    (await sp.call("PATCH", f"/sites/{site['id']}", {"pin": None})).ok()
    ans = await sp.get(f"/sites/{site['id']}/pec")
    assert ans.status == 404 and ans["error"] == "no-pin"


# EC-8 -------------------------------------------------------------------------------------------


async def test_ec8_codes_of_many_sites_are_distinct(admin: ApiClient, server: Running) -> None:
    sp, customer, profile, _ = await setup(admin)
    codes = []
    for i in range(12):
        site = await make_site(sp, customer, profile["id"])
        length = 8 if i % 2 else 12
        codes.append((await sp.post(f"/sites/{site['id']}/nec", {"length": length, "total_devices": 1})).ok()["code"])
    assert len(set(codes)) == len(codes)
    async with server.opened.ctx.store.transaction() as s:
        stored = list(await s.scalars(select(EnrollmentCode.code)))
    assert sorted(stored) == sorted(codes)


# ACC-7, roles, LOG-1 ----------------------------------------------------------------------------


async def test_acc7_another_providers_codes_are_404(admin: ApiClient) -> None:
    sp1, customer, profile, _ = await setup(admin)
    site = await make_site(sp1, customer, profile["id"], pin="1234")
    (await sp1.post(f"/sites/{site['id']}/nec", {"total_devices": 5})).ok()
    sp2 = await admin.new_account("service_provider")
    sid = site["id"]
    for ans in (
        await sp2.get(f"/sites/{sid}/nec"),
        await sp2.post(f"/sites/{sid}/nec", {"total_devices": 5}),
        await sp2.call("PATCH", f"/sites/{sid}/nec", {"total_devices": 9}),
        await sp2.post(f"/sites/{sid}/nec/regenerate"),
        await sp2.call("DELETE", f"/sites/{sid}/nec"),
        await sp2.get(f"/sites/{sid}/pec"),
    ):
        assert ans.status == 404 and ans["error"] == "site-not-found", ans
    assert (await sp1.get(f"/sites/{sid}/nec")).ok()["total_devices"] == 5


async def test_roles_for_codes(admin: ApiClient) -> None:
    sp, customer, profile, site = await setup(admin)
    manufacturer = await admin.new_account("manufacturer")
    for client in (manufacturer, admin):
        ans = await client.post(f"/sites/{site['id']}/nec", {"total_devices": 5})
        assert ans.status == 403 and ans["error"] == "forbidden-role"
    (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5})).ok()
    assert (await admin.get(f"/sites/{site['id']}/nec")).ok()["total_devices"] == 5  # platform reads
    assert (await manufacturer.get(f"/sites/{site['id']}/nec")).status == 403


async def test_log1_code_operations_audited_without_the_code(admin: ApiClient, server: Running) -> None:
    sp, customer, _, site = await setup(admin)
    nec = (await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5, "expiry": TWO_DAYS})).ok()
    new = (await sp.post(f"/sites/{site['id']}/nec/regenerate")).ok()
    await sp.post(f"/sites/{site['id']}/nec", {"total_devices": 5})  # refused: nec-exists
    async with server.opened.ctx.store.transaction() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.process == "CODE").order_by(AuditLog.id)))
    assert [(r.action, r.status) for r in rows] == [
        ("create_nec", "SUCCESS"),
        ("regenerate_nec", "SUCCESS"),
        ("create_nec", "FAIL"),
    ]
    assert rows[0].account_id == customer and "2 days" in rows[0].message
    assert all(nec["code"] not in r.message and new["code"] not in r.message for r in rows)
