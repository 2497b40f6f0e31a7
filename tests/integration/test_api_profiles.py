"""Profiles over the admin API: PRF-1, PRF-2, PRF-3, PRF-6, LOG-1 redaction, ACC-7 scoping, roles."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from server.runner import Running
from server.store.models import AuditLog, Device, Notification, Profile
from tests.conftest import FakeClock
from tests.integration.client import ApiClient

_n = itertools.count(1)
SECRET_URL = "https://admin:t0pSecret@prov.example.test/Directory"


def entry(url: str = "https://prov.example.test/j100", server_type: str = "HTTP(S)", **extra: Any) -> dict[str, Any]:
    return {"server_type": server_type, "url": url, **extra}


async def make_profile(client: ApiClient, *entries: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    body = {"name": name or f"Profile {next(_n)}", "entries": list(entries) or [entry()]}
    return (await client.post("/profiles", body)).ok()


async def audit_rows(server: Running, action: str) -> list[AuditLog]:
    async with server.opened.ctx.store.transaction() as s:
        return list(await s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn: str, *, ca: bool, dns: str | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(key, hashes.SHA256()), key


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# PRF-1 ------------------------------------------------------------------------------------------


async def test_prf1_profile_with_defaults_is_stored_and_read_back(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    created = await make_profile(sp, entry(), name="Main")
    assert created["account_id"] == sp.account_id
    assert created["entries"] == [
        {
            "server_type": "HTTPS",
            "url": "https://prov.example.test/j100",
            "identity_certificates": False,
            "root_ca_pem": None,
            "group": 0,
        }
    ]
    read = (await sp.get(f"/profiles/{created['id']}")).ok()
    assert read["name"] == "Main" and read["entries"] == created["entries"] and read["sites"] == 0
    listed = (await sp.get("/profiles")).ok()
    assert listed["total"] == 1 and listed["items"][0]["id"] == created["id"]


async def test_prf1_several_entries_des_group_root_ca_identity(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ca, _ = make_cert("Private Root CA", ca=True)
    created = await make_profile(
        sp,
        entry("https://des.example.test", "DES"),
        entry("http://10.10.10.10:8080/firmware", "HTTP(S)", group=17, identity_certificates=True),
        entry("https://prov.example.test/J100/$MODEL4/$MACADDR", "HTTPS", root_ca_pem=pem(ca), group=999),
    )
    types = [(e["server_type"], e["group"], e["identity_certificates"]) for e in created["entries"]]
    assert types == [("DES", 0, False), ("HTTP", 17, True), ("HTTPS", 999, False)]
    assert "BEGIN CERTIFICATE" in created["entries"][2]["root_ca_pem"]


async def test_prf1_refusals_name_their_error_and_entry(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    leaf, _ = make_cert("leaf.example.test", ca=False)
    cases = [
        ([entry(group=1000)], "invalid-group"),
        ([entry(group=-1)], "invalid-group"),
        ([entry(server_type="FTP")], "invalid-server-type"),
        ([entry("http://prov.example.test", "DES")], "server-type-mismatch"),
        ([entry(root_ca_pem=pem(leaf))], "invalid-root-ca"),
        ([entry(identity_certificates="yes")], "invalid-identity-certificates"),
        ([], "profile-without-entries"),
    ]
    for entries, error in cases:
        ans = await sp.post("/profiles", {"name": "Bad", "entries": entries})
        assert ans.status == 422 and ans["error"] == error, (entries, ans)
    ans = await sp.post("/profiles", {"name": "Bad", "entries": [entry(), entry(group=1000)]})
    assert ans.status == 422 and ans["error"] == "invalid-group" and ans["entry"] == 1
    assert (await sp.get("/profiles")).ok()["total"] == 0  # nothing stored


async def test_prf1_profile_names_unique_per_account(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    await make_profile(sp, name="Same")
    ans = await sp.post("/profiles", {"name": "Same", "entries": [entry()]})
    assert ans.status == 409 and ans["error"] == "profile-name-taken"
    other = await admin.new_account("service_provider")
    await make_profile(other, name="Same")  # another account may use the name


# PRF-2 ------------------------------------------------------------------------------------------

GUIDE_URLS = [  # the guide's "Provisioning URL formats" table (hosts made non-routable)
    "https://utilityserver.example.test",
    "https://utilityserver.example.test:443",
    "https://utilityserver.example.test/firmware",
    "https://utilityserver.example.test:443/firmware",
    "http://utilityserver.example.test:8080/firmware",
    "https://192.0.2.10",
    "https://192.0.2.10:443/firmware",
    "http://10.10.10.10",
    "http://10.10.10.10:8080/firmware",
    "http://utilityserver.example.test/J100/$MODEL4",
    "http://utilityserver.example.test/J100/$MODEL4/$MACADDR",
    "http://utilityserver.example.test/J100/$MODEL4/$SERIALNO",
    "https://admin:t0pSecret@utilityserver.example.test",
    "https://admin:t0pSecret@utilityserver.example.test/Directory",
]


async def test_prf2_the_guides_url_forms_are_accepted(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    created = await make_profile(sp, *(entry(u) for u in GUIDE_URLS))
    assert len(created["entries"]) == len(GUIDE_URLS)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://prov.example.test/",
        "https://prov/",  # not an FQDN
        "http://10.10.10.10:",  # empty port
        "http://10.10.10.10:70000",
        "http://300.1.1.1/",
        "https://prov.example.test/dir?x=1",
        "https://prov.example.test/#frag",
        "http://prov.example.test/J100/$MODEL",
        "http://prov.example.test/ J100/",
        "https://[2001:db8::1]/",
        "https://admin@prov.example.test/",  # user without password
        "prov.example.test/dir",
        "https://" + "a" * 250 + ".test/",
    ],
)
async def test_prf2_bad_urls_are_refused_with_invalid_url(admin: ApiClient, url: str) -> None:
    sp = await admin.new_account("service_provider")
    ans = await sp.post("/profiles", {"name": "Bad", "entries": [entry(url)]})
    assert ans.status == 422 and ans["error"] == "invalid-url" and ans["entry"] == 0, ans.body
    assert (await sp.get("/profiles")).ok()["total"] == 0


# LOG-1 redaction --------------------------------------------------------------------------------


async def test_log1_url_password_redacted_in_answers_and_audit_but_stored(admin: ApiClient, server: Running) -> None:
    sp = await admin.new_account("service_provider")
    created = await make_profile(sp, entry(SECRET_URL))
    shown = "https://admin:****@prov.example.test/Directory"
    assert created["entries"][0]["url"] == shown
    assert (await sp.get(f"/profiles/{created['id']}")).ok()["entries"][0]["url"] == shown
    assert "t0pSecret" not in str((await sp.get("/profiles")).ok())
    # a refused URL with a password: neither the answer nor the FAIL entry shows it
    bad = await sp.post("/profiles", {"name": "X", "entries": [entry("https://admin:t0pSecret@prov/")]})
    assert bad.status == 422 and "t0pSecret" not in str(bad.body)
    rows = await audit_rows(server, "create_profile")
    assert [r.status for r in rows] == ["SUCCESS", "FAIL"]
    assert shown in rows[0].message and all("t0pSecret" not in r.message for r in rows)
    # the real URL stays stored: enrollment hands it to devices (ENR-2)
    async with server.opened.ctx.store.transaction() as s:
        stored = await s.get(Profile, created["id"])
        assert stored is not None and stored.entries[0]["url"] == SECRET_URL


async def test_log1_patch_with_redacted_url_keeps_stored_password(admin: ApiClient, server: Running) -> None:
    sp = await admin.new_account("service_provider")
    created = await make_profile(sp, entry(SECRET_URL))
    entries = [{**created["entries"][0], "group": 5}]  # sent back as GET showed it
    patched = (await sp.call("PATCH", f"/profiles/{created['id']}", {"entries": entries})).ok()
    assert patched["entries"][0]["group"] == 5
    async with server.opened.ctx.store.transaction() as s:
        stored = await s.get(Profile, created["id"])
        assert stored is not None and stored.entries[0]["url"] == SECRET_URL
    rows = await audit_rows(server, "update_profile")
    assert rows and rows[-1].status == "SUCCESS" and "t0pSecret" not in rows[-1].message


# PRF-3 ------------------------------------------------------------------------------------------


async def test_prf3_patch_changes_profile_not_enrolled_devices(
    admin: ApiClient, server: Running, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    customer = (await sp.post("/accounts", {"type": "customer", "name": "C"})).ok()
    profile = await make_profile(sp, entry("https://old.example.test/j100"))
    site = (await sp.post(f"/accounts/{customer['id']}/sites", {"name": "HQ", "profile_id": profile["id"]})).ok()
    async with server.opened.ctx.store.transaction() as s:
        s.add(
            Device(
                mac="A4251B0C3D5E",
                serial="21WZ51234567",
                model="J179",
                approved=True,
                owner_id=customer["id"],
                site_id=site["id"],
                associated=True,
                activated=True,
                firmware="4.1.3.0",
                enrolled_at=clock(),
                last_contact=clock(),
                created_at=clock(),
            )
        )
    async with server.opened.ctx.store.transaction() as s:
        dev = await s.get(Device, "A4251B0C3D5E")
        before = {c.key: getattr(dev, c.key) for c in Device.__mapper__.column_attrs}
    clock.advance(hours=1)
    new = [entry("https://admin:n3wPass@new.example.test/j100", group=3)]
    patched = (await sp.call("PATCH", f"/profiles/{profile['id']}", {"entries": new})).ok()
    assert patched["entries"][0]["url"] == "https://admin:****@new.example.test/j100"
    assert patched["updated_at"] != profile["updated_at"]
    # later enrollments see the change: the site now points at the new entry ...
    seen = (await sp.get(f"/sites/{site['id']}")).ok()["provisioning"]
    assert seen["url"] == "https://admin:****@new.example.test/j100" and seen["group"] == 3
    # ... while the enrolled device's stored data is untouched
    async with server.opened.ctx.store.transaction() as s:
        dev = await s.get(Device, "A4251B0C3D5E")
        after = {c.key: getattr(dev, c.key) for c in Device.__mapper__.column_attrs}
        notes = list(await s.scalars(select(Notification).where(Notification.kind == "provision-changes")))
    assert after == before
    # NTF-1 Provision Changes: owner and the account whose site uses the profile, password redacted
    assert {n.account_id for n in notes} == {sp.account_id, customer["id"]}
    assert all("new.example.test" in n.body and "n3wPass" not in n.body for n in notes)


async def test_prf3_renaming_only_sends_no_provision_change(admin: ApiClient, server: Running) -> None:
    sp = await admin.new_account("service_provider")
    profile = await make_profile(sp)
    assert (await sp.call("PATCH", f"/profiles/{profile['id']}", {"name": "Renamed"})).ok()["name"] == "Renamed"
    async with server.opened.ctx.store.transaction() as s:
        assert not list(await s.scalars(select(Notification).where(Notification.kind == "provision-changes")))


async def test_prf_patch_cannot_drop_an_entry_a_site_uses(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = (await sp.post("/accounts", {"type": "customer", "name": "C"})).ok()
    profile = await make_profile(sp, entry(), entry("https://two.example.test"))
    (await sp.post(f"/accounts/{customer['id']}/sites", {"name": "S", "profile_id": profile["id"], "entry": 1})).ok()
    ans = await sp.call("PATCH", f"/profiles/{profile['id']}", {"entries": [entry()]})
    assert ans.status == 409 and ans["error"] == "entry-in-use"
    assert len((await sp.get(f"/profiles/{profile['id']}")).ok()["entries"]) == 2


async def test_prf4_delete_refused_while_sites_use_the_profile(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = (await sp.post("/accounts", {"type": "customer", "name": "C"})).ok()
    profile = await make_profile(sp)
    site = (await sp.post(f"/accounts/{customer['id']}/sites", {"name": "S", "profile_id": profile["id"]})).ok()
    ans = await sp.call("DELETE", f"/profiles/{profile['id']}")
    assert ans.status == 409 and ans["error"] == "profile-in-use"
    (await sp.call("DELETE", f"/sites/{site['id']}")).ok()
    assert (await sp.call("DELETE", f"/profiles/{profile['id']}")).ok() == {"deleted": profile["id"]}
    assert (await sp.get(f"/profiles/{profile['id']}")).status == 404


# ACC-7 and roles --------------------------------------------------------------------------------


async def test_acc7_another_providers_profile_is_404(admin: ApiClient) -> None:
    sp1 = await admin.new_account("service_provider")
    sp2 = await admin.new_account("service_provider")
    profile = await make_profile(sp1)
    pid = profile["id"]
    for ans in (
        await sp2.get(f"/profiles/{pid}"),
        await sp2.call("PATCH", f"/profiles/{pid}", {"name": "Mine"}),
        await sp2.call("DELETE", f"/profiles/{pid}"),
    ):
        assert ans.status == 404 and ans["error"] == "profile-not-found"
    assert (await sp2.get("/profiles")).ok()["total"] == 0
    assert (await sp1.get(f"/profiles/{pid}")).ok()["name"] == profile["name"]  # untouched


async def test_acc7_ancestors_see_descendant_profiles_not_the_reverse(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    own = await make_profile(sp)
    theirs = await make_profile(reseller)
    assert {p["id"] for p in (await sp.get("/profiles")).ok()["items"]} == {own["id"], theirs["id"]}
    assert (await reseller.get(f"/profiles/{own['id']}")).status == 404
    assert (await admin.get(f"/profiles/{theirs['id']}")).status == 200  # platform reads everything


async def test_roles_manufacturer_and_platform_cannot_create_profiles(admin: ApiClient) -> None:
    manufacturer = await admin.new_account("manufacturer")
    for client in (admin, manufacturer):
        ans = await client.post("/profiles", {"name": "P", "entries": [entry()]})
        assert ans.status == 403 and ans["error"] == "forbidden-role"
    assert (await manufacturer.get("/profiles")).status == 403
    customer = await (await admin.new_account("service_provider")).new_account("customer")
    assert (await make_profile(customer))["account_id"] == customer.account_id  # customers may


# PRF-6 ------------------------------------------------------------------------------------------


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[Any]:
    servers: list[asyncio.Server] = []

    async def start(dns: str) -> int:
        cert, key = make_cert(dns, ca=False, dns=dns)
        certfile, keyfile = tmp_path / f"{len(servers)}.crt", tmp_path / f"{len(servers)}.key"
        certfile.write_text(pem(cert))
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)

        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    yield start
    for srv in servers:
        srv.close()


async def test_prf6_wildcard_certificate_gets_a_warning(admin: ApiClient, tls_server: Any) -> None:
    sp = await admin.new_account("service_provider")
    wild = await tls_server("*.lab.example.test")
    explicit = await tls_server("prov.lab.example.test")
    created = await make_profile(
        sp,
        entry(f"https://127.0.0.1:{wild}/j100"),
        entry(f"https://127.0.0.1:{explicit}/j100"),
        entry(f"http://127.0.0.1:{wild}/j100"),
    )
    assert [(w["entry"], w["warning"]) for w in created["warnings"]] == [(0, "wildcard-certificate")]
    # a warning, not a refusal: the profile is stored
    assert len((await sp.get(f"/profiles/{created['id']}")).ok()["entries"]) == 3
    patched = (
        await sp.call("PATCH", f"/profiles/{created['id']}", {"entries": [entry(f"https://127.0.0.1:{explicit}/j100")]})
    ).ok()
    assert patched["warnings"] == []
