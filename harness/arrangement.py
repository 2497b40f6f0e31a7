"""Arranging a device under test on the enrollment server, through the admin API only
(PROTOCOL §3), as the `arrange` fixture: so the same arrangement works against the reference
server and a third-party one, for simulated and physical devices.

    arrangement = await arrange.zero_touch(dut, files.https_url, group=7)

`zero_touch` (DEV-6): the platform administrator imports the device with its factory
thumbprint (DEV-1) and approves it (DEV-2) unless the server already holds it; a new service
provider (with an administrator the harness knows) creates a customer, a profile with one entry
pointing at the provisioning URL (PRF-1), a site with it (SIT-1), and claims, associates and
activates the device (DEV-3, DEV-4, DEV-6).

A device under test lives for the whole session, so it meets the server again in the next
test: `release` hands it back first — the provider that holds it disassociates it from its
customer and releases it (DEV-5), leaving it approved and unclaimed. A device held by an account
the harness did not make is refused with a `HarnessError` naming the owner: somebody else's
arrangement is not ours to undo.

Every refusal on the way is a `HarnessError` (`arrangement-failed`): the arrangement is not
what the test checks, so it ends in *error*, not *fail*.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.dut import DeviceUnderTest
from harness.errors import HarnessError
from harness.session import EnrollmentServer, Holder
from simulators.admin_client import AdminClient, AdminError, new_password

__all__ = ["Arrangement", "Arranger"]


@dataclass
class Arrangement:
    """What `zero_touch` made: ids, the profile entry, and the provider's administrator."""

    service_provider_id: str
    customer_id: str
    site_id: int
    profile_id: int
    entry: dict[str, Any]
    provider: Holder
    device: dict[str, Any] = field(default_factory=dict)


class Arranger:
    """The `arrange` fixture (module docstring)."""

    def __init__(self, server: EnrollmentServer, admin: AdminClient) -> None:
        self.server = server
        self.admin = admin

    async def imported(self, dut: DeviceUnderTest) -> dict[str, Any]:
        """DEV-1, DEV-2: the device on the server, approved; its record."""
        row = dut.arrange_row()
        mac = row["mac"]
        found = await self._device(mac)
        if found is None:
            job = await self._call(self.admin, "POST", "/devices/import", {"devices": [row]}, f"import {mac}")
            if job.get("status") == "IN PROGRESS":
                job = await self.admin.wait_job(int(job["id"]))
            if job.get("status") != "COMPLETE":
                raise HarnessError("arrangement-failed", f"the server did not import {mac}: {job}", mac)
            found = await self._device(mac)
            if found is None:
                raise HarnessError("arrangement-failed", f"{mac} is not on the server after its import", mac)
        elif str(found.get("thumbprint") or "").upper() != row["thumbprint"].upper():
            raise HarnessError(
                "arrangement-failed",
                f"the server holds {mac} with another factory-certificate thumbprint ({found.get('thumbprint')}); "
                "it was imported for another device or run",
                mac,
            )
        if not found.get("approved"):
            await self._call(self.admin, "POST", "/devices/approve", {"macs": [mac]}, f"approve {mac}")
            found = await self._device(mac) or found
        return found

    async def release(self, dut: DeviceUnderTest) -> None:
        """DEV-5: give the device back (unclaimed), through the provider the harness made hold it."""
        mac = dut.identity.mac
        found = await self._device(mac)
        if found is None or found.get("owner_id") is None:
            return
        holder = self.server.holders.get(mac)
        if holder is None:
            raise HarnessError(
                "device-held",
                f"{mac} is held by account {found.get('owner_id')}, which the harness did not arrange; "
                "release it on the server first",
                mac,
            )
        async with self._as(holder) as provider:
            if str(found.get("owner_id")) != holder.account_id:
                await self._call(provider, "POST", "/devices/disassociate", {"macs": [mac]}, f"disassociate {mac}")
            await self._call(provider, "POST", "/devices/release", {"macs": [mac]}, f"release {mac}")
        del self.server.holders[mac]

    async def zero_touch(
        self,
        dut: DeviceUnderTest,
        url: str,
        *,
        server_type: str | None = None,
        group: int = 0,
        root_ca_pem: str | bytes | None = None,
        identity_certificates: bool = False,
        pin: str | None = None,
    ) -> Arrangement:
        """DEV-6: the device claimed, associated with a new site whose profile's one entry is
        `url` (server type HTTPS/HTTP from the scheme unless given), and activated."""
        mac = dut.identity.mac
        await self.release(dut)
        device = await self.imported(dut)
        tag = secrets.token_hex(3)
        sp_id, holder = await self.new_service_provider(f"conformance {tag}")
        entry: dict[str, Any] = {
            "server_type": server_type or ("HTTPS" if url.startswith("https:") else "HTTP"),
            "url": url,
            "identity_certificates": identity_certificates,
            "group": group,
        }
        if root_ca_pem:
            entry["root_ca_pem"] = root_ca_pem.decode("ascii") if isinstance(root_ca_pem, bytes) else root_ca_pem
        async with self._as(holder) as sp:
            customer = await self._call(sp, "POST", "/accounts", {"type": "customer", "name": f"customer {tag}"},
                                        "create a customer")
            profile = await self._call(sp, "POST", "/profiles", {"name": f"profile {tag}", "entries": [entry]},
                                       "create a profile")
            site_body: dict[str, Any] = {"name": f"site {tag}", "profile_id": profile["id"]}
            if pin is not None:
                site_body["pin"] = pin
            site = await self._call(sp, "POST", f"/accounts/{customer['id']}/sites", site_body, "create a site")
            self.server.holders[mac] = holder
            claim = {"mac": mac, "serial": device["serial"]}  # DEV-3: the serial on the box is the proof
            await self._call(sp, "POST", "/devices/claim", claim, f"claim {mac}")
            await self._call(
                sp,
                "POST",
                "/devices/associate",
                {"macs": [mac], "account_id": customer["id"], "site_id": site["id"]},
                f"associate {mac}",
            )
            await self._call(sp, "POST", "/devices/activate", {"macs": [mac]}, f"activate {mac}")
        return Arrangement(
            service_provider_id=sp_id,
            customer_id=str(customer["id"]),
            site_id=int(site["id"]),
            profile_id=int(profile["id"]),
            entry=entry,
            provider=holder,
            device=device,
        )

    async def new_service_provider(self, name: str) -> tuple[str, Holder]:
        """A service provider and its first administrator, whose password the harness keeps (USR-1)."""
        account = await self._call(self.admin, "POST", "/accounts", {"type": "service_provider", "name": name},
                                   "create a service provider")
        login = f"conformance-{secrets.token_hex(4)}@enrollab.test"
        temporary = new_password()
        await self._call(
            self.admin,
            "POST",
            "/users",
            {"account_id": account["id"], "login": login, "password": temporary, "email": login},
            "create its administrator",
        )
        final = new_password()
        async with self.server.admin(login, temporary) as user:
            await self._call(user, "POST", "/auth/password", {"old_password": temporary, "new_password": final},
                             "set the administrator's password")
        return str(account["id"]), Holder(login, final, str(account["id"]))

    # -- internals ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _as(self, holder: Holder) -> AsyncIterator[AdminClient]:
        async with self.server.admin(holder.login, holder.password) as client:
            yield client

    async def _device(self, mac: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.admin.call("GET", f"/devices/{mac}")
        except AdminError as exc:
            if exc.status == 404:
                return None
            raise HarnessError("arrangement-failed", f"cannot read device {mac}: {exc}", mac) from None
        return found

    async def _call(self, client: AdminClient, method: str, path: str, body: Any, what: str) -> Any:
        try:
            return await client.call(method, path, body)
        except AdminError as exc:
            raise HarnessError("arrangement-failed", f"{what}: {exc}", exc.error) from None
