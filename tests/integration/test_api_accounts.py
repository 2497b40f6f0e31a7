"""Accounts and administrators over the admin API: ACC-1..7, USR-1."""

from __future__ import annotations

from sqlalchemy import select

from server.runner import Running
from server.store.models import AuditLog
from tests.integration.client import PASSWORD, ApiClient


async def test_acc1_only_platform_creates_service_providers(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ans = await sp.post("/accounts", {"type": "service_provider", "name": "Nope"})
    assert ans.status == 403 and ans["error"] == "account-type-not-allowed"


async def test_acc2_reseller_cannot_create_reseller_but_creates_customer(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    assert (await reseller.post("/accounts", {"type": "reseller", "name": "R2"})).status == 403
    cust = (await reseller.post("/accounts", {"type": "customer", "name": "C1"})).ok()
    assert cust["parent_id"] == reseller.account_id  # ACC-2: parent is the creator's account


async def test_acc2_customer_creates_no_accounts(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    ans = await customer.post("/accounts", {"type": "customer", "name": "C"})
    assert ans.status == 403 and ans["error"] == "forbidden-role"


async def test_acc3_account_ids_are_unique_8_digits(admin: ApiClient) -> None:
    ids = set()
    for i in range(15):
        acc = (await admin.post("/accounts", {"type": "customer", "name": f"C{i}"})).ok()
        assert len(acc["id"]) == 8 and acc["id"].isdigit()
        ids.add(acc["id"])
    assert len(ids) == 15


async def test_acc4_type_never_changes_name_may(admin: ApiClient) -> None:
    acc = (await admin.post("/accounts", {"type": "customer", "name": "Old"})).ok()
    bad = await admin.call("PATCH", f"/accounts/{acc['id']}", {"type": "reseller"})
    assert bad.status in (403, 422) and bad["error"] == "account-type-immutable"
    ok = (await admin.call("PATCH", f"/accounts/{acc['id']}", {"name": "New"})).ok()
    assert ok["name"] == "New" and ok["type"] == "customer"


async def test_acc5_disable_blocks_logins_enable_restores(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    assert (await admin.post(f"/accounts/{sp.account_id}/disable")).ok()["enabled"] is False
    # the live token stops working and a new login is refused
    assert (await sp.get(f"/accounts/{sp.account_id}")).status == 401
    ans = await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})
    assert ans.status == 401 and ans["error"] == "account-disabled"
    (await admin.post(f"/accounts/{sp.account_id}/enable")).ok()
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})).status == 200


async def test_acc5_new_account_is_enabled(admin: ApiClient) -> None:
    acc = (await admin.post("/accounts", {"type": "customer", "name": "E"})).ok()
    assert acc["enabled"] is True


async def test_acc6_delete_is_recursive(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    cust = (await reseller.post("/accounts", {"type": "customer", "name": "Deep"})).ok()
    ans = (await admin.call("DELETE", f"/accounts/{sp.account_id}")).ok()
    assert set(ans["deleted"]) == {sp.account_id, reseller.account_id, cust["id"]}
    assert (await admin.get(f"/accounts/{cust['id']}")).status == 404


async def test_acc7_other_subtrees_are_invisible(admin: ApiClient) -> None:
    sp1 = await admin.new_account("service_provider")
    sp2 = await admin.new_account("service_provider")
    c2 = (await sp2.post("/accounts", {"type": "customer", "name": "Theirs"})).ok()
    assert (await sp1.get(f"/accounts/{c2['id']}")).status == 404
    assert (await sp1.call("DELETE", f"/accounts/{c2['id']}")).status == 404
    listed = (await sp1.get("/accounts")).ok()
    assert c2["id"] not in {a["id"] for a in listed["items"]}
    assert listed["total"] == 1  # just its own account


async def test_acc7_cannot_disable_or_delete_own_account(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    assert (await sp.post(f"/accounts/{sp.account_id}/disable")).status == 403
    assert (await sp.call("DELETE", f"/accounts/{sp.account_id}")).status == 403


async def test_usr1_login_names_unique_and_temporary_password(admin: ApiClient, api: ApiClient) -> None:
    acc = (await admin.post("/accounts", {"type": "customer", "name": "U"})).ok()
    body = {
        "account_id": acc["id"],
        "login": "dup@example.test",
        "password": "Temporary-Pw-1",
        "email": "dup@example.test",
    }
    (await admin.post("/users", body)).ok()
    again = await admin.post("/users", body)
    assert again.status == 409 and again["error"] == "login-taken"
    user = await api.as_user("dup@example.test", "Temporary-Pw-1")
    blocked = await user.get(f"/accounts/{acc['id']}")
    assert blocked.status == 403 and blocked["error"] == "password-change-required"


async def test_usr1_administrator_never_changes_account(admin: ApiClient) -> None:
    a = (await admin.post("/accounts", {"type": "customer", "name": "A"})).ok()
    b = (await admin.post("/accounts", {"type": "customer", "name": "B"})).ok()
    u = (
        await admin.post(
            "/users",
            {
                "account_id": a["id"],
                "login": "mover@example.test",
                "password": "Temporary-Pw-1",
                "email": "m@example.test",
            },
        )
    ).ok()
    ans = await admin.call("PATCH", f"/users/{u['id']}", {"account_id": b["id"]})
    assert ans.status == 403 and ans["error"] == "user-account-immutable"


async def test_bad_bodies_get_clear_errors(admin: ApiClient) -> None:
    ans = await admin.call("POST", "/accounts", data=b"{not json", content_type="application/json")
    assert ans.status == 400 and ans["error"] == "invalid-json"
    ans = await admin.post("/accounts", {"type": "customer"})
    assert ans.status == 422 and ans["error"] == "invalid-body" and "name" in ans["detail"]
    ans = await admin.post("/accounts", {"type": "galaxy", "name": "x"})
    assert ans.status == 422 and "type" in ans["detail"]


async def test_log1_mutations_and_logins_are_audited(admin: ApiClient, api: ApiClient, server: Running) -> None:
    acc = (await admin.post("/accounts", {"type": "customer", "name": "Audited"})).ok()
    await api.post("/auth/login", {"login": "admin", "password": "wrong-password-here"})
    async with server.opened.ctx.store.transaction() as s:
        rows = list(await s.scalars(select(AuditLog).order_by(AuditLog.id)))
    assert any(r.action == "create_account" and r.status == "SUCCESS" and acc["id"] in r.message for r in rows)
    assert any(r.process == "LOGIN" and r.status == "SUCCESS" and r.login == "admin" for r in rows)
    assert any(r.process == "LOGIN" and r.status == "FAIL" for r in rows)


async def test_acc6_devices_return_to_the_account_that_held_them_before(admin: ApiClient) -> None:
    from tests.integration.test_api_devices import claim_all, device, fleet, profile_and_site

    sp = await admin.new_account("service_provider")
    customer = (await sp.post("/accounts", {"type": "customer", "name": "Leaving"})).ok()
    [mac] = await fleet(admin, [device("A4251B0A0001")])
    await claim_all(sp, [mac])
    site = await profile_and_site(sp, customer["id"])
    (await sp.post("/devices/associate", {"macs": [mac], "account_id": customer["id"], "site_id": site})).ok()
    assert (await sp.get(f"/devices/{mac}")).ok()["owner_id"] == customer["id"]

    (await sp.call("DELETE", f"/accounts/{customer['id']}")).ok()
    back = (await sp.get(f"/devices/{mac}")).ok()
    assert back["owner_id"] == sp.account_id and back["site_id"] is None  # the provider held it before

    (await admin.call("DELETE", f"/accounts/{sp.account_id}")).ok()
    pooled = (await admin.get(f"/devices/{mac}")).ok()
    assert pooled["owner_id"] is None  # claimed from the pool: back to the pool, claimable again
