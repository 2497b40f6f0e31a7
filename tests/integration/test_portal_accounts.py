"""Portal accounts, administrators, links and notifications over a real socket (issue 16)."""

from __future__ import annotations

import re

from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.portal_client import Portal, signed_in

TEMPORARY = "Portal-Temporary-Pw-7"


def _alert(page: str) -> str:
    found = re.search(r'role="alert">(.*?)</p>', page, re.S)
    return found.group(1) if found else ""


async def test_the_platform_admin_adds_an_account_and_an_administrator_who_must_choose_a_password(
    server: Running, admin: ApiClient
) -> None:
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    newcomer = Portal(server.admin_url)
    try:
        status, _, location = await portal.post("/accounts", {"type": "service_provider", "name": "Portal Telecom"})
        assert status == 303 and location.startswith("/accounts/")
        account_id = location.split("/")[2].split("?")[0]
        status, page = await portal.get(location)
        assert status == 200 and "<h1>Account Portal Telecom</h1>" in page and "The account was created." in page
        status, page = await portal.get("/accounts")
        assert f'href="/accounts/{account_id}">Portal Telecom</a>' in page

        status, _, location = await portal.post("/users", {
            "account_id": account_id, "login": "ops@portal.test", "password": TEMPORARY,
            "email": "ops@portal.test", "first_name": "Olga", "last_name": "Ops", "locale": "de-DE",
        })
        assert status == 303 and location.startswith("/users/")
        status, page = await portal.get(location)
        assert status == 200 and "ops@portal.test" in page and "temporary" in page
        assert TEMPORARY not in page and "$argon2" not in page  # never a password or its hash
        status, page = await portal.get("/users")
        assert "ops@portal.test" in page and TEMPORARY not in page and "$argon2" not in page

        # USR-1: the temporary password signs in, and every page sends the newcomer to /password first.
        status, _, location = await newcomer.login("ops@portal.test", TEMPORARY)
        assert status == 303 and location == "/password"
        status, _ = await newcomer.get("/accounts", allow_redirects=False)
        assert status == 303
        status, page = await newcomer.get("/accounts")
        assert "Change password" in page and "choose your own" in page
        status, _, location = await newcomer.post("/password", {
            "old_password": TEMPORARY, "new_password": PASSWORD, "new_password_again": PASSWORD,
        })
        assert status == 303 and location == "/?changed=password"
        status, page = await newcomer.get("/accounts")
        assert status == 200 and "Portal Telecom" in page
    finally:
        await portal.close()
        await newcomer.close()


async def test_a_customer_admin_sees_only_its_own_subtree(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    mine = await sp.new_account("customer", name="Customer Mine")
    theirs = await sp.new_account("customer", name="Customer Theirs")
    portal = await signed_in(server.admin_url, mine.login_name, PASSWORD)
    try:
        status, page = await portal.get("/accounts")
        assert status == 200 and "Customer Mine" in page
        assert "Customer Theirs" not in page and theirs.account_id not in page
        status, page = await portal.get(f"/accounts/{theirs.account_id}")
        assert status == 404 and "Not found" in page and "Customer Theirs" not in page
        status, page = await portal.get(f"/accounts/{mine.account_id}")
        assert status == 200 and "Customer Mine" in page
        status, page = await portal.get("/users")
        assert mine.login_name in page and theirs.login_name not in page
        # the customer creates no accounts (ACC-2): no form, and the API refuses a forged POST
        assert 'action="/accounts"' not in page
        status, page, _ = await portal.post("/accounts", {"type": "customer", "name": "Sneaky"})
        assert status == 403 and "forbidden-role" in page
        assert "Sneaky" not in str((await admin.get("/accounts", name="Sneaky")).ok())
    finally:
        await portal.close()


async def test_which_type_may_be_created_is_the_apis_answer_and_a_refusal_changes_nothing(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    portal = await signed_in(server.admin_url, reseller.login_name, PASSWORD)
    try:
        before = (await admin.get("/accounts")).ok()["total"]
        status, page, _ = await portal.post("/accounts", {"type": "reseller", "name": "Reseller Below"})
        assert 400 <= status < 500 and _alert(page)  # ACC-2: a reseller never creates a reseller
        assert 'value="Reseller Below"' in page  # what was typed is kept
        assert (await admin.get("/accounts")).ok()["total"] == before
        status, _, location = await portal.post("/accounts", {"type": "customer", "name": "Customer Below"})
        assert status == 303
        status, page = await portal.get("/accounts")
        assert "Customer Below" in page
    finally:
        await portal.close()


async def test_account_settings_and_switching_to_a_reseller(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider", name="Switching SP")
    reseller = await sp.new_account("reseller", name="Reseller Target", bp_link_id="BP-TARGET")
    platform = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    provider = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        # the platform approves switching; the service provider then sees the button and switches
        status, page = await platform.get(f"/accounts/{sp.account_id}")
        assert "Allow this service provider to switch" in page and "not approved" in page
        status, _, _ = await platform.post(f"/accounts/{sp.account_id}/switch-approval", {"enabled": "on"})
        assert status == 303
        assert (await admin.get(f"/accounts/{sp.account_id}")).ok()["switch_approved"] is True
        status, page = await provider.get(f"/accounts/{reseller.account_id}")
        assert "Switch to this account" in page
        status, _, location = await provider.post("/switch", {"account_id": reseller.account_id})
        assert status == 303 and location == "/"
        status, page = await provider.get("/")
        assert "Reseller Target" in page and "Return to my account" in page
        await provider.post("/switch/exit")

        # edit, two-factor, claim policy, disable and enable, each through its form
        status, _, _ = await provider.post(f"/accounts/{reseller.account_id}", {
            "name": "Reseller Renamed", "bp_link_id": "BP-TARGET", "sap_id": "", "contact_email": "r@example.test",
        })
        assert status == 303
        status, _, _ = await provider.post(f"/accounts/{reseller.account_id}/two-factor", {"enabled": "on"})
        assert status == 303
        status, _, _ = await provider.post(f"/accounts/{reseller.account_id}/claim-policy",
                                           {"label_code_required": "on"})
        assert status == 303
        status, page = await provider.get(f"/accounts/{reseller.account_id}")
        assert "Reseller Renamed" in page and "r@example.test" in page
        facts = (await admin.get(f"/accounts/{reseller.account_id}")).ok()
        assert facts["two_factor"] is True and facts["contact"] == {"email": "r@example.test"}
        assert (await admin.get(f"/accounts/{reseller.account_id}/claim-policy")).ok()["label_code_required"]
        # only a service provider sets 2FA for its children: the refusal is drawn next to the form
        status, page, _ = await provider.post(f"/accounts/{reseller.account_id}/two-factor",
                                              {"children_shown": "1", "for_children": "on"})
        assert status == 403 and "two-factor-children" in page
        status, _, _ = await provider.post(f"/accounts/{reseller.account_id}/disable")
        assert status == 303
        assert (await admin.get(f"/accounts/{reseller.account_id}")).ok()["enabled"] is False
        status, _, _ = await provider.post(f"/accounts/{reseller.account_id}/enable")
        assert status == 303
        assert (await admin.get(f"/accounts/{reseller.account_id}")).ok()["enabled"] is True
        # the API refuses a type change in the edit form: no such field is even offered
        status, page = await provider.get(f"/accounts/{reseller.account_id}")
        assert 'name="type"' not in page
    finally:
        await platform.close()
        await provider.close()


async def test_a_link_request_is_sent_and_approved_on_the_links_page(server: Running, admin: ApiClient) -> None:
    sp_a = await admin.new_account("service_provider")
    sp_b = await admin.new_account("service_provider")
    reseller = await sp_b.new_account("reseller", name="Far Reseller", bp_link_id="BP-FAR")
    provider = await signed_in(server.admin_url, sp_a.login_name, PASSWORD)
    decider = await signed_in(server.admin_url, reseller.login_name, PASSWORD)
    try:
        status, page, _ = await provider.post("/links", {"bp_link_id": "BP-NOBODY"})
        assert status == 404 and "unknown-bp-link-id" in page and 'value="BP-NOBODY"' in page
        status, _, location = await provider.post("/links", {"bp_link_id": "BP-FAR"})
        assert status == 303 and location == "/links?done=requested"
        status, page = await provider.get("/links")
        assert "Far Reseller" in page and "PENDING" in page and "/approve" not in page
        status, page = await decider.get("/links")
        link_id = re.search(r'action="/links/(\d+)/approve"', page)
        assert link_id is not None
        status, _, _ = await decider.post(f"/links/{link_id.group(1)}/approve")
        assert status == 303
        status, page = await provider.get("/links")
        assert "APPROVED" in page
        status, page, _ = await decider.post(f"/links/{link_id.group(1)}/reject")
        assert status == 409 and "link-request-decided" in page
    finally:
        await provider.close()
        await decider.close()


async def test_administrators_are_edited_given_a_temporary_password_and_deleted(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, _, location = await portal.post("/users", {
            "account_id": sp.account_id, "login": "second@sp.test", "password": TEMPORARY, "email": "second@sp.test",
        })
        assert status == 303
        user_path = location.split("?")[0]
        # a refused create keeps what was typed, never the password
        status, page, _ = await portal.post("/users", {
            "account_id": sp.account_id, "login": "second@sp.test", "password": TEMPORARY, "email": "second@sp.test",
        })
        assert status == 409 and "login-taken" in page and 'value="second@sp.test"' in page and TEMPORARY not in page
        status, _, _ = await portal.post(user_path, {"email": "renamed@sp.test", "first_name": "Sam",
                                                     "last_name": "Second", "locale": "en"})
        assert status == 303
        status, page = await portal.get(user_path)
        assert "renamed@sp.test" in page and "Sam Second" in page
        status, page, _ = await portal.post(user_path + "/password", {"password": "short", "password_again": "short"})
        assert 400 <= status < 500 and _alert(page) and "short" not in _alert(page)
        status, _, _ = await portal.post(user_path + "/password",
                                         {"password": "Another-Temp-Pw-8", "password_again": "Another-Temp-Pw-8"})
        assert status == 303
        second = Portal(server.admin_url)
        try:
            status, _, location = await second.login("second@sp.test", "Another-Temp-Pw-8")
            assert status == 303 and location == "/password"
        finally:
            await second.close()
        status, page = await portal.get(user_path + "/delete")
        assert "Delete administrator second@sp.test?" in page
        status, _, location = await portal.post(user_path + "/delete")
        assert status == 303 and location == "/users?done=deleted"
        status, page = await portal.get(user_path)
        assert status == 404
    finally:
        await portal.close()


async def test_notification_settings_are_saved_and_the_outbox_shows_no_secret(
    server: Running, admin: ApiClient, api: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    (await api.post("/auth/reset-request", {"login": sp.login_name})).ok()
    raw = (await admin.get("/notifications/outbox", kind="user-password-reset")).ok()["items"]
    token = re.search(r"token: (\S+)", raw[0]["body"])
    assert token is not None  # the platform's API answer carries it
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    provider = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        for who in (portal, provider):
            status, page = await who.get("/notifications?kind=user-password-reset")
            assert status == 200 and "User Password Reset" in page
            assert token.group(1) not in page
        # untick every box but one: the unticked kinds are off
        status, _, location = await provider.post("/notifications/settings", {"account-linking": "on"})
        assert status == 303 and location == "/notifications?done=saved"
        settings = (await sp.get("/notifications/settings")).ok()
        assert settings["account-linking"] is True and settings["claiming-device"] is False
        # without the CSRF token nothing changes
        status, _, _ = await provider.post("/notifications/settings", {"claiming-device": "on"}, csrf=False)
        assert status == 403
        assert (await sp.get("/notifications/settings")).ok()["claiming-device"] is False
    finally:
        await portal.close()
        await provider.close()


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(server: Running, admin: ApiClient) -> None:
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        before = (await admin.get("/accounts")).ok()["total"]
        status, page, _ = await portal.post("/accounts", {"type": "service_provider", "name": "No Token"}, csrf=False)
        assert status == 403 and "csrf-invalid" in page
        status, _, _ = await portal.post("/accounts", {"type": "service_provider", "name": "Forged",
                                                       "csrf": "0" * 64}, csrf=False)
        assert status == 403
        assert (await admin.get("/accounts")).ok()["total"] == before
        status, _, _ = await portal.post("/users", {"account_id": "00000000", "login": "x@y.test",
                                                    "password": TEMPORARY, "email": "x@y.test"}, csrf=False)
        assert status == 403
        assert all(u["login"] != "x@y.test" for u in (await admin.get("/users")).ok()["items"])
        me = (await admin.get("/auth/me")).ok()
        status, _, _ = await portal.post(f"/accounts/{me['account_id']}/two-factor", {"enabled": "on"}, csrf=False)
        assert status == 403
        assert (await admin.get(f"/accounts/{me['account_id']}")).ok()["two_factor"] is False
    finally:
        await portal.close()


async def test_an_account_is_deleted_after_a_confirmation_and_another_hierarchy_cannot_be(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider", name="Other SP")
    doomed = await sp.new_account("reseller", name="Doomed Reseller")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page = await portal.get(f"/accounts/{doomed.account_id}/delete")
        assert status == 200 and "Delete account Doomed Reseller?" in page
        status, _, location = await portal.post(f"/accounts/{doomed.account_id}/delete")
        assert status == 303 and location.startswith("/accounts?deleted=1")
        status, page = await portal.get(location)
        assert "1 account(s) deleted" in page and "Doomed Reseller" not in page
        assert (await admin.get(f"/accounts/{doomed.account_id}")).status == 404
        status, page, _ = await portal.post(f"/accounts/{other.account_id}/delete")
        assert status == 404 and "Other SP" not in page
        assert (await admin.get(f"/accounts/{other.account_id}")).ok()["name"] == "Other SP"
    finally:
        await portal.close()


async def test_the_pages_carry_no_inline_script_or_style_and_one_heading(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        users = (await admin.get("/users", account_id=sp.account_id)).ok()["items"]
        for path in ("/accounts", f"/accounts/{sp.account_id}", f"/accounts/{sp.account_id}/delete", "/links",
                     "/users", f"/users/{users[0]['id']}", f"/users/{users[0]['id']}/delete", "/logs",
                     "/notifications"):
            status, page = await portal.get(path)
            assert status == 200, path
            assert "style=" not in page and "<script>" not in page, path
            assert page.count("<h1") == 1, path
            fields = re.findall(r'<(?:input|select) (?![^>]*type="hidden")[^>]*id="([^"]+)"', page)
            assert all(f'for="{i}"' in page for i in fields), path  # every field has its label
    finally:
        await portal.close()
