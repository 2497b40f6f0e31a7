"""Login, passwords, reset, 2FA and switch account end to end: USR-1, USR-2, USR-4, ACC-5, ACC-9, ACC-10."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp

from tests.conftest import FakeClock
from tests.integration.client import PASSWORD, ApiClient

NEW_PASSWORD = "Another-Strong-Pw-9"
TOKEN_LINE = re.compile(r"^token: ([A-Za-z0-9_-]+)", re.MULTILINE)


async def _reset_token(admin: ApiClient, api: ApiClient, login: str, account_id: str) -> str:
    """Ask for a reset email and read its token from the outbox, as the platform administrator."""
    assert (await api.post("/auth/reset-request", {"login": login})).status == 202
    mails = (await admin.get("/notifications/outbox", kind="user-password-reset", account_id=account_id)).ok()
    found = TOKEN_LINE.search(mails["items"][0]["body"])
    assert found, mails["items"][0]["body"]
    return found.group(1)


def _wrong_code(secret: str, clock: FakeClock) -> str:
    valid = {pyotp.TOTP(secret).at(clock.now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


async def test_usr2_reset_token_works_once(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    token = await _reset_token(admin, api, sp.login_name, sp.account_id)
    assert (await api.post("/auth/reset", {"token": token, "new_password": NEW_PASSWORD})).ok()
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})).status == 401
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": NEW_PASSWORD})).ok()
    again = await api.post("/auth/reset", {"token": token, "new_password": "Third-Strong-Pw-5"})
    assert again.status == 422 and again["error"] == "invalid-reset-token"
    # the reset also ended the sessions the old password had opened
    assert (await sp.get("/settings/lockout")).status == 401


async def test_usr2_reset_token_expires_after_five_minutes(admin: ApiClient, api: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    token = await _reset_token(admin, api, sp.login_name, sp.account_id)
    clock.advance(minutes=5)
    late = await api.post("/auth/reset", {"token": token, "new_password": NEW_PASSWORD})
    assert late.status == 422 and late["error"] == "invalid-reset-token"
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})).ok()


async def test_usr2_reset_token_still_works_just_before_five_minutes(
    admin: ApiClient, api: ApiClient, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    token = await _reset_token(admin, api, sp.login_name, sp.account_id)
    clock.advance(minutes=4, seconds=59)
    assert (await api.post("/auth/reset", {"token": token, "new_password": NEW_PASSWORD})).ok()


async def test_usr2_reset_request_does_not_reveal_login_names(admin: ApiClient, api: ApiClient) -> None:
    before = (await admin.get("/notifications/outbox")).ok()["total"]
    ans = await api.post("/auth/reset-request", {"login": "no-such-user@example.test"})
    assert ans.status == 202 and ans.body == {"status": "sent-if-known"}
    assert (await admin.get("/notifications/outbox")).ok()["total"] == before


async def test_usr1_temporary_password_must_be_changed_first(admin: ApiClient, api: ApiClient) -> None:
    acc = (await admin.post("/accounts", {"type": "service_provider", "name": "Temp"})).ok()
    (
        await admin.post(
            "/users",
            {
                "account_id": acc["id"],
                "login": "temp@example.test",
                "password": "Set-By-Admin-1",
                "email": "temp@example.test",
            },
        )
    ).ok()
    ans = (await api.post("/auth/login", {"login": "temp@example.test", "password": "Set-By-Admin-1"})).ok()
    assert ans["password_change_required"] is True
    user = ApiClient(api.base, token=ans["token"])
    try:
        for method, path in (("GET", f"/accounts/{acc['id']}"), ("GET", "/settings/lockout"), ("GET", "/logs")):
            refused = await user.call(method, path)
            assert refused.status == 403 and refused["error"] == "password-change-required", path
        changed = await user.post("/auth/password", {"old_password": "Set-By-Admin-1", "new_password": NEW_PASSWORD})
        assert changed.ok() == {"password_change_required": False}
        assert (await user.get(f"/accounts/{acc['id']}")).ok()["id"] == acc["id"]
    finally:
        await user.close()
    relogin = (await api.post("/auth/login", {"login": "temp@example.test", "password": NEW_PASSWORD})).ok()
    assert relogin["password_change_required"] is False


async def test_usr4_two_factor_login(admin: ApiClient, api: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    creds = {"login": sp.login_name, "password": PASSWORD}
    assert "otp_setup" not in (await api.post("/auth/login", creds)).ok()  # ACC-10: off by default
    assert (await admin.call("PUT", f"/accounts/{sp.account_id}/two-factor", {"enabled": True})).ok()["two_factor"]
    first = (await api.post("/auth/login", creds)).ok()
    secret = first["otp_setup"]["secret"]
    assert first["otp_setup"]["uri"].startswith("otpauth://totp/") and secret in first["otp_setup"]["uri"]

    missing = await api.post("/auth/login", creds)
    assert missing.status == 401 and missing["error"] == "otp-required"
    wrong = await api.post("/auth/login", {**creds, "otp": _wrong_code(secret, clock)})
    assert wrong.status == 401 and wrong["error"] == "invalid-otp"
    ok = (await api.post("/auth/login", {**creds, "otp": pyotp.TOTP(secret).at(clock.now)})).ok()
    assert ok["token"] and "otp_setup" not in ok
    replay = await api.post("/auth/login", {**creds, "otp": pyotp.TOTP(secret).at(clock.now)})
    assert replay.status == 401 and replay["error"] == "otp-replayed"  # a code works once
    clock.advance(seconds=30)
    assert (await api.post("/auth/login", {**creds, "otp": pyotp.TOTP(secret).at(clock.now)})).status == 200
    clock.advance(minutes=10)  # a code from ten minutes ago is no longer valid
    stale = await api.post("/auth/login", {**creds, "otp": pyotp.TOTP(secret).at(clock.now - timedelta(minutes=10))})
    assert stale.status == 401 and stale["error"] == "invalid-otp"


async def test_acc10_provider_switch_binds_its_resellers(admin: ApiClient, api: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    (await sp.call("PUT", f"/accounts/{sp.account_id}/two-factor", {"for_children": True})).ok()
    reseller = await sp.new_account("reseller")  # its first login hands over the TOTP secret
    creds = {"login": reseller.login_name, "password": PASSWORD}
    missing = await api.post("/auth/login", creds)
    assert missing.status == 401 and missing["error"] == "otp-required"
    # the provider's own administrators are not bound by the switch for its children
    assert "token" in (await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})).ok()
    # and a reseller cannot switch it for others
    ans = await reseller.call("PUT", f"/accounts/{reseller.account_id}/two-factor", {"for_children": True})
    assert ans.status == 403


async def test_acc5_disabled_account_cannot_log_in(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    (await admin.post(f"/accounts/{sp.account_id}/disable")).ok()
    ans = await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})
    assert ans.status == 401 and ans["error"] == "account-disabled"
    flt = '{"all": [{"field": "message", "op": "starts_with", "value": "account-disabled"}]}'
    fails = (await admin.get("/logs", q=flt)).ok()
    assert fails["total"] == 1 and fails["items"][0]["status"] == "FAIL"


async def test_acc9_switch_account_acts_as_the_reseller_with_both_identities(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    refused = await sp.post("/auth/switch", {"account_id": reseller.account_id})
    assert refused.status == 403 and refused["error"] == "switch-not-approved"

    (await admin.post(f"/accounts/{sp.account_id}/switch-approval", {"enabled": True})).ok()
    assert (await sp.post("/auth/switch", {"account_id": reseller.account_id})).ok() == {
        "acting_account_id": reseller.account_id
    }
    customer = (await sp.post("/accounts", {"type": "customer", "name": "Made while switched"})).ok()
    assert customer["parent_id"] == reseller.account_id
    # while switched the provider has the reseller's role: a reseller creates no resellers (ACC-2)
    assert (await sp.post("/accounts", {"type": "reseller", "name": "No"})).status == 403

    q = '{"all": [{"field": "action", "op": "eq", "value": "create_account"}]}'
    [entry] = [e for e in (await reseller.get("/logs", q=q)).ok()["items"] if customer["id"] in e["message"]]
    assert (entry["login"], entry["acting_as"], entry["account_id"]) == (
        sp.login_name,
        reseller.account_id,
        reseller.account_id,
    )

    assert (await sp.post("/auth/switch/exit")).ok() == {"acting_account_id": sp.account_id}
    back = (await sp.post("/accounts", {"type": "customer", "name": "Made after exit"})).ok()
    assert back["parent_id"] == sp.account_id


async def test_acc9_switch_targets_own_resellers_only(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    (await admin.post(f"/accounts/{sp.account_id}/switch-approval", {"enabled": True})).ok()
    customer = await sp.new_account("customer")
    ans = await sp.post("/auth/switch", {"account_id": customer.account_id})
    assert ans.status == 403 and ans["error"] == "switch-not-reseller"
    foreign = await (await admin.new_account("service_provider")).new_account("reseller")
    ans = await sp.post("/auth/switch", {"account_id": foreign.account_id})
    assert ans.status == 404
    reseller = await sp.new_account("reseller")
    refused = await reseller.post("/auth/switch", {"account_id": reseller.account_id})
    assert refused.status == 403 and refused["error"] == "forbidden-role"


async def test_acc10_an_administrator_opts_in_and_out(admin: ApiClient, api: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    setup = (await sp.post("/auth/two-factor")).ok()["otp_setup"]
    creds = {"login": sp.login_name, "password": PASSWORD}
    assert (await api.post("/auth/login", creds)).status == 401  # otp-required from now on
    code = pyotp.TOTP(setup["secret"]).at(clock.now)
    again = await api.as_user(sp.login_name, PASSWORD, otp=f"{code[:3]} {code[3:]}")  # typed with a space
    assert (await again.post("/auth/two-factor")).status == 409
    (await again.call("DELETE", "/auth/two-factor")).ok()
    assert (await api.post("/auth/login", creds)).status == 200


async def test_acc10_provider_switch_does_not_bind_its_customers(admin: ApiClient, api: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    (await sp.call("PUT", f"/accounts/{sp.account_id}/two-factor", {"for_children": True})).ok()
    customer = await sp.new_account("customer")  # logs in without any OTP
    assert customer.token
    required = await customer.call("DELETE", "/auth/two-factor")
    assert required.status == 200


async def test_usr1_own_password_changes_only_with_the_old_one(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    me = (await sp.get("/users")).ok()["items"][0]
    ans = await sp.call("PATCH", f"/users/{me['id']}", {"password": "Another-Strong-Pw-9"})
    assert ans.status == 403 and ans["error"] == "use-password-change"


async def test_usr1_password_may_not_be_the_login(admin: ApiClient) -> None:
    acc = (await admin.post("/accounts", {"type": "customer", "name": "P"})).ok()
    ans = await admin.post(
        "/users",
        {"account_id": acc["id"], "login": "Same-As-Login-1", "password": "Same-As-Login-1", "email": "s@example.test"},
    )
    assert ans.status == 422 and ans["error"] == "weak-password"
