"""`GET /api/v1/dashboard` (issue 13) over a real socket: devices by state and the guessing figures —
wrong codes, lockouts, enrollment-code budget refusals per address and global, failed and
throttled logins, wrong claims and claim-budget refusals — counted from the audit log; the
platform sees everything, every other administrator its subtree (ACC-7)."""

from __future__ import annotations

from typing import Any

from server.domain.throttle import CLAIM_PROOF
from server.runner import Running
from server.store.figures import GUESSING
from tests.conftest import FakeClock
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import Phone, entry, import_phones, new_customer, new_site, zero_touch

ZERO = dict.fromkeys(GUESSING, 0)


async def _dashboard(client: ApiClient, **params: str) -> dict[str, Any]:
    return dict((await client.get("/dashboard", **params)).ok())


def _moved(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """The guessing figures that changed, by how much."""
    moved = {k: after["guessing"][k] - before["guessing"][k] for k in GUESSING}
    return {k: n for k, n in moved.items() if n}


async def test_dashboard_devices_by_state_in_each_scope(server: Running, admin: ApiClient) -> None:
    phones = [Phone.make(server) for _ in range(6)]
    await import_phones(admin, phones[:5])
    await import_phones(admin, phones[5:], approve=False)
    cust = await new_customer(admin)
    other = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, phones[:2], site)  # activated, and the first one enrolls
    assert (await phones[0].enroll())["result"] == "redirect"
    (await cust.sp.post("/devices/claim", {"mac": phones[2].mac, "serial": phones[2].serial})).ok()  # claimed
    for _ in range(3):  # the customer's own claimed phone types wrong codes: locked
        await phones[2].enroll(code="99999999")

    platform = await _dashboard(admin)
    assert platform["scope"] == {"account_id": None, "global": True}
    assert platform["devices"]["by_state"] == {
        "not_approved": 1, "unclaimed": 2, "claimed": 1, "associated": 0, "activated": 1, "enrolled": 1}
    assert platform["devices"]["total"] == 6 and platform["devices"]["locked"] == 1
    assert set(platform["process"]) == {"enrollment_codes", "logins", "claims_refused_now", "failure_notices_held_back"}

    sp = await _dashboard(cust.sp)
    assert sp["scope"] == {"account_id": cust.sp.account_id, "global": False} and "process" not in sp
    assert sp["devices"]["by_state"] == {
        "not_approved": 0, "unclaimed": 0, "claimed": 1, "associated": 0, "activated": 1, "enrolled": 1}
    customer = await _dashboard(cust.customer)
    assert customer["devices"]["total"] == 2 and customer["devices"]["by_state"]["enrolled"] == 1
    narrowed = await _dashboard(cust.sp, account_id=cust.id)  # one account of its subtree
    assert narrowed["scope"]["account_id"] == cust.id and narrowed["devices"] == customer["devices"]
    assert (await _dashboard(other.sp))["devices"]["total"] == 0

    # ACC-7: nothing outside one's subtree, not even its existence.
    for outside in (cust.sp.account_id, other.id):
        ans = await cust.customer.get("/dashboard", account_id=outside)
        assert (ans.status, ans["error"]) == (404, "account-not-found")
    assert (await cust.customer.call("GET", "/dashboard", token="")).status == 401
    maker = await admin.new_account("manufacturer")
    assert (await _dashboard(maker))["devices"]["total"] == 0  # it imported none of these
    ans = await admin.get("/dashboard", hours="0")
    assert (ans.status, ans["error"]) == (400, "invalid-window")


async def test_dashboard_guessing_figures_move_after_failures(
    server: Running, api: ApiClient, admin: ApiClient, clock: FakeClock
) -> None:
    cust = await new_customer(admin)
    other = await new_customer(admin)
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    for phone in phones[:2]:
        (await cust.customer.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    start = {"platform": await _dashboard(admin), "sp": await _dashboard(cust.sp),
             "customer": await _dashboard(cust.customer), "other": await _dashboard(other.sp)}
    assert start["customer"]["guessing"] == ZERO

    # Wrong codes, the lock the third one causes, a refusal while locked (LCK-2).
    for _ in range(4):
        await phones[0].enroll(code="99999999")
    # The per-address code budget, then the global one (the platform's settings).
    (await admin.call("PUT", "/settings/guessing", {"per_address": {"failures": 1, "minutes": 10}})).ok()
    assert (await phones[1].enroll(code="99999999")).status == 422
    assert (await phones[1].enroll(code="99999999")).status == 429
    (await admin.call("PUT", "/settings/guessing", {"per_address": {"failures": 30, "minutes": 10},
                                                     "global": {"failures": 1, "minutes": 10}})).ok()
    assert (await phones[1].enroll(code="99999999")).status == 422  # counts restarted with the new budget
    assert (await phones[2].enroll(code="99999999")).status == 429
    # Failed logins of the customer's administrator, then the per-login back-off.
    statuses = [(await admin.post("/auth/login", {"login": cust.customer.login_name, "password": "wrong"})).status
                for _ in range(6)]
    assert statuses == [401] * 5 + [429], statuses
    # Wrong claims of the service provider, then its claim budget.
    for i in range(CLAIM_PROOF.failures):
        assert (await cust.sp.post("/devices/claim", {"mac": phones[2].mac, "serial": f"WRONG{i}"})).status == 404
    assert (await cust.sp.post("/devices/claim", {"mac": phones[2].mac, "serial": phones[2].serial})).status == 429

    platform, sp, customer = await _dashboard(admin), await _dashboard(cust.sp), await _dashboard(cust.customer)
    assert _moved(start["customer"], customer) == {  # wrong codes: 3 of phone 0 (the third locks), 2 of phone 1
        "wrong_codes": 5, "lockouts": 1, "refused_while_locked": 1, "failed_logins": 5, "login_throttles_per_login": 1}
    assert _moved(start["sp"], sp) == {**_moved(start["customer"], customer), "wrong_claims": CLAIM_PROOF.failures,
                                       "claim_budget_refusals": 1}
    # The code budgets refuse before any look-up, so no account is named: only the platform sees those.
    assert _moved(start["platform"], platform) == {
        **_moved(start["sp"], sp), "code_refusals_per_address": 1, "code_refusals_global": 1}
    assert platform["process"]["enrollment_codes"]["refused_global"] >= 1
    assert (await _dashboard(other.sp))["guessing"] == start["other"]["guessing"] == ZERO

    # The window: a day later the figures are back to what the last 24 h hold; a wider window keeps them.
    clock.advance(hours=25)
    again = await api.as_user(cust.sp.login_name, PASSWORD)  # tokens last 12 h
    later = await _dashboard(again)
    assert later["guessing"] == ZERO and later["window"]["hours"] == 24
    assert (await _dashboard(again, hours="48"))["guessing"] == sp["guessing"]
    await api.as_user(cust.customer.login_name, PASSWORD)  # the login back-off is over too
