"""Email notifications over the admin API (NTF-1): switches, the outbox, SMTP delivery."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest

from server.runner import Running
from server.store.mailer import deliver_pending
from tests.conftest import FakeClock
from tests.integration.client import ApiClient

KINDS = {
    "enrollment-code-usage",
    "provision-changes",
    "claiming-device",
    "associating-device",
    "device-enrollment-failure",
    "user-password-reset",
    "account-linking",
}
TOKEN_LINE = re.compile(r"^token: ([A-Za-z0-9_-]+)", re.MULTILINE)


@dataclass
class SmtpSink:
    """A minimal SMTP server on a real socket: accepts every mail, keeps it; refuses RCPT to
    addresses starting with `refuse`."""

    port: int = 0
    mails: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 sink ESMTP")
        rcpts: list[str] = []
        while line := await reader.readline():
            verb = line[:4].decode().upper()
            if verb in ("EHLO", "HELO"):
                say("250 sink")
            elif verb == "MAIL":
                rcpts = []
                say("250 ok")
            elif verb == "RCPT":
                addr = line.decode().split(":", 1)[1].strip().strip("<>")
                if addr.startswith("refuse"):
                    say("550 no such mailbox")
                else:
                    rcpts.append(addr)
                    say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                data = b""
                # A client gone mid-DATA reads b"" forever: without its own stop, the loop would
                # spin and hold the event loop (and the test) until the suite's timeout.
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                if not chunk:
                    break
                self.mails.append((rcpts, message_from_bytes(data)))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                await writer.drain()
                break
            else:
                say("250 ok")  # RSET, NOOP
            await writer.drain()
        writer.close()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    srv = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    sink.port = srv.sockets[0].getsockname()[1]
    yield sink
    srv.close()
    await srv.wait_closed()


async def _reset_mails(client: ApiClient, account_id: str) -> list[dict[str, Any]]:
    return (await client.get("/notifications/outbox", kind="user-password-reset", account_id=account_id)).ok()["items"]


async def test_ntf1_all_seven_kinds_are_on_by_default(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    assert (await sp.get("/notifications/settings")).ok() == dict.fromkeys(KINDS, True)


async def test_ntf1_switches_are_per_account(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    after = (await sp.call("PUT", "/notifications/settings", {"claiming-device": False})).ok()
    assert after == {**dict.fromkeys(KINDS, True), "claiming-device": False}
    assert (await sp.get("/notifications/settings")).ok() == after
    assert (await reseller.get("/notifications/settings")).ok() == dict.fromkeys(KINDS, True)
    back = (await sp.call("PUT", "/notifications/settings", {"claiming-device": True, "account-linking": False})).ok()
    assert back == {**dict.fromkeys(KINDS, True), "account-linking": False}


async def test_ntf1_settings_changes_are_validated(admin: ApiClient) -> None:
    for body in ({"no-such-kind": False}, {"claiming-device": "off"}, {}):
        ans = await admin.call("PUT", "/notifications/settings", body)
        assert ans.status == 422 and ans["error"] == "invalid-body", body


async def test_ntf1_a_switched_off_kind_is_not_queued(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    (await sp.call("PUT", "/notifications/settings", {"user-password-reset": False})).ok()
    assert (await api.post("/auth/reset-request", {"login": sp.login_name})).status == 202
    assert await _reset_mails(admin, sp.account_id) == []
    (await sp.call("PUT", "/notifications/settings", {"user-password-reset": True})).ok()
    assert (await api.post("/auth/reset-request", {"login": sp.login_name})).status == 202
    mails = await _reset_mails(admin, sp.account_id)
    assert len(mails) == 1 and mails[0]["recipients"] == [sp.login_name]


async def test_ntf1_reset_token_shown_to_the_platform_only(admin: ApiClient, api: ApiClient) -> None:
    """Decision: the reset token in a User Password Reset email is readable by the platform
    administrator only; every other reader, the account itself included, sees it masked."""
    sp = await admin.new_account("service_provider")
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    [as_platform] = await _reset_mails(admin, sp.account_id)
    token = TOKEN_LINE.search(as_platform["body"])
    assert token and len(token.group(1)) >= 32
    [as_owner] = await _reset_mails(sp, sp.account_id)
    assert token.group(1) not in as_owner["body"] and "token: ****" in as_owner["body"]
    assert as_owner["subject"] == as_platform["subject"]


async def test_ntf1_outbox_shows_the_subtree_only(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    other = await admin.new_account("service_provider")
    for client in (sp, reseller, other):
        (await api.post("/auth/reset-request", {"login": client.login_name})).ok()

    def owners(answer: dict[str, Any]) -> set[str]:
        return {n["account_id"] for n in answer["items"]}

    assert owners((await sp.get("/notifications/outbox")).ok()) == {sp.account_id, reseller.account_id}
    assert owners((await reseller.get("/notifications/outbox")).ok()) == {reseller.account_id}
    everything = owners((await admin.get("/notifications/outbox")).ok())
    assert {sp.account_id, reseller.account_id, other.account_id} <= everything


async def test_ntf1_outbox_is_newest_first_and_paged(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    (await api.post("/auth/reset-request", {"login": reseller.login_name})).ok()
    page1 = (await sp.get("/notifications/outbox", limit="1")).ok()
    page2 = (await sp.get("/notifications/outbox", limit="1", offset="1")).ok()
    assert page1["total"] == page2["total"] == 2
    assert [page1["items"][0]["account_id"], page2["items"][0]["account_id"]] == [reseller.account_id, sp.account_id]


async def test_ntf1_smtp_delivery_sends_and_marks_sent(
    admin: ApiClient, api: ApiClient, server: Running, smtp_sink: SmtpSink, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    [queued] = await _reset_mails(admin, sp.account_id)
    assert queued["sent_at"] is None
    store = server.opened.ctx.store
    pending_before = (await admin.get("/notifications/outbox")).ok()["items"]
    sent = await deliver_pending(store, "127.0.0.1", smtp_sink.port, clock=clock)
    assert sent == sum(1 for n in pending_before if n["sent_at"] is None and n["recipients"])
    mail = next(m for rcpts, m in smtp_sink.mails if rcpts == [sp.login_name])
    assert mail["Subject"] == queued["subject"]
    # the delivered mail carries the token the outbox holds, and it works
    token = TOKEN_LINE.search(mail.get_payload(decode=True).decode())  # type: ignore[union-attr]
    assert token and token.group(1) in queued["body"]
    reset = await api.post("/auth/reset", {"token": token.group(1), "new_password": "Brand-New-Pw-77"})
    assert reset.status == 200
    [delivered] = await _reset_mails(admin, sp.account_id)
    assert delivered["sent_at"] is not None
    assert await deliver_pending(store, "127.0.0.1", smtp_sink.port, clock=clock) == 0  # nothing twice


async def test_ntf1_a_refused_mail_stays_pending(
    admin: ApiClient, api: ApiClient, server: Running, smtp_sink: SmtpSink
) -> None:
    acc = (await admin.post("/accounts", {"type": "service_provider", "name": "Refused"})).ok()
    (
        await admin.post(
            "/users",
            {
                "account_id": acc["id"],
                "login": "refuse-me@example.test",
                "password": "Temp-Pass-123",
                "email": "refuse-me@example.test",
            },
        )
    ).ok()
    (await api.post("/auth/reset-request", {"login": "refuse-me@example.test"})).ok()
    await deliver_pending(server.opened.ctx.store, "127.0.0.1", smtp_sink.port)
    [mail] = await _reset_mails(admin, acc["id"])
    assert mail["sent_at"] is None
    assert all(rcpts != ["refuse-me@example.test"] for rcpts, _ in smtp_sink.mails)


async def test_ntf1_outbox_times_follow_the_server_clock(admin: ApiClient, api: ApiClient, clock) -> None:  # type: ignore[no-untyped-def]
    sp = await admin.new_account("service_provider")
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    first = clock.now
    clock.advance(hours=3)
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    items = (await sp.get("/notifications/outbox")).ok()["items"]
    assert [datetime.fromisoformat(i["created_at"]) for i in items] == [clock.now, first]


async def test_ntf1_serve_with_smtp_delivers_by_itself(tmp_path, db_url: str, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    """`enrollab serve --smtp HOST:PORT`: the outbox drains to the relay without anyone asking."""
    from server.runner import ServeConfig, start
    from tests.conftest import ADMIN_PASSWORD

    cfg = ServeConfig(
        data_dir=tmp_path / "d", db_url=db_url, admin_port=0, smtp=("127.0.0.1", smtp_sink.port), smtp_interval=0.05
    )
    running = await start(cfg, admin_password=ADMIN_PASSWORD)
    client = ApiClient(running.admin_url)
    try:
        (await client.post("/auth/reset-request", {"login": "admin"})).ok()
        for _ in range(100):
            if smtp_sink.mails:
                break
            await asyncio.sleep(0.05)
        assert [rcpts for rcpts, _ in smtp_sink.mails] == [["admin@localhost"]]
    finally:
        await client.close()
        ended: list[str] = []

        async def slow_to_end() -> None:  # a background job that takes a while to wind down
            try:
                await asyncio.sleep(3600)
            finally:
                await asyncio.sleep(0.3)
                ended.append("wound down")

        running.opened.ctx.spawn(slow_to_end())
        await running.stop()
    # Stopping waits for the background loops to end (before the store closes) rather than
    # leaving them to run on against a closed store.
    assert ended == ["wound down"]
    assert not running.opened.ctx.background
