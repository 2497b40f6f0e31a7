"""DEP-1 order-driven enrollment through the admin API, as docs/orders.md fixes the contract: an
order system registered by a seller account submits request batches with its API token (plain
JSON, or a Fernet envelope under its key), follows them, and fetches the response batch with
each device's outcome; the schemas are the ones `GET /api/v1/schemas/{name}` publishes.

Bad batches — schema errors, a wrong key, truncated ciphertext, an unknown customer, a replayed
batch id — each get a clear error, and nothing is written: no batch, no job, no device moved.
Driven from outside only (the envelope is built here with `cryptography`, from its
description), so any server implementing the contract can be tested."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import jsonschema
import pytest
from cryptography.fernet import Fernet

from conformance.server.client import Org, Probe, expect_error, import_probes, new_org, tag
from simulators.admin_client import AdminClient

pytestmark = pytest.mark.rule("DEP-1")


class OrderSystem:
    """An order system as a third party writes one: its token, its key, the documented envelope."""

    def __init__(self, http: aiohttp.ClientSession, base: str, created: dict[str, Any]) -> None:
        self.http, self.base = http, base
        self.id, self.token, self.key = created["id"], created["token"], created.get("key")

    def seal(self, document: Any, key: str | None = None) -> dict[str, Any]:
        token = Fernet((key or self.key).encode()).encrypt(json.dumps(document).encode())
        return {"envelope": "fernet", "content": "dep-batch", "ciphertext": token.decode()}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        async with self.http.request(method, self.base + path, data=data, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def submit(self, document: Any, *, encrypt: bool = True) -> tuple[int, Any]:
        return await self.call("POST", "/orders/batches", self.seal(document) if encrypt else document)

    async def finished(self, batch_id: str, timeout: float = 120.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status, state = await self.call("GET", f"/orders/batches/{batch_id}")
            assert status == 200, state
            if state["status"] != "IN PROGRESS":
                return state
            assert loop.time() < deadline, f"batch {batch_id} still IN PROGRESS after {timeout} s: {state}"
            await asyncio.sleep(0.1)

    async def response(self, batch_id: str) -> Any:
        status, body = await self.call("GET", f"/orders/batches/{batch_id}/response")
        assert status == 200, body
        if self.key is None:
            return body
        assert body.get("envelope") == "fernet", f"the order system has a key: the response must be encrypted: {body}"
        return json.loads(Fernet(self.key.encode()).decrypt(body["ciphertext"].encode()))


async def _register(org: Org, encrypted: bool = True) -> OrderSystem:
    created = await org.sp.call("POST", "/order-systems", {"name": f"conf-orders-{tag()}", "encrypted": encrypted})
    assert created["token"] and (created.get("key") is not None) == encrypted, created
    return OrderSystem(org.sp.http, org.sp.base, created)


async def _schema(admin: AdminClient, name: str) -> Any:
    return await AdminClient(admin.base, admin.http).call("GET", f"/schemas/{name}")


def _batch(org: Org, probes: list[Probe], kinds: list[str] | None = None, batch_id: str | None = None) -> Any:
    return {
        "version": 1,
        "batch_id": batch_id or f"conf-{tag()}",
        "order_id": f"SO-{tag()}",
        "customer_account": org.customer_id,
        "devices": [
            {"mac": p.mac, "serial": p.serial, "model": p.model, "request_type": k}
            for p, k in zip(probes, kinds or ["EN"] * len(probes), strict=True)
        ],
    }


async def _untouched(org: Org, system: OrderSystem, probes: list[Probe], batches: int) -> None:
    """Nothing was written: the order system has `batches` batches and no probe is held by anyone."""
    status, listed = await system.call("GET", "/orders/batches")
    assert status == 200 and listed["total"] == batches, listed
    for probe in probes:  # 404: nobody in the seller's hierarchy holds it
        await expect_error(org.sp.call("GET", f"/devices/{probe.mac}"), 404)


async def test_an_encrypted_batch_enrols_returns_and_answers_each_device(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probes = [Probe.make(enrollment_server) for _ in range(4)]
        await import_probes(admin, probes)
        system = await _register(org)
        first = _batch(org, probes[:3])
        status, accepted = await system.submit(first)
        assert status == 202 and accepted["total"] == 3, accepted
        await system.finished(first["batch_id"])
        answered = await system.response(first["batch_id"])
        jsonschema.validate(answered, await _schema(admin, "dep-response"))
        assert [d["outcome"] for d in answered["devices"]] == ["enrolled"] * 3, answered
        for probe in probes[:3]:
            device = await org.sp.call("GET", f"/devices/{probe.mac}")
            assert device["owner_id"] == org.customer_id and device["order_id"] == first["order_id"], device

        second = _batch(org, [probes[0], probes[3], probes[1]], ["RE", "RE", "EN"])
        status, _ = await system.submit(second)
        assert status == 202
        await system.finished(second["batch_id"])
        answered = await system.response(second["batch_id"])
        jsonschema.validate(answered, await _schema(admin, "dep-response"))
        # an RE of a device never enrolled is a per-device outcome, not a batch failure
        assert [d["outcome"] for d in answered["devices"]] == ["released", "not-enrolled", "already-enrolled"]
        released = await org.sp.call("GET", f"/devices/{probes[0].mac}")
        assert released["owner_id"] == org.sp_id and not released["order_id"], released


async def test_bad_batches_get_a_clear_error_and_write_nothing(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probes = [Probe.make(enrollment_server) for _ in range(2)]
        await import_probes(admin, probes)
        system = await _register(org)
        good = _batch(org, probes)

        bad = {**good, "devices": [{**good["devices"][0], "mac": "zz", "request_type": "ENROL"}]}
        status, answer = await system.submit(bad)
        assert status == 422 and answer["error"] == "invalid-batch", answer
        assert {"/devices/0/mac", "/devices/0/request_type"} <= {e["pointer"] for e in answer["errors"]}, answer

        status, answer = await system.call("POST", "/orders/batches", system.seal(good, Fernet.generate_key().decode()))
        assert (status, answer["error"]) == (422, "wrong-key"), answer

        cut = system.seal(good)
        cut["ciphertext"] = cut["ciphertext"][: len(cut["ciphertext"]) // 2]
        status, answer = await system.call("POST", "/orders/batches", cut)
        assert (status, answer["error"]) == (422, "ciphertext-truncated"), answer

        status, answer = await system.submit({**good, "customer_account": "10000000"})
        assert (status, answer["error"]) == (422, "unknown-customer"), answer

        await _untouched(org, system, probes, 0)

        status, _ = await system.submit(good)
        assert status == 202
        await system.finished(good["batch_id"])
        status, again = await system.submit(good)  # the same batch, encrypted anew
        assert status == 200 and again["replayed"] is True and again["batch_id"] == good["batch_id"], again
        status, answer = await system.submit({**good, "order_id": "SO-changed"})
        assert (status, answer["error"]) == (409, "batch-id-reused"), answer
        status, listed = await system.call("GET", "/orders/batches")
        assert listed["total"] == 1, listed
        jobs = await org.sp.call("GET", "/jobs")
        assert sum(j["kind"] == "order-batch" for j in jobs["items"]) == 1, jobs


async def test_an_order_system_token_reaches_nothing_but_its_batches(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        system = await _register(org, encrypted=False)
        for path in ("/accounts", "/devices", "/jobs"):
            status, answer = await system.call("GET", path)
            assert status == 403, (path, status, answer)
        other = await _register(org, encrypted=False)
        probes = [Probe.make(enrollment_server)]
        await import_probes(admin, probes)
        document = _batch(org, probes)
        status, _ = await system.submit(document, encrypt=False)
        assert status == 202
        status, _ = await other.call("GET", f"/orders/batches/{document['batch_id']}")
        assert status == 404
