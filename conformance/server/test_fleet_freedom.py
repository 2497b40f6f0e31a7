"""FF-1 two-step provisioning and direct addition through the public API, as docs/fleet-freedom.md
fixes the contract: an administrator prepares a slot and the device reporting in over the device
protocol fills it; devices that cannot take part are added by reporting id over REST and over
the `mergeProvider` WebSocket (no `v` adds, `v` updates, a stale `v` is refused); every direct
addition is flagged in the audit log and billed, even when the device is deleted at once.

Bad input on REST and on the socket gets a clear error each and writes nothing. Driven from
outside only, so any server implementing the contract can be tested."""

from __future__ import annotations

import csv
import io
import json
import secrets
from typing import Any

import aiohttp
import pytest

from conformance.server.client import Org, Probe, expect_error, import_probes, new_org
from simulators.admin_client import AdminClient

pytestmark = pytest.mark.rule("FF-1")

CSV_HEADER = ["account_id", "month", "mac", "kind", "via", "added_by", "added_at", "present"]


def _mac() -> str:
    return "A4251B" + secrets.token_hex(3).upper()


def _provider(org: Org, mac: str, kind: str = "J179", **extra: Any) -> dict[str, Any]:
    return {"id": mac, "kind": kind, "company": org.customer_id, **extra}


async def _state(org: Org) -> tuple[int, int, int]:
    """What a refusal must leave alone: direct devices, open slots and direct-add log entries."""
    direct = await org.sp.call("GET", "/direct-devices", params={"company": org.customer_id})
    slots = await org.sp.call("GET", "/slots", params={"account": org.customer_id})
    return direct["total"], slots["total"], len(await _flags(org))


async def _flags(org: Org) -> list[dict[str, Any]]:
    q = {"all": [{"field": "action", "op": "eq", "value": "device.direct-add"},
                 {"field": "account_id", "op": "eq", "value": org.customer_id}]}
    return list((await org.sp.call("GET", "/logs", params={"q": json.dumps(q)}))["items"])


async def _billing(org: Org, month: str, fmt: str | None = None) -> Any:
    params = {"account": org.customer_id, "month": month}
    if fmt is None:
        return await org.sp.call("GET", "/billing", params=params)
    headers = {"Authorization": f"Bearer {org.sp.token}"}
    async with org.sp.http.get(org.sp.base + "/billing", params={**params, "format": fmt}, headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv", resp.status
        return await resp.text()


class Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: Any) -> dict[str, Any]:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))
        reply = await self.ws.receive(timeout=60)
        assert reply.type == aiohttp.WSMsgType.TEXT, f"expected a JSON answer, got {reply.type}"
        answer: dict[str, Any] = json.loads(reply.data)
        return answer


def _socket(client: AdminClient) -> Any:
    url = client.base + "/merge-provider"
    return client.http.ws_connect(url, headers={"Authorization": f"Bearer {client.token}"})


async def test_a_prepared_slot_is_filled_by_the_device_reporting_in(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe, other = Probe.make(enrollment_server), Probe.make(enrollment_server)
        await import_probes(admin, [probe, other])
        slot = await org.sp.call("POST", "/slots", {"site_id": org.site_id, "model": probe.model,
                                                    "serial": probe.serial})
        never = await org.sp.call("POST", "/slots", {"site_id": org.site_id, "model": "J179", "mac": _mac()})
        assert slot["state"] == "open" and slot["account_id"] == org.customer_id, slot

        answer = await probe.enroll()

        assert answer.status == 200 and answer.result == "redirect", answer.body
        device = await org.sp.call("GET", f"/devices/{probe.mac}")
        assert device["owner_id"] == org.customer_id and device["site_id"] == org.site_id, device
        filled = await org.sp.call("GET", f"/slots/{slot['id']}")
        assert filled["state"] == "filled" and filled["filled_mac"] == probe.mac, filled
        still_open = await org.sp.call("GET", "/slots", params={"state": "open", "account": org.customer_id})
        assert [s["id"] for s in still_open["items"]] == [never["id"]], still_open
        # a device no slot names is answered as without slots: unclaimed, asked for a code
        assert (await other.enroll()).result == "code_required"


async def test_rest_direct_addition_adds_updates_and_refuses_a_stale_version(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        mac = _mac()
        added = await org.sp.call("POST", "/direct-devices", _provider(org, mac))
        assert added["action"] == "added" and added["provider"]["v"] == 1, added
        updated = await org.sp.call("POST", "/direct-devices", _provider(org, mac, "J169", v=1, site_id=org.site_id))
        assert updated["action"] == "updated" and updated["provider"]["v"] == 2, updated
        stale = await expect_error(org.sp.call("POST", "/direct-devices", _provider(org, mac, v=1)), 409,
                                   "stale-version")
        assert "version 2" in stale.detail
        await expect_error(org.sp.call("POST", "/direct-devices", _provider(org, mac)), 409, "device-exists")
        shown = await org.sp.call("GET", f"/direct-devices/{mac}")
        assert (shown["kind"], shown["v"], shown["site_id"]) == ("J169", 2, org.site_id), shown
        (flag,) = await _flags(org)
        assert flag["status"] == "SUCCESS" and mac in flag["message"], flag


async def test_rest_bad_input_is_a_clear_error_and_writes_nothing(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org, outsider = await new_org(admin), await new_org(admin)
        mac = _mac()
        before = await _state(org)
        for body, status, error in (
            ({"kind": "J179", "company": org.customer_id}, 422, "invalid-body"),
            (_provider(org, mac, colour="red"), 422, "invalid-body"),
            (_provider(org, mac, v="2"), 422, "invalid-body"),
            (_provider(org, "not-a-mac"), 422, "invalid-mac"),
            (_provider(org, mac, "NO-SUCH-MODEL"), 422, "unknown-kind"),
            ({**_provider(org, mac), "company": outsider.customer_id}, 404, "account-not-found"),
            (_provider(org, mac, v=1), 404, "provider-not-found"),
        ):
            refused = await expect_error(org.sp.call("POST", "/direct-devices", body), status, error)
            assert refused.detail, body
        for body, error in (({"site_id": org.site_id, "model": "J179"}, "slot-target"),
                            ({"site_id": org.site_id, "model": "J179", "mac": "zz"}, "invalid-mac")):
            await expect_error(org.sp.call("POST", "/slots", body), 422, error)
        assert await _state(org) == before
        await expect_error(org.sp.call("GET", f"/direct-devices/{mac}"), 404)


async def test_the_merge_provider_socket_adds_updates_and_answers_each_message(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        mac = _mac()
        async with _socket(org.sp) as ws:
            sock = Socket(ws)
            added = await sock.send({"type": "mergeProvider", "ref": "one", "provider": _provider(org, mac)})
            assert added["ok"] is True and added["ref"] == "one" and added["provider"]["v"] == 1, added
            updated = await sock.send({"type": "mergeProvider", "ref": "two",
                                       "provider": _provider(org, mac, "J169", v=1)})
            assert updated["ok"] is True and updated["action"] == "updated" and updated["provider"]["v"] == 2
            stale = await sock.send({"type": "mergeProvider", "ref": "three", "provider": _provider(org, mac, v=1)})
            assert stale["ok"] is False and stale["error"] == "stale-version" and stale["ref"] == "three", stale
            assert stale["current_v"] == 2 and stale["detail"]
            assert not ws.closed
        assert (await org.sp.call("GET", f"/direct-devices/{mac}"))["v"] == 2


async def test_bad_socket_messages_are_error_answers_the_socket_stays_open_nothing_written(
    enrollment_server: Any,
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        mac = _mac()
        before = await _state(org)
        async with _socket(org.sp) as ws:
            sock = Socket(ws)
            for message, error in (
                ("this is not JSON", "invalid-json"),
                ({"type": "updateEverything", "provider": _provider(org, mac)}, "invalid-body"),
                ({"type": "mergeProvider", "provider": {"id": mac}}, "invalid-body"),
                ({"type": "mergeProvider", "provider": _provider(org, "nope")}, "invalid-mac"),
                ({"type": "mergeProvider", "provider": _provider(org, mac, "NO-SUCH-MODEL")}, "unknown-kind"),
                ({"type": "mergeProvider", "provider": _provider(org, mac, v=3)}, "provider-not-found"),
            ):
                answer = await sock.send(message)
                assert answer["ok"] is False and answer["error"] == error and answer["detail"], (message, answer)
            # still open: a good message after the bad ones is answered
            good = await sock.send({"type": "mergeProvider", "provider": _provider(org, mac)})
            assert good["ok"] is True and good["provider"]["v"] == 1
        direct, slots, flags = await _state(org)
        assert (direct, slots, flags) == (before[0] + 1, before[1], before[2] + 1)


async def test_the_socket_needs_an_administrator_token(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin, aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with http.ws_connect(admin.base + "/merge-provider", headers=headers):
                    pass
            assert refused.value.status == 401


async def test_billing_counts_a_device_added_directly_and_deleted_at_once(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        mac = _mac()
        added = await org.sp.call("POST", "/direct-devices", _provider(org, mac, "K175"))
        await org.sp.call("DELETE", f"/direct-devices/{mac}")
        await expect_error(org.sp.call("GET", f"/direct-devices/{mac}"), 404)
        month = str(added["provider"]["added_at"])[:7]

        report = await _billing(org, month)

        assert report["direct_additions"] == 1 and report["by_kind"] == {"K175": 1}, report
        (item,) = report["items"]
        assert item["mac"] == mac and item["present"] is False, item
        rows = list(csv.reader(io.StringIO(await _billing(org, month, "csv"))))
        assert rows[0] == CSV_HEADER and len(rows) == 2, rows
        assert dict(zip(CSV_HEADER, rows[1], strict=True))["mac"] == mac
        assert len(await _flags(org)) == 1  # flagged in the log, too


async def test_billing_is_the_account_line_s_only(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org, outsider = await new_org(admin), await new_org(admin)
        added = await org.sp.call("POST", "/direct-devices", _provider(org, _mac()))
        month = str(added["provider"]["added_at"])[:7]
        assert (await admin.call("GET", "/billing", params={"account": org.customer_id, "month": month}))[
            "direct_additions"] == 1
        await expect_error(
            outsider.sp.call("GET", "/billing", params={"account": org.customer_id, "month": month}), 404,
            "account-not-found",
        )
        await expect_error(
            org.sp.call("GET", "/billing", params={"account": org.customer_id, "month": "2026-13"}), 422,
            "invalid-month",
        )
