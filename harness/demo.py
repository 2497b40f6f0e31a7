"""`enrollab demo`: an embedded server on SQLite and the administrator's end-to-end scenario, step by step.

The admin half: hierarchy, profile, site, codes, devices, search, audit log, then one flow of
each other seed system (harness/demo_seeds.py). `enrollab demo` runs fleets and suites after it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

import fixtures
from harness.demo_seeds import ff_flow, order_flow, pnp_flow
from server.runner import SIMULATION_GUESSING, ServeConfig, start

ADMIN_PASSWORD = "Demo-Platform-Pw-1"  # noqa: S105 - a throwaway lab password for the embedded server


class DemoFailed(Exception):
    pass


@dataclass
class Step:
    title: str
    method: str
    path: str
    status: int
    summary: str


@dataclass
class Session:
    base: str
    http: aiohttp.ClientSession
    console: Console
    data_dir: Path | None = None  # the embedded server's: its manufacturer CA issues new phones' certificates
    steps: list[Step] = field(default_factory=list)

    def factory(self, mac: str, serial: str, model: str) -> tuple[str, str]:
        """(PEM, thumbprint) of a new phone's factory certificate from the server's manufacturer CA
        (PROTOCOL §1): what a phone is born with and its import row names."""
        from server.pki.store import ensure_pki

        assert self.data_dir is not None
        issued = ensure_pki(self.data_dir).issue_factory(mac, serial, model)
        return issued.cert_pem.decode(), issued.thumbprint

    async def call(
        self,
        title: str,
        method: str,
        path: str,
        token: str | None = None,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
        expect: int | tuple[int, ...] = (200, 201, 202),
        show: Callable[[Any], str] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if content_type:
            headers["Content-Type"] = content_type
        async with self.http.request(
            method, self.base + path, json=json_body, data=data, headers=headers, params=params
        ) as resp:
            body = await resp.json(content_type=None)
        expected = (expect,) if isinstance(expect, int) else expect
        summary = show(body) if show and resp.status in expected else json.dumps(body)[:160]
        self.steps.append(Step(title, method, path, resp.status, summary))
        mark = "[green]✓[/]" if resp.status in expected else "[red]✗[/]"
        self.console.print(f"{mark} {len(self.steps):2}. {title}")
        self.console.print(f"      [dim]{method} {path} → {resp.status}[/]  {summary}", highlight=False)
        if resp.status not in expected:
            raise DemoFailed(f"step {len(self.steps)} '{title}' answered {resp.status}: {body}")
        return body

    async def call_quiet(self, method: str, path: str, token: str | None = None) -> Any:
        """A call that is no step of its own (polling): its answer, whatever the status."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, headers=headers) as resp:
            return await resp.json(content_type=None)


async def run_demo(console: Console | None = None, data_dir: Path | None = None) -> list[Step]:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="enrollab-demo-") as tmp:
        cfg = ServeConfig(data_dir=data_dir or Path(tmp) / "data", admin_port=0, guessing=SIMULATION_GUESSING)
        running = await start(cfg, admin_password=ADMIN_PASSWORD)
        console.print(f"[bold]enrollab demo[/] — embedded server at {running.admin_url} (SQLite in {cfg.data_dir})\n")
        try:
            async with aiohttp.ClientSession() as http:
                s = Session(running.admin_url + "/api/v1", http, console, data_dir=cfg.data_dir)
                await _scenario(s)
                return s.steps
        finally:
            await running.stop()


async def _login(s: Session, login: str, password: str) -> str:
    ans = await s.call(
        f"log in as {login}",
        "POST",
        "/auth/login",
        json_body={"login": login, "password": password},
        show=lambda b: f"role {b['role']}, change password: {b['password_change_required']}",
    )
    return str(ans["token"])


async def _scenario(s: Session) -> None:
    admin = await _login(s, "admin", ADMIN_PASSWORD)
    sp = await s.call(
        "platform creates a service provider (ACC-1)",
        "POST",
        "/accounts",
        admin,
        json_body={"type": "service_provider", "name": "Acme Telecom"},
        show=lambda b: f"id {b['id']}",
    )
    await s.call(
        "…with its administrator (temporary password, USR-1)",
        "POST",
        "/users",
        admin,
        json_body={
            "account_id": sp["id"],
            "login": "ops@acme.example",
            "password": "Temporary-Pw-1",
            "email": "ops@acme.example",
        },
        show=lambda b: b["login"],
    )
    spt = await _login(s, "ops@acme.example", "Temporary-Pw-1")
    await s.call(
        "a temporary password blocks other calls",
        "GET",
        f"/accounts/{sp['id']}",
        spt,
        expect=403,
        show=lambda b: b["error"],
    )
    await s.call(
        "the administrator sets its own password",
        "POST",
        "/auth/password",
        spt,
        json_body={"old_password": "Temporary-Pw-1", "new_password": "Acme-Strong-Pw-2"},
        show=lambda b: "done",
    )
    reseller = await s.call(
        "service provider creates a reseller (ACC-2)",
        "POST",
        "/accounts",
        spt,
        json_body={"type": "reseller", "name": "Northwind Resale"},
        show=lambda b: f"id {b['id']}",
    )
    await s.call(
        "…with its administrator",
        "POST",
        "/users",
        spt,
        json_body={
            "account_id": reseller["id"],
            "login": "sales@northwind.example",
            "password": "Temporary-Pw-1",
            "email": "sales@northwind.example",
        },
        show=lambda b: b["login"],
    )
    rt = await _login(s, "sales@northwind.example", "Temporary-Pw-1")
    await s.call(
        "reseller sets its password",
        "POST",
        "/auth/password",
        rt,
        json_body={"old_password": "Temporary-Pw-1", "new_password": "Northwind-Pw-3"},
        show=lambda b: "done",
    )
    await s.call(
        "a reseller cannot create a reseller (ACC-2)",
        "POST",
        "/accounts",
        rt,
        json_body={"type": "reseller", "name": "Sub-reseller"},
        expect=403,
        show=lambda b: b["error"],
    )
    customer = await s.call(
        "service provider creates a customer",
        "POST",
        "/accounts",
        spt,
        json_body={"type": "customer", "name": "Contoso Ltd"},
        show=lambda b: f"id {b['id']}",
    )
    profile = await s.call(
        "a profile: HTTPS provisioning server, group 7 (PRF-1/2)",
        "POST",
        "/profiles",
        spt,
        json_body={
            "name": "Contoso phones",
            "entries": [
                {
                    "server_type": "HTTPS",
                    "url": "https://prov:s3cret@files.contoso.example/$MODEL4/",
                    "identity_certificates": False,
                    "group": 7,
                }
            ],
        },
        show=lambda b: f"id {b['id']}, url {b['entries'][0]['url']}",
    )
    site = await s.call(
        "a customer site with that profile and PIN 4321 (SIT-1)",
        "POST",
        f"/accounts/{customer['id']}/sites",
        spt,
        json_body={"name": "Contoso HQ", "profile_id": profile["id"], "pin": "4321"},
        show=lambda b: f"site {b['id']}",
    )
    await s.call(
        "an 8-digit NEC for 50 devices, expiring in 2 weeks (EC-1)",
        "POST",
        f"/sites/{site['id']}/nec",
        spt,
        json_body={"length": 8, "total_devices": 50, "expiry": {"unit": "weeks", "value": 2}},
        show=lambda b: f"code {b['code']}, expires {b['expires_at']}",
    )
    await s.call(
        "the site's PEC = account ID + PIN (EC-6)",
        "GET",
        f"/sites/{site['id']}/pec",
        spt,
        show=lambda b: f"code {b['code']}",
    )
    csv_bytes = fixtures.path("samples/devices-import.csv").read_bytes()
    await s.call(
        "platform imports three devices from CSV (DEV-1)",
        "POST",
        "/devices/import",
        admin,
        data=csv_bytes,
        content_type="text/csv",
        show=lambda b: f"job {b['id']} {b['status']} {b.get('summary')}",
    )
    rows = [line.split(",") for line in csv_bytes.decode().splitlines()[1:] if line.strip()]
    macs = [row[0] for row in rows]
    serial_of = {row[0]: row[1] for row in rows}
    await s.call(
        "platform approves them (DEV-2)",
        "POST",
        "/devices/approve",
        admin,
        json_body={"macs": macs},
        show=lambda b: f"{len(macs)} approved",
    )
    for mac in macs:
        await s.call(
            f"service provider claims {mac} (DEV-3)",
            "POST",
            "/devices/claim",
            spt,
            json_body={"mac": mac, "serial": serial_of[mac]},
            show=lambda b: "claimed",
        )
    await s.call(
        "…associates them with the customer's site (DEV-4)",
        "POST",
        "/devices/associate",
        spt,
        json_body={"macs": macs, "account_id": customer["id"], "site_id": site["id"]},
        show=lambda b: "associated",
    )
    await s.call(
        "…and activates them for zero-touch (DEV-6)",
        "POST",
        "/devices/activate",
        spt,
        json_body={"macs": macs},
        show=lambda b: "activated",
    )
    prefix = macs[0][:6]
    q = json.dumps({"all": [{"field": "mac", "op": "starts_with", "value": prefix}]})
    await s.call(
        f"search: MAC starts with {prefix} (DEV-11)",
        "GET",
        "/devices",
        spt,
        params={"q": q},
        show=lambda b: f"{b['total']} found: " + ", ".join(d["mac"] for d in b["items"]),
    )
    await s.call(
        "read the audit log (LOG-1; the URL password is redacted)",
        "GET",
        "/logs",
        spt,
        params={"limit": "5"},
        show=lambda b: f"{b['total']} entries, latest: {b['items'][0]['action']}",
    )
    await order_flow(s, admin, spt, customer, site)
    await pnp_flow(s, admin, spt, customer, site, profile, s.factory)
    await ff_flow(s, admin, spt, customer, site)
