"""Signed webhooks (issue 16) against a real receiving HTTP server on 127.0.0.1: the signature
verifies with an independent implementation (the standard library's `hmac`, written here), a
receiver that fails is retried with the same delivery id, a replay is detectable, a silent
receiver never delays an enrollment, other accounts cannot see or manage a webhook, and the
secret is shown once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from server.runner import Running, ServeConfig, start
from server.store import webhooks as outbox
from server.store.models import AuditLog, WebhookDelivery
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, entry, import_phones, nec, new_customer, new_site, zero_touch
from tests.integration.test_api_devices import claim_all, device, fleet, import_json, macs_for, wait_job

DEADLINE = 30.0  # seconds: a guard against a hang, never a measurement
WINDOW = 300  # the replay window docs/webhooks.md gives receivers


# --- an independent receiver ------------------------------------------------------------------------


def signed_ok(secret: str, header: str, body: bytes, now: datetime) -> bool:
    """What docs/webhooks.md tells a receiver to do, with the standard library only."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    if abs(now.timestamp() - timestamp) > WINDOW:
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 that answers `answers` in turn (then 200); with `hold`
    unset it does not answer at all until the test sets it."""

    answers: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    got: list[Received] = field(default_factory=list)
    arrived: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        seen = Received(dict(request.headers), await request.read())
        self.got.append(seen)
        self.arrived.put_nowait(seen)
        if self.hold is not None:
            await self.hold.wait()
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def next(self) -> Received:
        return await asyncio.wait_for(self.arrived.get(), DEADLINE)

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def quiet_server(tmp_path, db_url: str, clock: FakeClock) -> AsyncIterator[Running]:  # type: ignore[no-untyped-def]
    """A server without the background delivery loop: each test runs delivery rounds itself."""
    cfg = ServeConfig(data_dir=tmp_path / "data", db_url=db_url, admin_port=0, webhook_interval=0)
    running = await start(cfg, admin_password=ADMIN_PASSWORD, clock=clock)
    yield running
    await running.stop()


@pytest.fixture
async def admin_of(quiet_server: Running) -> AsyncIterator[ApiClient]:
    client = ApiClient(quiet_server.admin_url)
    yield await client.as_user("admin", ADMIN_PASSWORD)
    await client.close()


async def deliver(server: Running) -> list[str]:
    ctx = server.opened.ctx
    return await outbox.deliver_due(ctx.store, ctx.clock)


async def register(client: ApiClient, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    answer = await client.post("/webhooks", {"url": url, "events": events, **extra})
    assert answer.status == 201, answer.body
    return dict(answer.body)


async def enrolled_phone(server: Running, admin: ApiClient, cust: Any = None) -> tuple[Phone, Any]:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = cust or await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, [phone], site)
    return phone, cust


# --- the signature, the body, the secret shown once --------------------------------------------------


async def test_an_enrollment_is_delivered_signed_and_the_secret_is_shown_once(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    phone, cust = await enrolled_phone(quiet_server, admin_of)
    hook = await register(cust.customer, receiver.url, ["device.enrolled"], description="lab receiver")
    secret = hook["secret"]
    assert secret and hook["events"] == ["device.enrolled"] and hook["account_id"] == cust.id

    # The secret is never shown again: not in the webhook, not in the list, not in the log.
    again = (await cust.customer.get(f"/webhooks/{hook['id']}")).ok()
    listed = (await cust.customer.get("/webhooks")).ok()
    assert "secret" not in again and all("secret" not in item for item in listed["items"])
    assert secret not in json.dumps(again) + json.dumps(listed)

    answer = await phone.enroll()
    assert answer["result"] == "redirect"
    assert await deliver(quiet_server) == ["delivered"]

    (got,) = receiver.got
    assert signed_ok(secret, got.headers["Enrollab-Signature"], got.body, clock())
    assert got.headers["Enrollab-Event"] == "device.enrolled"
    assert got.headers["Content-Type"] == "application/json"
    body = got.json
    assert body["type"] == "device.enrolled" and body["account_id"] == cust.id and body["id"].startswith("evt_")
    assert body["data"]["mac"] == phone.mac and body["data"]["serial"] == phone.serial
    assert datetime.fromisoformat(body["created_at"]) == clock()
    # Another secret, or a changed body, does not verify.
    assert not signed_ok("whsec_other", got.headers["Enrollab-Signature"], got.body, clock())
    assert not signed_ok(secret, got.headers["Enrollab-Signature"], got.body.replace(b"redirect", b"x") + b" ", clock())

    log = (await cust.customer.get(f"/webhooks/{hook['id']}/deliveries")).ok()
    (item,) = log["items"]
    assert item["delivery_id"] == got.headers["Enrollab-Delivery"] and item["event_id"] == body["id"]
    assert (item["status"], item["attempts"], item["last_status"]) == ("delivered", 1, 200)
    assert item["next_attempt_at"] is None
    assert item["delivered_at"] is not None

    # Rotating gives a new secret, once; the next delivery is signed with it.
    rotated = (await cust.customer.post(f"/webhooks/{hook['id']}/rotate-secret")).ok()
    assert rotated["secret"] != secret
    (await cust.customer.post(f"/webhooks/{hook['id']}/ping")).ok()
    assert await deliver(quiet_server) == ["delivered"]
    ping = receiver.got[-1]
    assert ping.headers["Enrollab-Event"] == "webhook.ping"
    assert signed_ok(rotated["secret"], ping.headers["Enrollab-Signature"], ping.body, clock())
    assert not signed_ok(secret, ping.headers["Enrollab-Signature"], ping.body, clock())

    async with quiet_server.opened.ctx.store.transaction() as s:
        messages = [m for m in await s.scalars(select(AuditLog.message).where(AuditLog.process == "WEBHOOK"))]
    assert messages and not any(secret in m or rotated["secret"] in m for m in messages)


# --- retries, the same delivery id, replays ---------------------------------------------------------


async def test_a_failing_receiver_is_retried_with_back_off_and_the_same_delivery_id(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.answers = [500, 500, 200]
    phone, cust = await enrolled_phone(quiet_server, admin_of)
    hook = await register(cust.sp, receiver.url, ["device.enrolled"])  # the SP hears its customers' devices
    assert (await phone.enroll())["result"] == "redirect"

    assert await deliver(quiet_server) == ["retry"]
    clock.advance(seconds=9)
    assert await deliver(quiet_server) == []  # not due before its back-off (10 s)
    clock.advance(seconds=1)
    assert await deliver(quiet_server) == ["retry"]
    clock.advance(seconds=29)
    assert await deliver(quiet_server) == []  # the second wait is 30 s
    clock.advance(seconds=1)
    assert await deliver(quiet_server) == ["delivered"]
    clock.advance(hours=7)
    assert await deliver(quiet_server) == []  # delivered once and for all

    assert len(receiver.got) == 3
    ids = {r.headers["Enrollab-Delivery"] for r in receiver.got}
    assert len(ids) == 1  # the same delivery id on every attempt: a receiver detects the duplicate
    assert len({r.body for r in receiver.got}) == 1  # the same body
    stamps = [int(dict(p.split("=", 1) for p in r.headers["Enrollab-Signature"].split(","))["t"]) for r in receiver.got]
    assert stamps[1] - stamps[0] == 10 and stamps[2] - stamps[1] == 30  # each attempt signed afresh
    for r, t in zip(receiver.got, stamps, strict=True):
        sent_at = datetime.fromtimestamp(t).astimezone()
        assert signed_ok(hook["secret"], r.headers["Enrollab-Signature"], r.body, sent_at)

    (item,) = (await cust.sp.get(f"/webhooks/{hook['id']}/deliveries")).ok()["items"]
    assert (item["status"], item["attempts"], item["last_status"]) == ("delivered", 3, 200)
    detail = (await cust.sp.get(f"/webhooks/{hook['id']}/deliveries/{item['delivery_id']}")).ok()
    assert [a["status"] for a in detail["attempt_log"]] == [500, 500, 200]
    assert [a["number"] for a in detail["attempt_log"]] == [1, 2, 3]
    assert json.loads(detail["body"])["id"] == json.loads(receiver.got[0].body)["id"]


async def test_a_replayed_delivery_is_detectable_by_its_id_and_its_timestamp(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    _, cust = await enrolled_phone(quiet_server, admin_of)
    hook = await register(cust.customer, receiver.url, ["job.finished"])
    (await cust.customer.post(f"/webhooks/{hook['id']}/ping")).ok()
    assert await deliver(quiet_server) == ["delivered"]
    (original,) = receiver.got

    # A receiver as docs/webhooks.md describes it: signature, window, and the ids it took.
    seen: set[str] = set()

    def accept(r: Received, now: datetime) -> bool:
        if not signed_ok(hook["secret"], r.headers["Enrollab-Signature"], r.body, now):
            return False
        if r.headers["Enrollab-Delivery"] in seen:
            return False
        seen.add(r.headers["Enrollab-Delivery"])
        return True

    assert accept(original, clock())
    # Someone sends the captured request again: at once it is a known delivery id, later an
    # old timestamp (the receiver may then forget ids older than the window).
    assert not accept(original, clock())
    seen.clear()
    assert not accept(original, clock() + timedelta(seconds=WINDOW + 1))

    # Sent again to the real receiver over HTTP, the replay carries the same id and timestamp.
    async with aiohttp.ClientSession() as http:
        keep = ("Enrollab-Signature", "Enrollab-Event", "Enrollab-Delivery", "Content-Type")
        async with http.post(receiver.url, data=original.body, headers={k: original.headers[k] for k in keep}):
            pass
    replay = receiver.got[-1]
    assert replay.headers["Enrollab-Delivery"] == original.headers["Enrollab-Delivery"]
    assert replay.headers["Enrollab-Signature"] == original.headers["Enrollab-Signature"]


async def test_410_gone_disables_the_webhook_and_re_enabling_clears_it(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver
) -> None:
    receiver.answers = [410]
    _, cust = await enrolled_phone(quiet_server, admin_of)
    hook = await register(cust.customer, receiver.url, ["device.enrolled"])
    (await cust.customer.post(f"/webhooks/{hook['id']}/ping")).ok()
    assert await deliver(quiet_server) == ["gone"]
    after = (await cust.customer.get(f"/webhooks/{hook['id']}")).ok()
    assert after["enabled"] is False and "410" in after["disabled_reason"]
    assert after["deliveries"] == {"pending": 0, "delivered": 0, "failed": 1}
    refused = await cust.customer.post(f"/webhooks/{hook['id']}/ping")
    assert (refused.status, refused["error"]) == (422, "webhook-disabled")
    enabled = (await cust.customer.call("PATCH", f"/webhooks/{hook['id']}", {"enabled": True})).ok()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    # The failed delivery is tried once more on request.
    (failed,) = (await cust.customer.get(f"/webhooks/{hook['id']}/deliveries", status="failed")).ok()["items"]
    (await cust.customer.post(f"/webhooks/{hook['id']}/deliveries/{failed['delivery_id']}/redeliver")).ok()
    assert await deliver(quiet_server) == ["delivered"]
    assert len({r.headers["Enrollab-Delivery"] for r in receiver.got}) == 1


async def test_attempts_run_out_and_the_delivery_fails(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.answers = [503] * 10
    _, cust = await enrolled_phone(quiet_server, admin_of)
    hook = await register(cust.customer, receiver.url, ["device.enrolled"])
    (await cust.customer.post(f"/webhooks/{hook['id']}/ping")).ok()
    verdicts = []
    for _ in range(12):
        verdicts += await deliver(quiet_server)
        clock.advance(hours=7)
    assert verdicts == ["retry"] * 7
    async with quiet_server.opened.ctx.store.transaction() as s:  # the tokens expired meanwhile
        (row,) = await s.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook["id"]))
    assert (row.status, row.attempts, row.last_status, row.last_error) == ("failed", 7, 503, "HTTP 503")
    assert len(receiver.got) == 7 and len({r.headers["Enrollab-Delivery"] for r in receiver.got}) == 1


# --- which events, for whom ------------------------------------------------------------------------


async def test_events_are_queued_only_for_accounts_with_a_webhook_for_them(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver
) -> None:
    phone, cust = await enrolled_phone(quiet_server, admin_of)
    other = await new_customer(admin_of)
    await register(other.customer, receiver.url, ["device.enrolled"])  # another hierarchy
    await register(cust.customer, receiver.url, ["job.finished"])  # another event
    assert (await phone.enroll())["result"] == "redirect"
    async with quiet_server.opened.ctx.store.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert await deliver(quiet_server) == []


async def test_lockout_job_finished_and_import_failed_events(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    platform = await register(admin_of, receiver.url, ["device.locked-out", "job.finished", "import.failed"])
    phone = Phone.make(quiet_server)
    await import_phones(admin_of, [phone])  # a COMPLETE import: job.finished only
    cust = await new_customer(admin_of)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site)
    wrong = "00000000" if code != "00000000" else "11111111"
    answers = [await phone.enroll(code=wrong) for _ in range(4)]
    assert [a.status for a in answers] == [422, 422, 423, 423]  # one lock, then refusals while locked
    bad = await import_json(admin_of, [device("A4251BEE0001"), {"mac": "nope", "serial": "X1", "model": "J179"}])
    assert bad["status"] == "FAIL"

    assert await deliver(quiet_server) == ["delivered"] * 4
    kinds = [r.json["type"] for r in receiver.got]
    assert sorted(kinds) == ["device.locked-out", "import.failed", "job.finished", "job.finished"]
    assert all(signed_ok(platform["secret"], r.headers["Enrollab-Signature"], r.body, clock()) for r in receiver.got)
    by_type = {r.json["type"]: r.json for r in receiver.got}
    locked = by_type["device.locked-out"]["data"]
    assert locked["mac"] == phone.mac and locked["failed_attempts"] == 3 and locked["locked_until"]
    failed = by_type["import.failed"]["data"]
    assert (failed["job_id"], failed["rejected"], failed["imported"]) == (bad["id"], 1, 1)
    finished = [r.json["data"] for r in receiver.got if r.json["type"] == "job.finished"]
    assert {f["status"] for f in finished} == {"COMPLETE", "FAIL"} and all(f["kind"] == "import" for f in finished)
    assert code not in json.dumps([r.json for r in receiver.got])  # no enrollment code in any event


async def test_a_bulk_job_that_ends_is_a_job_finished_event_for_its_account_only(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver, clock: FakeClock
) -> None:
    sp = await admin_of.new_account("service_provider")
    other = await admin_of.new_account("service_provider")
    hook = await register(sp, receiver.url, ["job.finished"])
    await register(other, receiver.url, ["job.finished"])
    macs = await fleet(admin_of, [device(m) for m in macs_for("A42539", 2)])
    await claim_all(sp, macs)
    started = (await sp.post("/jobs", {"name": "activate all", "actions": ["Activate"], "all": True})).ok()
    assert (await wait_job(sp, started["id"]))["status"] == "COMPLETE"

    assert await deliver(quiet_server) == ["delivered"]
    (got,) = receiver.got  # the other provider's webhook heard nothing (nor the platform's imports)
    assert signed_ok(hook["secret"], got.headers["Enrollab-Signature"], got.body, clock())
    body = got.json
    assert (body["type"], body["account_id"]) == ("job.finished", sp.account_id)
    data = body["data"]
    assert (data["job_id"], data["status"], data["kind"], data["name"]) == (started["id"], "COMPLETE", "devices",
                                                                            "activate all")
    assert data["summary"]["succeeded"] == 2 and data["summary"]["failed"] == 0


# --- ACC-7 -------------------------------------------------------------------------------------------


async def test_other_accounts_cannot_see_or_manage_a_webhook(
    quiet_server: Running, admin_of: ApiClient, receiver: Receiver
) -> None:
    mine = await new_customer(admin_of)
    theirs = await new_customer(admin_of)
    hook = await register(mine.customer, receiver.url, ["device.enrolled"])
    (await mine.customer.post(f"/webhooks/{hook['id']}/ping")).ok()
    (delivery,) = (await mine.customer.get(f"/webhooks/{hook['id']}/deliveries")).ok()["items"]
    path = f"/webhooks/{hook['id']}"
    for outsider in (theirs.customer, theirs.sp):
        for method, where, body in [
            ("GET", path, None),
            ("PATCH", path, {"enabled": False}),
            ("DELETE", path, None),
            ("POST", path + "/rotate-secret", {}),
            ("POST", path + "/ping", {}),
            ("GET", path + "/deliveries", None),
            ("GET", path + f"/deliveries/{delivery['delivery_id']}", None),
            ("POST", path + f"/deliveries/{delivery['delivery_id']}/redeliver", {}),
        ]:
            answer = await outsider.call(method, where, body)
            assert (answer.status, answer["error"]) == (404, "webhook-not-found"), (method, where, answer.body)
        assert (await outsider.get("/webhooks")).ok()["items"] == []
        refused = await outsider.post("/webhooks", {"url": receiver.url, "events": ["job.finished"],
                                                    "account_id": mine.id})
        assert (refused.status, refused["error"]) == (404, "account-not-found")
    # The customer's service provider (its hierarchy) and the platform see and manage it.
    assert [h["id"] for h in (await mine.sp.get("/webhooks")).ok()["items"]] == [hook["id"]]
    assert (await admin_of.get(path)).ok()["id"] == hook["id"]
    made = await register(mine.sp, receiver.url, ["job.finished"], account_id=mine.id)
    assert made["account_id"] == mine.id
    assert (await mine.customer.call("DELETE", f"/webhooks/{made['id']}")).ok() == {"deleted": made["id"]}
    assert (await mine.customer.get(f"/webhooks/{made['id']}")).status == 404


async def test_url_and_events_are_validated_at_the_boundary(admin_of: ApiClient, receiver: Receiver) -> None:
    for url in ("ftp://127.0.0.1/x", "http://user:hunter2@127.0.0.1/x", "not a url", "http://127.0.0.1/#x"):
        refused = await admin_of.post("/webhooks", {"url": url, "events": ["job.finished"]})
        assert (refused.status, refused["error"]) == (422, "invalid-webhook-url"), url
        assert "hunter2" not in json.dumps(refused.body)
    refused = await admin_of.post("/webhooks", {"url": receiver.url, "events": ["device.exploded"]})
    assert refused.status == 422
    refused = await admin_of.post("/webhooks", {"url": receiver.url, "events": []})
    assert refused.status == 422
    hook = await register(admin_of, receiver.url, ["job.finished"])
    changed = await admin_of.call("PATCH", f"/webhooks/{hook['id']}", {"url": "gopher://x"})
    assert (changed.status, changed["error"]) == (422, "invalid-webhook-url")


# --- a silent receiver and the background loop ------------------------------------------------------


@pytest.fixture
async def looping_server(tmp_path, db_url: str, clock: FakeClock) -> AsyncIterator[Running]:  # type: ignore[no-untyped-def]
    """A server with the background delivery loop (as `enrollab serve` runs it)."""
    cfg = ServeConfig(data_dir=tmp_path / "data", db_url=db_url, admin_port=0, webhook_interval=0.5,
                      webhook_timeout=DEADLINE)
    running = await start(cfg, admin_password=ADMIN_PASSWORD, clock=clock)
    yield running
    await running.stop()


async def test_a_receiver_that_never_answers_does_not_delay_enrollment(
    looping_server: Running, receiver: Receiver
) -> None:
    receiver.hold = asyncio.Event()  # the receiver takes the request and says nothing
    client = ApiClient(looping_server.admin_url)
    try:
        admin = await client.as_user("admin", ADMIN_PASSWORD)
        first, cust = await enrolled_phone(looping_server, admin)
        second, _ = await enrolled_phone(looping_server, admin, cust)
        hook = await register(cust.customer, receiver.url, ["device.enrolled"])

        assert (await asyncio.wait_for(first.enroll(), DEADLINE))["result"] == "redirect"
        got = await receiver.next()  # the background loop is now waiting for this receiver
        assert got.json["data"]["mac"] == first.mac
        # While that delivery hangs, another device enrolls and is answered.
        answer = await asyncio.wait_for(second.enroll(), DEADLINE)
        assert answer["result"] == "redirect"
        # ...and its own delivery is sent too, while the first one still hangs.
        assert (await receiver.next()).json["data"]["mac"] == second.mac
        log = (await cust.customer.get(f"/webhooks/{hook['id']}/deliveries")).ok()
        assert [(item["status"], item["attempts"]) for item in log["items"]] == [("pending", 0)] * 2

        receiver.hold.set()  # the receiver answers at last: both are delivered by the loop
        await asyncio.wait_for(_delivered(cust.customer, hook["id"], 2), DEADLINE)
    finally:
        await client.close()


async def _delivered(client: ApiClient, hook_id: int, count: int) -> None:
    while True:
        log = (await client.get(f"/webhooks/{hook_id}/deliveries", status="delivered")).ok()
        if log["total"] >= count:
            return
        await asyncio.sleep(0.05)
