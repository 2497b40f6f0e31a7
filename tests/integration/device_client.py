"""Phones for the device-listener tests: a factory certificate from the test server's
manufacturer CA and real mutual-TLS connections (PROTOCOL §2), plus the admin-API arranging
the tests share (import with thumbprints, sites with one provisioning entry, zero-touch)."""

from __future__ import annotations

import itertools
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import select

from server.pki import FactoryCertificate
from server.pki.tls import client_context
from server.runner import Running
from server.store.models import AuditLog, Device, Notification
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import fleet

LATEST_J = "4.1.11.0.9"  # catalog latest of the J100 models: no FW-2 upgrade for unclaimed phones
_macs = itertools.count(1)
_serials = itertools.count(1)
_names = itertools.count(1)


def next_mac(prefix: str = "A4251B") -> str:
    return f"{prefix}{next(_macs):06X}"


@dataclass
class Reply:
    """One answer from the device listener."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    def __getitem__(self, key: str) -> Any:
        return self.body[key]


@dataclass
class Phone:
    """A simulated phone: MAC, serial, model, the firmware it reports, its factory certificate."""

    server: Running
    mac: str
    serial: str
    model: str
    firmware: str
    factory: FactoryCertificate
    _ssl: ssl.SSLContext | None = None
    source: str | None = None  # the loopback address it connects from (127.0.0.2, …), None: the default

    @classmethod
    def make(
        cls, server: Running, model: str = "J179", firmware: str = LATEST_J, mac: str | None = None, **issue: Any
    ) -> Phone:
        pki = server.opened.ctx.pki
        assert pki is not None
        mac = mac or next_mac()
        serial = f"SN{next(_serials):010d}"
        return cls(server, mac, serial, model, firmware, pki.issue_factory(mac, serial, model, **issue))

    def import_row(self) -> dict[str, Any]:
        return {"mac": self.mac, "serial": self.serial, "model": self.model, "thumbprint": self.factory.thumbprint}

    @property
    def ssl(self) -> ssl.SSLContext:
        if self._ssl is None:
            pki = self.server.opened.ctx.pki
            assert pki is not None
            self._ssl = client_context(pki.tls_ca_path, self.factory.cert_pem, self.factory.key_pem)
        return self._ssl

    async def request(
        self, method: str, path: str, *, json_body: Any = None, data: bytes | None = None, headers: Any = None
    ) -> Reply:
        """One request on its own TLS connection (a phone does not share its session)."""
        url = path if path.startswith("https://") else self.server.device_url + path
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=self.ssl, force_close=True, local_addr=(self.source, 0) if self.source else None)) as session,
            session.request(method, url, json=json_body, data=data, headers=headers) as resp,
        ):
            raw = await resp.read()
            body: Any = raw
            if "json" in resp.headers.get("Content-Type", ""):
                body = json.loads(raw)
            return Reply(resp.status, body, dict(resp.headers), raw)

    def enroll_body(self, code: Any = None, **overrides: Any) -> dict[str, Any]:
        body = {"model": self.model, "firmware": self.firmware, "mac": self.mac, "serial": self.serial, "code": code}
        body.update(overrides)
        return body

    async def enroll(self, code: Any = None, **overrides: Any) -> Reply:
        return await self.request("POST", "/device/v1/enroll", json_body=self.enroll_body(code, **overrides))


# --- arranging through the admin API -------------------------------------------------------------


async def import_phones(admin: ApiClient, phones: list[Phone], *, approve: bool = True) -> None:
    """DEV-1, DEV-2: import with thumbprints (as the platform) and approve."""
    await fleet(admin, [p.import_row() for p in phones], approve=approve)


@dataclass
class Customer:
    """A service provider and one of its customer accounts (both logged in)."""

    sp: ApiClient
    customer: ApiClient

    @property
    def id(self) -> str:
        return self.customer.account_id


async def new_customer(admin: ApiClient) -> Customer:
    sp = await admin.new_account("service_provider")
    return Customer(sp, await sp.new_account("customer"))


def entry(url: str = "https://prov.example.com/$MODEL4/", server_type: str = "HTTPS", **extra: Any) -> dict[str, Any]:
    return {"server_type": server_type, "url": url, "identity_certificates": False, "group": 0, **extra}


async def new_site(owner: ApiClient, customer_id: str, provisioning: dict[str, Any] | None, **site: Any) -> int:
    """A customer site with a one-entry profile of `owner` (None: no profile); its id."""
    profile_id = None
    if provisioning is not None:
        profile = {"name": f"device profile {next(_names)}", "entries": [provisioning]}
        profile_id = (await owner.post("/profiles", profile)).ok()["id"]
    body: dict[str, Any] = {"name": f"device site {next(_names)}", "profile_id": profile_id, **site}
    return int((await owner.post(f"/accounts/{customer_id}/sites", body)).ok()["id"])


async def zero_touch(cust: Customer, phones: list[Phone], site_id: int) -> None:
    """DEV-6: the service provider claims, associates with the customer's site, activates."""
    macs = [p.mac for p in phones]
    for phone in phones:
        (await cust.sp.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    (await cust.sp.post("/devices/associate", {"macs": macs, "account_id": cust.id, "site_id": site_id})).ok()
    (await cust.sp.post("/devices/activate", {"macs": macs})).ok()


async def nec(owner: ApiClient, site_id: int, total: int = 10, length: int = 8) -> str:
    answer = (await owner.post(f"/sites/{site_id}/nec", {"length": length, "total_devices": total})).ok()
    return str(answer["code"])


# --- reading the store --------------------------------------------------------------------------


async def device_row(server: Running, mac: str) -> Device:
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(Device, mac)
        assert row is not None
        return row


async def enrollment_log(server: Running, action: str = "enroll") -> list[AuditLog]:
    """ENR-5: the ENROLLMENT audit entries, oldest first."""
    async with server.opened.ctx.store.transaction() as s:
        stmt = select(AuditLog).where(AuditLog.process == "ENROLLMENT", AuditLog.action == action)
        return list(await s.scalars(stmt.order_by(AuditLog.id)))


async def notifications(server: Running, kind: str) -> list[Notification]:
    async with server.opened.ctx.store.transaction() as s:
        stmt = select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        return list(await s.scalars(stmt))
