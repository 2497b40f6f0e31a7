"""Real TLS handshakes on loopback against `device_server_context` (PROTOCOL §2, ENR-1), and
interoperability with the `openssl` and `curl` binaries (EST by hand, ENR-8)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.cli import main as cli
from server.pki import CertificateAuthority, FactoryCertificate, Pki, ensure_pki, est, issue_factory_certificate, tls

MAC = "A4251B0C3D5E"
HOST = "127.0.0.1"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")


@pytest.fixture(params=["ecdsa-p256", "rsa-2048"])
def pki(request: pytest.FixtureRequest, tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "data", key_type=request.param)


@pytest.fixture
def ec_pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "data")


@dataclass
class Listener:
    """An asyncio TLS server on loopback answering each accepted client with its peer identity."""

    context: ssl.SSLContext
    port: int = 0
    accepted: list[tls.PeerIdentity | None] = field(default_factory=list)


@pytest.fixture
async def listener(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[Pki], Any]]:
    servers: list[asyncio.Server] = []

    async def start(pki: Pki) -> Listener:
        state = Listener(tls.device_server_context(pki))

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            identity = tls.peer_identity(writer.transport)
            state.accepted.append(identity)
            writer.write(json.dumps(identity._asdict() if identity else None).encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, HOST, 0, ssl=state.context)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, _ctx: None)  # failed handshakes are the point here
    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def attempt(port: int, context: ssl.SSLContext) -> dict[str, Any] | BaseException:
    """Connect and read the server's answer: the identity (a dict) or why there was none."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, ssl=context, server_hostname=HOST), 10
        )
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        return exc
    if not data:
        return ConnectionResetError("closed without an answer")
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


def client(pki: Pki, issued: FactoryCertificate | None, *, tls12: bool = False) -> ssl.SSLContext:
    ca = pki.tls_ca_path.read_bytes()
    context = tls.client_context(ca, issued.cert_pem, issued.key_pem) if issued else tls.client_context(ca)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


VERSIONS = pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])


# --- handshakes -------------------------------------------------------------------------------


@VERSIONS
async def test_factory_certificate_handshake_and_peer_identity(pki: Pki, listener: Any, tls12: bool) -> None:
    server = await listener(pki)
    issued = pki.issue_factory(MAC, "21WZ51234567", "J179")
    answer = await attempt(server.port, client(pki, issued, tls12=tls12))
    assert answer == {"cn": MAC, "serial_number": "21WZ51234567", "thumbprint": issued.thumbprint}
    assert server.accepted == [(MAC, "21WZ51234567", issued.thumbprint)]


@VERSIONS
async def test_no_client_certificate_fails_the_handshake(ec_pki: Pki, listener: Any, tls12: bool) -> None:
    server = await listener(ec_pki)
    answer = await attempt(server.port, client(ec_pki, None, tls12=tls12))
    assert isinstance(answer, BaseException) and server.accepted == []


@VERSIONS
async def test_expired_certificate_fails_the_handshake(ec_pki: Pki, listener: Any, tls12: bool) -> None:
    server = await listener(ec_pki)
    past = datetime.now(UTC) - timedelta(days=400)
    expired = ec_pki.issue_factory(MAC, "S1", "J179", not_before=past, not_after=past + timedelta(days=30))
    answer = await attempt(server.port, client(ec_pki, expired, tls12=tls12))
    assert isinstance(answer, BaseException) and server.accepted == []


async def test_not_yet_valid_certificate_fails_the_handshake(ec_pki: Pki, listener: Any) -> None:
    server = await listener(ec_pki)
    future = datetime.now(UTC) + timedelta(days=2)
    early = ec_pki.issue_factory(MAC, "S1", "J179", not_before=future, not_after=future + timedelta(days=30))
    assert isinstance(await attempt(server.port, client(ec_pki, early)), BaseException)


@VERSIONS
async def test_foreign_ca_certificate_fails_the_handshake(ec_pki: Pki, listener: Any, tls12: bool) -> None:
    server = await listener(ec_pki)
    foreign = CertificateAuthority.create("Elsewhere Phones CA", organization="Elsewhere")
    stranger = issue_factory_certificate(foreign, mac=MAC, serial="S1", model="J179")
    answer = await attempt(server.port, client(ec_pki, stranger, tls12=tls12))
    assert isinstance(answer, BaseException) and server.accepted == []


async def test_a_certificate_of_another_of_our_cas_fails_the_handshake(ec_pki: Pki, listener: Any) -> None:
    server = await listener(ec_pki)
    # Signed by the device CA, not a manufacturer CA: no factory certificate.
    wrong = issue_factory_certificate(ec_pki.device_ca, mac=MAC, serial="S1", model="J179")
    assert isinstance(await attempt(server.port, client(ec_pki, wrong)), BaseException)


@VERSIONS
async def test_revoked_certificate_fails_the_handshake(pki: Pki, listener: Any, tls12: bool) -> None:
    victim, bystander = pki.issue_factory(MAC, "S1", "J179"), pki.issue_factory("A4251B0C3D5F", "S2", "J179")
    pki.revoke_factory(victim.thumbprint)
    server = await listener(pki)
    assert isinstance(await attempt(server.port, client(pki, victim, tls12=tls12)), BaseException)
    assert isinstance(await attempt(server.port, client(pki, bystander, tls12=tls12)), dict)
    assert [identity.thumbprint for identity in server.accepted if identity] == [bystander.thumbprint]


async def test_revocation_applies_to_a_running_listener_after_reload(ec_pki: Pki, listener: Any) -> None:
    victim, bystander = ec_pki.issue_factory(MAC, "S1", "J179"), ec_pki.issue_factory("A4251B0C3D5F", "S2", "J179")
    server = await listener(ec_pki)
    assert isinstance(await attempt(server.port, client(ec_pki, victim)), dict)
    ec_pki.revoke_factory(victim.thumbprint)
    tls.reload_device_context(server.context, ec_pki)
    assert isinstance(await attempt(server.port, client(ec_pki, victim)), BaseException)
    assert isinstance(await attempt(server.port, client(ec_pki, victim, tls12=True)), BaseException)
    assert isinstance(await attempt(server.port, client(ec_pki, bystander)), dict)


async def test_revocation_by_the_cli_reaches_a_running_listener(ec_pki: Pki, listener: Any) -> None:
    victim = ec_pki.issue_factory(MAC, "21WZ1", "J179")
    server = await listener(ec_pki)
    result = CliRunner().invoke(cli, ["pki", "revoke", "--data", str(ec_pki.layout.root.parent), "--serial", "21WZ1"])
    assert result.exit_code == 0 and result.stdout.split() == [victim.thumbprint]
    assert isinstance(await attempt(server.port, client(ec_pki, victim)), dict)  # not reloaded yet
    tls.reload_device_context(server.context, ec_pki)
    assert isinstance(await attempt(server.port, client(ec_pki, victim)), BaseException)


async def test_a_trusted_manufacturer_is_accepted_and_its_crl_checked(ec_pki: Pki, listener: Any) -> None:
    acme = CertificateAuthority.create("Acme Phones CA", organization="Acme")
    device = issue_factory_certificate(acme, mac=MAC, serial="ACME1", model="J179")
    revoked = issue_factory_certificate(acme, mac="A4251B0C3D5F", serial="ACME2", model="J179")
    acme.revoke([revoked.certificate.serial_number])
    assert acme.crl is not None
    server = await listener(ec_pki)
    assert isinstance(await attempt(server.port, client(ec_pki, device)), BaseException)
    ec_pki.trust_manufacturer(
        "acme",
        acme.certificate.public_bytes(serialization.Encoding.PEM),
        acme.crl.public_bytes(serialization.Encoding.DER),
    )
    tls.reload_device_context(server.context, ec_pki)
    answer = await attempt(server.port, client(ec_pki, device))
    assert isinstance(answer, dict) and answer["serial_number"] == "ACME1"
    assert isinstance(await attempt(server.port, client(ec_pki, revoked)), BaseException)


def server_side_outcome(context: ssl.SSLContext, client_context: ssl.SSLContext) -> str:
    """One handshake with blocking sockets; answers the server's verdict ("ok" or OpenSSL's reason)."""
    outcome: list[str] = []
    with socket.create_server((HOST, 0)) as listening:

        def serve() -> None:
            conn, _ = listening.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"hello")
                    outcome.append("ok")
            except ssl.SSLError as exc:
                outcome.append(getattr(exc, "verify_message", None) or exc.reason or str(exc))

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listening.getsockname(), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname=HOST) as tls_client,
            ):
                tls_client.recv(5)
        except (ssl.SSLError, OSError):
            pass
        thread.join(10)
    return outcome[0]


def test_the_server_refuses_each_bad_certificate_for_its_own_reason(ec_pki: Pki) -> None:
    """The verdicts are OpenSSL's, on the server side: not just "some error"."""
    past = datetime.now(UTC) - timedelta(days=400)
    good = ec_pki.issue_factory(MAC, "S1", "J179")
    expired = ec_pki.issue_factory(MAC, "S2", "J179", not_before=past, not_after=past + timedelta(days=30))
    revoked = ec_pki.issue_factory(MAC, "S3", "J179")
    ec_pki.revoke_factory(revoked.thumbprint)
    foreign = issue_factory_certificate(CertificateAuthority.create("Elsewhere"), mac=MAC, serial="S4", model="J179")
    context = tls.device_server_context(ec_pki)
    for tls12 in (False, True):
        assert server_side_outcome(context, client(ec_pki, good, tls12=tls12)) == "ok"
        assert server_side_outcome(context, client(ec_pki, expired, tls12=tls12)) == "certificate has expired"
        assert server_side_outcome(context, client(ec_pki, revoked, tls12=tls12)) == "certificate revoked"
        assert server_side_outcome(context, client(ec_pki, foreign, tls12=tls12)) == (
            "unable to get local issuer certificate"
        )
        assert server_side_outcome(context, client(ec_pki, None, tls12=tls12)) == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


async def test_the_client_checks_the_server_certificate(ec_pki: Pki, listener: Any, tmp_path: Path) -> None:
    server = await listener(ec_pki)
    issued = ec_pki.issue_factory(MAC, "S1", "J179")
    other = ensure_pki(tmp_path / "other")  # another installation's TLS CA
    context = tls.client_context(other.tls_ca_path, issued.cert_pem, issued.key_pem)
    answer = await attempt(server.port, context)
    assert isinstance(answer, ssl.SSLCertVerificationError)


async def test_admin_context_serves_without_client_certificates(ec_pki: Pki) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps({"peer": tls.peer_identity(writer.transport) is not None}).encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0, ssl=tls.admin_server_context(ec_pki))
    try:
        answer = await attempt(server.sockets[0].getsockname()[1], client(ec_pki, None))
        assert answer == {"peer": False}
    finally:
        server.close()
        await server.wait_closed()


# --- aiohttp, curl, openssl ------------------------------------------------------------------


def est_app(pki: Pki) -> web.Application:
    """A tiny device-side app: who am I, and EST cacerts/simpleenroll as PROTOCOL §2 describes."""

    async def whoami(request: web.Request) -> web.Response:
        identity = tls.peer_identity(request.transport)
        return web.json_response(identity._asdict() if identity else None)

    async def cacerts(request: web.Request) -> web.Response:
        body = est.cacerts_pkcs7(pki)
        return web.Response(body=body, headers={"Content-Type": est.CONTENT_TYPE_CACERTS})

    async def simpleenroll(request: web.Request) -> web.Response:
        identity = tls.peer_identity(request.transport)
        assert identity is not None and identity.cn is not None
        try:
            body = est.issue_identity(pki, await request.read(), mac=identity.cn)
        except Exception as exc:  # a DomainError in the real server
            return web.json_response({"error": getattr(exc, "error", "?")}, status=getattr(exc, "status", 500))
        return web.Response(body=body, headers={"Content-Type": est.CONTENT_TYPE_PKCS7})

    app = web.Application()
    app.router.add_get("/", whoami)
    app.router.add_get("/.well-known/est/cacerts", cacerts)
    app.router.add_post("/.well-known/est/simpleenroll", simpleenroll)
    return app


@pytest.fixture
async def https_site(ec_pki: Pki) -> AsyncIterator[int]:
    runner = web.AppRunner(est_app(ec_pki))
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=tls.device_server_context(ec_pki))
    await site.start()
    assert runner.addresses
    yield runner.addresses[0][1]
    await runner.cleanup()


async def run(*argv: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """A subprocess off the event loop (the aiohttp site keeps serving meanwhile)."""
    args = [str(a) for a in argv]
    return await asyncio.to_thread(subprocess.run, args, input=stdin, capture_output=True, timeout=60, check=False)


def export_ca(pki: Pki, out: Path) -> Path:
    result = CliRunner().invoke(cli, ["pki", "export-ca", "--data", str(pki.layout.root.parent), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def factory_files(pki: Pki, tmp_path: Path, mac: str = MAC) -> tuple[str, Path, Path]:
    prefix = tmp_path / "phone"
    result = CliRunner().invoke(
        cli,
        ["pki", "issue-factory-cert", "--data", str(pki.layout.root.parent), "--mac", mac, "--serial", "21WZ1"]
        + ["--model", "J179", "--out", str(prefix)],
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip(), prefix.with_suffix(".crt"), prefix.with_suffix(".key")


@needs_curl
async def test_curl_with_the_exported_ca_and_a_factory_certificate(
    ec_pki: Pki, https_site: int, tmp_path: Path
) -> None:
    ca = export_ca(ec_pki, tmp_path / "ca.pem")
    thumb, crt, key = factory_files(ec_pki, tmp_path)
    url = f"https://{HOST}:{https_site}/"
    done = await run("curl", "-sS", "--fail", "--cacert", ca, "--cert", crt, "--key", key, url)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {"cn": MAC, "serial_number": "21WZ1", "thumbprint": thumb}
    bare = await run("curl", "-sS", "--fail", "--cacert", ca, url)
    assert bare.returncode != 0
    device_ca = ec_pki.layout.device_ca_cert
    wrong_ca = await run("curl", "-sS", "--fail", "--cacert", device_ca, "--cert", crt, "--key", key, url)
    assert wrong_ca.returncode != 0  # the server's certificate does not chain to the device CA


@needs_openssl
async def test_openssl_csr_through_issue_identity(ec_pki: Pki, tmp_path: Path) -> None:
    key, csr = tmp_path / "id.key", tmp_path / "id.csr"
    made = await run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-subj", f"/CN={MAC}", "-nodes", "-keyout", key, "-outform", "DER", "-out", csr,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr.decode()
    body = est.issue_identity(ec_pki, base64.b64encode(csr.read_bytes()), mac=MAC)
    der = await run("openssl", "base64", "-d", stdin=body)
    assert der.returncode == 0 and der.stdout
    printed = await run("openssl", "pkcs7", "-inform", "DER", "-print_certs", stdin=der.stdout)
    assert printed.returncode == 0, printed.stderr.decode()
    text = printed.stdout.decode()
    assert f"subject=CN = {MAC}" in text and "BEGIN CERTIFICATE" in text
    issued = tmp_path / "id.crt"
    issued.write_bytes(printed.stdout)
    verified = await run("openssl", "verify", "-CAfile", ec_pki.layout.device_ca_cert, "-purpose", "sslclient", issued)
    assert verified.returncode == 0, verified.stdout.decode() + verified.stderr.decode()
    pem = x509.load_pem_x509_certificates(printed.stdout)
    assert len(pem) == 1 and ec_pki.device_ca.issued(pem[0])


@needs_openssl
@needs_curl
async def test_est_by_hand_with_curl_and_openssl(ec_pki: Pki, https_site: int, tmp_path: Path) -> None:
    """PROTOCOL §2: `curl` plus `openssl` can enroll, as a real client would."""
    ca = export_ca(ec_pki, tmp_path / "ca.pem")
    _, crt, key = factory_files(ec_pki, tmp_path)
    base = f"https://{HOST}:{https_site}/.well-known/est"
    auth = ["--cacert", str(ca), "--cert", str(crt), "--key", str(key)]

    cacerts = await run("curl", "-sS", "--fail", *auth, f"{base}/cacerts")
    assert cacerts.returncode == 0, cacerts.stderr.decode()
    der = await run("openssl", "base64", "-d", stdin=cacerts.stdout)
    chain = await run("openssl", "pkcs7", "-inform", "DER", "-print_certs", stdin=der.stdout)
    assert "enrollab Device CA" in chain.stdout.decode()

    csr = tmp_path / "id.csr"
    made = await run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-subj", f"/CN={MAC.lower()}", "-nodes", "-keyout", tmp_path / "id.key", "-outform", "DER", "-out", csr,
    )  # fmt: skip
    assert made.returncode == 0
    b64 = await run("openssl", "base64", "-in", csr)
    enrolled = await run(
        "curl", "-sS", "--fail", *auth, "-H", "Content-Type: application/pkcs10",
        "--data-binary", "@-", f"{base}/simpleenroll", stdin=b64.stdout,
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr.decode()
    der = await run("openssl", "base64", "-d", stdin=enrolled.stdout)
    printed = await run("openssl", "pkcs7", "-inform", "DER", "-print_certs", stdin=der.stdout)
    assert f"subject=CN = {MAC}" in printed.stdout.decode()

    other = await run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-subj", "/CN=A4251B0C3D5F", "-nodes", "-keyout", tmp_path / "x.key", "-outform", "DER", "-out", csr,
    )  # fmt: skip
    assert other.returncode == 0
    b64 = await run("openssl", "base64", "-in", csr)
    refused = await run(
        "curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *auth, "-H", "Content-Type: application/pkcs10",
        "--data-binary", "@-", f"{base}/simpleenroll", stdin=b64.stdout,
    )  # fmt: skip
    body, status = refused.stdout.decode().rsplit("\n", 1)
    assert status == "403" and json.loads(body) == {"error": "est-subject-mismatch"}


@needs_openssl
async def test_openssl_s_client_with_a_factory_certificate(ec_pki: Pki, listener: Any, tmp_path: Path) -> None:
    server = await listener(ec_pki)
    ca = export_ca(ec_pki, tmp_path / "ca.pem")
    _, crt, key = factory_files(ec_pki, tmp_path)
    connect = ["openssl", "s_client", "-connect", f"{HOST}:{server.port}", "-CAfile", str(ca), "-verify_return_error"]
    done = await run(*connect, "-ign_eof", "-cert", crt, "-key", key, stdin=b"")
    assert done.returncode == 0, done.stderr.decode()
    assert MAC in done.stdout.decode() and "Verify return code: 0 (ok)" in done.stdout.decode()
    assert [identity.cn for identity in server.accepted if identity] == [MAC]
    bare = await run(*connect, "-ign_eof", stdin=b"")
    assert f'"cn": "{MAC}"' not in bare.stdout.decode() and len(server.accepted) == 1
