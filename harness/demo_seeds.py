"""`enrollab demo`, the other seed systems (issue 15): one flow of each over the admin API.

- DEP-1: an order system of the service provider submits an encrypted batch for the customer's
  site and reads the encrypted response.
- PNP-1: the platform prints QR codes for two phones; the partner on site scans one (claimed,
  at the site, zero-touch ready), moves it to a branch site keeping its identity, and replaces
  the other by a new phone (new factory certificate) whose predecessor's is denied.
- FF-1: a slot prepared for a phone by its serial (filled when it reports in), a device added
  directly by its reporting id, updated by version, deleted at once — and still billed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server.domain import order_envelope

if TYPE_CHECKING:
    from harness.demo import Session

PNP_DEVICES = [("A4251B0E0001", "21WZ59100001"), ("A4251B0E0002", "21WZ59100002")]
REPLACEMENT = ("A4251B0E0003", "21WZ59100003")
FF_SLOT = ("A4251B0F0001", "21WZ59200001")
FF_DIRECT = "A4251B0F00D1"
ORDER_DEVICES = [("A4251B0D0001", "21WZ59000001"), ("A4251B0D0002", "21WZ59000002"), ("A4251B0D0003", "21WZ59000003")]


async def order_flow(s: Session, admin: str, sp_token: str, customer: dict[str, Any], site: dict[str, Any]) -> None:
    """DEP-1: devices fed in by a sales order, answered device by device."""
    rows = [{"mac": mac, "serial": serial, "model": "J179"} for mac, serial in ORDER_DEVICES]
    macs = [mac for mac, _ in ORDER_DEVICES]
    await s.call(
        "platform imports three more phones, shipped against sales order SO-1001",
        "POST",
        "/devices/import",
        admin,
        json_body={"devices": rows},
        show=lambda b: f"job {b['id']} {b['status']}",
    )
    await s.call(
        "…and approves them", "POST", "/devices/approve", admin, json_body={"macs": macs}, show=lambda b: "approved"
    )
    system = await s.call(
        "service provider registers its order system (DEP-1: API token + Fernet key, shown once)",
        "POST",
        "/order-systems",
        sp_token,
        json_body={"name": "Acme order desk", "encrypted": True},
        show=lambda b: f"order system {b['id']}, token eos_…, key id {b['key_id']}",
    )
    batch = {
        "version": 1,
        "batch_id": "SO-1001-1",
        "order_id": "SO-1001",
        "customer_account": customer["id"],
        "site_id": site["id"],
        "devices": [{**row, "request_type": "EN"} for row in rows],
    }
    sealed = json.dumps(order_envelope.seal_json(batch, system["key"], "dep-batch")).encode()
    await s.call(
        "the order system submits an encrypted batch: enrol three phones at Contoso HQ",
        "POST",
        "/orders/batches",
        system["token"],
        data=sealed,
        content_type="application/json",
        show=lambda b: f"batch {b['batch_id']}: {b['total']} devices, {b['status']}",
    )
    for _ in range(200):
        state = await s.call_quiet("GET", "/orders/batches/SO-1001-1", system["token"])
        if state["status"] != "IN PROGRESS":
            break
        await asyncio.sleep(0.05)

    def opened(body: Any) -> str:
        answer = json.loads(order_envelope.open_envelope(body, system["key"]))
        return ", ".join(f"{d['mac']} {d['outcome']}" for d in answer["devices"])

    await s.call(
        "…and fetches the encrypted response batch (decrypted here)",
        "GET",
        "/orders/batches/SO-1001-1/response",
        system["token"],
        show=opened,
    )


async def pnp_flow(
    s: Session,
    admin: str,
    sp_token: str,
    customer: dict[str, Any],
    site: dict[str, Any],
    profile: dict[str, Any],
    factory: Callable[[str, str, str], tuple[str, str]],
) -> None:
    """PNP-1: QR codes printed by the importer, scanned on site; reprovisioning; replacement."""
    rows = [
        {"mac": mac, "serial": serial, "model": "J179", "thumbprint": factory(mac, serial, "J179")[1]}
        for mac, serial in PNP_DEVICES
    ]
    macs = [mac for mac, _ in PNP_DEVICES]
    await s.call(
        "platform imports and approves two phones for plug-and-play (PNP-1)",
        "POST",
        "/devices/import",
        admin,
        json_body={"devices": rows},
        show=lambda b: f"job {b['id']} {b['status']}",
    )
    await s.call("…approved", "POST", "/devices/approve", admin, json_body={"macs": macs}, show=lambda b: "approved")
    batch = await s.call(
        "…and prints their one-time QR codes for Contoso HQ (enrollab qr batch writes PNG/SVG + sheet)",
        "POST",
        "/pnp/qr-batches",
        admin,
        json_body={"devices": macs, "account_id": customer["id"], "site_id": site["id"]},
        show=lambda b: f"batch {b['number']}: {b['total']} codes, e.g. {b['codes'][0]['payload'][:48]}…",
    )
    await s.call(
        "the partner on site scans the first phone's code: claimed, at the site, zero-touch ready",
        "POST",
        "/pnp/scan",
        sp_token,
        json_body={"payload": batch["codes"][0]["payload"]},
        show=lambda b: f"{b['mac']} at site {b['site_id']}, zero-touch ready {b['zero_touch_ready']}",
    )
    await s.call(
        "…a second scan of the same code is refused (one-time)",
        "POST",
        "/pnp/scan",
        sp_token,
        json_body={"payload": batch["codes"][0]["payload"]},
        expect=409,
        show=lambda b: b["error"],
    )
    await s.call(
        "…and scans the second one",
        "POST",
        "/pnp/scan",
        sp_token,
        json_body={"payload": batch["codes"][1]["payload"]},
        show=lambda b: f"{b['mac']} onboarded",
    )
    await s.call(
        "the batch by its number: codes scanned",
        "GET",
        f"/pnp/qr-batches/{batch['number']}",
        sp_token,
        show=lambda b: f"total {b['total']}, scanned {b['scanned']}, enrolled {b['enrolled']}",
    )
    branch = await s.call(
        "a branch site for Contoso",
        "POST",
        f"/accounts/{customer['id']}/sites",
        sp_token,
        json_body={"name": "Contoso Branch", "profile_id": profile["id"]},
        show=lambda b: f"site {b['id']}",
    )
    await s.call(
        f"reprovision {macs[0]} to the branch: same MAC, serial, certificate",
        "POST",
        f"/pnp/devices/{macs[0]}/reprovision",
        sp_token,
        json_body={"account_id": customer["id"], "site_id": branch["id"]},
        show=lambda b: f"{b['mac']} now at site {b['site_id']}, serial {b['serial']}",
    )
    new_mac, new_serial = REPLACEMENT
    await s.call(
        f"replace the faulty {macs[1]} by {new_mac} (its new factory certificate)",
        "POST",
        f"/pnp/devices/{macs[1]}/replace",
        sp_token,
        json_body={
            "new_mac": new_mac,
            "new_serial": new_serial,
            "new_certificate": factory(new_mac, new_serial, "J179")[0],
        },
        show=lambda b: f"{b['new']['mac']} at site {b['new']['site_id']}; old certificate denied "
        f"({b['denied_thumbprint'][:12]}…)",
    )


async def ff_flow(s: Session, admin: str, sp_token: str, customer: dict[str, Any], site: dict[str, Any]) -> None:
    """FF-1: two-step (a slot) and direct addition, which is billed even when deleted at once."""
    mac, serial = FF_SLOT
    await s.call(
        "platform imports and approves a phone for two-step provisioning (FF-1)",
        "POST",
        "/devices/import",
        admin,
        json_body={"devices": [{"mac": mac, "serial": serial, "model": "J179"}]},
        show=lambda b: f"job {b['id']} {b['status']}",
    )
    await s.call("…approved", "POST", "/devices/approve", admin, json_body={"macs": [mac]}, show=lambda b: "approved")
    await s.call(
        "step 1: the service provider prepares a slot at Contoso HQ by the serial on the box",
        "POST",
        "/slots",
        sp_token,
        json_body={"site_id": site["id"], "model": "J179", "serial": serial},
        show=lambda b: f"slot {b['id']} {b['state']} (step 2: the phone reports in and fills it)",
    )
    added = await s.call(
        f"direct addition of {FF_DIRECT} by its reporting id, kind and company (mergeProvider, no v)",
        "POST",
        "/direct-devices",
        sp_token,
        json_body={"id": FF_DIRECT, "kind": "J179", "company": customer["id"]},
        show=lambda b: f"{b['action']} {b['provider']['id']} v{b['provider']['v']}",
    )
    await s.call(
        "…updated with its version (v): moved to the site",
        "POST",
        "/direct-devices",
        sp_token,
        json_body={"id": FF_DIRECT, "kind": "J179", "company": customer["id"], "site_id": site["id"],
                   "v": added["provider"]["v"]},
        show=lambda b: f"{b['action']} to v{b['provider']['v']}",
    )
    await s.call(
        "…and deleted at once", "DELETE", f"/direct-devices/{FF_DIRECT}", sp_token, show=lambda b: "deleted"
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    await s.call(
        f"the billing report for Contoso, {month}: the deleted addition still counts",
        "GET",
        "/billing",
        sp_token,
        params={"account": customer["id"], "month": month},
        show=lambda b: f"{b['direct_additions']} direct addition(s), present now: "
        + ", ".join(str(i["present"]) for i in b["items"]),
    )
