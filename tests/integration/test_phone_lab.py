"""The lab the phone integration tests share — the reference server (fixtures `server`,
`admin`), a provisioning file server (`harness.fileserver`), a virtual clock and phones with
factory certificates from the server's manufacturer CA — and the file server's own tests.

Other `test_phone_*` modules import `lab` (the fixture) and the helpers from here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.fileserver import CertMode, FileServer
from server.pki.keys import certificate_pem, private_key_pem
from server.runner import Running
from simulators.clock import VirtualClock
from simulators.factory import ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.phone import Faults, Phone, PhoneEnvironment, User
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    LATEST_J,
    Customer,
    entry,
    new_customer,
    new_site,
    next_mac,
)
from tests.integration.test_api_devices import fleet

FILES_HOST = "files.enrollab.test"
HOSTS = {FILES_HOST: "127.0.0.1", "other.enrollab.test": "127.0.0.1"}

UPGRADE_J100 = b"""## J100Supgrade.txt (lab)
IF $SIG_IN_USE SEQ H323 GOTO H323
SET APPNAME J100-SIP-$MODEL4.bin
GOTO GETSET
# H323
SET APPNAME unsupported
# GETSET
GET 46xxsettings.txt
"""
UPGRADE_K1XX = b"SET APPNAME K1xx.apk\nGET 46xxsettings.txt\n"
SETTINGS = b"""## 46xxsettings.txt (lab)
SET SIPDOMAIN contoso.example
SET ENABLE_AVAYA_ENVIRONMENT 0
IF $GROUP SEQ 7 GOTO GROUP_7
GOTO END
# GROUP_7
SET SIP_CONTROLLER_LIST sbc7.contoso.example:5061;transport=tls
# END
GET $MACADDR.txt
"""


def provisioning_files(*directories: str, **extra: bytes) -> dict[str, bytes]:
    """Upgrade scripts and settings for every family (plus `extra` files) in each of
    `directories` (e.g. the $MODEL4 values of a profile URL `…/$MODEL4/`); "" is the root."""
    files = {
        "J100Supgrade.txt": UPGRADE_J100,
        "K1xxSupgrade.txt": UPGRADE_K1XX,
        "46xxsettings.txt": SETTINGS,
    }
    files.update(extra)
    out: dict[str, bytes] = {}
    for directory in directories or ("",):
        prefix = f"{directory.strip('/')}/" if directory.strip("/") else ""
        out.update({prefix + name: data for name, data in files.items()})
    return out


_serials = iter(range(10_000_000, 99_999_999))


@dataclass
class Lab:
    server: Running
    admin: ApiClient
    clock: VirtualClock
    env: PhoneEnvironment
    manufacturer: ManufacturerCA
    tls_ca_pem: bytes
    file_servers: list[FileServer] = field(default_factory=list)

    def phone(
        self,
        model: str = "J179",
        firmware: str = LATEST_J,
        *,
        user: User | None = None,
        faults: Faults | None = None,
        env: PhoneEnvironment | None = None,
        mac: str | None = None,
        **issue: Any,
    ) -> Phone:
        """A phone with a factory certificate from the server's manufacturer CA (`issue`:
        `expired=True` and the like, or `foreign=True` for another manufacturer's CA)."""
        identity = PhoneIdentity(model, firmware, mac or next_mac(), f"21WZ{next(_serials)}")
        issuer = ManufacturerCA.generate() if issue.pop("foreign", False) else self.manufacturer
        creds = issuer.issue(identity.mac, identity.serial, model, **issue)
        phone = Phone(identity, creds.key_pem, creds.cert_pem, env or self.env, user=user, faults=faults)
        phone_thumbprints[identity.mac] = creds.thumbprint
        return phone

    def environment(self, **overrides: Any) -> PhoneEnvironment:
        kwargs: dict[str, Any] = {
            "enrollment_url": self.server.device_url,
            "public_roots": [self.tls_ca_pem],
            "hosts": HOSTS,
            "clock": self.clock,
        }
        kwargs.update(overrides)
        return PhoneEnvironment(**kwargs)

    async def files(self, files: dict[str, bytes] | None = None, **options: Any) -> FileServer:
        server = await FileServer(files if files is not None else provisioning_files(), **options).start()
        self.file_servers.append(server)
        return server

    async def import_phones(self, phones: list[Phone], *, approve: bool = True) -> None:
        """DEV-1, DEV-2: import with the factory thumbprints (as the platform) and approve."""
        rows = [
            {
                "mac": p.identity.mac,
                "serial": p.identity.serial,
                "model": p.identity.model,
                "thumbprint": phone_thumbprints[p.identity.mac],
            }
            for p in phones
        ]
        await fleet(self.admin, rows, approve=approve)

    async def customer(self) -> Customer:
        return await new_customer(self.admin)

    async def zero_touch(
        self, phones: list[Phone], url: str, *, server_type: str | None = None, **extra: Any
    ) -> Customer:
        """Import, and arrange zero-touch (DEV-6) at a new site whose profile has one entry."""
        await self.import_phones(phones)
        cust = await self.customer()
        kind = server_type or ("HTTPS" if url.startswith("https:") else "HTTP")
        site = await new_site(cust.sp, cust.id, entry(url, server_type=kind, **extra))
        await self.activate(cust, phones, site)
        return cust

    async def activate(self, cust: Customer, phones: list[Phone], site_id: int) -> None:
        """DEV-6: the service provider claims, associates with the customer's site, activates."""
        macs = [p.mac for p in phones]
        for phone in phones:
            (await cust.sp.post("/devices/claim", {"mac": phone.mac, "serial": phone.identity.serial})).ok()
        (await cust.sp.post("/devices/associate", {"macs": macs, "account_id": cust.id, "site_id": site_id})).ok()
        (await cust.sp.post("/devices/activate", {"macs": macs})).ok()


phone_thumbprints: dict[str, str] = {}


@pytest.fixture
async def lab(server: Running, admin: ApiClient) -> AsyncIterator[Lab]:
    pki = server.opened.ctx.pki
    assert pki is not None
    manufacturer = ManufacturerCA(
        private_key_pem(pki.manufacturer_ca.key), certificate_pem(pki.manufacturer_ca.certificate)
    )
    tls_ca_pem = certificate_pem(pki.tls_ca.certificate)
    clock = VirtualClock()
    env = PhoneEnvironment(server.device_url, [tls_ca_pem], HOSTS, None, clock)
    the_lab = Lab(server, admin, clock, env, manufacturer, tls_ca_pem)
    yield the_lab
    for files in the_lab.file_servers:
        await files.stop()
    await env.close()


def names(phone: Phone) -> list[str]:
    """The phone's event names, in order."""
    return [e.name for e in phone.events]


def event(phone: Phone, name: str) -> dict[str, Any]:
    """The detail of the phone's last event called `name`."""
    found = [e for e in phone.events if e.name == name]
    assert found, f"no {name!r} in {names(phone)}"
    return found[-1].detail


# --- the file server itself ------------------------------------------------------------------------


async def _get(url: str, cafile_pem: bytes | None) -> tuple[int, bytes]:
    context: ssl.SSLContext | bool = False
    if cafile_pem is not None:
        context = ssl.create_default_context(cadata=cafile_pem.decode())
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as resp:
        return resp.status, await resp.read()


async def test_fileserver_serves_over_https_and_http_and_records_requests() -> None:
    async with FileServer({"J179/46xxsettings.txt": b"SET A 1\n"}, hostnames=("localhost",)) as files:
        status, body = await _get(files.url("https", path="J179/46xxsettings.txt"), files.ca_pem)
        assert (status, body) == (200, b"SET A 1\n")
        status, _ = await _get(files.url("http", path="J179/missing.txt"), None)
        assert status == 404
    assert [(r.scheme, r.path, r.status, r.client) for r in files.requests] == [
        ("https", "J179/46xxsettings.txt", 200, "127.0.0.1"),
        ("http", "J179/missing.txt", 404, "127.0.0.1"),
    ]
    assert files.paths("https") == ["J179/46xxsettings.txt"]


async def test_fileserver_certificate_modes() -> None:
    """PRF-6: the wildcard mode names only `*.<domain>`; the expired one ended yesterday."""
    from cryptography import x509

    exact = ["files.enrollab.test"]
    modes: tuple[tuple[CertMode, list[str]], ...] = (
        ("private", exact),
        ("public", exact),
        ("wildcard", ["*.enrollab.test"]),
        ("expired", exact),
    )
    for mode, dns in modes:
        server = FileServer({}, cert_mode=mode)
        cert = x509.load_pem_x509_certificate(server.certificates.cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == dns, mode
        ca = x509.load_pem_x509_certificate(server.ca_pem)
        cert.verify_directly_issued_by(ca)
        if mode == "public":
            assert "Public Root" in ca.subject.rfc4514_string()
        expired = cert.not_valid_after_utc.timestamp() < __import__("time").time()
        assert expired == (mode == "expired"), mode


async def test_fileserver_knobs_statuses_credentials_and_directory(tmp_path: Path) -> None:
    (tmp_path / "J179").mkdir()
    (tmp_path / "J179" / "46xxsettings.txt").write_bytes(b"SET B 2\n")
    (tmp_path / "secret.txt").write_bytes(b"no")
    async with FileServer(tmp_path / "J179", statuses={"boom.txt": 500}, credentials=("prov", "pw")) as files:
        assert (await _get(files.url("http", "127.0.0.1", "46xxsettings.txt"), None))[0] == 401
        authed = files.url("http", "prov:pw@127.0.0.1", "46xxsettings.txt")
        assert await _get(authed, None) == (200, b"SET B 2\n")
        assert (await _get(files.url("http", "prov:pw@127.0.0.1", "boom.txt"), None))[0] == 500
        assert (await _get(files.url("http", "prov:pw@127.0.0.1", "../secret.txt"), None))[0] == 404
    assert [r.status for r in files.requests] == [401, 200, 500, 404]
    assert [r.user for r in files.requests] == [None, "prov", "prov", "prov"]
