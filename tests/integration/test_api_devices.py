"""Devices over the admin API: import (DEV-1), approval (DEV-2), claim (DEV-3), association
(DEV-4), disassociation and release (DEV-5), activation (DEV-6), search (DEV-11), export
(DEV-10) and what each account may see (ACC-7)."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from server.runner import Running
from server.store.models import Device, Job
from tests.integration.client import ApiClient

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "samples"
_serials = itertools.count(1)
SERIAL_OF: dict[str, str] = {}  # MAC -> serial of every device these helpers imported (DEV-3 claim proof)


# --- helpers (the jobs and labels tests use them too) ---------------------------------------------


def device(mac: str, model: str = "J179", **extra: Any) -> dict[str, Any]:
    return {"mac": mac, "serial": f"SN{next(_serials):08d}", "model": model, **extra}


def macs_for(prefix: str, n: int) -> list[str]:
    """n canonical MACs starting with a 6-hex-digit prefix."""
    return [f"{prefix}{i:06X}" for i in range(1, n + 1)]


async def import_json(client: ApiClient, devices: list[dict[str, Any]]) -> Any:
    SERIAL_OF.update({d["mac"]: d["serial"] for d in devices if isinstance(d, dict) and "mac" in d and "serial" in d})
    data = json.dumps({"devices": devices}).encode()
    return await client.post("/devices/import", data=data, content_type="application/json")


async def fleet(admin: ApiClient, devices: list[dict[str, Any]], *, approve: bool = True) -> list[str]:
    """Import (as the platform) and approve devices; their MACs."""
    job = (await import_json(admin, devices)).ok()
    assert job["summary"]["imported"] == len(devices), job
    macs = [d["mac"] for d in devices]
    if approve:
        (await admin.post("/devices/approve", {"macs": macs})).ok()
    return macs


async def claim(client: ApiClient, mac: str) -> Any:
    """DEV-3: claim with the MAC and the serial number printed on the box (the proof of possession)."""
    return await client.post("/devices/claim", {"mac": mac, "serial": SERIAL_OF[mac]})


async def claim_all(client: ApiClient, macs: list[str]) -> None:
    for mac in macs:
        (await claim(client, mac)).ok()


async def profile_and_site(owner: ApiClient, customer_id: str, *, with_profile: bool = True) -> int:
    """A customer site, with a profile of `owner` (PRF-4) unless told otherwise; its id."""
    profile_id = None
    if with_profile:
        profile = (
            await owner.post(
                "/profiles",
                {
                    "name": f"profile {next(_serials)}",
                    "entries": [
                        {
                            "server_type": "HTTPS",
                            "url": "https://prov.example.com/$MACADDR",
                            "identity_certificates": False,
                            "group": 0,
                        }
                    ],
                },
            )
        ).ok()
        profile_id = profile["id"]
    site = (
        await owner.post(f"/accounts/{customer_id}/sites", {"name": f"site {next(_serials)}", "profile_id": profile_id})
    ).ok()
    return int(site["id"])


async def search(client: ApiClient, q: dict[str, Any] | None = None, **params: str) -> Any:
    if q is not None:
        params["q"] = json.dumps(q)
    return (await client.get("/devices", **params)).ok()


async def count_rows(server: Running, model: type) -> int:
    async with server.opened.ctx.store.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def wait_job(client: ApiClient, job_id: int, timeout: float = 5.0) -> Any:
    """Poll a job until it leaves IN PROGRESS (DEV-10)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await client.get(f"/jobs/{job_id}", limit="1000")).ok()
        if job["status"] != "IN PROGRESS":
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job {job_id} still running: {job}"
        await asyncio.sleep(0.05)


# --- DEV-1 import ---------------------------------------------------------------------------------


async def test_dev1_manufacturer_imports_the_csv_sample(admin: ApiClient) -> None:
    maker = await admin.new_account("manufacturer")
    data = (SAMPLES / "devices-import.csv").read_bytes()
    ans = await maker.post("/devices/import", data=data, content_type="text/csv")
    assert ans.status == 201, ans.body
    assert ans["status"] == "COMPLETE"
    assert ans["summary"]["imported"] == 3 and ans["summary"]["rejected"] == 0
    listed = await search(maker)
    assert listed["total"] == 3
    first = next(d for d in listed["items"] if d["mac"] == "A4251B0C3D5E")
    # DEV-2: not approved yet; the importing account is recorded; order fields kept.
    assert first["approved"] is False and first["imported_by"] == maker.account_id
    assert first["serial"] == "21WZ51234567" and first["reseller_order_id"] == "RC-4001-7788"
    assert first["manufactured_at"].startswith("2021-06-14T08:30:00")


async def test_dev1_json_row_errors_are_reported_and_valid_rows_import(admin: ApiClient) -> None:
    rows = [
        device("A4251B000001"),
        {"mac": "not-a-mac", "serial": "SNBAD1", "model": "J179"},
        {"mac": "A4251B000003", "model": "J179"},
        device("a4:25:1b:00:00:04"),
    ]
    ans = await import_json(admin, rows)
    assert ans.status == 201, ans.body
    # Decision: a file with refused rows makes a FAIL job, and its valid rows are imported.
    assert ans["status"] == "FAIL"
    assert ans["summary"] == {"imported": 2, "rejected": 2, "errors": 2}
    found = {(e["row"], e["field"], e["reason"]) for e in ans["errors"]}
    assert found == {(2, "mac", "invalid-mac"), (3, "serial", "missing-field")}
    macs = [d["mac"] for d in (await search(admin))["items"]]
    assert macs == ["A4251B000001", "A4251B000004"]
    job = (await admin.get(f"/jobs/{ans['id']}")).ok()
    assert job["kind"] == "import" and job["results"]["total"] == 2
    assert {(r["row"], r["field"], r["reason"], r["status"]) for r in job["results"]["items"]} == {
        (2, "mac", "invalid-mac", "FAIL"),
        (3, "serial", "missing-field", "FAIL"),
    }


async def test_dev1_csv_errors_carry_the_spreadsheet_row(admin: ApiClient) -> None:
    text = "mac,serial,model\nA4251B000011,SNCSV1,J179\nA4251B000012,SNCSV2,\nZZ,SNCSV3,J179\n"
    ans = await admin.post("/devices/import", data=text.encode(), content_type="text/csv")
    assert ans.status == 201, ans.body
    assert {(e["row"], e["field"], e["reason"]) for e in ans["errors"]} == {
        (3, "model", "missing-field"),
        (4, "mac", "invalid-mac"),
    }
    assert (await search(admin))["total"] == 1


async def test_dev1_zip_of_csv_and_json_names_the_member(admin: ApiClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.csv", (SAMPLES / "devices-import.csv").read_text())
        z.writestr("b.json", json.dumps({"devices": [device("A4251B000021"), {"mac": "A4251B000022"}]}))
    ans = await admin.post(
        "/devices/import", data=buf.getvalue(), content_type="application/zip", params={"filename": "batch.zip"}
    )
    assert ans.status == 201, ans.body
    assert ans["summary"]["imported"] == 4
    assert {(e["file"], e["row"], e["field"]) for e in ans["errors"]} == {
        ("b.json", 2, "serial"),
        ("b.json", 2, "model"),
    }
    assert (await search(admin))["total"] == 4


async def test_dev1_duplicate_mac_or_serial_against_the_store(admin: ApiClient) -> None:
    await fleet(admin, [device("A4251B000031", serial="SNDUP1")], approve=False)
    ans = await import_json(
        admin,
        [
            device("A4251B000031"),  # MAC already imported
            {"mac": "A4251B000032", "serial": "SNDUP1", "model": "J179"},  # serial already imported
            device("A4251B000033"),
        ],
    )
    assert ans.status == 201
    assert {(e["row"], e["field"], e["reason"]) for e in ans["errors"]} == {
        (1, "mac", "duplicate-mac"),
        (2, "serial", "duplicate-serial"),
    }
    assert ans["summary"]["imported"] == 1
    assert (await search(admin))["total"] == 2


async def test_dev1_whole_file_refusals_write_nothing(admin: ApiClient, server: Running) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    ans = await admin.post("/devices/import", data=png, content_type="application/octet-stream")
    assert ans.status == 415 and ans["error"] == "import-unsupported-format"
    ans = await admin.post("/devices/import", data=b"", content_type="text/csv")
    assert ans.status == 422 and ans["error"] == "import-empty"
    big = b"mac,serial,model\n" + b"A4251B000041,SN1,J179\n" * ((10 << 20) // 22 + 1)
    assert len(big) > 10 << 20
    ans = await admin.post("/devices/import", data=big, content_type="text/csv")
    assert ans.status == 413, ans.body
    assert await count_rows(server, Device) == 0
    assert await count_rows(server, Job) == 0


async def test_dev1_only_manufacturer_and_platform_import(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ans = await import_json(sp, [device("A4251B000051")])
    assert ans.status == 403 and ans["error"] == "forbidden-role"


# --- DEV-2 approval -------------------------------------------------------------------------------


async def test_dev2_unapproved_devices_cannot_be_claimed_until_the_platform_approves(admin: ApiClient) -> None:
    maker = await admin.new_account("manufacturer")
    sp = await admin.new_account("service_provider")
    (await import_json(maker, [device("A4251B000061")])).ok()
    ans = await claim(sp, "A4251B000061")
    assert ans.status == 409 and ans["error"] == "not-approved"
    ans = await maker.post("/devices/approve", {"macs": ["A4251B000061"]})
    assert ans.status == 403
    ans = (await admin.post("/devices/approve", {"macs": ["A4251B000061", "A4251B0000FF"]})).ok()
    assert [(r["mac"], r["status"]) for r in ans["results"]] == [("A4251B000061", "SUCCESS"), ("A4251B0000FF", "FAIL")]
    assert ans["results"][1]["reason"] == "device-not-found"
    (await claim(sp, "A4251B000061")).ok()
    assert (await sp.get("/devices/A4251B000061")).ok()["owner_id"] == sp.account_id


# --- DEV-3 claim ----------------------------------------------------------------------------------


async def test_dev3_claim_by_mac_and_serial(admin: ApiClient) -> None:
    """DEV-3, PROTOCOL §3: the MAC (any §1 form) and the serial printed on the box, both required."""
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider")
    await fleet(admin, [device(m, serial=f"SNCLAIM{i}") for i, m in enumerate(macs_for("A4251C", 4))])
    by_pair = (await sp.post("/devices/claim", {"mac": "a4:25:1c:00:00:01", "serial": "SNCLAIM0"})).ok()
    assert by_pair["results"] == [{"mac": "A4251C000001", "status": "SUCCESS"}]
    assert by_pair["device"]["owner_id"] == sp.account_id
    (await sp.post("/devices/claim", {"mac": "A4251C000002", "serial": "SNCLAIM1"})).ok()
    (await sp.post("/devices/claim", {"mac": "A4251C000003", "serial": "SNCLAIM2"})).ok()
    for half in ({"mac": "A4251C000004"}, {"serial": "SNCLAIM3"}):
        ans = await sp.post("/devices/claim", half)
        assert (ans.status, ans["error"]) == (422, "invalid-body"), half
    # A pair naming two devices is no proof: answered like an unknown device, neither claimed.
    ans = await sp.post("/devices/claim", {"mac": "A4251C000004", "serial": "SNCLAIM0"})
    assert (ans.status, ans["error"]) == (404, "device-not-found")
    assert (await sp.get("/devices/A4251C000004")).status == 404
    ans = await other.post("/devices/claim", {"mac": "A4251C000001", "serial": "SNCLAIM0"})
    assert ans.status == 409 and ans["error"] == "already-claimed"
    owned = await search(sp)
    assert [d["mac"] for d in owned["items"]] == ["A4251C000001", "A4251C000002", "A4251C000003"]
    # NTF-1: the claimant's account is told.
    notes = (await sp.get("/notifications/outbox", kind="claiming-device")).ok()
    assert notes["total"] == 3 and "A4251C000001" in " ".join(n["subject"] for n in notes["items"])


# --- DEV-4 associate ------------------------------------------------------------------------------


async def test_dev4_associating_with_a_site_needs_a_profile(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    macs = await fleet(admin, [device(m) for m in macs_for("A4251D", 2)])
    await claim_all(sp, macs)
    bare_site = await profile_and_site(sp, customer.account_id, with_profile=False)
    site = await profile_and_site(sp, customer.account_id)
    ans = await sp.post("/devices/associate", {"macs": macs, "account_id": customer.account_id, "site_id": bare_site})
    assert ans.status == 422 and ans["error"] == "no-profile"
    assert {r["reason"] for r in ans["results"]} == {"no-profile"}
    ans = await sp.post("/devices/associate", {"macs": macs, "account_id": customer.account_id, "site_id": site})
    assert ans.ok()["summary"] == {"succeeded": 2, "failed": 0}
    seen = (await customer.get(f"/devices/{macs[0]}")).ok()
    assert seen["owner_id"] == customer.account_id and seen["site_id"] == site and seen["associated"] is True
    notes = (await customer.get("/notifications/outbox", kind="associating-device")).ok()
    assert notes["total"] == 1 and "2 devices" in notes["items"][0]["subject"] + notes["items"][0]["body"]
    # A site of another account is not a target.
    ans = await sp.post("/devices/associate", {"macs": macs, "account_id": sp.account_id, "site_id": site})
    assert ans.status == 404 and ans["error"] == "site-not-found"


async def test_dev4_acc8_devices_go_to_a_reseller_only_once_linked(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    other_sp = await admin.new_account("service_provider")
    reseller = await other_sp.new_account("reseller", bp_link_id="BP-DEV4-1")
    macs = await fleet(admin, [device("A4251E000001")])
    await claim_all(sp, macs)
    # Neither in the provider's hierarchy nor linked: as if it did not exist (ACC-7).
    ans = await sp.post("/devices/associate", {"macs": macs, "account_id": reseller.account_id})
    assert ans.status == 404 and ans["error"] == "account-not-found"
    link = (await sp.post("/link-requests", {"bp_link_id": "BP-DEV4-1"})).ok()
    (await reseller.post(f"/link-requests/{link['id']}/approve")).ok()
    (await sp.post("/devices/associate", {"macs": macs, "account_id": reseller.account_id})).ok()
    assert (await reseller.get(f"/devices/{macs[0]}")).ok()["owner_id"] == reseller.account_id
    assert (await sp.get(f"/devices/{macs[0]}")).status == 404


async def test_dev4_own_reseller_needs_a_link_too(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller", bp_link_id="BP-DEV4-2")
    macs = await fleet(admin, [device("A4251E000011")])
    await claim_all(sp, macs)
    ans = await sp.post("/devices/associate", {"macs": macs, "account_id": reseller.account_id})
    assert ans.status == 422 and ans["error"] == "reseller-not-linked"


async def test_dev4_a_customer_associates_with_its_own_sites_only(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    sibling = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    macs = await fleet(admin, [device("A4251E000021")])
    await claim_all(customer, macs)
    ans = await customer.post("/devices/associate", {"macs": macs, "account_id": sibling.account_id})
    assert ans.status == 403 and ans["error"] == "forbidden-role"
    ans = await customer.post("/devices/associate", {"macs": macs, "account_id": customer.account_id})
    assert ans.status == 422 and ans["error"] == "site-required"
    (await customer.post("/devices/associate", {"macs": macs, "account_id": customer.account_id, "site_id": site})).ok()
    assert (await customer.get(f"/devices/{macs[0]}")).ok()["site_id"] == site


# --- DEV-6 activation -----------------------------------------------------------------------------


async def test_dev6_activation_counts_only_after_association(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    macs = await fleet(admin, [device("A4251F000001"), device("A4251F000002")])
    ans = await sp.post("/devices/activate", {"macs": macs[:1]})
    assert ans.status == 404 and ans["error"] == "device-not-found"  # not claimed: not in your hierarchy
    await claim_all(sp, macs)
    (await sp.post("/devices/activate", {"macs": macs})).ok()
    dev = (await sp.get(f"/devices/{macs[0]}")).ok()
    assert dev["activated"] is True and dev["zero_touch_ready"] is False
    (await sp.post("/devices/associate", {"macs": macs, "account_id": customer.account_id, "site_id": site})).ok()
    # An activation belongs to the association it follows: associating clears it.
    dev = (await customer.get(f"/devices/{macs[0]}")).ok()
    assert dev["activated"] is False and dev["zero_touch_ready"] is False
    (await customer.post("/devices/activate", {"macs": macs})).ok()
    assert (await customer.get(f"/devices/{macs[0]}")).ok()["zero_touch_ready"] is True
    (await customer.post("/devices/deactivate", {"macs": macs[1:]})).ok()
    dev = (await customer.get(f"/devices/{macs[1]}")).ok()
    assert dev["activated"] is False and dev["zero_touch_ready"] is False


# --- DEV-5 disassociate / release -----------------------------------------------------------------


async def test_dev5_disassociate_and_release_erase_the_order_fields(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    order = {
        "reseller_order_id": "RC-1",
        "order_id": "AV-1",
        "shipment_carrier": "DHL",
        "tracking_id": "T1",
        "aco_product_id": "ACO-1",
    }
    macs = await fleet(admin, [device("A42520000001", **order), device("A42520000002", **order)])
    await claim_all(sp, macs)
    (await sp.post("/devices/associate", {"macs": macs, "account_id": customer.account_id, "site_id": site})).ok()
    # Disassociate: the device comes back from the child account to yours.
    (await sp.post("/devices/disassociate", {"macs": macs[:1]})).ok()
    back = (await sp.get(f"/devices/{macs[0]}")).ok()
    assert back["owner_id"] == sp.account_id and back["site_id"] is None and back["associated"] is False
    assert [back[k] for k in ("reseller_order_id", "order_id", "shipment_carrier", "tracking_id")] == [None] * 4
    assert back["aco_product_id"] == "ACO-1"  # ACO-1: kept and exported
    # Release by the customer: back to its parent, the provider, order fields erased.
    (await customer.post("/devices/release", {"macs": macs[1:]})).ok()
    released = (await sp.get(f"/devices/{macs[1]}")).ok()
    assert released["owner_id"] == sp.account_id and released["order_id"] is None
    assert (await customer.get(f"/devices/{macs[1]}")).status == 404
    # Release by the provider: its parent is the platform, so the device is unclaimed again.
    (await sp.post("/devices/release", {"macs": macs})).ok()
    assert (await search(sp))["total"] == 0
    assert (await admin.get(f"/devices/{macs[0]}")).ok()["owner_id"] is None
    # Disassociating a device your own account holds is refused per device.
    await claim_all(sp, macs[:1])
    ans = await sp.post("/devices/disassociate", {"macs": macs[:1]})
    assert ans.status == 409 and ans["error"] == "not-held-by-child"


# --- DEV-11 search --------------------------------------------------------------------------------


async def _search_fleet(admin: ApiClient) -> None:
    await fleet(
        admin,
        [
            device("A4251B100001", "J179", shipment_carrier="DHL", order_id="AV-100"),
            device("A4251B100002", "J139", shipment_carrier="UPS", order_id="AV-200"),
            device("C81FEA100003", "K175", shipment_carrier="DHL"),
            device("2CF4C5100004", "B199", order_id="AV-101"),
        ],
    )


async def test_dev11_each_operator(admin: ApiClient) -> None:
    await _search_fleet(admin)

    async def macs(field: str, op: str, value: Any) -> list[str]:
        found = await search(admin, {"all": [{"field": field, "op": op, "value": value}]})
        assert found["total"] == len(found["items"])
        return [d["mac"] for d in found["items"]]

    assert await macs("model", "eq", "J179") == ["A4251B100001"]
    assert await macs("shipment_carrier", "ne", "DHL") == ["2CF4C5100004", "A4251B100002"]  # NULL is "not DHL"
    assert await macs("order_id", "starts_with", "AV-1") == ["2CF4C5100004", "A4251B100001"]
    assert await macs("order_id", "ends_with", "00") == ["A4251B100001", "A4251B100002"]
    assert await macs("model", "contains", "1") == ["2CF4C5100004", "A4251B100001", "A4251B100002", "C81FEA100003"]
    assert await macs("model", "Equals", "K175") == ["C81FEA100003"]  # the guide's label for eq
    # Starts With on a MAC: any case and separators, as a person types it.
    assert await macs("mac", "starts_with", "a4:25:1b") == ["A4251B100001", "A4251B100002"]
    assert await macs("mac", "eq", "c8-1f-ea-10-00-03") == ["C81FEA100003"]
    assert await macs("approved", "eq", True) == ["2CF4C5100004", "A4251B100001", "A4251B100002", "C81FEA100003"]


async def test_dev11_and_or_and_paging(admin: ApiClient) -> None:
    await _search_fleet(admin)
    both = await search(
        admin,
        {
            "all": [
                {"field": "shipment_carrier", "op": "eq", "value": "DHL"},
                {"field": "mac", "op": "starts_with", "value": "A425"},
            ]
        },
    )
    assert [d["mac"] for d in both["items"]] == ["A4251B100001"]
    either = await search(
        admin,
        {
            "any": [
                {"field": "model", "op": "eq", "value": "B199"},
                {
                    "all": [
                        {"field": "shipment_carrier", "op": "eq", "value": "DHL"},
                        {"field": "model", "op": "ne", "value": "J179"},
                    ]
                },
            ]
        },
    )
    assert [d["mac"] for d in either["items"]] == ["2CF4C5100004", "C81FEA100003"]
    page = await search(admin, None, limit="2", offset="1")
    assert page["total"] == 4 and [d["mac"] for d in page["items"]] == ["A4251B100001", "A4251B100002"]
    bad = await admin.get("/devices", q=json.dumps({"all": [{"field": "colour", "op": "eq", "value": "red"}]}))
    assert bad.status == 400 and bad["error"] == "invalid-filter"
    bad = await admin.get("/devices", q="{not json")
    assert bad.status == 400 and bad["error"] == "invalid-filter"


async def test_dev11_dev8_search_by_label(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42521", 3)])
    await claim_all(sp, macs)
    label = (await sp.post("/labels", {"name": "lobby", "description": "lobby phones"})).ok()
    (await sp.post(f"/labels/{label['id']}/devices", {"macs": macs[:2]})).ok()
    found = await search(sp, {"all": [{"field": "label", "op": "eq", "value": "lobby"}]})
    assert [d["mac"] for d in found["items"]] == macs[:2]
    assert found["items"][0]["labels"] == [{"id": label["id"], "name": "lobby"}]
    found = await search(sp, {"all": [{"field": "label", "op": "ne", "value": "lobby"}]})
    assert [d["mac"] for d in found["items"]] == macs[2:]
    found = await search(sp, {"all": [{"field": "label", "op": "starts_with", "value": "lob"}]})
    assert found["total"] == 2


# --- ACC-7 scope ----------------------------------------------------------------------------------


async def test_acc7_a_provider_never_sees_another_providers_devices(admin: ApiClient) -> None:
    sp1 = await admin.new_account("service_provider")
    sp2 = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42522000001"), device("A42522000002")])
    await claim_all(sp1, macs[:1])
    await claim_all(sp2, macs[1:])
    assert [d["mac"] for d in (await search(sp1))["items"]] == macs[:1]
    assert (await search(sp2, {"all": [{"field": "mac", "op": "eq", "value": macs[0]}]}))["total"] == 0
    assert (await sp2.get(f"/devices/{macs[0]}")).status == 404
    ans = await sp2.post("/devices/activate", {"macs": macs[:1]})
    assert ans.status == 404 and ans["error"] == "device-not-found"
    ans = await sp2.post("/devices/release", {"macs": macs})  # one of theirs, one not: per-device
    assert ans.ok()["summary"] == {"succeeded": 1, "failed": 1}
    assert (await sp1.get(f"/devices/{macs[0]}")).ok()["owner_id"] == sp1.account_id
    # The platform sees all; a customer of sp1 sees none of sp1's own devices.
    assert (await search(admin))["total"] == 2
    customer = await sp1.new_account("customer")
    assert (await search(customer))["total"] == 0


async def test_get_device_refuses_a_malformed_mac(admin: ApiClient) -> None:
    ans = await admin.get("/devices/A4251B0C3D5")
    assert ans.status == 422 and ans["error"] == "invalid-mac"
    ans = await admin.post("/devices/approve", {"macs": ["A4251B0C3D5E", "nope"]})
    assert ans.status == 422 and ans["error"] == "invalid-mac"


# --- DEV-10 export --------------------------------------------------------------------------------


async def test_dev10_device_export_json_and_csv(admin: ApiClient) -> None:
    await _search_fleet(admin)
    q = json.dumps({"all": [{"field": "shipment_carrier", "op": "eq", "value": "DHL"}]})
    ans = await admin.get("/devices/export", format="json", q=q)
    assert ans.status == 200
    assert [d["mac"] for d in ans["devices"]] == ["A4251B100001", "C81FEA100003"]
    ans = await admin.get("/devices/export", format="csv", q=q)
    assert ans.status == 200
    rows = list(csv.DictReader(io.StringIO(ans.body)))
    assert [(r["mac"], r["model"], r["shipment_carrier"]) for r in rows] == [
        ("A4251B100001", "J179", "DHL"),
        ("C81FEA100003", "K175", "DHL"),
    ]
    ans = await admin.get("/devices/export", format="xml")
    assert ans.status == 400 and ans["error"] == "invalid-format"
