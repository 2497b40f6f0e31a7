"""USR-3 in a real browser: Chromium presents a user certificate (Playwright's client
certificates) to the portal served by `enrollab serve --admin-tls`, and "Sign in with your
certificate" signs in; one from another account's CA is refused with the reason."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    Api,
    PortalServer,
    assert_accessible,
    heading,
    open_page,
    serve_portal,
)


@pytest.fixture(scope="module")
def tls_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    yield from serve_portal(tmp_path_factory, admin_tls=True)


@pytest.fixture(scope="module")
def tls_admin(tls_portal: PortalServer) -> Api:
    pki = tls_portal.running.opened.ctx.pki
    return Api(tls_portal.url, tls=ssl.create_default_context(cafile=str(pki.tls_ca_path))).as_user(
        "admin", ADMIN_PASSWORD)


def _certificate_page(browser: Any, server: PortalServer, cert: trustme.LeafCert,
                      tmp_path: Path) -> tuple[Any, Any, Any]:
    crt, key = tmp_path / "user.crt", tmp_path / "user.key"
    cert.cert_chain_pems[0].write_to_path(str(crt))
    cert.private_key_pem.write_to_path(str(key))
    context, page, problems = open_page(
        browser, server.url, ignore_https_errors=True,  # the lab's server CA is not in Chromium's store
        client_certificates=[{"origin": server.url, "certPath": str(crt), "keyPath": str(key)}],
    )
    return context, page, problems


def test_the_browsers_certificate_signs_in_and_another_accounts_ca_does_not(
    browser: Any, tls_portal: PortalServer, tls_admin: Api, tmp_path: Path
) -> None:
    customer = tls_admin.new_account("customer", "Certificate Customer")
    ca, foreign_ca = trustme.CA(), trustme.CA()
    customer.ok("PUT", f"/accounts/{customer.account_id}/login-ca", {"certificate_pem": ca.cert_pem.bytes().decode()})
    other = tls_admin.new_account("customer", "Other Customer")
    other.ok("PUT", f"/accounts/{other.account_id}/login-ca", {"certificate_pem": foreign_ca.cert_pem.bytes().decode()})

    context, page, problems = _certificate_page(
        browser, tls_portal, ca.issue_cert(customer.login, common_name=customer.login), tmp_path)
    try:
        page.goto("/login")
        expect(heading(page, "Sign in")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("button", name="Sign in with your certificate").click()
        expect(heading(page, "Dashboard")).to_be_visible()
        [cookie] = [c for c in context.cookies() if c["name"] == "enrollab_session"]
        assert cookie["secure"] and cookie["httpOnly"]
    finally:
        context.close()

    # The right name, but issued by another account's client root CA: refused, and told why.
    assert not problems, f"the browser reported problems: {problems}"
    context, page, problems = _certificate_page(
        browser, tls_portal, foreign_ca.issue_cert(customer.login, common_name=customer.login), tmp_path)
    try:
        page.goto("/login")
        page.get_by_role("button", name="Sign in with your certificate").click()
        expect(heading(page, "Sign in")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("not issued by the account's client root CA")
        assert not [c for c in context.cookies() if c["name"] == "enrollab_session"]
    finally:
        context.close()
    assert not problems, f"the browser reported problems: {problems}"
