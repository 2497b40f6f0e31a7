"""What the server suite needs to drive a server from outside: organisations made through the
admin API (PROTOCOL §3) and probe devices that speak the device protocol (PROTOCOL §2) over
mutual TLS with factory certificates from the manufacturer CA the server trusts.

Nothing here imports the server: the suite runs against any server implementing PROTOCOL.md.
Names carry a random suffix so the suite can run again against the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from simulators.admin_client import AdminClient, AdminError, new_password
from simulators.factory import FactoryCredentials

__all__ = ["Answer", "Org", "Probe", "expect_error", "new_org", "tag"]


def tag() -> str:
    return secrets.token_hex(4)


async def expect_error(call: Any, status: int, error: str | None = None) -> AdminError:
    """Await an admin call that must fail with `status` (and the stable `error` id)."""
    try:
        answer = await call
    except AdminError as exc:
        assert exc.status == status, f"{exc.method} {exc.path}: expected {status}, got {exc.status} {exc.error}"
        if error is not None:
            assert exc.error == error, f"{exc.method} {exc.path}: expected error {error!r}, got {exc.error!r}"
        return exc
    raise AssertionError(f"expected {status} {error or ''}, the call succeeded: {answer}")


@dataclass
class Org:
    """A service provider (logged in), one customer with a site whose profile points at
    `url`, and the logins made on the way."""

    sp: AdminClient
    sp_id: str
    customer_id: str
    profile_id: int
    site_id: int
    pin: str
    logins: dict[str, str] = field(default_factory=dict)

    @property
    def pec(self) -> str:
        return self.customer_id + self.pin


async def new_admin(parent: AdminClient, account_id: str, login: str) -> AdminClient:
    temporary = new_password()
    await parent.call(
        "POST", "/users", {"account_id": account_id, "login": login, "password": temporary, "email": login}
    )
    user = await AdminClient(parent.base, parent.http).login(login, temporary)
    await user.call("POST", "/auth/password", {"old_password": temporary, "new_password": new_password()})
    return user


async def new_org(
    admin: AdminClient,
    url: str = "https://prov.enrollab.test/$MODEL4/",
    *,
    server_type: str = "HTTPS",
    group: int = 0,
    identity_certificates: bool = False,
) -> Org:
    t = tag()
    sp_id, sp = await admin.new_administered_account("service_provider", f"conf-sp-{t}", f"conf-sp-{t}@enrollab.test")
    customer = await sp.call("POST", "/accounts", {"type": "customer", "name": f"conf-customer-{t}"})
    profile = await sp.call(
        "POST",
        "/profiles",
        {
            "name": f"conf-profile-{t}",
            "entries": [
                {"server_type": server_type, "url": url, "identity_certificates": identity_certificates, "group": group}
            ],
        },
    )
    pin = f"{secrets.randbelow(10_000):04d}"
    site = await sp.call(
        "POST", f"/accounts/{customer['id']}/sites", {"name": f"conf-site-{t}", "profile_id": profile["id"], "pin": pin}
    )
    return Org(sp, sp_id, str(customer["id"]), int(profile["id"]), int(site["id"]), pin)


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def result(self) -> Any:
        return self.body.get("result") if isinstance(self.body, dict) else None

    def __getitem__(self, key: str) -> Any:
        """A field of the answer, None when absent: a wrong answer fails the assertion that
        compares it (the server broke a rule) rather than erroring the test."""
        return self.body.get(key) if isinstance(self.body, dict) else None


class Probe:
    """A device as the server sees it: MAC, serial, model, the firmware it reports, a factory
    certificate; `enroll(code)` is one `POST /device/v1/enroll` on a new mutual-TLS connection."""

    def __init__(
        self,
        device_url: str,
        server_ca_pem: bytes | None,
        creds: FactoryCredentials,
        mac: str,
        serial: str,
        model: str,
        firmware: str,
    ) -> None:
        self.device_url, self.mac, self.serial, self.model, self.firmware = device_url, mac, serial, model, firmware
        self.creds = creds
        self._ssl = _client_context(server_ca_pem, creds)

    @classmethod
    def make(cls, server: Any, model: str = "J179", firmware: str = "4.1.11.0.9", **issue: Any) -> Probe:
        mac = "A4251B" + secrets.token_hex(3).upper()
        serial = f"26WZ{secrets.randbelow(10**8):08d}"
        creds = server.manufacturer_ca().issue(mac, serial, model, **issue)
        return cls(server.device_url, server.tls_ca_pem, creds, mac, serial, model, firmware)

    def row(self) -> dict[str, str]:
        return {"mac": self.mac, "serial": self.serial, "model": self.model, "thumbprint": self.creds.thumbprint}

    async def enroll(self, code: str | None = None, **overrides: Any) -> Answer:
        body = {"model": self.model, "firmware": self.firmware, "mac": self.mac, "serial": self.serial, "code": code}
        body.update(overrides)
        return await self.request("POST", "/device/v1/enroll", json=body)

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        url = path if path.startswith("https:") else self.device_url + path
        connector = aiohttp.TCPConnector(ssl=self._ssl, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http, http.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = raw
            return Answer(resp.status, body)


def _client_context(server_ca_pem: bytes | None, creds: FactoryCredentials) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if server_ca_pem:
        context.load_verify_locations(cadata=server_ca_pem.decode("ascii"))
    with tempfile.TemporaryDirectory() as tmp:
        chain = Path(tmp) / "device.pem"
        chain.write_bytes(creds.cert_pem + creds.key_pem)
        context.load_cert_chain(chain)
    return context


async def import_probes(admin: AdminClient, probes: list[Probe], *, approve: bool = True) -> Any:
    job = await admin.call("POST", "/devices/import", {"devices": [p.row() for p in probes]})
    if job.get("status") == "IN PROGRESS":
        job = await admin.wait_job(int(job["id"]))
    assert job["status"] == "COMPLETE" and job["summary"]["rejected"] == 0, job
    if approve:
        await admin.call("POST", "/devices/approve", {"macs": [p.mac for p in probes]})
    return job


async def zero_touch(org: Org, probes: list[Probe], site_id: int | None = None) -> None:
    """DEV-3, DEV-4, DEV-6: claim (MAC and the serial printed on the box), associate with the site, activate."""
    macs = [p.mac for p in probes]
    for probe in probes:
        await org.sp.call("POST", "/devices/claim", {"mac": probe.mac, "serial": probe.serial})
    await org.sp.call(
        "POST", "/devices/associate", {"macs": macs, "account_id": org.customer_id, "site_id": site_id or org.site_id}
    )
    await org.sp.call("POST", "/devices/activate", {"macs": macs})


async def nec(org: Org, total: int, length: int = 8) -> str:
    answer = await org.sp.call(
        "POST", f"/sites/{org.site_id}/nec", {"length": length, "total_devices": total, "expiry": None}
    )
    return str(answer["code"])


@contextlib.asynccontextmanager
async def admin_of(server: Any) -> AsyncIterator[AdminClient]:
    async with server.admin() as admin:
        yield admin


async def gather(*coros: Any) -> list[Any]:
    return list(await asyncio.gather(*coros))
