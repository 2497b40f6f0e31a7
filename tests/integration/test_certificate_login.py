"""USR-3 certificate login over real TLS: `enrollab serve --admin-tls`, an account's client root
CA (`PUT /accounts/{id}/login-ca`), `POST /auth/certificate` with a user certificate presented in
the handshake — by aiohttp and by curl (a client we did not write). Throwaway CAs from trustme.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
import trustme

from server.runner import Running, ServeConfig, start
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import ApiClient
from tests.integration.portal_client import Portal, field

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def tls_server(tmp_path: Path, db_url: str) -> AsyncIterator[Running]:
    cfg = ServeConfig(data_dir=tmp_path / "tls-data", db_url=db_url, admin_port=0, admin_tls=True, webhook_interval=0)
    running = await start(cfg, admin_password=ADMIN_PASSWORD)
    yield running
    await running.stop()


def _server_trust(running: Running) -> ssl.SSLContext:
    pki = running.opened.ctx.pki
    assert pki is not None
    return ssl.create_default_context(cafile=str(pki.tls_ca_path))


def _client(running: Running, cert: trustme.LeafCert | None = None, token: str | None = None) -> ApiClient:
    """An admin-API client over HTTPS trusting the server, presenting `cert` when given."""
    trust = _server_trust(running)
    if cert is not None:
        cert.configure_cert(trust)
    return ApiClient(running.admin_url, token=token, tls=trust)


@pytest.fixture
async def admin(tls_server: Running) -> AsyncIterator[ApiClient]:
    client = _client(tls_server)
    yield await client.as_user("admin", ADMIN_PASSWORD)
    await client.close()


async def _with_cert(running: Running, cert: trustme.LeafCert | None, body: Any = None) -> tuple[int, Any]:
    client = _client(running, cert)
    try:
        answer = await client.post("/auth/certificate", body if body is not None else {})
        return answer.status, answer.body
    finally:
        await client.close()


def _user_cert(ca: trustme.CA, login: str) -> trustme.LeafCert:
    return ca.issue_cert(login, common_name=login)


async def test_a_user_certificate_from_the_accounts_client_root_ca_logs_in(
    tls_server: Running, admin: ApiClient
) -> None:
    customer = await admin.new_account("customer")
    ca = trustme.CA()
    put = (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                               {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    assert put["login_ca"]["fingerprint"] and put["certificate_login"] is True

    status, body = await _with_cert(tls_server, _user_cert(ca, customer.login_name))
    assert status == 200, body
    assert body["account_id"] == customer.account_id and body["role"] == "customer"
    me = _client(tls_server, token=body["token"])
    try:
        assert (await me.get("/auth/me")).ok()["login"] == customer.login_name
    finally:
        await me.close()
    log = (await admin.get("/logs", process="LOGIN")).ok()["items"]
    assert any(f"certificate login {customer.login_name}" in (e.get("message") or "") for e in log), log[:3]


async def test_a_certificate_whose_cn_is_not_the_login_name_is_refused(tls_server: Running, admin: ApiClient) -> None:
    customer = await admin.new_account("customer")
    other = await admin.new_account("customer")
    ca = trustme.CA()
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    status, body = await _with_cert(tls_server, _user_cert(ca, customer.login_name.upper()))
    assert (status, body["error"]) == (401, "certificate-refused"), body
    # A user of another account with the same CA's certificate: that account has no such CA.
    status, body = await _with_cert(tls_server, _user_cert(ca, other.login_name))
    assert (status, body["error"]) == (401, "certificate-refused"), body
    assert "client root CA" in body["detail"]


async def test_one_accounts_ca_never_logs_in_another_accounts_administrator(
    tls_server: Running, admin: ApiClient
) -> None:
    victim, attacker = await admin.new_account("customer"), await admin.new_account("customer")
    victim_ca, attacker_ca = trustme.CA(), trustme.CA()
    for client, ca in ((victim, victim_ca), (attacker, attacker_ca)):
        (await client.call("PUT", f"/accounts/{client.account_id}/login-ca",
                           {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    status, body = await _with_cert(tls_server, _user_cert(attacker_ca, victim.login_name))
    assert (status, body["error"]) == (401, "certificate-refused"), body
    # And the attacker may not replace the victim's CA: that account is outside its hierarchy.
    put = await attacker.call("PUT", f"/accounts/{victim.account_id}/login-ca",
                              {"certificate_pem": attacker_ca.cert_pem.bytes().decode()})
    assert put.status == 404
    assert (await _with_cert(tls_server, _user_cert(victim_ca, victim.login_name)))[0] == 200


async def test_without_a_client_certificate_or_over_plain_http_it_says_what_is_needed(
    tls_server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    status, body = await _with_cert(tls_server, None)
    assert (status, body["error"]) == (401, "certificate-required"), body
    server = await start(ServeConfig(data_dir=tmp_path / "plain", db_url=f"sqlite:///{tmp_path / 'plain.db'}",
                                     admin_port=0, webhook_interval=0), admin_password=ADMIN_PASSWORD)
    plain = ApiClient(server.admin_url)  # a plain-HTTP admin listener
    try:
        answer = await plain.post("/auth/certificate", {})
    finally:
        await plain.close()
        await server.stop()
    assert (answer.status, answer.body["error"]) == (401, "certificate-required")
    assert "--admin-tls" in answer.body["detail"]


async def test_a_certificate_from_an_untrusted_ca_ends_the_handshake(tls_server: Running, admin: ApiClient) -> None:
    customer = await admin.new_account("customer")
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": trustme.CA().cert_pem.bytes().decode()})).ok()
    with pytest.raises(aiohttp.ClientError):
        await _with_cert(tls_server, _user_cert(trustme.CA(), customer.login_name))


async def test_two_factor_still_asks_for_the_code_after_the_certificate(tls_server: Running, admin: ApiClient) -> None:
    customer = await admin.new_account("customer")
    (await customer.call("PUT", f"/accounts/{customer.account_id}/two-factor", {"enabled": True})).ok()
    ca = trustme.CA()
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    cert = _user_cert(ca, customer.login_name)
    status, first = await _with_cert(tls_server, cert)
    assert status == 200 and "otp_setup" in first, first  # first login under 2FA: the secret to scan
    status, body = await _with_cert(tls_server, cert)
    assert (status, body["error"]) == (401, "otp-required"), body
    code = pyotp.TOTP(first["otp_setup"]["secret"]).now()
    status, body = await _with_cert(tls_server, cert, {"otp": code})
    assert status == 200 and body["token"], body


async def test_a_removed_or_disabled_account_logs_in_no_more(tls_server: Running, admin: ApiClient) -> None:
    customer = await admin.new_account("customer")
    ca = trustme.CA()
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    cert = _user_cert(ca, customer.login_name)
    assert (await _with_cert(tls_server, cert))[0] == 200
    (await admin.post(f"/accounts/{customer.account_id}/disable")).ok()
    status, body = await _with_cert(tls_server, cert)
    assert (status, body["error"]) == (401, "account-disabled"), body
    (await admin.post(f"/accounts/{customer.account_id}/enable")).ok()
    gone = (await admin.call("DELETE", f"/accounts/{customer.account_id}/login-ca")).ok()
    assert gone["login_ca"] is None
    status, body = await _with_cert(tls_server, cert)  # the TLS layer still trusts it; the rule does not
    assert (status, body["error"]) == (401, "certificate-refused"), body


async def test_an_uploaded_client_root_ca_must_be_one_valid_ca_certificate(
    tls_server: Running, admin: ApiClient
) -> None:
    customer = await admin.new_account("customer")
    ca = trustme.CA()
    leaf = ca.issue_cert("x.example.test")
    path = f"/accounts/{customer.account_id}/login-ca"
    for pem in ("not a certificate", leaf.cert_chain_pems[0].bytes().decode(),
                ca.cert_pem.bytes().decode() * 2):
        answer = await customer.call("PUT", path, {"certificate_pem": pem})
        assert (answer.status, answer.body["error"]) == (422, "invalid-login-ca"), answer.body
    assert (await customer.get(path)).ok()["login_ca"] is None


async def test_curl_logs_in_with_a_user_certificate(tls_server: Running, admin: ApiClient, tmp_path: Path) -> None:
    """A client we did not write: curl presenting the certificate and key from PEM files."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    customer = await admin.new_account("customer")
    ca = trustme.CA()
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    cert = _user_cert(ca, customer.login_name)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "user.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "user.key"))
    pki = tls_server.opened.ctx.pki
    assert pki is not None
    out = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "--cacert", str(pki.tls_ca_path), "--cert", str(tmp_path / "user.crt"),
         "--key", str(tmp_path / "user.key"), "-H", "Content-Type: application/json", "-d", "{}",
         f"{tls_server.admin_url}/api/v1/auth/certificate"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["account_id"] == customer.account_id and answer["token"]


async def test_the_portal_signs_in_with_the_browsers_certificate_then_asks_for_the_code(
    tls_server: Running, admin: ApiClient
) -> None:
    customer = await admin.new_account("customer")
    ca = trustme.CA()
    (await customer.call("PUT", f"/accounts/{customer.account_id}/login-ca",
                         {"certificate_pem": ca.cert_pem.bytes().decode()})).ok()
    trust = _server_trust(tls_server)
    _user_cert(ca, customer.login_name).configure_cert(trust)
    portal = Portal(tls_server.admin_url, tls=trust)
    try:
        _, page = await portal.get("/login")
        assert "Sign in with your certificate" in page
        status, _, location = await portal.post(
            "/login/certificate", {"login_csrf": field(page, "login_csrf"), "next": "/"}, csrf=False)
        assert (status, location) == (303, "/"), location
        cookie = next(c for c in portal.http.cookie_jar if c.key == "enrollab_session")
        assert cookie["secure"] and cookie["httponly"]
        status, page = await portal.get("/")
        assert status == 200 and "<h1>Dashboard</h1>" in page
        # With 2FA on, the certificate is the first factor and the code the second.
        (await admin.call("PUT", f"/accounts/{customer.account_id}/two-factor", {"enabled": True})).ok()
        secret = None
        for _ in range(2):
            portal.http.cookie_jar.clear()
            _, page = await portal.get("/login")
            status, page, location = await portal.post(
                "/login/certificate", {"login_csrf": field(page, "login_csrf"), "next": "/"}, csrf=False)
            if secret is None:  # first login under 2FA: the secret, shown once
                assert status == 200 and "otp" in page.lower()
                secret = re.search(r"\b([A-Z2-7]{32})\b", page)
                assert secret is not None, page
                continue
        assert status == 303 and location.startswith("/login/otp"), (status, location)
        _, page = await portal.get(location)
        status, _, location = await portal.post(
            "/login/otp", {"login_csrf": field(page, "login_csrf"), "otp": pyotp.TOTP(secret.group(1)).now(),
                           "next": "/"}, csrf=False)
        assert (status, location) == (303, "/")
    finally:
        await portal.close()


async def test_the_portal_over_plain_http_offers_no_certificate_login(server: Running) -> None:
    portal = Portal(server.admin_url)
    try:
        _, page = await portal.get("/login")
        assert "Sign in with your certificate" not in page
    finally:
        await portal.close()
