"""Signing in, in a real browser: the password, a wrong one, the TOTP second step, and a form
whose CSRF token was taken out (issue 16's browser tier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    assert_accessible,
    heading,
    open_page,
    sign_in,
)


def _session_cookie(page: Any) -> list[dict[str, Any]]:
    return [c for c in page.context.cookies() if c["name"] == "enrollab_session"]


def test_the_password_signs_in_to_the_dashboard_and_logging_out_ends_the_session(page: Any) -> None:
    page.goto("/")
    expect(heading(page, "Sign in")).to_be_visible()  # signed out: the login form, not the dashboard
    assert_accessible(page)

    sign_in(page, "admin", ADMIN_PASSWORD)
    expect(heading(page, "Dashboard")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Devices")).to_be_visible()
    [cookie] = _session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert_accessible(page)

    page.get_by_role("button", name="Log out").click()
    expect(heading(page, "Sign in")).to_be_visible()
    page.goto("/")
    expect(heading(page, "Sign in")).to_be_visible()


def test_a_wrong_password_is_told_and_signs_nobody_in(page: Any) -> None:
    sign_in(page, "admin", "not-the-password")
    expect(heading(page, "Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("Wrong login name or password.")
    expect(page.get_by_label("Login name")).to_have_value("admin")  # kept; the password is not
    expect(page.get_by_label("Password")).to_have_value("")
    assert not _session_cookie(page)
    page.goto("/jobs")
    expect(heading(page, "Sign in")).to_be_visible()


def test_with_two_factor_on_the_code_is_asked_after_the_password(page: Any, admin_api: Api, tmp_path: Path) -> None:
    admin_api.new_user(admin_api.account_id, "second-factor@example.test")
    user = admin_api.as_user("second-factor@example.test", PASSWORD)
    secret = user.ok("POST", "/auth/two-factor")["otp_setup"]["secret"]

    sign_in(page, "second-factor@example.test", PASSWORD)
    expect(heading(page, "Two-factor code")).to_be_visible()
    assert PASSWORD not in page.content()  # the password waits sealed in a cookie, not in the page
    assert not _session_cookie(page)
    assert_accessible(page)

    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong or expired")
    assert not _session_cookie(page)

    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    expect(heading(page, "Dashboard")).to_be_visible()
    expect(page.get_by_text("second-factor@example.test")).to_be_visible()
    assert _session_cookie(page)


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(page: Any) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    expect(heading(page, "Dashboard")).to_be_visible()
    removed = page.evaluate(
        "() => { const f = document.querySelector('form[action=\"/logout\"]');"
        " const i = f.querySelector('input[name=csrf]'); i.remove(); return !f.querySelector('input[name=csrf]'); }"
    )
    assert removed
    with page.expect_response(lambda r: r.url.endswith("/logout")) as answer:
        page.get_by_role("button", name="Log out").click()
    assert answer.value.status == 403
    expect(heading(page, "Refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("csrf-invalid")

    page.goto("/")  # still signed in: the refused logout did nothing
    expect(heading(page, "Dashboard")).to_be_visible()

    # a forged token is no better
    page.evaluate(
        "() => { document.querySelector('form[action=\"/logout\"] input[name=csrf]').value = '0'.repeat(64); }"
    )
    with page.expect_response(lambda r: r.url.endswith("/logout")) as answer:
        page.get_by_role("button", name="Log out").click()
    assert answer.value.status == 403
    page.goto("/")
    expect(heading(page, "Dashboard")).to_be_visible()


def test_the_tier_s_own_checks_see_a_blocked_script_and_an_unlabelled_field(browser: Any, portal_server: Any) -> None:
    """The CSP watch and the axe check are live: an inline script the policy blocks and a field
    without a label are both reported (so their silence on the real pages means something)."""
    context, pg, problems = open_page(browser, portal_server.url)
    try:
        pg.goto("/login")
        assert not problems
        pg.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                    " document.body.append(s); }")
        assert pg.evaluate("() => window.ran === undefined")  # blocked
        for _ in range(100):  # the violation event is queued as a task: let it arrive
            if problems.console:
                break
            pg.wait_for_timeout(50)
        assert any("CSP violation: script-src" in m for m in problems.console), problems
        pg.evaluate("() => { const i = document.createElement('input'); document.querySelector('form').append(i); }")
        with pytest.raises(AssertionError, match="label"):
            assert_accessible(pg)
    finally:
        context.close()
