"""FF-1 over a live loopback server: two-step slots filled by a real mutual-TLS phone reporting
in, direct additions over REST and over the `mergeProvider` WebSocket (a real aiohttp client),
optimistic concurrency, bad input writing nothing, and billing that survives deletion."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from sqlalchemy import func, select

from server.runner import Running
from server.store.models import AuditLog, BillingEntry, Device, DirectDevice, ProvisioningSlot
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, device_row, entry, import_phones, new_customer, new_site

MONTH = "2026-11"  # the FakeClock's month


async def counts(server: Running) -> list[int]:
    """What a refused request must not have changed: devices, direct devices, ledger, slots."""
    async with server.opened.ctx.store.transaction() as s:
        return [
            int(await s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Device, DirectDevice, BillingEntry, ProvisioningSlot)
        ]


async def audit(server: Running, action: str) -> list[AuditLog]:
    async with server.opened.ctx.store.transaction() as s:
        return list(await s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def provider(mac: str, company: str, kind: str = "J179", **extra: Any) -> dict[str, Any]:
    return {"id": mac, "kind": kind, "company": company, **extra}


class Socket:
    """The mergeProvider WebSocket as a client uses it: one JSON message, one JSON answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: Any) -> dict[str, Any]:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))
        reply = await self.ws.receive(timeout=30)
        assert reply.type == aiohttp.WSMsgType.TEXT, reply
        answer: dict[str, Any] = json.loads(reply.data)
        return answer


async def open_socket(http: aiohttp.ClientSession, client: ApiClient) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(
        client.base + "/api/v1/merge-provider", headers={"Authorization": f"Bearer {client.token}"}
    )


# --- two-step ---------------------------------------------------------------------------------------


async def test_ff1_a_prepared_slot_is_filled_by_the_phone_reporting_in(server: Running, admin: ApiClient) -> None:
    phone, stranger = Phone.make(server), Phone.make(server)
    await import_phones(admin, [phone, stranger])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    slot = (await cust.customer.post("/slots", {"site_id": site, "model": "J179", "serial": phone.serial})).ok()
    unfilled = (await cust.customer.post("/slots", {"site_id": site, "model": "J179", "mac": "A4251BFFFF01"})).ok()
    assert slot["state"] == "open" and slot["account_id"] == cust.id

    answer = await phone.enroll()

    assert answer.status == 200 and answer["result"] == "redirect", answer.body
    row = await device_row(server, phone.mac)
    assert (row.owner_id, row.site_id, row.associated, row.activated) == (cust.id, site, True, True)
    filled = (await cust.customer.get(f"/slots/{slot['id']}")).ok()
    assert filled["state"] == "filled" and filled["filled_mac"] == phone.mac
    open_ones = (await cust.customer.get("/slots", state="open")).ok()
    assert [s["id"] for s in open_ones["items"]] == [unfilled["id"]]  # never filled: visible as such
    (fill,) = await audit(server, "slot.fill")
    assert fill.status == "SUCCESS" and fill.account_id == cust.id and phone.mac in fill.message
    # A device that reports in for no slot is handled as today: unclaimed, asked for a code.
    other = await stranger.enroll()
    assert other["result"] == "code_required", other.body
    assert (await device_row(server, stranger.mac)).owner_id is None


async def test_ff1_a_slot_for_another_model_stays_open(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    slot = (await cust.sp.post("/slots", {"site_id": site, "model": "K175", "mac": phone.mac})).ok()

    answer = await phone.enroll()

    assert answer["result"] == "code_required", answer.body
    assert (await cust.sp.get(f"/slots/{slot['id']}")).ok()["state"] == "open"
    (refused,) = await audit(server, "slot.fill")
    assert refused.status == "FAIL" and "slot-model-mismatch" in refused.message


async def test_ff1_a_slot_fills_by_the_imported_serial_whatever_serial_the_body_says(
    server: Running, admin: ApiClient
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    slot = (await cust.customer.post("/slots", {"site_id": site, "model": "J179", "serial": phone.serial})).ok()

    answer = await phone.enroll(serial="SOMETHINGELSE")

    assert answer["result"] == "redirect", answer.body
    assert (await cust.customer.get(f"/slots/{slot['id']}")).ok()["filled_mac"] == phone.mac


async def test_ff1_a_slot_by_mac_alone_claims_no_device_held_by_nobody(server: Running, admin: ApiClient) -> None:
    """DEV-3: a MAC is on every network the phone joined; taking an unclaimed device needs its serial."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    slot = (await cust.customer.post("/slots", {"site_id": site, "model": "J179", "mac": phone.mac})).ok()

    answer = await phone.enroll()

    assert answer["result"] == "code_required", answer.body
    assert (await device_row(server, phone.mac)).owner_id is None
    assert (await cust.customer.get(f"/slots/{slot['id']}")).ok()["state"] == "open"
    (refused,) = await audit(server, "slot.fill")
    assert refused.status == "FAIL" and "slot-claim-proof" in refused.message


async def test_ff1_a_customers_slot_takes_no_device_of_the_account_above_it(server: Running, admin: ApiClient) -> None:
    """ACC-7: moving the service provider's device down is the service provider's act, not its customer's."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    (await cust.sp.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    mine = (await cust.customer.post("/slots", {"site_id": site, "model": "J179", "mac": phone.mac})).ok()

    await phone.enroll()

    assert (await device_row(server, phone.mac)).owner_id == cust.sp.account_id
    assert (await cust.customer.get(f"/slots/{mine['id']}")).ok()["state"] == "open"
    (refused,) = await audit(server, "slot.fill")
    assert refused.status == "FAIL" and "slot-owner-conflict" in refused.message
    # the service provider's own slot for its customer moves it down
    (await cust.customer.call("DELETE", f"/slots/{mine['id']}")).ok()
    (await cust.sp.post("/slots", {"site_id": site, "model": "J179", "mac": phone.mac})).ok()
    answer = await phone.enroll()
    assert answer["result"] == "redirect", answer.body
    assert (await device_row(server, phone.mac)).owner_id == cust.id


async def test_ff1_a_slot_takes_no_device_its_account_refuses_nor_a_denied_certificate(
    server: Running, admin: ApiClient
) -> None:
    """Issue 13 holds for slots as for codes: the account's manufacturer allow-list, the deny-list."""
    phone, denied = Phone.make(server), Phone.make(server)
    await import_phones(admin, [phone, denied])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    (await admin.post("/certificates/denied", {"thumbprints": [denied.factory.thumbprint], "reason": "lost"})).ok()
    (await cust.sp.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": []})).ok()
    slots = [(await cust.sp.post("/slots", {"site_id": site, "model": "J179", "serial": p.serial})).ok()
             for p in (phone, denied)]

    await phone.enroll()
    await denied.enroll()

    assert [(await device_row(server, p.mac)).owner_id for p in (phone, denied)] == [None, None]
    assert [(await cust.sp.get(f"/slots/{s['id']}")).ok()["state"] for s in slots] == ["open", "open"]
    (refused,) = await audit(server, "slot.fill")
    assert refused.status == "FAIL" and "manufacturer-not-allowed" in refused.message


async def test_ff1_slot_bad_input_is_refused_and_writes_nothing(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    bare = await new_site(cust.sp, cust.id, None)
    other = await new_customer(admin)
    before = await counts(server)
    cases = [
        ({"site_id": site, "model": "J179"}, 422, "slot-target"),
        ({"site_id": site, "model": "J179", "mac": "A4251B000001", "serial": "SN1"}, 422, "slot-target"),
        ({"site_id": site, "model": "J179", "mac": "not a mac"}, 422, "invalid-mac"),
        ({"site_id": site, "model": "NOPE", "mac": "A4251B000001"}, 422, "unknown-model"),
        ({"site_id": bare, "model": "J179", "mac": "A4251B000001"}, 422, "site-without-profile"),
        ({"site_id": "1", "model": "J179", "mac": "A4251B000001"}, 422, "invalid-body"),
        ({"site_id": site, "model": "J179", "mac": "A4251B000001", "extra": 1}, 422, "invalid-body"),
    ]
    for body, status, error in cases:
        ans = await cust.sp.post("/slots", body)
        assert (ans.status, ans.body["error"]) == (status, error), (body, ans.body)
        assert ans.body["detail"]
    ans = await other.sp.post("/slots", {"site_id": site, "model": "J179", "mac": "A4251B000001"})
    assert (ans.status, ans.body["error"]) == (404, "site-not-found")  # ACC-7
    assert await counts(server) == before


# --- direct add over REST ---------------------------------------------------------------------------


async def test_ff1_rest_adds_then_updates_with_its_version(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())

    added = await cust.customer.post("/direct-devices", provider("a4:25:1b:d0:00:01", cust.id))

    assert added.status == 201 and added["action"] == "added", added.body
    assert added["provider"]["id"] == "A4251BD00001" and added["provider"]["v"] == 1
    updated = await cust.customer.post(
        "/direct-devices", provider("A4251BD00001", cust.id, "J169", v=1, site_id=site, serial="SNDIRECT1")
    )
    assert updated.status == 200 and updated["provider"]["v"] == 2 and updated["provider"]["kind"] == "J169"
    stale = await cust.customer.post("/direct-devices", provider("A4251BD00001", cust.id, "J179", v=1))
    assert stale.status == 409 and stale["error"] == "stale-version" and stale["current_v"] == 2
    again = await cust.customer.post("/direct-devices", provider("A4251BD00001", cust.id))
    assert again.status == 409 and again["error"] == "device-exists" and again["current_v"] == 2
    row = await device_row(server, "A4251BD00001")
    assert (row.model, row.serial, row.owner_id, row.site_id) == ("J169", "SNDIRECT1", cust.id, site)
    (flag,) = await audit(server, "device.direct-add")
    assert flag.status == "SUCCESS" and flag.account_id == cust.id and "billable" in flag.message
    assert len(await audit(server, "device.direct-update")) == 1


async def test_ff1_rest_bad_input_is_a_clear_error_and_writes_nothing(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    outsider = await new_customer(admin)
    before = await counts(server)
    cases = [
        ({"kind": "J179", "company": cust.id}, 422, "invalid-body"),
        (provider("A4251BD00009", cust.id, extra=True), 422, "invalid-body"),
        (provider("A4251BD00009", "42"), 422, "invalid-body"),
        (provider("A4251BD00009", cust.id, v="1"), 422, "invalid-body"),
        (provider("A4251BD00009", cust.id, v=0), 422, "invalid-body"),
        (provider("not-a-mac", cust.id), 422, "invalid-mac"),
        (provider("A4251BD00009", cust.id, "NOPE"), 422, "unknown-kind"),
        (provider("A4251BD00009", outsider.id), 404, "account-not-found"),
        (provider("A4251BD00009", cust.id, v=1), 404, "provider-not-found"),
    ]
    for body, status, error in cases:
        ans = await cust.customer.post("/direct-devices", body)
        assert (ans.status, ans.body["error"]) == (status, error), (body, ans.body)
        assert ans.body["detail"]
    ans = await cust.customer.call("POST", "/direct-devices", data=b"{not json", content_type="application/json")
    assert ans.status == 400 and ans["error"] == "invalid-json"
    assert await counts(server) == before


# --- the mergeProvider WebSocket --------------------------------------------------------------------


async def test_ff1_websocket_adds_updates_and_refuses_a_stale_version(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    async with aiohttp.ClientSession() as http, await open_socket(http, cust.customer) as ws:
        sock = Socket(ws)
        added = await sock.send({"type": "mergeProvider", "ref": "a1", "provider": provider("A4251BE00001", cust.id)})
        assert added["ok"] is True and added["ref"] == "a1" and added["action"] == "added", added
        assert added["provider"]["v"] == 1
        updated = await sock.send(
            {"type": "mergeProvider", "ref": 2, "provider": provider("A4251BE00001", cust.id, "J169", v=1)}
        )
        assert updated["ok"] is True and updated["action"] == "updated" and updated["provider"]["v"] == 2
        stale = await sock.send(
            {"type": "mergeProvider", "ref": 3, "provider": provider("A4251BE00001", cust.id, "J139", v=1)}
        )
        assert stale["ok"] is False and stale["type"] == "error" and stale["ref"] == 3
        assert stale["error"] == "stale-version" and stale["current_v"] == 2
        assert "version 2" in stale["detail"]
        # the socket is still open and still answers
        after = await sock.send({"type": "mergeProvider", "ref": 4, "provider": provider("A4251BE00002", cust.id)})
        assert after["ok"] is True and after["provider"]["v"] == 1
    row = await device_row(server, "A4251BE00001")
    assert row.model == "J169"
    flags = await audit(server, "device.direct-add")
    assert [f.account_id for f in flags] == [cust.id, cust.id]
    assert all("via websocket" in f.message for f in flags)


async def test_ff1_websocket_bad_messages_are_error_answers_and_write_nothing(
    server: Running, admin: ApiClient
) -> None:
    cust = await new_customer(admin)
    outsider = await new_customer(admin)
    before = await counts(server)
    cases: list[tuple[Any, str]] = [
        ("{not json", "invalid-json"),
        ("[1, 2]", "invalid-body"),
        ({"type": "deleteEverything", "provider": provider("A4251BE00009", cust.id)}, "invalid-body"),
        ({"type": "mergeProvider"}, "invalid-body"),
        ({"type": "mergeProvider", "provider": {"id": "A4251BE00009", "company": cust.id}}, "invalid-body"),
        ({"type": "mergeProvider", "provider": provider("A4251BE00009", cust.id, v=True)}, "invalid-body"),
        ({"type": "mergeProvider", "provider": provider("zz", cust.id)}, "invalid-mac"),
        ({"type": "mergeProvider", "provider": provider("A4251BE00009", cust.id, "NOPE")}, "unknown-kind"),
        ({"type": "mergeProvider", "provider": provider("A4251BE00009", outsider.id)}, "account-not-found"),
        ({"type": "mergeProvider", "provider": provider("A4251BE00009", cust.id, v=5)}, "provider-not-found"),
        ({"type": "mergeProvider", "provider": provider("A4251BE00009", cust.id, v=2**40)}, "integer-out-of-range"),
    ]
    async with aiohttp.ClientSession() as http, await open_socket(http, cust.customer) as ws:
        sock = Socket(ws)
        for message, error in cases:
            answer = await sock.send(message)
            assert answer["ok"] is False and answer["error"] == error, (message, answer)
            assert answer["detail"] and not ws.closed
        await ws.send_bytes(b"\x00")
        binary = json.loads((await ws.receive(timeout=30)).data)
        assert binary["error"] == "text-only" and not ws.closed
    assert await counts(server) == before
    refusals = await audit(server, "mergeProvider")
    assert refusals and all(r.status == "FAIL" for r in refusals)


async def test_ff1_websocket_answers_pipelined_messages_in_order_and_ends_an_oversized_one(
    server: Running, admin: ApiClient
) -> None:
    """One message at a time per socket (the rest wait in aiohttp's bounded read buffer), each
    answered with its own ref; a ref that is not a valid one is answered null; over 64 KiB: 1009."""
    cust = await new_customer(admin)
    macs = [f"A4251BE0{n:04X}" for n in range(0x100, 0x100 + 30)]
    async with aiohttp.ClientSession() as http, await open_socket(http, cust.customer) as ws:
        for n, mac in enumerate(macs):  # all sent before any answer is read
            await ws.send_str(json.dumps({"type": "mergeProvider", "ref": n, "provider": provider(mac, cust.id)}))
        answers = [json.loads((await ws.receive(timeout=30)).data) for _ in macs]
        assert [(a["ref"], a["ok"], a["provider"]["id"]) for a in answers] == [
            (n, True, mac) for n, mac in enumerate(macs)
        ]
        long_ref = await Socket(ws).send({"type": "mergeProvider", "ref": "r" * 65,
                                          "provider": provider("zz", cust.id)})
        assert long_ref["ref"] is None and long_ref["error"] == "invalid-body", long_ref
        before = await counts(server)
        big = {"type": "mergeProvider", "ref": "x", "provider": provider("A4251BE0FFFF", cust.id, serial="S" * 70000)}
        await ws.send_str(json.dumps(big))
        closing = await ws.receive(timeout=30)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
        assert ws.close_code == 1009
    assert await counts(server) == before


async def test_ff1_websocket_needs_the_admin_token_and_the_permission(server: Running, admin: ApiClient) -> None:
    url = admin.base + "/api/v1/merge-provider"
    manufacturer = await admin.new_account("manufacturer")
    async with aiohttp.ClientSession() as http:
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                                ({"Authorization": f"Bearer {manufacturer.token}"}, 403)):
            try:
                async with http.ws_connect(url, headers=headers):
                    raise AssertionError("the upgrade was accepted")
            except aiohttp.WSServerHandshakeError as refused:
                assert refused.status == status
        plain = await admin.get("/merge-provider")
        assert plain.status == 400 and plain["error"] == "websocket-required"
        # logging out ends the socket's authority: the next message is refused and the socket closed
        cust = await new_customer(admin)
        async with await open_socket(http, cust.customer) as ws:
            (await cust.customer.post("/auth/logout")).ok()
            await ws.send_str(json.dumps({"type": "mergeProvider", "provider": provider("A4251BE00077", cust.id)}))
            answer = json.loads((await ws.receive(timeout=30)).data)
            assert answer["error"] == "invalid-token"
            closing = await ws.receive(timeout=30)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 4401


# --- billing ----------------------------------------------------------------------------------------


async def test_ff1_billing_counts_a_device_added_directly_and_deleted_at_once(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    cust = await new_customer(admin)
    added = (await cust.customer.post("/direct-devices", provider("A4251BF00001", cust.id))).ok()
    assert added["provider"]["v"] == 1
    (await cust.customer.call("DELETE", "/direct-devices/A4251BF00001")).ok()
    assert (await cust.customer.get("/direct-devices/A4251BF00001")).status == 404
    async with server.opened.ctx.store.transaction() as s:
        assert await s.get(Device, "A4251BF00001") is None

    report = (await cust.customer.get("/billing", account=cust.id, month=MONTH)).ok()

    assert report["direct_additions"] == 1 and report["devices"] == 1 and report["by_kind"] == {"J179": 1}
    (item,) = report["items"]
    assert item["mac"] == "A4251BF00001" and item["present"] is False and item["via"] == "rest"
    csv_text = (await cust.customer.get("/billing", account=cust.id, month=MONTH, format="csv")).ok()
    lines = csv_text.splitlines()
    assert lines[0] == "account_id,month,mac,kind,via,added_by,added_at,present"
    assert lines[1].startswith(f"{cust.id},{MONTH},A4251BF00001,J179,rest,") and lines[1].endswith(",false")
    # added again: billed again; the next month is empty
    (await cust.customer.post("/direct-devices", provider("A4251BF00001", cust.id))).ok()
    assert (await cust.customer.get("/billing", account=cust.id, month=MONTH)).ok()["direct_additions"] == 2
    assert (await cust.customer.get("/billing", account=cust.id, month="2026-12")).ok()["direct_additions"] == 0


async def test_ff1_billing_is_seen_by_the_platform_and_the_account_line_only(
    server: Running, admin: ApiClient
) -> None:
    cust = await new_customer(admin)
    other = await new_customer(admin)
    (await cust.customer.post("/direct-devices", provider("A4251BF00011", cust.id))).ok()
    for who in (admin, cust.sp, cust.customer):
        assert (await who.get("/billing", account=cust.id, month=MONTH)).ok()["direct_additions"] == 1
    for who in (other.sp, other.customer):
        ans = await who.get("/billing", account=cust.id, month=MONTH)
        assert (ans.status, ans.body["error"]) == (404, "account-not-found")
    manufacturer = await admin.new_account("manufacturer")
    assert (await manufacturer.get("/billing", account=cust.id, month=MONTH)).status == 403
    for params, error in (({"account": cust.id}, "invalid-month"), ({"account": cust.id, "month": "2026-13"},
                          "invalid-month"), ({"month": MONTH}, "account-required")):
        ans = await cust.customer.get("/billing", **params)
        assert ans.status == 422 and ans["error"] == error, ans.body
    # the ledger outlives the account: the provider still bills its deleted customer
    (await cust.sp.call("DELETE", f"/accounts/{cust.id}")).ok()
    assert (await cust.sp.get("/billing", account=cust.id, month=MONTH)).ok()["direct_additions"] == 1


async def test_ff1_two_updates_of_one_version_at_once_one_wins(server: Running, admin: ApiClient) -> None:
    """Optimistic concurrency under contention: REST and socket updating version 1 together."""
    cust = await new_customer(admin)
    (await cust.customer.post("/direct-devices", provider("A4251BE00100", cust.id))).ok()
    async with aiohttp.ClientSession() as http, await open_socket(http, cust.customer) as ws:
        sock = Socket(ws)
        rest, socket = await asyncio.gather(
            cust.customer.post("/direct-devices", provider("A4251BE00100", cust.id, "J169", v=1)),
            sock.send({"type": "mergeProvider", "provider": provider("A4251BE00100", cust.id, "J139", v=1)}),
        )
    outcomes = sorted([rest.status, 200 if socket["ok"] else socket["status"]])
    assert outcomes == [200, 409], (rest.body, socket)
    loser = rest.body if rest.status == 409 else socket
    assert loser["error"] == "stale-version" and loser["current_v"] == 2
    shown = (await cust.customer.get("/direct-devices/A4251BE00100")).ok()
    assert shown["v"] == 2 and shown["kind"] == ("J169" if rest.status == 200 else "J139")
