"""PNP-1 pre-registration claims a device, so it proves possession as `POST /devices/claim` does
(DEV-3, issue 13), over a real socket: a device with a label code is placed only with it, now or
when it is approved later; an account whose policy requires label codes registers with them only;
wrong proofs spend the registrant's claim budget (429 too-many-attempts) and are never quoted."""

from __future__ import annotations

from server.domain.throttle import CLAIM_PROOF
from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, device_row, entry, import_phones, new_customer, new_site

CODE = "LB12CD34"


async def test_pnp1_a_device_with_a_label_code_is_preregistered_with_it_only(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    now, later = Phone.make(server), Phone.make(server)
    await import_phones(admin, [now])
    await import_phones(admin, [later], approve=False)
    codes = [{"mac": p.mac, "label_code": CODE} for p in (now, later)]
    (await admin.post("/devices/label-codes", {"codes": codes})).ok()

    devices = [{"mac": p.mac, "serial": p.serial} for p in (now, later)]
    ans = (await cust.sp.post("/pnp/registrations", {"account_id": cust.id, "site_id": site, "devices": devices})).ok()
    assert [r["outcome"] for r in ans["results"]] == ["not-proven", "not-proven"], ans
    (await admin.post("/devices/approve", {"macs": [later.mac]})).ok()
    for phone in (now, later):
        assert (await device_row(server, phone.mac)).owner_id is None  # not claimed without its label code
        assert (await phone.enroll())["result"] != "redirect"

    wrong = [{**d, "label_code": "LB99ZZ99"} for d in devices]
    ans = (await cust.sp.post("/pnp/registrations", {"account_id": cust.id, "site_id": site, "devices": wrong})).ok()
    assert [r["outcome"] for r in ans["results"]] == ["not-proven", "not-proven"], ans
    assert "LB99ZZ99" not in str(ans) and "LB99ZZ99" not in str((await admin.get("/logs")).body)

    right = [{**d, "label_code": CODE} for d in devices]
    ans = (await cust.sp.post("/pnp/registrations", {"account_id": cust.id, "site_id": site, "devices": right})).ok()
    assert [r["outcome"] for r in ans["results"]] == ["ready", "ready"], ans
    assert (await now.enroll())["result"] == "redirect"


async def test_pnp1_a_label_code_pending_until_approval_places_the_device_then(
    server: Running, admin: ApiClient
) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    phone = Phone.make(server)
    body = {"site_id": site, "account_id": cust.id, "devices": [{"mac": phone.mac, "serial": phone.serial,
                                                                  "label_code": CODE}]}
    assert (await cust.sp.post("/pnp/registrations", body)).ok()["results"][0]["outcome"] == "pending"
    await import_phones(admin, [phone], approve=False)
    (await admin.post("/devices/label-codes", {"codes": [{"mac": phone.mac, "label_code": CODE}]})).ok()
    (await admin.post("/devices/approve", {"macs": [phone.mac]})).ok()
    assert (await phone.enroll())["result"] == "redirect"


async def test_pnp1_an_account_requiring_label_codes_registers_with_them_only(
    server: Running, admin: ApiClient
) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    (await cust.sp.call("PUT", f"/accounts/{cust.sp.account_id}/claim-policy", {"label_code_required": True})).ok()
    body = {"site_id": site, "account_id": cust.id, "devices": [{"mac": phone.mac, "serial": phone.serial}]}
    refused = await cust.sp.post("/pnp/registrations", body)
    assert (refused.status, refused["error"]) == (422, "label-code-required"), refused.body
    with_code = {**body, "devices": [{**body["devices"][0], "label_code": CODE}]}
    ans = (await cust.sp.post("/pnp/registrations", with_code)).ok()
    assert ans["results"][0]["outcome"] == "not-proven"  # the device has no label code: unclaimable so
    assert (await device_row(server, phone.mac)).owner_id is None


async def test_pnp1_wrong_serials_spend_the_registrants_claim_budget(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    phones = [Phone.make(server) for _ in range(CLAIM_PROOF.failures + 2)]
    await import_phones(admin, phones)
    guesses = [{"mac": p.mac, "serial": "SNGUESS1"} for p in phones]
    ans = (await cust.sp.post("/pnp/registrations", {"site_id": site, "account_id": cust.id, "devices": guesses})).ok()
    outcomes = [r["outcome"] for r in ans["results"]]
    assert outcomes.count("not-proven") == CLAIM_PROOF.failures, outcomes
    assert set(outcomes[CLAIM_PROOF.failures :]) == {"too-many-attempts"}, outcomes
    right = [{"mac": phones[0].mac, "serial": phones[0].serial}]
    refused = await cust.sp.post("/pnp/registrations", {"site_id": site, "account_id": cust.id, "devices": right})
    assert (refused.status, refused["error"]) == (429, "too-many-attempts"), refused.body
    assert (await device_row(server, phones[0].mac)).owner_id is None
