"""DEV-3 claim proof (PROTOCOL §3, issue 13) over a real socket: a claim names the MAC and the
serial printed on the box; a wrong combination answers exactly like an unknown device and counts
toward the claiming account's failure budget (429 + Retry-After, audited); label codes added by
the importer, and an account's policy requiring them in its claims."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import select

from server.domain.throttle import CLAIM_PROOF
from server.runner import Running
from server.store.models import AuditLog, Device
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import device, fleet, import_json


async def _raw_claim(client: ApiClient, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """A claim with its answer's headers (the test client keeps none)."""
    headers = {"Authorization": f"Bearer {client.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(client.base + "/api/v1/devices/claim", json=body, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json()


def _shape(body: Any) -> tuple[Any, ...]:
    """What a wrong claim's answer may show: its keys and error id (the detail names the MAC given)."""
    return tuple(sorted(body)), body["error"]


async def test_dev3_a_wrong_pair_answers_exactly_like_an_unknown_device(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    await fleet(admin, [device("A4251D000001", serial="SNPROOF1"), device("A4251D000002", serial="SNPROOF2")])
    tries = {
        "unknown MAC and serial": ("A4251DFFFFFF", "SNNOSUCH"),
        "known MAC, wrong serial": ("A4251D000001", "SNNOSUCH"),
        "wrong MAC, known serial": ("A4251DFFFFFF", "SNPROOF1"),
        "MAC and serial of two devices": ("A4251D000001", "SNPROOF2"),
    }
    answers = {name: await sp.post("/devices/claim", {"mac": mac, "serial": serial}) for name, (mac, serial) in
               tries.items()}
    for name, ans in answers.items():
        mac, serial = tries[name]
        assert ans.status == 404, (name, ans.body)
        assert _shape(ans.body) == (("detail", "error"), "device-not-found"), (name, ans.body)
        # The detail is one sentence with the MAC given put in: nothing about what was found, and
        # never the serial (a proof: tests/integration/test_claim_proof_not_echoed.py).
        assert ans["detail"] == answers["unknown MAC and serial"]["detail"].replace("A4251DFFFFFF", mac), name
        assert serial not in ans["detail"], name
    for mac in ("A4251D000001", "A4251D000002"):
        assert (await sp.get(f"/devices/{mac}")).status == 404  # not claimed
    (await sp.post("/devices/claim", {"mac": "A4251D000001", "serial": "SNPROOF1"})).ok()


async def test_dev3_wrong_claims_spend_the_accounts_budget_then_429_with_retry_after(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    neighbour = await admin.new_account("service_provider")
    await fleet(admin, [device("A4251D000011", serial="SNBUDGET1"), device("A4251D000012", serial="SNBUDGET2")])
    for i in range(CLAIM_PROOF.failures):
        status, _, body = await _raw_claim(sp, {"mac": "A4251D000011", "serial": f"SNGUESS{i}"})
        assert (status, body["error"]) == (404, "device-not-found"), (i, body)

    status, headers, body = await _raw_claim(sp, {"mac": "A4251D000011", "serial": "SNBUDGET1"})

    # Over budget even the right pair waits: the refusal comes before any look-up.
    assert (status, body["error"]) == (429, "too-many-attempts"), body
    assert 1 <= int(headers["Retry-After"]) <= CLAIM_PROOF.minutes * 60
    # Another account's budget is its own.
    (await neighbour.post("/devices/claim", {"mac": "A4251D000012", "serial": "SNBUDGET2"})).ok()
    async with server.opened.ctx.store.transaction() as s:
        stmt = select(AuditLog).where(AuditLog.action == "claim_device", AuditLog.status == "FAIL")
        fails = list(await s.scalars(stmt.order_by(AuditLog.id)))
    assert len(fails) == CLAIM_PROOF.failures + 1
    assert fails[-1].message.startswith("too-many-attempts") and fails[-1].login == sp.login_name
    assert all(f.message.startswith("device-not-found") for f in fails[:-1])
    clock.advance(minutes=CLAIM_PROOF.minutes)
    (await sp.post("/devices/claim", {"mac": "A4251D000011", "serial": "SNBUDGET1"})).ok()


async def test_dev3_a_device_with_a_label_code_is_claimed_only_with_it(server: Running, admin: ApiClient) -> None:
    maker = await admin.new_account("manufacturer")
    sp = await admin.new_account("service_provider")
    (await import_json(maker, [device("A4251D000021", serial="SNLABEL1"), device("A4251D000022")])).ok()
    (await admin.post("/devices/approve", {"macs": ["A4251D000021", "A4251D000022"]})).ok()
    set_codes = {"codes": [{"mac": "a4251d000021", "label_code": "7K3P-Q9XA"}, {"mac": "A4251DFFFFFF",
                                                                                  "label_code": "ABCD1234"}]}
    answer = (await maker.post("/devices/label-codes", set_codes)).ok()
    assert [(r["mac"], r["status"]) for r in answer["results"]] == [("A4251D000021", "SUCCESS"),
                                                                    ("A4251DFFFFFF", "FAIL")]
    # Only the importer (or the platform) adds them; a bad code is refused before anything is written.
    other_maker = await admin.new_account("manufacturer")
    ans = await other_maker.post("/devices/label-codes", {"codes": [{"mac": "A4251D000021", "label_code": "ZZZZ9999"}]})
    assert (ans.status, ans["error"]) == (404, "device-not-found")
    ans = await maker.post("/devices/label-codes", {"codes": [{"mac": "A4251D000021", "label_code": "a!"}]})
    assert (ans.status, ans["error"]) == (422, "invalid-label-code")

    unknown = await sp.post("/devices/claim", {"mac": "A4251DFFFFFF", "serial": "SNNOSUCH"})
    for label in (None, "7K3P-Q9XB"):
        body = {"mac": "A4251D000021", "serial": "SNLABEL1", **({"label_code": label} if label else {})}
        ans = await sp.post("/devices/claim", body)
        assert (ans.status, _shape(ans.body)) == (unknown.status, _shape(unknown.body)), (label, ans.body)
    (await sp.post("/devices/claim", {"mac": "A4251D000021", "serial": "SNLABEL1", "label_code": "7k3p q9xa"})).ok()
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(Device, "A4251D000021")
        assert row is not None and row.label_code_hash is not None
        assert len(row.label_code_hash) == 64 and int(row.label_code_hash, 16) >= 0  # a SHA-256, not the code
    shown = (await sp.get("/devices/A4251D000021")).ok()
    assert "label_code_hash" not in shown and "7K3PQ9XA" not in str(shown)


async def test_dev3_an_account_requiring_label_codes_binds_its_subtree(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    await fleet(admin, [device("A4251D000031", serial="SNPOLICY1"), device("A4251D000032", serial="SNPOLICY2")])
    (await admin.post("/devices/label-codes", {"codes": [{"mac": "A4251D000032", "label_code": "PQ12RS34"}]})).ok()
    assert (await customer.get(f"/accounts/{customer.account_id}/claim-policy")).ok() == {
        "account_id": customer.account_id, "label_code_required": False, "effective": False}

    policy = (await sp.call("PUT", f"/accounts/{sp.account_id}/claim-policy", {"label_code_required": True})).ok()

    assert policy == {"account_id": sp.account_id, "label_code_required": True, "effective": True}
    assert (await customer.get(f"/accounts/{customer.account_id}/claim-policy")).ok()["effective"] is True
    # The customer cannot switch its parent's policy off (ACC-7: not in its hierarchy).
    ans = await customer.call("PUT", f"/accounts/{sp.account_id}/claim-policy", {"label_code_required": False})
    assert (ans.status, ans["error"]) == (404, "account-not-found")
    ans = await customer.post("/devices/claim", {"mac": "A4251D000031", "serial": "SNPOLICY1"})
    assert (ans.status, ans["error"]) == (422, "label-code-required")
    # A device without a label code cannot be claimed under the policy: no proof beyond the manifest.
    unlabelled = {"mac": "A4251D000031", "serial": "SNPOLICY1", "label_code": "ANY12345"}
    ans = await customer.post("/devices/claim", unlabelled)
    assert (ans.status, ans["error"]) == (404, "device-not-found")
    labelled = {"mac": "A4251D000032", "serial": "SNPOLICY2", "label_code": "PQ12RS34"}
    (await customer.post("/devices/claim", labelled)).ok()
    (await sp.call("PUT", f"/accounts/{sp.account_id}/claim-policy", {"label_code_required": False})).ok()
    (await customer.post("/devices/claim", {"mac": "A4251D000031", "serial": "SNPOLICY1"})).ok()
