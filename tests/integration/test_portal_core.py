"""The portal's core over a real socket: sign-in, the dashboard's figures, sessions, CSRF, headers."""

from __future__ import annotations

import pyotp

from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import ApiClient
from tests.integration.portal_client import Portal, field, signed_in


async def test_sign_in_shows_the_dashboard_and_every_page_carries_a_strict_policy(server: Running) -> None:
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        async with portal.http.get(server.admin_url + "/") as r:
            page = await r.text()
            assert r.status == 200
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Cache-Control"] == "no-store"
        assert "<h1>Dashboard</h1>" in page and "Wrong codes" in page and "Locked out" in page
        assert "<script>" not in page and "style=" not in page  # nothing inline for the CSP to refuse
        cookie = next(c for c in portal.http.cookie_jar if c.key == "enrollab_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    finally:
        await portal.close()


async def test_a_wrong_password_stays_on_the_login_form_without_a_session(server: Running) -> None:
    portal = Portal(server.admin_url)
    try:
        status, page, _ = await portal.login("admin", "not-the-password")
        assert status == 401 and "Wrong login name or password." in page
        assert not any(c.key == "enrollab_session" for c in portal.http.cookie_jar)
        status, _ = await portal.get("/", allow_redirects=False)
        assert status == 303
    finally:
        await portal.close()


async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(server: Running, admin: ApiClient) -> None:
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page, _ = await portal.post("/logout", csrf=False)
        assert status == 403 and "csrf-invalid" in page
        status, page, _ = await portal.post("/logout", {"csrf": "0" * 64}, csrf=False)
        assert status == 403
        assert (await portal.get("/"))[0] == 200  # still signed in
        # another origin's form, even with the right token
        status, _, _ = await portal.post("/logout", headers={"Origin": "http://evil.example"})
        assert status == 403
        status, _, location = await portal.post("/logout")
        assert status == 303 and location == "/login"
        status, _ = await portal.get("/", allow_redirects=False)
        assert status == 303  # the token is gone
    finally:
        await portal.close()


async def test_login_form_refuses_a_post_without_its_own_token(server: Running) -> None:
    portal = Portal(server.admin_url)
    try:
        status, page, _ = await portal.post(
            "/login", {"login": "admin", "password": ADMIN_PASSWORD, "login_csrf": "forged"}, csrf=False
        )
        assert status == 403 and not any(c.key == "enrollab_session" for c in portal.http.cookie_jar)
    finally:
        await portal.close()


async def test_two_factor_sign_in_asks_for_the_code_after_the_password(server: Running, admin: ApiClient) -> None:
    setup = (await admin.post("/auth/two-factor")).ok()
    secret = setup["otp_setup"]["secret"]
    portal = Portal(server.admin_url)
    try:
        _, page = await portal.get("/login")
        status, _, location = await portal.post(
            "/login", {"login_csrf": field(page, "login_csrf"), "login": "admin", "password": ADMIN_PASSWORD},
            csrf=False,
        )
        assert status == 303 and location.startswith("/login/otp")
        _, page = await portal.get(location)
        assert ADMIN_PASSWORD not in page and "Two-factor code" in page
        status, page, _ = await portal.post("/login/otp", {"login_csrf": field(page, "login_csrf"), "otp": "000000"},
                                            csrf=False)
        assert status == 401 and "wrong or expired" in page
        code = pyotp.TOTP(secret).at(server.opened.ctx.clock())
        status, _, location = await portal.post("/login/otp", {"login_csrf": field(page, "login_csrf"), "otp": code},
                                                csrf=False)
        assert status == 303 and location == "/"
        assert (await portal.get("/"))[0] == 200
    finally:
        await portal.close()


async def test_next_after_sign_in_stays_on_this_portal(server: Running) -> None:
    portal = Portal(server.admin_url)
    try:
        _, page = await portal.get("/login?next=//evil.example/x")
        status, _, location = await portal.post(
            "/login",
            {"login_csrf": field(page, "login_csrf"), "login": "admin", "password": ADMIN_PASSWORD,
             "next": "//evil.example/x"},
            csrf=False,
        )
        assert status == 303 and location == "/"
    finally:
        await portal.close()


async def test_the_dashboard_shows_wrong_codes_and_the_lockout_they_caused(server: Running, admin: ApiClient) -> None:
    """Issue 13's guessing figures on the portal's dashboard: three wrong codes lock a device (LCK-2)."""
    import re

    from tests.integration.device_client import Phone, import_phones, new_customer

    cust = await new_customer(admin)
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    (await cust.customer.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    for _ in range(3):
        await phone.enroll(code="99999999")
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        _, page = await portal.get("/")
        figures = dict((label, int(n)) for n, label in re.findall(
            r'<span class="n">(\d+)</span><span class="l">([^<]+)</span>', page))
        assert figures["Wrong codes"] == 3 and figures["Lockouts"] == 1 and figures["Locked out"] == 1
        assert "1 device(s) locked out after wrong codes" in page
    finally:
        await portal.close()
