"""The phone's two TLS engines over real loopback sockets: requests presenting the phone's own
certificate go through `simulators.mtls` (pyOpenSSL on cryptography's OpenSSL, h11), the rest
through aiohttp on Python's ssl. A mutual-TLS request must behave the same on both — the same
answer, the same reason id for every refusal, the server seeing the same thing — so each case
runs on both: `python-ssl` is `simulators.tls.client_context` (the contexts Python's ssl builds),
`own` is `simulators.mtls.OwnCertificate` (what phones use)."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.fileserver import CertMode, make_certificates
from harness.listen import server_context, start_sites
from simulators.factory import FactoryCredentials, ManufacturerCA
from simulators.mtls import OwnCertificate
from simulators.tls import HandshakePolicy, client_context
from simulators.transport import Transport, TransportError

HOST = "files.enrollab.test"
OTHER = "other.enrollab.test"
ENGINES = ("python-ssl", "own")


@dataclass
class Site:
    """A mutual-TLS server on 127.0.0.1 that trusts `factory` for client certificates."""

    port: int
    ca_pem: bytes
    factory: ManufacturerCA
    seen: list[dict[str, Any]] = field(default_factory=list)
    transports: list[Any] = field(default_factory=list)

    def url(self, path: str, host: str = HOST) -> str:
        return f"https://{host}:{self.port}{path}"


async def _site(mode: CertMode) -> tuple[Site, web.AppRunner]:
    certs = make_certificates(mode, (HOST,))
    factory = ManufacturerCA.generate("Test Manufacturer CA", "Test Phones Inc")
    site = Site(0, certs.ca_pem, factory)

    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = {k: v for rdn in (peer or {}).get("subject", ()) for k, v in rdn}
        site.transports.append(request.transport)
        body = await request.read()
        site.seen.append({"path": request.path, "cn": subject.get("commonName"), "body": body,
                          "port": request.transport.get_extra_info("peername")[1] if request.transport else None,
                          "host": request.host, "auth": request.headers.get("Authorization")})
        if request.path == "/slow":
            await asyncio.sleep(5)
        if request.path == "/big":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i in range(64):
                await response.write(bytes([i]) * 16384)
            await response.write_eof()
            return response
        return web.json_response({"echo": body.decode() or None, "method": request.method},
                                 headers={"X-Thing": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    context = server_context(certs.cert_pem, certs.key_pem, client_cas=factory.cert_pem.decode())
    runner, (site.port,) = await start_sites(app, "127.0.0.1", [context])
    return site, runner


@pytest.fixture
async def sites() -> AsyncIterator[Callable[[CertMode], Any]]:
    runners: list[web.AppRunner] = []

    async def make(mode: CertMode = "private") -> Site:
        site, runner = await _site(mode)
        runners.append(runner)
        return site

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport({HOST: "127.0.0.1", OTHER: "127.0.0.1"}, timeout=2.0, keepalive=30.0)
    yield t
    await t.close()


def _context(
    engine: str, roots: list[bytes] | None, creds: FactoryCredentials, policy: HandshakePolicy | None = None
) -> Any:
    if engine == "own":
        return OwnCertificate(roots, creds.cert_pem, creds.key_pem, policy)
    return client_context(roots, creds.cert_pem, creds.key_pem, policy)


def _phone(site: Site, factory: ManufacturerCA | None = None, **options: Any) -> FactoryCredentials:
    return (factory or site.factory).issue("A4251B000123", "21WZ12345678", "J179", **options)


@pytest.mark.parametrize("engine", ENGINES)
async def test_post_presents_the_phone_certificate_and_reads_the_answer(
    sites: Any, transport: Transport, engine: str
) -> None:
    site = await sites("private")
    context = _context(engine, [site.ca_pem], _phone(site))

    reply = await transport.request("POST", site.url("/enroll?x=1"), context, json={"mac": "A4251B000123"})

    assert reply.status == 200 and reply.json() == {"echo": '{"mac": "A4251B000123"}', "method": "POST"}
    assert reply.content_type == "application/json"
    assert reply.headers["x-thing"] == reply.headers["X-Thing"] == "yes"
    assert [(s["path"], s["cn"]) for s in site.seen] == [("/enroll", "A4251B000123")]


@pytest.mark.parametrize("engine", ENGINES)
async def test_credentials_in_the_url_are_basic_authentication_not_part_of_the_host(
    sites: Any, transport: Transport, engine: str
) -> None:
    """PRF-2 URLs may carry `user:password@`; the Host header never does."""
    site = await sites("private")
    context = _context(engine, [site.ca_pem], _phone(site))
    url = f"https://lab%20user:p%40ss@{HOST}:{site.port}/files/J100Supgrade.txt"
    assert (await transport.request("GET", url, context)).status == 200
    assert site.seen[0]["host"] == f"{HOST}:{site.port}"
    assert site.seen[0]["auth"] == "Basic " + base64.b64encode(b"lab user:p@ss").decode()


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_ip_address_url_is_checked_against_the_ip_san(sites: Any, transport: Transport, engine: str) -> None:
    site = await sites("private")  # its certificate names files.enrollab.test and 127.0.0.1
    context = _context(engine, [site.ca_pem], _phone(site))
    reply = await transport.request("GET", f"https://127.0.0.1:{site.port}/x", context)
    assert reply.status == 200


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired-server", "server-certificate-expired"),
        ("no-roots", "server-certificate-untrusted"),
        ("other-roots", "server-certificate-untrusted"),
        ("name-mismatch", "server-certificate-name-mismatch"),
        ("wildcard-quirk", "wildcard-certificate-refused"),
        ("clock-behind", "server-certificate-not-yet-valid"),
        ("clock-ahead", "server-certificate-expired"),
        ("foreign-phone", "tls-handshake-failed"),
        ("expired-phone", "tls-handshake-failed"),
    ],
)
async def test_every_refusal_has_the_same_reason_and_the_server_sees_no_request(
    sites: Any, transport: Transport, engine: str, case: str, reason: str
) -> None:
    mode: CertMode = {"expired-server": "expired", "wildcard-quirk": "wildcard"}.get(case, "private")  # type: ignore[assignment]
    site = await sites(mode)
    roots: list[bytes] = {"no-roots": [], "other-roots": [make_certificates("public").ca_pem]}.get(case, [site.ca_pem])
    creds = _phone(
        site,
        ManufacturerCA.generate() if case == "foreign-phone" else None,
        expired=case == "expired-phone",
    )
    policy = {
        "wildcard-quirk": HandshakePolicy(refuse_wildcards=True),
        "clock-behind": HandshakePolicy(clock_skew=-86400.0),
        "clock-ahead": HandshakePolicy(clock_skew=400 * 86400.0),
    }.get(case)
    host = OTHER if case == "name-mismatch" else HOST

    with pytest.raises(TransportError) as caught:
        await transport.request("POST", site.url("/enroll", host), _context(engine, roots, creds, policy), json={})

    assert caught.value.reason == reason
    assert site.seen == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_without_roots_nothing_is_verified(sites: Any, transport: Transport, engine: str) -> None:
    site = await sites("expired")
    context = _context(engine, None, _phone(site), HandshakePolicy(refuse_wildcards=True))
    reply = await transport.request("GET", site.url("/x", OTHER), context)
    assert reply.status == 200 and site.seen[0]["cn"] == "A4251B000123"


@pytest.mark.parametrize("engine", ENGINES)
async def test_drop_closes_after_the_head_and_the_server_acted(sites: Any, transport: Transport, engine: str) -> None:
    site = await sites("private")
    context = _context(engine, [site.ca_pem], _phone(site))
    with pytest.raises(TransportError) as caught:
        await transport.request("POST", site.url("/enroll"), context, json={"n": 1}, drop=True)
    assert caught.value.reason == "connection-dropped"
    assert [s["body"] for s in site.seen] == [b'{"n": 1}']
    # The next request is answered normally.
    assert (await transport.request("POST", site.url("/enroll"), context, json={"n": 2})).status == 200


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_chunked_megabyte_arrives_whole(sites: Any, transport: Transport, engine: str) -> None:
    site = await sites("private")
    reply = await transport.request("GET", site.url("/big"), _context(engine, [site.ca_pem], _phone(site)))
    assert reply.body == b"".join(bytes([i]) * 16384 for i in range(64))


@pytest.mark.parametrize("engine", ENGINES)
async def test_slow_server_times_out_and_closed_port_is_refused(sites: Any, transport: Transport, engine: str) -> None:
    site = await sites("private")
    context = _context(engine, [site.ca_pem], _phone(site))
    with pytest.raises(TransportError) as slow:
        await transport.request("GET", site.url("/slow"), context)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(TransportError) as refused:
            await transport.request("GET", f"https://{HOST}:{closed}/", context)
    assert (slow.value.reason, refused.value.reason) == ("timeout", "connection-refused")


async def test_own_engine_keeps_one_connection_and_reopens_one_the_server_closed(
    sites: Any, transport: Transport
) -> None:
    site = await sites("private")
    creds = _phone(site)
    context = OwnCertificate([site.ca_pem], creds.cert_pem, creds.key_pem)

    for n in range(3):
        assert (await transport.request("GET", site.url(f"/{n}"), context)).status == 200
    assert len({s["port"] for s in site.seen}) == 1, "three requests, one kept connection"

    for kept in site.transports:
        kept.close()  # the server ends the idle connection
    await asyncio.sleep(0.05)
    assert (await transport.request("POST", site.url("/again"), context, json={})).status == 200
    assert [s["path"] for s in site.seen] == ["/0", "/1", "/2", "/again"]
    assert site.seen[-1]["port"] != site.seen[0]["port"]


async def test_own_engine_closes_idle_connections_after_keepalive(sites: Any) -> None:
    site = await sites("private")
    creds = _phone(site)
    context = OwnCertificate([site.ca_pem], creds.cert_pem, creds.key_pem)
    transport = Transport({HOST: "127.0.0.1"}, keepalive=0.1)
    try:
        await transport.request("GET", site.url("/x"), context)
        server_side = site.transports[0]
        assert not server_side.is_closing()
        for _ in range(50):
            await asyncio.sleep(0.05)
            if server_side.is_closing():
                break
        assert server_side.is_closing(), "the phone closed its idle connection"
    finally:
        await transport.close()


def test_a_mismatched_key_is_refused_when_the_context_is_built() -> None:
    factory = ManufacturerCA.generate()
    one, two = (factory.issue(f"A4251B00000{i}", "21WZ12345678", "J179") for i in (1, 2))
    with pytest.raises(Exception, match="(?i)key"):
        OwnCertificate(None, one.cert_pem, two.key_pem)


@pytest.mark.parametrize("engine", ENGINES)
async def test_phones_sharing_a_transport_keep_their_own_certificate_and_trust(
    sites: Any, transport: Transport, engine: str
) -> None:
    """The own engine shares one context per trust between phones; each connection still carries
    its phone's certificate, and a phone with other roots is not let in by another's trust."""
    site = await sites("private")
    one, two, three = (site.factory.issue(f"A4251B00000{i}", "21WZ12345678", "J179") for i in (1, 2, 3))
    trusting = [_context(engine, [site.ca_pem], creds) for creds in (one, two)]
    stranger = _context(engine, [], three)

    for context in trusting:
        assert (await transport.request("GET", site.url("/x"), context)).status == 200
    with pytest.raises(TransportError) as caught:
        await transport.request("GET", site.url("/x"), stranger)

    assert [s["cn"] for s in site.seen] == ["A4251B000001", "A4251B000002"]
    assert caught.value.reason == "server-certificate-untrusted"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"garbage\r\n\r\n", "connection-failed"),  # not HTTP
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "connection-dropped"),  # cut short
        (b"HTTP/1.1 200 OK\r\n", "connection-dropped"),  # a head cut short
        (b"", "connection-dropped"),  # closed without answering
    ],
)
async def test_a_server_that_answers_badly_gets_the_same_reason(
    transport: Transport, engine: str, answer: bytes, reason: str
) -> None:
    certs = make_certificates("private", (HOST,))
    factory = ManufacturerCA.generate()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(answer)
        await writer.drain()
        writer.close()

    tls = server_context(certs.cert_pem, certs.key_pem, client_cas=factory.cert_pem.decode())
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        port = server.sockets[0].getsockname()[1]
        context = _context(engine, [certs.ca_pem], factory.issue("A4251B000123", "21WZ12345678", "J179"))
        with pytest.raises(TransportError) as caught:
            await transport.request("GET", f"https://{HOST}:{port}/x", context)
    finally:
        server.close()
    assert caught.value.reason == reason


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    userinfo=st.sampled_from(["", "u@", "u:p@", "%zz:@", "a b@"]),
    port=st.sampled_from(["", ":0", ":1", ":99999", ":x", ":-1"]),
    rest=st.text(max_size=40),
)
async def test_any_url_from_a_server_ends_in_a_reason_never_a_crash(
    transport: Transport, userinfo: str, port: str, rest: str
) -> None:
    """Firmware and EST URLs come from the server's answer: whatever they hold, the own engine
    answers with a reason id. (The host stays 127.0.0.1 or a name mapped to it: `rest` is after
    the path's first slash, so it cannot change the authority.)"""
    creds = ManufacturerCA.generate().issue("A4251B000123", "21WZ12345678", "J179")
    context = OwnCertificate(None, creds.cert_pem, creds.key_pem)
    for host in ("127.0.0.1", HOST):
        try:
            await transport.request("GET", f"https://{userinfo}{host}{port}/{rest}", context)
        except TransportError as exc:
            assert exc.reason in {"invalid-url", "connection-refused", "connection-failed", "timeout"}
