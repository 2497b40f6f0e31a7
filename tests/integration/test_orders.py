"""DEP-1 order-driven enrollment over a real socket: order systems and their API tokens, request
batches (plain and Fernet-encrypted), their processing as bulk jobs, the response batches, and
every whole-file refusal writing nothing (no batch, no device change, no job)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import jsonschema
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from server.domain import order_envelope, orders
from server.runner import Running
from server.store.models import Device, Job, JobResult, OrderBatch, OrderDevice
from tests.conftest import FakeClock
from tests.integration.client import Answer, ApiClient
from tests.integration.test_api_devices import SERIAL_OF, device, fleet, macs_for, profile_and_site

RESPONSE_SCHEMA = orders.schema("dep-response")


async def order_system(client: ApiClient, *, encrypted: bool = True, **extra: Any) -> tuple[ApiClient, dict[str, Any]]:
    """Register an order system as `client`; a client calling with its token, and the creation answer."""
    created = (
        await client.post(
            "/order-systems", {"name": f"orders {len(client._children)}", "encrypted": encrypted, **extra}
        )
    ).ok()
    token_client = ApiClient(client.base, token=created["token"])
    client._children.append(token_client)
    return token_client, created


def batch(customer: str, entries: list[tuple[str, str]], batch_id: str = "B-1", **extra: Any) -> dict[str, Any]:
    """A dep-batch document: (mac, request type) per device, serials from the import."""
    return {
        "version": 1,
        "batch_id": batch_id,
        "order_id": "SO-1001",
        "customer_account": customer,
        "devices": [
            {"mac": mac, "serial": SERIAL_OF[mac], "model": "J179", "request_type": kind} for mac, kind in entries
        ],
        **extra,
    }


async def submit(client: ApiClient, document: Any, key: str | None = None, **params: str) -> Answer:
    if key is not None:
        document = order_envelope.seal_json(document, key, "dep-batch")
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await client.call(
        "POST", "/orders/batches", data=data, content_type="application/json", params=params or None
    )


async def wait_batch(client: ApiClient, batch_id: str, timeout: float = 60.0, **params: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = (await client.get(f"/orders/batches/{batch_id}", **params)).ok()
        if state["status"] != "IN PROGRESS":
            return state
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.05)


async def response(client: ApiClient, batch_id: str, key: str | None = None, **params: str) -> dict[str, Any]:
    body = (await client.get(f"/orders/batches/{batch_id}/response", **params)).ok()
    if key is not None:
        assert body["envelope"] == "fernet" and body["content"] == "dep-response", body
        body = json.loads(Fernet(key.encode()).decrypt(body["ciphertext"].encode()))
    jsonschema.validate(body, RESPONSE_SCHEMA)
    return body


async def counts(server: Running) -> tuple[int, int, int, list[tuple[str | None, str | None]]]:
    """What a refused submission must not have changed: batches, batch devices, jobs, device owners."""
    async with server.opened.ctx.store.transaction() as s:
        batches = int(await s.scalar(select(func.count()).select_from(OrderBatch)) or 0)
        rows = int(await s.scalar(select(func.count()).select_from(OrderDevice)) or 0)
        jobs = int(await s.scalar(select(func.count()).select_from(Job)) or 0)
        owners = [(d.owner_id, d.order_id) for d in await s.scalars(select(Device).order_by(Device.mac))]
    return batches, rows, jobs, owners


async def _seller(admin: ApiClient, n: int = 6, prefix: str = "A4D001") -> tuple[ApiClient, ApiClient, list[str]]:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    macs = await fleet(admin, [device(m) for m in macs_for(prefix, n)])
    return sp, customer, macs


async def test_dep1_an_encrypted_batch_enrols_and_returns_and_answers_each_device(
    server: Running, admin: ApiClient
) -> None:
    sp, customer, macs = await _seller(admin)
    token, created = await order_system(sp)
    key = created["key"]
    assert created["token"].startswith("eos_") and created["key_id"] == order_envelope.key_id(key)
    first = batch(customer.account_id, [(m, "EN") for m in macs[:4]], "B-1")

    ans = await submit(token, first, key)

    assert ans.status == 202 and ans["total"] == 4 and ans["encrypted"] is True, ans.body
    assert (await wait_batch(token, "B-1"))["status"] == "COMPLETE"
    answered = await response(token, "B-1", key)
    assert [d["outcome"] for d in answered["devices"]] == ["enrolled"] * 4
    for mac in macs[:4]:
        shown = (await customer.get(f"/devices/{mac}")).ok()
        assert shown["owner_id"] == customer.account_id and shown["order_id"] == "SO-1001", shown
    # The second batch: two returns, a return of a device never enrolled, one already enrolled.
    second = batch(customer.account_id, [(macs[0], "RE"), (macs[1], "RE"), (macs[5], "RE"), (macs[2], "EN")], "B-2")
    (await submit(token, second, key)).ok()
    assert (await wait_batch(token, "B-2"))["status"] == "FAIL"  # not-enrolled is no success
    answered = await response(token, "B-2", key)
    assert [d["outcome"] for d in answered["devices"]] == ["released", "released", "not-enrolled", "already-enrolled"]
    assert answered["summary"] == {"released": 2, "not-enrolled": 1, "already-enrolled": 1}
    for mac in macs[:2]:
        shown = (await sp.get(f"/devices/{mac}")).ok()
        assert shown["owner_id"] == sp.account_id and shown["order_id"] is None, shown  # DEV-5: order fields go
    assert (await customer.get(f"/devices/{macs[0]}")).status == 404


async def test_dep1_a_batch_with_a_site_makes_devices_zero_touch_ready(admin: ApiClient) -> None:
    sp, customer, macs = await _seller(admin, 2, "A4D002")
    site = await profile_and_site(sp, customer.account_id)
    token, _ = await order_system(sp, encrypted=False)
    (await submit(token, batch(customer.account_id, [(m, "EN") for m in macs], site_id=site))).ok()
    assert (await wait_batch(token, "B-1"))["status"] == "COMPLETE"
    for mac in macs:
        shown = (await customer.get(f"/devices/{mac}")).ok()
        assert shown["site_id"] == site and shown["zero_touch_ready"] is True, shown


async def test_dep1_ntf1_the_customer_is_told_of_the_devices_a_batch_enrolled_not_of_returns(
    admin: ApiClient,
) -> None:
    sp, customer, macs = await _seller(admin, 3, "A4D00E")
    site = await profile_and_site(sp, customer.account_id)
    token, created = await order_system(sp, encrypted=False)
    (await submit(token, batch(customer.account_id, [(m, "EN") for m in macs], site_id=site))).ok()
    assert (await wait_batch(token, "B-1"))["status"] == "COMPLETE"

    claimed = (await customer.get("/notifications/outbox", kind="claiming-device")).ok()
    associated = (await customer.get("/notifications/outbox", kind="associating-device")).ok()
    assert claimed["total"] == 1 and associated["total"] == 1, (claimed, associated)
    for mail in (claimed["items"][0], associated["items"][0]):
        for mac in macs:
            assert mac in mail["subject"] + mail["body"], mail
        assert created["name"] in mail["body"], mail  # changed by: the order system
    (await submit(token, batch(customer.account_id, [(m, "RE") for m in macs], "B-2"))).ok()
    assert (await wait_batch(token, "B-2"))["status"] == "COMPLETE"
    assert (await customer.get("/notifications/outbox", kind="claiming-device")).ok()["total"] == 1
    assert (await customer.get("/notifications/outbox", kind="associating-device")).ok()["total"] == 1


async def test_dep1_per_device_outcomes_unknown_unapproved_held_elsewhere_duplicate_mismatch(
    admin: ApiClient,
) -> None:
    sp, customer, macs = await _seller(admin, 4, "A4D003")
    other = await admin.new_account("service_provider")
    (await other.post("/devices/claim", {"mac": macs[1], "serial": SERIAL_OF[macs[1]]})).ok()
    unapproved = await fleet(admin, [device("A4D0030000FF")], approve=False)
    token, _ = await order_system(sp, encrypted=False)
    document = batch(customer.account_id, [(macs[0], "EN"), (macs[1], "EN"), (unapproved[0], "EN"), (macs[0], "EN")])
    document["devices"].append({"mac": "A4D0030000EE", "serial": "NOSUCH1", "model": "J179", "request_type": "EN"})
    document["devices"].append({"mac": macs[2], "serial": "WRONG-SERIAL", "model": "J179", "request_type": "EN"})
    document["devices"].append({"mac": macs[3], "serial": SERIAL_OF[macs[3]], "model": "K175", "request_type": "EN"})
    (await submit(token, document)).ok()
    await wait_batch(token, "B-1")
    answered = await response(token, "B-1")
    outcomes = [(d["outcome"], (d.get("detail") or "").split(":")[0]) for d in answered["devices"]]
    assert [o for o, _ in outcomes] == [
        "enrolled",
        "held-elsewhere",
        "not-approved",
        "invalid",
        "unknown-device",
        "unknown-device",  # a wrong serial reads like an unknown device (DEV-3)
        "invalid",
    ], outcomes
    assert outcomes[3][1] == "duplicate-in-batch" and outcomes[6][1] == "model-mismatch"
    # The job is a bulk job like any other (DEV-10): one result per device.
    job_id = (await token.get("/orders/batches/B-1")).ok()["job_id"]
    job = (await sp.get(f"/jobs/{job_id}")).ok()
    assert job["kind"] == "order-batch" and job["summary"]["done"] == 7 and job["summary"]["failed"] == 6, job


async def test_dep1_whole_file_refusals_write_nothing(server: Running, admin: ApiClient) -> None:
    sp, customer, macs = await _seller(admin, 2, "A4D004")
    token, created = await order_system(sp)
    key = created["key"]
    good = batch(customer.account_id, [(m, "EN") for m in macs])
    before = await counts(server)
    other_key = Fernet.generate_key().decode()

    bad_schema = {**good, "devices": [{**good["devices"][0], "mac": "not-a-mac", "request_type": "XX"}], "extra": 1}
    ans = await submit(token, bad_schema, key)
    assert ans.status == 422 and ans["error"] == "invalid-batch", ans.body
    pointers = {e["pointer"] for e in ans["errors"]}
    assert {"/devices/0/mac", "/devices/0/request_type", ""} <= pointers, ans.body
    assert "/devices/0/mac" in ans["detail"] or "/devices/0/request_type" in ans["detail"] or "at / " in ans["detail"]

    sealed = order_envelope.seal_json(good, other_key, "dep-batch")
    sealed.pop("key_id")  # so the HMAC itself must catch it
    ans = await submit(token, sealed)
    assert (ans.status, ans["error"]) == (422, "wrong-key"), ans.body
    ans = await submit(token, good, other_key)  # with its key id
    assert (ans.status, ans["error"]) == (422, "wrong-key"), ans.body

    sealed = order_envelope.seal_json(good, key, "dep-batch")
    sealed["ciphertext"] = sealed["ciphertext"][:-20]
    ans = await submit(token, sealed)
    assert (ans.status, ans["error"]) == (422, "ciphertext-truncated"), ans.body

    ans = await submit(token, good)  # plain, to an order system with a key
    assert (ans.status, ans["error"]) == (422, "encryption-required"), ans.body

    ans = await submit(token, {**good, "customer_account": "99999999"}, key)
    assert (ans.status, ans["error"], ans["pointer"]) == (422, "unknown-customer", "/customer_account"), ans.body
    stranger = await (await admin.new_account("service_provider")).new_account("customer")
    ans = await submit(token, {**good, "customer_account": stranger.account_id}, key)  # ACC-7: not under sp
    assert (ans.status, ans["error"]) == (422, "unknown-customer"), ans.body

    ans = await submit(token, b"{not json")
    assert (ans.status, ans["error"]) == (400, "invalid-json"), ans.body
    ans = await submit(admin, [good])  # the body's rules come before naming the order system
    assert (ans.status, ans["error"]) == (422, "invalid-body"), ans.body
    ans = await submit(token, {"envelope": "fernet"})
    assert (ans.status, ans["error"]) == (422, "invalid-envelope"), ans.body
    assert ans["errors"][0]["pointer"] == ""

    assert await counts(server) == before  # nothing written by any refusal

    # Replays: the same batch (even re-encrypted) is one batch; other content under its id is refused.
    (await submit(token, good, key)).ok()
    await wait_batch(token, "B-1")
    after_first = await counts(server)
    again = await submit(token, good, key)
    assert again.status == 200 and again["replayed"] is True and again["status"] == "COMPLETE", again.body
    changed = {**good, "order_id": "SO-other"}
    ans = await submit(token, changed, key)
    assert (ans.status, ans["error"]) == (409, "batch-id-reused"), ans.body
    assert await counts(server) == after_first


async def test_dep1_order_system_tokens_reach_their_own_batches_only(admin: ApiClient, api: ApiClient) -> None:
    sp, customer, macs = await _seller(admin, 1, "A4D005")
    token, created = await order_system(sp, encrypted=False)
    (await submit(token, batch(customer.account_id, [(macs[0], "EN")]))).ok()
    await wait_batch(token, "B-1")
    # ACC-7: the token does nothing else; another order system sees none of its batches.
    for path in ("/accounts", "/devices", "/jobs", "/order-systems"):
        ans = await token.get(path)
        assert (ans.status, ans["error"]) == (403, "forbidden-role"), (path, ans.body)
    other, _ = await order_system(sp, encrypted=False)
    assert (await other.get("/orders/batches/B-1")).status == 404
    assert (await other.get("/orders/batches")).ok()["total"] == 0
    # Administrators name the order system; one outside their hierarchy is 404 like a missing one.
    assert (await sp.get("/orders/batches/B-1", order_system=str(created["id"]))).ok()["status"] == "COMPLETE"
    stranger = await admin.new_account("service_provider")
    assert (await stranger.get("/orders/batches/B-1", order_system=str(created["id"]))).status == 404
    for odd in ("4294967296", "99999999999999999999", "-1", "１", "x"):
        assert (await sp.get("/orders/batches", order_system=odd))["error"] == "order-system-not-found", odd
    assert (await sp.get("/orders/batches"))["error"] == "order-system-required"
    assert (await customer.get("/orders/batches/B-1", order_system=str(created["id"]))).status == 403
    # New credentials end the old token; deleting the order system ends the new one.
    renewed = (await sp.post(f"/order-systems/{created['id']}/credentials")).ok()
    assert (await token.get("/orders/batches")).status == 401
    fresh = ApiClient(api.base, token=renewed["token"])
    assert (await fresh.get("/orders/batches")).ok()["total"] == 1
    (await sp.call("DELETE", f"/order-systems/{created['id']}")).ok()
    assert (await fresh.get("/orders/batches")).status == 401
    await fresh.close()


async def test_dep1_a_disabled_account_stops_its_order_systems(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    token, _ = await order_system(sp, encrypted=False, account_id=reseller.account_id)
    assert (await token.get("/orders/batches")).ok()["total"] == 0
    (await sp.post(f"/accounts/{reseller.account_id}/disable")).ok()
    ans = await token.get("/orders/batches")
    assert (ans.status, ans["error"]) == (401, "account-disabled"), ans.body
    customer = await sp.new_account("customer")
    ans = await sp.post("/order-systems", {"name": "x", "account_id": customer.account_id})
    assert (ans.status, ans["error"]) == (422, "not-a-seller-account"), ans.body


async def test_dep1_published_schemas_are_served_without_login(api: ApiClient) -> None:
    listed = (await api.get("/schemas")).ok()
    assert {"dep-batch", "dep-response", "dep-envelope"} <= {s["name"] for s in listed["items"]}
    for name in ("dep-batch", "dep-response", "dep-envelope"):
        assert (await api.get(f"/schemas/{name}")).ok() == orders.schema(name)
    assert (await api.get("/schemas/dep-batch.schema.json")).ok()["title"].startswith("Device enrolment request")
    assert (await api.get("/schemas/nope"))["error"] == "schema-not-found"


async def test_dep1_must_show_an_encrypted_batch_of_1000_devices_some_returned(
    server: Running, admin: ApiClient, api: ApiClient
) -> None:
    """Issue 15 'must show': 1,000 devices (some RE) encrypted, submitted, processed and answered;
    the response validates against the schema the API publishes and every outcome is right."""
    sp, customer, macs = await _seller(admin, 1000, "A4D100")
    token, created = await order_system(sp)
    key = created["key"]
    (await submit(token, batch(customer.account_id, [(m, "EN") for m in macs[:300]], "B-0"), key)).ok()
    assert (await wait_batch(token, "B-0"))["status"] == "COMPLETE"
    # B-1: return 200 enrolled devices and 50 never enrolled, enrol 100 again and 650 new ones.
    expected = {m: ("RE", "released") for m in macs[:200]}
    expected |= {m: ("EN", "already-enrolled") for m in macs[200:300]}
    expected |= {m: ("EN", "enrolled") for m in macs[300:950]}
    expected |= {m: ("RE", "not-enrolled") for m in macs[950:]}
    order = list(expected)
    random.Random(15).shuffle(order)  # requests in no particular order
    big = batch(customer.account_id, [(m, expected[m][0]) for m in order], "B-1")

    ans = await submit(token, big, key)

    assert ans.status == 202 and ans["total"] == 1000 and ans["processed"] <= 1000, ans.body
    state = await wait_batch(token, "B-1")
    assert state["processed"] == 1000 and state["status"] == "FAIL", state  # 50 not-enrolled
    encrypted = (await token.get("/orders/batches/B-1/response")).ok()
    jsonschema.validate(encrypted, (await api.get("/schemas/dep-envelope")).ok())
    answered = json.loads(Fernet(key.encode()).decrypt(encrypted["ciphertext"].encode()))
    jsonschema.validate(answered, (await api.get("/schemas/dep-response")).ok())
    assert [d["mac"] for d in answered["devices"]] == order
    assert {d["mac"]: (d["request_type"], d["outcome"]) for d in answered["devices"]} == expected
    assert answered["summary"] == {"released": 200, "already-enrolled": 100, "enrolled": 650, "not-enrolled": 50}
    # The store agrees with every answer.
    async with server.opened.ctx.store.transaction() as s:
        owners = {d.mac: d.owner_id for d in await s.scalars(select(Device).where(Device.mac.in_(macs)))}
    for mac, (_, outcome) in expected.items():
        want = {"released": sp.account_id, "not-enrolled": None}.get(outcome, customer.account_id)
        assert owners[mac] == want, (mac, outcome, owners[mac])
    job = (await sp.get(f"/jobs/{state['job_id']}")).ok()
    assert job["summary"]["done"] == 1000 and job["summary"]["succeeded"] == 950, job["summary"]


async def test_dep1_a_batch_whose_server_stopped_is_resumed_where_it_stopped(
    server: Running, admin: ApiClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEV-10 crash safety for batches: after one committed transaction of 500 devices the runner
    is gone; the recovery sweep takes the job over and the rest is processed once, each device
    with exactly one outcome and one job result."""
    import server.api.orders as orders_api
    from server.api import order_runner
    from server.api.jobs import sweep_interrupted_jobs

    sp, customer, macs = await _seller(admin, 800, "A4D300")
    token, created = await order_system(sp, encrypted=False)
    monkeypatch.setattr(orders_api, "start_order_batch", lambda ctx, job_id: None)  # the server "stops"
    state = (await submit(token, batch(customer.account_id, [(m, "EN") for m in macs]))).ok()
    ctx = server.opened.ctx
    assert await order_runner._step(ctx, state["job_id"]) is True  # one transaction, then nothing
    assert (await token.get("/orders/batches/B-1")).ok()["processed"] == order_runner.BATCH
    assert (await token.get("/orders/batches/B-1/response"))["error"] == "batch-in-progress"

    clock.advance(minutes=3)  # its lease runs out
    swept = await sweep_interrupted_jobs(ctx)

    assert state["job_id"] in swept.resumed
    assert (await wait_batch(token, "B-1"))["status"] == "COMPLETE"
    answered = await response(token, "B-1")
    assert [d["outcome"] for d in answered["devices"]] == ["enrolled"] * 800
    job = (await sp.get(f"/jobs/{state['job_id']}", limit="1000")).ok()
    assert job["summary"]["done"] == 800 and job["summary"]["resumed"] == 1, job["summary"]
    async with ctx.store.transaction() as s:
        results = int(await s.scalar(select(func.count()).where(JobResult.job_id == state["job_id"])) or 0)
    assert results == 800
