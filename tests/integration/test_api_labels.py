"""Device labels over the admin API (DEV-8): create, list, delete, attach, detach; each account
sees its own hierarchy's labels only (ACC-7)."""

from __future__ import annotations

from tests.integration.client import ApiClient
from tests.integration.test_api_devices import claim_all, device, fleet, macs_for, search


async def test_dev8_create_list_delete(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    made = await sp.post("/labels", {"name": "Vantage", "description": "Vantage phones of site A"})
    assert made.status == 201 and made["name"] == "Vantage" and made["account_id"] == sp.account_id
    dup = await sp.post("/labels", {"name": "Vantage"})
    assert dup.status == 409 and dup["error"] == "label-exists"
    (await sp.post("/labels", {"name": "Lobby"})).ok()
    listed = (await sp.get("/labels")).ok()
    assert [(lab["name"], lab["devices"]) for lab in listed["items"]] == [("Lobby", 0), ("Vantage", 0)]
    assert (await sp.get("/labels", name="Van")).ok()["total"] == 1
    gone = await sp.call("DELETE", f"/labels/{made['id']}")
    assert gone.ok()["deleted"] == made["id"]
    assert [lab["name"] for lab in (await sp.get("/labels")).ok()["items"]] == ["Lobby"]
    assert (await sp.call("DELETE", f"/labels/{made['id']}")).status == 404


async def test_dev8_attach_and_detach(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42540", 3)])
    await claim_all(sp, macs[:2])
    label = (await sp.post("/labels", {"name": "desk"})).ok()
    ans = (await sp.post(f"/labels/{label['id']}/devices", {"macs": [m.lower() for m in macs]})).ok()
    # The third device is not the provider's: refused for that device only.
    assert [(r["mac"], r["status"]) for r in ans["results"]] == [
        (macs[0], "SUCCESS"),
        (macs[1], "SUCCESS"),
        (macs[2], "FAIL"),
    ]
    again = (await sp.post(f"/labels/{label['id']}/devices", {"macs": macs[:1]})).ok()
    assert again["summary"] == {"succeeded": 1, "failed": 0}  # already attached: still fine
    assert (await sp.get("/labels")).ok()["items"][0]["devices"] == 2
    assert [lab["name"] for lab in (await sp.get(f"/devices/{macs[0]}")).ok()["labels"]] == ["desk"]
    (await sp.post(f"/labels/{label['id']}/devices/remove", {"macs": macs[:1]})).ok()
    labelled = await search(sp, {"all": [{"field": "label", "op": "eq", "value": "desk"}]})
    assert [d["mac"] for d in labelled["items"]] == macs[1:2]
    # Deleting the label takes it off every device.
    (await sp.call("DELETE", f"/labels/{label['id']}")).ok()
    assert (await sp.get(f"/devices/{macs[1]}")).ok()["labels"] == []


async def test_acc7_labels_of_another_provider_are_invisible(admin: ApiClient) -> None:
    sp1 = await admin.new_account("service_provider")
    sp2 = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42541000001")])
    await claim_all(sp2, macs)
    label = (await sp1.post("/labels", {"name": "private"})).ok()
    assert (await sp2.get("/labels")).ok()["total"] == 0
    assert (await sp2.call("DELETE", f"/labels/{label['id']}")).status == 404
    ans = await sp2.post(f"/labels/{label['id']}/devices", {"macs": macs})
    assert ans.status == 404 and ans["error"] == "label-not-found"
    # sp1 cannot label a device it does not hold.
    ans = await sp1.post(f"/labels/{label['id']}/devices", {"macs": macs})
    assert ans.status == 404 and ans["error"] == "device-not-found"
    # The platform reads every label but creates none (labels belong to partner accounts).
    assert (await admin.get("/labels")).ok()["total"] == 1
    assert (await admin.post("/labels", {"name": "platform"})).status == 403
