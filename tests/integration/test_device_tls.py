"""The device listener's mutual TLS (PROTOCOL §2, ENR-1): no certificate, a foreign CA, an
expired or a revoked factory certificate end the handshake; the listener keeps serving."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from server.pki import CertificateAuthority, issue_factory_certificate
from server.pki.tls import client_context
from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, enrollment_log, import_phones, next_mac

REFUSED = (aiohttp.ClientError, ssl.SSLError, ConnectionError)


@pytest.fixture(autouse=True)
async def quiet_handshakes() -> AsyncIterator[None]:
    """Failed handshakes are the point here; asyncio would report each one."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, _ctx: None)
    yield
    loop.set_exception_handler(previous)


async def _post(context: ssl.SSLContext, url: str) -> int:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, force_close=True)) as session,
        session.post(url + "/device/v1/enroll", json={}) as resp,
    ):
        return resp.status


def _server_ca(server: Running) -> bytes:
    pki = server.opened.ctx.pki
    assert pki is not None
    return pki.tls_ca_path.read_bytes()


async def test_enr1_no_client_certificate_ends_the_handshake(server: Running) -> None:
    with pytest.raises(REFUSED):
        await _post(client_context(_server_ca(server)), server.device_url)


async def test_enr1_certificate_of_a_foreign_manufacturer_ends_the_handshake(server: Running) -> None:
    foreign = CertificateAuthority.create("Rogue Manufacturer CA", organization="Rogue")
    cert = issue_factory_certificate(foreign, mac=next_mac(), serial="SNROGUE1", model="J179")
    context = client_context(_server_ca(server), cert.cert_pem, cert.key_pem)
    with pytest.raises(REFUSED):
        await _post(context, server.device_url)
    assert await enrollment_log(server) == []  # nothing reached the application


async def test_enr1_expired_factory_certificate_ends_the_handshake(server: Running) -> None:
    now = datetime.now(UTC)
    phone = Phone.make(server, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    with pytest.raises(REFUSED):
        await phone.enroll()


async def test_enr1_revoked_factory_certificate_ends_the_handshake(server: Running, admin: ApiClient) -> None:
    phone, other = Phone.make(server), Phone.make(server)
    await import_phones(admin, [phone, other])
    assert (await phone.enroll())["result"] == "code_required"
    pki = server.opened.ctx.pki
    assert pki is not None

    pki.revoke_factory(phone.factory.thumbprint)
    server.reload_device_trust()

    with pytest.raises(REFUSED):
        await phone.enroll()
    # The listener is unharmed: the other phone still enrolls.
    assert (await other.enroll())["result"] == "code_required"
