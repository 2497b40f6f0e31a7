"""`enrollab demo`, the other seed systems (issue 15): one flow of each over the admin API.

DEP-1: an order system of the service provider submits an encrypted batch for the customer's
site and reads the encrypted response. The flows of PNP-1 and FF-1 follow it here.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from server.domain import order_envelope

if TYPE_CHECKING:
    from harness.demo import Session

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
