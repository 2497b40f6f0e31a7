"""Login throttling (issue 13) over a real socket: failed logins from loopback addresses
127.0.0.x get 429 `too-many-attempts` with `Retry-After`; the real administrator gets in after
the window or back-off, and at once from an address she logged in from; refusals are audited;
an unknown name and a wrong password are answered alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pyotp

from server.runner import Running
from tests.conftest import FakeClock
from tests.integration.client import PASSWORD, ApiClient

WRONG = "Wrong-Password-77"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: str | None


async def login_from(server: Running, address: str, login: str, password: str, otp: str | None = None) -> Answer:
    """POST /auth/login from the loopback address `address`."""
    body = {"login": login, "password": password, **({"otp": otp} if otp else {})}
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(server.admin_url + "/api/v1/auth/login", json=body) as resp,
    ):
        return Answer(resp.status, await resp.json(), resp.headers.get("Retry-After"))


async def throttle(admin: ApiClient, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = (await admin.call("PUT", "/settings/login-throttle", body)).ok()
    return answer


async def login_log(admin: ApiClient, login: str) -> list[dict[str, Any]]:
    conditions = [{"field": "process", "op": "eq", "value": "LOGIN"}, {"field": "login", "op": "eq", "value": login}]
    page = (await admin.get("/logs", limit="1000", q=json.dumps({"all": conditions}))).ok()
    return list(page["items"])


async def test_an_address_over_its_budget_gets_429_and_the_user_gets_in_after_the_window(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    await throttle(admin, per_address={"failures": 3, "minutes": 10}, per_login={"free": 1000})
    attacker = "127.0.0.2"
    for name in ("nobody@example.test", sp.login_name, "admin"):  # spraying names from one address
        wrong = await login_from(server, attacker, name, WRONG)
        assert (wrong.status, wrong.body["error"]) == (401, "invalid-credentials")
    held = await login_from(server, attacker, sp.login_name, PASSWORD)  # even the right password
    assert (held.status, held.body["error"], held.retry_after) == (429, "too-many-attempts", "600")
    # another address is not held back: the real user logs in
    assert (await login_from(server, "127.0.0.3", sp.login_name, PASSWORD)).status == 200
    clock.advance(minutes=9, seconds=59)
    assert (await login_from(server, attacker, sp.login_name, PASSWORD)).retry_after == "1"
    clock.advance(seconds=1)  # the first failure left the window
    assert (await login_from(server, attacker, sp.login_name, PASSWORD)).status == 200
    # audited: the refusal, under the account of the name tried, from the address it came from
    refused = [e for e in await login_log(admin, sp.login_name) if "too-many-attempts" in e["message"]]
    assert len(refused) == 2
    assert all(e["status"] == "FAIL" and e["client_host"] == attacker for e in refused)
    assert {e["account_id"] for e in refused} == {sp.account_id}
    figures = (await admin.get("/settings/login-throttle")).ok()["figures"]
    assert figures["failed_logins"] == 3 and figures["refused_per_address"] == 2
    # someone at her own address (127.0.0.1, where she logged in) spends its budget on other
    # names: those are held, she is not
    for name in ("x1@example.test", "x2@example.test", "x3@example.test"):
        assert (await login_from(server, "127.0.0.1", name, WRONG)).status == 401
    assert (await login_from(server, "127.0.0.1", "x4@example.test", WRONG)).status == 429
    assert (await login_from(server, "127.0.0.1", sp.login_name, PASSWORD)).status == 200


async def test_a_login_under_attack_backs_off_but_never_keeps_its_administrator_out(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")  # logged in from 127.0.0.1: a trusted address
    policy = await throttle(
        admin, per_address={"failures": 1000, "minutes": 10}, per_login={"free": 2, "base_seconds": 60}
    )
    assert policy["per_login"] == {"free": 2, "base_seconds": 60, "cap_seconds": 900, "reset_minutes": 1440}
    for i, name in enumerate((sp.login_name, "nobody@example.test")):
        for n in range(2):  # an attacker from many addresses, for a real and an unknown name
            wrong = await login_from(server, f"127.0.{i + 1}.{n + 10}", name, WRONG)
            assert (wrong.status, wrong.body["error"]) == (401, "invalid-credentials")
    real = await login_from(server, "127.0.1.20", sp.login_name, WRONG)
    unknown = await login_from(server, "127.0.2.20", "nobody@example.test", WRONG)
    # the same answer for a real and an unknown name: status, id, wait
    assert (real.status, real.body["error"], real.retry_after) == (429, "too-many-attempts", "60")
    assert (unknown.status, unknown.body["error"], unknown.retry_after) == (429, "too-many-attempts", "60")
    # the administrator, from where she logged in before, is not held by the back-off
    assert (await login_from(server, "127.0.0.1", sp.login_name, PASSWORD)).status == 200
    # from a new address she waits the back-off, then gets in
    new_place = await login_from(server, "127.0.0.9", sp.login_name, PASSWORD)
    assert (new_place.status, new_place.retry_after) == (429, "60")
    clock.advance(seconds=60)
    assert (await login_from(server, "127.0.0.9", sp.login_name, PASSWORD)).status == 200
    # her success cleared nothing for the attacker: one more failure doubles the wait
    assert (await login_from(server, "127.0.1.30", sp.login_name, WRONG)).status == 401
    assert (await login_from(server, "127.0.1.31", sp.login_name, WRONG)).retry_after == "120"
    # ... while 127.0.0.9, where she logged in now, is trusted too
    assert (await login_from(server, "127.0.0.9", sp.login_name, PASSWORD)).status == 200
    figures = (await admin.get("/settings/login-throttle")).ok()["figures"]
    # backing off now: the attacked name (the unknown name's wait is over)
    assert figures["refused_per_login"] == 4 and figures["logins_backing_off_now"] == 1
    log = await login_log(admin, sp.login_name)
    assert sum("too-many-attempts" in e["message"] and e["status"] == "FAIL" for e in log) == 3


async def test_a_wrong_one_time_code_counts_as_a_failure(server: Running, admin: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    secret = (await sp.post("/auth/two-factor")).ok()["otp_setup"]["secret"]
    await throttle(admin, per_address={"failures": 1000, "minutes": 10}, per_login={"free": 2, "base_seconds": 30})
    address = "127.0.3.1"
    missing = await login_from(server, address, sp.login_name, PASSWORD)  # the first step: no failure
    assert (missing.status, missing.body["error"]) == (401, "otp-required")
    valid = {pyotp.TOTP(secret).at(clock.now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    wrong_code = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    for _ in range(2):
        wrong = await login_from(server, address, sp.login_name, PASSWORD, otp=wrong_code)
        assert (wrong.status, wrong.body["error"]) == (401, "invalid-otp")
    held = await login_from(server, address, sp.login_name, PASSWORD, otp=pyotp.TOTP(secret).at(clock.now))
    assert (held.status, held.retry_after) == (429, "30")
    clock.advance(seconds=30)
    ok = await login_from(server, address, sp.login_name, PASSWORD, otp=pyotp.TOTP(secret).at(clock.now))
    assert ok.status == 200


async def test_settings_are_the_platforms_and_the_429_is_documented(
    server: Running, admin: ApiClient, api: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    current = (await sp.get("/settings/login-throttle")).ok()  # every account reads them
    assert current["per_address"] == {"failures": 20, "minutes": 10} and "figures" in current
    refused = await sp.call("PUT", "/settings/login-throttle", {"per_login": {"free": 1}})
    assert (refused.status, refused["error"]) == (403, "forbidden-role")
    bad = await admin.call("PUT", "/settings/login-throttle", {"per_login": {"base_seconds": 60, "cap_seconds": 30}})
    assert (bad.status, bad["error"]) == (422, "invalid-login-throttle")
    assert (await admin.get("/settings/login-throttle")).ok()["per_login"]["cap_seconds"] == 900  # nothing stored
    changes = [e for e in (await admin.get("/logs", limit="1000")).ok()["items"] if e["action"] == "put_login_throttle"]
    assert [e["status"] for e in changes] == ["FAIL", "FAIL"]
    document = (await api.get("/openapi.json")).ok()
    answer = document["paths"]["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["required"] is True
    await throttle(admin, per_login={"free": 3})
    log = (await admin.get("/logs", limit="1000")).ok()["items"]
    assert any(e["action"] == "put_login_throttle" and e["status"] == "SUCCESS" for e in log)
