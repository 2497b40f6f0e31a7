"""PNP-1 over a real socket: pre-registration (placed now or pending until imported), QR batches
and the one-time scan, batch monitoring, reprovisioning (same identity, new site's profile at
the next enroll over mutual TLS) and replacement (the old certificate refused at the device
endpoint); bad input each a clear 4xx with nothing written."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import func, select

from server.runner import Running
from server.store.models import AuditLog, DeniedCertificate, Device, PnpEvent, PnpRegistration, QrBatch, QrCode
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Customer,
    Phone,
    device_row,
    entry,
    import_phones,
    new_customer,
    new_site,
    notifications,
    zero_touch,
)

URL_A = "https://site-a.example.com/$MODEL4/"
URL_B = "https://site-b.example.com/$MODEL4/"


async def _rows(server: Running) -> dict[str, Any]:
    """What a refused call must not have changed."""
    async with server.opened.ctx.store.transaction() as s:
        counts = {
            m.__tablename__: int(await s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Device, PnpRegistration, QrBatch, PnpEvent, DeniedCertificate)
        }
        counts["scanned"] = int(
            await s.scalar(select(func.count()).select_from(QrCode).where(QrCode.scanned_at.is_not(None))) or 0
        )
        counts["owners"] = [(d.mac, d.owner_id, d.site_id, d.activated) for d in await s.scalars(select(Device))]
    return counts


async def _org(admin: ApiClient) -> tuple[Customer, int, int]:
    cust = await new_customer(admin)
    return cust, await new_site(cust.sp, cust.id, entry(URL_A)), await new_site(cust.sp, cust.id, entry(URL_B))


async def test_pnp1_preregistered_device_enrolls_on_first_contact(server: Running, admin: ApiClient) -> None:
    cust, site_a, _ = await _org(admin)
    known, later = Phone.make(server), Phone.make(server)
    await import_phones(admin, [known])
    body = {
        "account_id": cust.id,
        "site_id": site_a,
        "devices": [
            {"mac": known.mac, "serial": known.serial},
            {"mac": later.mac, "serial": later.serial, "model": "J179"},
        ],
    }

    ans = (await cust.sp.post("/pnp/registrations", body)).ok()

    assert [r["outcome"] for r in ans["results"]] == ["ready", "pending"], ans
    assert ans["summary"] == {"total": 2, "ready": 1, "pending": 1, "failed": 0}
    first = await known.enroll()
    assert first.status == 200 and first["result"] == "redirect", first.body
    assert first["provisioning"]["url"] == URL_A
    # The second device is imported and approved later: the approval places it, nothing else to do.
    await import_phones(admin, [later])
    reply = await later.enroll()
    assert reply.status == 200 and reply["result"] == "redirect", reply.body
    applied = (await cust.sp.post("/pnp/registrations/apply", {})).ok()
    assert applied["summary"] == {"total": 0, "ready": 0, "pending": 0}, applied  # nothing was left
    assert reply.status == 200 and reply["result"] == "redirect", reply.body
    listed = (await cust.sp.get("/pnp/registrations", status="ready")).ok()
    assert {r["mac"] for r in listed["items"]} == {known.mac, later.mac}
    job = (await cust.sp.get(f"/jobs/{ans['job_id']}")).ok()
    assert job["kind"] == "pnp-registration" and job["status"] == "COMPLETE", job


async def test_pnp1_registration_refusals(server: Running, admin: ApiClient) -> None:
    cust, site_a, _ = await _org(admin)
    other = await new_customer(admin)
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    before = await _rows(server)
    wrong_serial = {"site_id": site_a, "account_id": cust.id, "devices": [{"mac": phone.mac, "serial": "SNWRONG1"}]}
    ans = (await cust.sp.post("/pnp/registrations", wrong_serial)).ok()
    assert ans["results"][0]["outcome"] == "not-proven" and ans["status"] == "FAIL"
    out_of_scope = {"site_id": site_a, "account_id": other.id, "devices": [{"mac": phone.mac, "serial": phone.serial}]}
    refused = await cust.sp.post("/pnp/registrations", out_of_scope)
    assert (refused.status, refused["error"]) == (404, "account-not-found"), refused.body
    bad_mac = {"site_id": site_a, "devices": [{"mac": "zz", "serial": "SN1"}]}
    refused = await cust.sp.post("/pnp/registrations", bad_mac)
    assert (refused.status, refused["error"]) == (422, "invalid-mac"), refused.body
    after = await _rows(server)
    assert {k: v for k, v in after.items()} == before


async def test_pnp1_reprovisioned_device_keeps_its_identity_and_gets_the_new_profile(
    server: Running, admin: ApiClient
) -> None:
    cust, site_a, _ = await _org(admin)
    other = await cust.sp.new_account("customer")
    site_c = await new_site(cust.sp, other.account_id, entry(URL_B))
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    await zero_touch(cust, [phone], site_a)
    first = await phone.enroll()
    assert first["provisioning"]["url"] == URL_A, first.body
    before = await device_row(server, phone.mac)

    moved = (
        await cust.sp.post(f"/pnp/devices/{phone.mac}/reprovision", {"account_id": other.account_id, "site_id": site_c})
    ).ok()

    assert (moved["mac"], moved["serial"], moved["thumbprint"]) == (phone.mac, phone.serial, before.thumbprint)
    assert moved["owner_id"] == other.account_id and moved["site_id"] == site_c and moved["zero_touch_ready"]
    reply = await phone.enroll()  # the same factory certificate, on a new TLS connection
    assert reply.status == 200 and reply["result"] == "redirect" and reply["provisioning"]["url"] == URL_B, reply.body
    shown = moved["pnp"]["history"][-1]
    assert shown["kind"] == "reprovisioned" and shown["from"] == {"account_id": cust.id, "site_id": site_a}
    assert shown["to"] == {"account_id": other.account_id, "site_id": site_c}
    async with server.opened.ctx.store.transaction() as s:
        audit = await s.scalar(select(AuditLog).where(AuditLog.action == "reprovision_device"))
    assert audit is not None and audit.status == "SUCCESS"
    assert f"from account {cust.id} site {site_a} -> to account {other.account_id} site {site_c}" in audit.message
    again = await cust.sp.post(
        f"/pnp/devices/{phone.mac}/reprovision", {"account_id": other.account_id, "site_id": site_c}
    )
    assert (again.status, again["error"]) == (409, "already-placed")


async def test_pnp1_replacement_takes_the_place_and_the_old_certificate_is_refused(
    server: Running, admin: ApiClient
) -> None:
    cust, site_a, _ = await _org(admin)
    old = Phone.make(server)
    await import_phones(admin, [old])
    await zero_touch(cust, [old], site_a)
    label = (await cust.sp.post("/labels", {"name": "lobby"})).ok()
    (await cust.sp.post("/labels/" + str(label["id"]) + "/devices", {"macs": [old.mac]})).ok()
    assert (await old.enroll())["result"] == "redirect"
    new = Phone.make(server)
    body = {"new_mac": new.mac, "new_serial": new.serial, "new_certificate": new.factory.cert_pem.decode()}

    ans = (await cust.sp.post(f"/pnp/devices/{old.mac}/replace", body)).ok()

    assert ans["new"]["owner_id"] == cust.id and ans["new"]["site_id"] == site_a and ans["new"]["zero_touch_ready"]
    assert [lab["name"] for lab in ans["new"]["labels"]] == ["lobby"]
    assert ans["new"]["pnp"]["replaces"] == old.mac and ans["old"]["pnp"]["replaced_by"] == new.mac
    assert ans["old"]["owner_id"] is None and not ans["old"]["activated"]
    refused = await old.enroll()
    assert refused.status == 403 and refused["reason"] == "certificate-denied", refused.body
    assert f"replaced by {new.mac}" in refused["detail"]
    reply = await new.enroll()
    assert reply.status == 200 and reply["result"] == "redirect" and reply["provisioning"]["url"] == URL_A, reply.body
    shown_old = (await cust.sp.get(f"/pnp/devices/{old.mac}")).ok()
    assert shown_old["pnp"]["replaced_by"] == new.mac
    # bad replacements: each a clear 4xx, nothing written
    before = await _rows(server)
    third = Phone.make(server)
    again = await cust.sp.post(f"/pnp/devices/{old.mac}/replace", {**body, "new_mac": third.mac})
    assert again.status == 404, again.body  # the old device left the hierarchy with its replacement
    same = await cust.sp.post(f"/pnp/devices/{new.mac}/replace", body)
    assert (same.status, same["error"]) == (422, "same-device"), same.body
    assert await _rows(server) == before
    clash = Phone.make(server)
    await import_phones(admin, [clash])
    before = await _rows(server)
    taken = {"new_mac": clash.mac, "new_serial": clash.serial, "new_certificate": clash.factory.cert_pem.decode()}
    refused_ans = await cust.sp.post(f"/pnp/devices/{new.mac}/replace", taken)
    assert (refused_ans.status, refused_ans["error"]) == (409, "device-exists"), refused_ans.body
    mismatch = {**taken, "new_mac": third.mac, "new_serial": third.serial}
    refused_ans = await cust.sp.post(f"/pnp/devices/{new.mac}/replace", mismatch)
    assert (refused_ans.status, refused_ans["error"]) == (422, "certificate-mismatch"), refused_ans.body
    garbage = {**taken, "new_mac": third.mac, "new_serial": third.serial, "new_certificate": "not a certificate"}
    refused_ans = await cust.sp.post(f"/pnp/devices/{new.mac}/replace", garbage)
    assert (refused_ans.status, refused_ans["error"]) == (422, "invalid-certificate"), refused_ans.body
    assert await _rows(server) == before


async def test_pnp1_qr_batch_scan_is_one_time_and_monitored(server: Running, admin: ApiClient) -> None:
    cust, site_a, site_b = await _org(admin)
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    created = await admin.post(
        "/pnp/qr-batches", {"devices": [p.mac for p in phones], "account_id": cust.id, "site_id": site_a}
    )
    assert created.status == 201, created.body
    batch = created.body
    assert batch["total"] == 3 and batch["scanned"] == 0 and batch["number"].startswith("QR")
    payloads = [c["payload"] for c in batch["codes"]]
    fields = parse_qs(payloads[0].partition("?")[2])
    assert fields["m"] == [phones[0].mac] and fields["s"] == [phones[0].serial] and fields["b"] == [batch["number"]]
    async with server.opened.ctx.store.transaction() as s:
        hashes = list(await s.scalars(select(QrCode.token_hash)))
    assert fields["t"][0] not in hashes  # only the hash is stored

    scanned = (await cust.sp.post("/pnp/scan", {"payload": payloads[0]})).ok()
    assert scanned["site_id"] == site_a and scanned["account_id"] == cust.id
    claimed, associated = (
        await notifications(server, "claiming-device"),
        await notifications(server, "associating-device"),
    )
    assert [n.account_id for n in claimed] == [cust.sp.account_id] and phones[0].mac in claimed[0].body  # NTF-1
    assert [n.account_id for n in associated] == [cust.id]
    assert (await phones[0].enroll())["result"] == "redirect"
    moved = (await cust.sp.post("/pnp/scan", {"payload": payloads[1], "account_id": cust.id, "site_id": site_b})).ok()
    assert moved["site_id"] == site_b

    before = await _rows(server)
    reused = await cust.sp.post("/pnp/scan", {"payload": payloads[0]})
    assert (reused.status, reused["error"]) == (409, "qr-code-used"), reused.body
    forged = payloads[2][: payloads[2].index("&t=") + 3] + "A" * 32
    refused = await cust.sp.post("/pnp/scan", {"payload": forged})
    assert (refused.status, refused["error"]) == (403, "qr-token-invalid"), refused.body
    altered = payloads[2].replace(f"m={phones[2].mac}", f"m={phones[0].mac}")
    refused = await cust.sp.post("/pnp/scan", {"payload": altered})
    assert (refused.status, refused["error"]) == (403, "qr-token-invalid"), refused.body
    for bad in (
        "",
        "hello",
        "enrollab:onboard?v=1",
        "enrollab:onboard?v=2&b=QR000001&m=A4251B000001&s=S&t=" + "x" * 32,
        "enrollab:onboard?v=1&b=QR000001&m=nope&s=S1&t=" + "x" * 32,
    ):
        refused = await cust.sp.post("/pnp/scan", {"payload": bad})
        assert refused.status in (422,), (bad, refused.body)
        assert refused["error"] in ("invalid-qr-payload", "invalid-body"), refused.body
        assert "xxxx" not in refused["detail"]  # the token is never quoted
    assert await _rows(server) == before

    shown = (await admin.get(f"/pnp/qr-batches/{batch['number']}")).ok()
    assert (shown["total"], shown["scanned"], shown["enrolled"]) == (3, 2, 1), shown
    assert [d["state"] for d in shown["devices"]] == ["enrolled", "scanned", "issued"]
    listed = (await cust.sp.get("/pnp/qr-batches")).ok()
    assert [b["number"] for b in listed["items"]] == [batch["number"]]
    done = await cust.sp.call("PATCH", f"/pnp/devices/{phones[1].mac}", {"labels": ["floor 2"], "hardware": "rev B"})
    assert done.ok()["labels"][0]["name"] == "floor 2" and done.body["hardware"] == "rev B"


async def test_pnp1_qr_batch_refusals_write_nothing(server: Running, admin: ApiClient) -> None:
    cust, site_a, _ = await _org(admin)
    phones = [Phone.make(server) for _ in range(2)]
    await import_phones(admin, phones[:1])
    await import_phones(admin, phones[1:], approve=False)
    before = await _rows(server)
    ans = await admin.post("/pnp/qr-batches", {"devices": [phones[0].mac, phones[1].mac, "A4251BFFFFFF"]})
    assert (ans.status, ans["error"]) == (422, "invalid-devices"), ans.body
    assert [e["pointer"] for e in ans["errors"]] == ["/devices/1", "/devices/2"]
    ans = await admin.post("/pnp/qr-batches", {"count": 10_000 - 5000})
    assert (ans.status, ans["error"]) == (422, "not-enough-devices"), ans.body
    ans = await cust.sp.post("/pnp/qr-batches", {"count": 1})
    assert (ans.status, ans["error"]) == (403, "forbidden-role"), ans.body
    assert await _rows(server) == before


async def test_pnp1_a_batch_without_target_is_scanned_into_the_scanners_site(server: Running, admin: ApiClient) -> None:
    cust, site_a, _ = await _org(admin)
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    batch = (await admin.post("/pnp/qr-batches", {"count": 1})).ok()
    assert [c["mac"] for c in batch["codes"]] == [phone.mac] and batch["target"]["site_id"] is None
    assert (await cust.sp.get("/pnp/qr-batches")).ok()["total"] == 0  # not its batch (yet)
    payload = batch["codes"][0]["payload"]
    refused = await cust.sp.post("/pnp/scan", {"payload": payload})
    assert (refused.status, refused["error"]) == (422, "site-required"), refused.body
    onboarded = (await cust.sp.post("/pnp/scan", {"payload": payload, "account_id": cust.id, "site_id": site_a})).ok()
    assert onboarded["account_id"] == cust.id
    assert [b["number"] for b in (await cust.sp.get("/pnp/qr-batches")).ok()["items"]] == [batch["number"]]
    again = await admin.post("/pnp/qr-batches", {"count": 1})  # held now: no device left to pick
    assert (again.status, again["error"]) == (422, "not-enough-devices"), again.body


async def test_pnp1_another_hierarchys_pending_registration_is_not_overwritten(
    server: Running, admin: ApiClient
) -> None:
    first, site_a, _ = await _org(admin)
    second, site_x, _ = await _org(admin)
    later = Phone.make(server)
    device = {"mac": later.mac, "serial": later.serial}
    ans = await first.sp.post("/pnp/registrations", {"account_id": first.id, "site_id": site_a, "devices": [device]})
    assert ans.ok()["results"][0]["outcome"] == "pending"
    ans = await second.sp.post("/pnp/registrations", {"account_id": second.id, "site_id": site_x, "devices": [device]})
    assert ans.ok()["results"][0]["outcome"] == "registered-elsewhere"
    await import_phones(admin, [later])  # the approval places it where the first registrant said
    assert (await admin.get("/pnp/registrations", status="pending")).ok()["total"] == 0
    assert (await admin.get("/pnp/registrations", status="ready")).ok()["items"][0]["site_id"] == site_a
    reply = await later.enroll()
    assert reply.status == 200 and reply["provisioning"]["url"] == URL_A, reply.body
