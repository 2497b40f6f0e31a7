"""Account linking over the admin API (ACC-8) and the DEV-4 helper the devices API relies on."""

from __future__ import annotations

import itertools

from server.runner import Running
from server.store.links import is_linked
from tests.integration.client import ApiClient

_bp = itertools.count(1)


async def _linked(server: Running, provider_id: str, reseller_id: str) -> bool:
    async with server.opened.ctx.store.transaction() as session:
        return await is_linked(session, provider_id, reseller_id)


async def _pair(admin: ApiClient) -> tuple[ApiClient, ApiClient, str]:
    """A service provider and a reseller of *another* provider, with the reseller's BP link ID."""
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider")
    bp = f"BP-{next(_bp):04d}"
    reseller = await other.new_account("reseller", bp_link_id=bp)
    return sp, reseller, bp


async def test_acc8_request_then_approve_links_the_accounts(admin: ApiClient, server: Running) -> None:
    sp, reseller, bp = await _pair(admin)
    sent = await sp.post("/link-requests", {"bp_link_id": bp})
    assert sent.status == 201
    link = sent.body
    assert (link["provider_id"], link["reseller_id"], link["status"]) == (sp.account_id, reseller.account_id, "PENDING")
    assert not await _linked(server, sp.account_id, reseller.account_id)  # DEV-4: not before approval

    received = (await reseller.get("/link-requests")).ok()
    assert [i["id"] for i in received["items"]] == [link["id"]] and received["total"] == 1
    approved = (await reseller.post(f"/link-requests/{link['id']}/approve")).ok()
    assert approved["status"] == "APPROVED" and approved["decided_at"]
    assert await _linked(server, sp.account_id, reseller.account_id)
    assert not await _linked(server, reseller.account_id, sp.account_id)  # directed: provider -> reseller
    assert [i["status"] for i in (await sp.get("/link-requests")).ok()["items"]] == ["APPROVED"]


async def test_acc8_reject_leaves_them_unlinked_and_a_new_request_is_allowed(admin: ApiClient, server: Running) -> None:
    sp, reseller, bp = await _pair(admin)
    first = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    assert (await reseller.post(f"/link-requests/{first['id']}/reject")).ok()["status"] == "REJECTED"
    assert not await _linked(server, sp.account_id, reseller.account_id)
    again = await sp.post("/link-requests", {"bp_link_id": bp})
    assert again.status == 201 and again["status"] == "PENDING"
    listing = (await sp.get("/link-requests", status="rejected")).ok()
    assert [i["id"] for i in listing["items"]] == [first["id"]]


async def test_acc8_a_pending_or_approved_link_cannot_be_requested_twice(admin: ApiClient) -> None:
    sp, reseller, bp = await _pair(admin)
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    dup = await sp.post("/link-requests", {"bp_link_id": bp})
    assert dup.status == 409 and dup["error"] == "link-exists"
    (await reseller.post(f"/link-requests/{link['id']}/approve")).ok()
    dup = await sp.post("/link-requests", {"bp_link_id": bp})
    assert dup.status == 409 and dup["error"] == "link-exists"


async def test_acc8_unknown_bp_link_id(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ans = await sp.post("/link-requests", {"bp_link_id": "BP-NOPE"})
    assert ans.status == 404 and ans["error"] == "unknown-bp-link-id"
    # a BP link ID that belongs to a customer or a provider is not a reseller's
    (await sp.post("/accounts", {"type": "customer", "name": "C", "bp_link_id": "BP-CUST"})).ok()
    ans = await sp.post("/link-requests", {"bp_link_id": "BP-CUST"})
    assert ans.status == 404 and ans["error"] == "unknown-bp-link-id"


async def test_acc8_a_decision_is_final(admin: ApiClient) -> None:
    sp, reseller, bp = await _pair(admin)
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    (await reseller.post(f"/link-requests/{link['id']}/approve")).ok()
    ans = await reseller.post(f"/link-requests/{link['id']}/reject")
    assert ans.status == 409 and ans["error"] == "link-request-decided"


async def test_acc8_role_refusals(admin: ApiClient) -> None:
    sp, reseller, bp = await _pair(admin)
    customer = await sp.new_account("customer")
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    for client in (reseller, customer, admin):  # only a service provider asks
        ans = await client.post("/link-requests", {"bp_link_id": bp})
        assert ans.status == 403 and ans["error"] == "forbidden-role"
    for client in (sp, customer, admin):  # only the reseller decides
        ans = await client.post(f"/link-requests/{link['id']}/approve")
        assert ans.status == 403 and ans["error"] == "forbidden-role"
    ans = await customer.get("/link-requests")
    assert ans.status == 403 and ans["error"] == "forbidden-role"


async def test_acc8_another_reseller_cannot_decide_or_see(admin: ApiClient) -> None:
    sp, _reseller, bp = await _pair(admin)
    stranger = await sp.new_account("reseller")  # even one in the provider's own subtree
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    ans = await stranger.post(f"/link-requests/{link['id']}/approve")
    assert ans.status == 404 and ans["error"] == "link-request-not-found"
    assert (await stranger.get("/link-requests")).ok() == {"items": [], "total": 0}
    other_sp = await admin.new_account("service_provider")
    assert (await other_sp.get("/link-requests")).ok()["total"] == 0


async def test_acc8_platform_sees_every_request(admin: ApiClient) -> None:
    sp, _reseller, bp = await _pair(admin)
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    assert link["id"] in [i["id"] for i in (await admin.get("/link-requests")).ok()["items"]]


async def test_ntf1_account_linking_notifies_both_accounts(admin: ApiClient) -> None:
    sp, reseller, bp = await _pair(admin)
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    (await reseller.post(f"/link-requests/{link['id']}/approve")).ok()
    sp_mail = (await sp.get("/notifications/outbox", kind="account-linking")).ok()["items"]
    reseller_mail = (await reseller.get("/notifications/outbox", kind="account-linking")).ok()["items"]
    assert [n["account_id"] for n in sp_mail] == [sp.account_id]
    assert "approved" in sp_mail[0]["body"]
    # the reseller got the request, then the decision (newest first)
    assert [n["account_id"] for n in reseller_mail] == [reseller.account_id] * 2
    assert "approved" in reseller_mail[0]["body"] and reseller.login_name in reseller_mail[0]["recipients"]


async def test_log1_linking_is_logged_for_both_sides(admin: ApiClient) -> None:
    sp, reseller, bp = await _pair(admin)
    link = (await sp.post("/link-requests", {"bp_link_id": bp})).ok()
    (await reseller.post(f"/link-requests/{link['id']}/reject")).ok()
    q = '{"all": [{"field": "process", "op": "eq", "value": "LINK"}]}'
    assert [e["action"] for e in (await sp.get("/logs", q=q)).ok()["items"]] == ["request_link"]
    assert [e["action"] for e in (await reseller.get("/logs", q=q)).ok()["items"]] == ["reject_link"]
