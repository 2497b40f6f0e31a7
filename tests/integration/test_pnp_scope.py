"""PNP-1 and ACC-7 over a real socket: an administrator of another hierarchy gets 404 — never
data — from every PNP route on a device, a batch or a site it does not see; a partner that
scanned one code of a batch sees that code's device in the batch, not the others' MACs, serials
(a serial is a claim's proof, DEV-3) or where they went; a replaced device's old certificate is
refused at EST and DES files too; the one-time tokens appear in no log entry."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from server.runner import Running
from server.store.models import AuditLog
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, entry, import_phones, new_customer, new_site, zero_touch
from tests.integration.test_device_files import des_site


async def test_pnp1_another_hierarchy_gets_404_from_every_pnp_route(server: Running, admin: ApiClient) -> None:
    mine, theirs = await new_customer(admin), await new_customer(admin)
    site = await new_site(mine.sp, mine.id, entry())
    their_site = await new_site(theirs.sp, theirs.id, entry())
    phone, spare = Phone.make(server), Phone.make(server)
    await import_phones(admin, [phone, spare])
    await zero_touch(mine, [phone], site)
    batch = (await admin.post("/pnp/qr-batches", {"devices": [spare.mac], "account_id": mine.id,
                                                  "site_id": site})).ok()  # fmt: skip
    new = Phone.make(server)
    replacement = {"new_mac": new.mac, "new_serial": new.serial, "new_certificate": new.factory.cert_pem.decode()}

    for client in (theirs.sp, theirs.customer):
        for method, path, body in (
            ("GET", f"/pnp/devices/{phone.mac}", None),
            ("PATCH", f"/pnp/devices/{phone.mac}", {"hardware": "rev X"}),
            ("POST", f"/pnp/devices/{phone.mac}/reprovision", {"account_id": theirs.id, "site_id": their_site}),
            ("POST", f"/pnp/devices/{phone.mac}/replace", replacement),
            ("GET", f"/pnp/qr-batches/{batch['number']}", None),
        ):
            ans = await client.call(method, path, body)
            assert ans.status == 404, (method, path, ans.body)
            assert spare.serial not in str(ans.body) and phone.serial not in str(ans.body)
        # Into a site of another hierarchy: mine cannot reprovision there, and they cannot register into mine.
        body = {"account_id": mine.id, "site_id": site, "devices": [{"mac": spare.mac, "serial": spare.serial}]}
        ans = await client.post("/pnp/registrations", body)
        assert (ans.status, ans["error"]) == (404, "account-not-found"), ans.body
        assert (await client.get("/pnp/qr-batches")).ok()["total"] == 0
        assert (await client.get("/pnp/registrations")).ok()["total"] == 0
    ans = await mine.sp.post(f"/pnp/devices/{phone.mac}/reprovision", {"account_id": theirs.id, "site_id": their_site})
    assert (ans.status, ans["error"]) == (404, "account-not-found"), ans.body
    ans = await mine.sp.post(f"/pnp/devices/{phone.mac}/reprovision", {"site_id": their_site})
    assert (ans.status, ans["error"]) == (404, "site-not-found"), ans.body
    assert (await mine.sp.get(f"/pnp/devices/{phone.mac}")).ok()["site_id"] == site


async def test_pnp1_a_scanner_sees_its_own_codes_of_a_batch_only(server: Running, admin: ApiClient) -> None:
    here, there = await new_customer(admin), await new_customer(admin)
    sites = {c.id: await new_site(c.sp, c.id, entry()) for c in (here, there)}
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    batch = (await admin.post("/pnp/qr-batches", {"devices": [p.mac for p in phones]})).ok()
    for cust, code in zip((here, there), batch["codes"], strict=False):
        (await cust.sp.post("/pnp/scan", {"payload": code["payload"], "account_id": cust.id,
                                          "site_id": sites[cust.id]})).ok()  # fmt: skip

    shown = (await here.sp.get(f"/pnp/qr-batches/{batch['number']}")).ok()
    assert [d["mac"] for d in shown["devices"]] == [phones[0].mac], shown
    for other in phones[1:]:  # scanned elsewhere, or still unclaimed: its serial would claim it
        assert other.mac not in str(shown) and other.serial not in str(shown)
    assert there.id not in str(shown)
    everything = (await admin.get(f"/pnp/qr-batches/{batch['number']}")).ok()  # its maker sees every code
    assert [d["mac"] for d in everything["devices"]] == [p.mac for p in phones]

    async with server.opened.ctx.store.transaction() as s:
        log = " ".join(m or "" for m in await s.scalars(select(AuditLog.message)))
    for code in batch["codes"]:
        assert code["payload"].rpartition("t=")[2] not in log  # the one-time tokens are in no log entry


def _csr(mac: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)]))
        .sign(key, hashes.SHA256())
    )
    return base64.encodebytes(request.public_bytes(serialization.Encoding.DER))


async def test_pnp1_a_replaced_devices_certificate_gets_no_identity_certificate_and_no_files(
    server: Running, admin: ApiClient
) -> None:
    cust = await new_customer(admin)
    site = await des_site(cust)
    old, new = Phone.make(server), Phone.make(server)
    await import_phones(admin, [old])
    await zero_touch(cust, [old], site)
    assert (await old.enroll())["result"] == "redirect"
    assert (await old.request("GET", "/device/v1/files/46xxsettings.txt")).status == 200
    body = {"new_mac": new.mac, "new_serial": new.serial, "new_certificate": new.factory.cert_pem.decode()}
    (await cust.sp.post(f"/pnp/devices/{old.mac}/replace", body)).ok()

    files = await old.request("GET", "/device/v1/files/46xxsettings.txt")
    assert files.status == 404, files.body
    csr = {"Content-Type": "application/pkcs10"}
    est = await old.request("POST", "/.well-known/est/simpleenroll", data=_csr(old.mac), headers=csr)
    # Refused whichever check answers first: the old device is released (not-enrolled) and denied.
    assert est.status == 403 and est["error"] in ("certificate-denied", "not-enrolled"), est.body
    assert (await new.enroll())["result"] == "redirect"
    assert (await new.request("GET", "/device/v1/files/46xxsettings.txt")).status == 200
