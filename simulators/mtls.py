"""Mutual TLS with a phone's own certificate (factory or identity): pyOpenSSL for TLS, h11 for
HTTP/1.1, over asyncio streams. Requests without a client certificate stay on Python's ssl
through aiohttp (`simulators.transport`), which hands these ones here.

Why a second TLS engine: every phone presents its own certificate. Python's `ssl` takes a
client certificate only per context, and is bound to the system's OpenSSL (3.0 on Debian 12),
where one context with a certificate costs ~2.2 ms of CPU on this machine (`SSL_CTX_new`, and
above all OpenSSL 3.0's decoder set-up when `load_cert_chain` reads the PEM key) — a quarter of a
simulated phone's whole boot, and the largest single cost of a boot storm. pyOpenSSL runs on the
OpenSSL that `cryptography` ships (far newer) and sets a certificate and key, as parsed objects,
on each connection: phones with the same trust share one context (built when first needed, kept
per `OwnCertificateClient`, LRU) and each connection carries its phone's certificate. Real
phones have their own TLS stacks; what the server sees is the same either way: a TLS 1.2
handshake presenting the phone's certificate chain.

Behaviour, the same as the aiohttp path (the reason ids of `simulators.replies`):
- TLS 1.2 only while presenting a certificate (`simulators.tls` says why); the phone's roots
  exactly (None: no verification; empty: trust nobody); SNI for names; the host name (or IP
  address) checked against the verified certificate right after the handshake by
  service-identity (RFC 6125; the subject CN only when there is no subjectAltName, as OpenSSL
  does), then the phone's `HandshakePolicy` — a refused server sees the connection end before
  any request.
- Keep-alive: one idle connection per (certificate, host, port), closed after `keepalive`
  seconds. A request on a kept connection that the server closed meanwhile (no byte of answer)
  is sent once more on a new connection, as HTTP clients do.
- `drop` (fault knob): the connection is closed once the answer's head has arrived.
"""

from __future__ import annotations

import asyncio
import base64
import json as _json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import h11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict
from OpenSSL import SSL, crypto
from service_identity import hazmat as identity
from service_identity.cryptography import extract_patterns
from yarl import URL

from simulators.l2.netns import connect_in
from simulators.network import HostMapResolver, is_ip
from simulators.replies import VERIFY_REASONS, Reply, TransportError
from simulators.tls import HandshakePolicy, PeerCertificate, split_pem

__all__ = ["OwnCertificate", "OwnCertificateClient"]

_READ = 65536
CONTEXTS = 64  # shared contexts kept (LRU), one per trust
USER_AGENT = "enrollab-phone/1"


def _note_verify_error(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    """OpenSSL's own verdict, unchanged; the first error number is kept for the reason id."""
    if not ok:
        channel = conn.get_app_data()
        if channel is not None and channel.verify_error is None:
            channel.verify_error = errnum
    return bool(ok)


class OwnCertificate:
    """A phone's own certificate (leaf first, then any intermediates) and key, with the trust it
    verifies servers by: what `Transport.request` takes in place of an `ssl.SSLContext` for
    mutual TLS. `roots` as `simulators.tls.client_context`. A key that does not match the
    certificate is refused here."""

    __slots__ = ("chain", "key", "policy", "roots")

    def __init__(
        self,
        roots: Sequence[bytes] | None,
        cert_pem: bytes,
        key_pem: bytes,
        policy: HandshakePolicy | None = None,
    ) -> None:
        self.chain = tuple(x509.load_pem_x509_certificates(cert_pem))
        self.key = serialization.load_pem_private_key(key_pem, password=None)
        if self.key.public_key() != self.chain[0].public_key():
            raise ValueError("the private key does not match the certificate")
        self.roots = None if roots is None else tuple(roots)
        self.policy = policy if self.verify and policy is not None and policy.active else None

    @property
    def verify(self) -> bool:
        return self.roots is not None

    @property
    def context_key(self) -> tuple[Any, ...]:
        """What the shared context depends on: the roots and the intermediates sent."""
        return (self.roots, tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain[1:]))


def _client_context(own: OwnCertificate) -> SSL.Context:
    """TLS 1.2, the roots of `own` (or no verification), its intermediates; no certificate of its
    own — each connection gets the phone's."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    for extra in own.chain[1:]:
        context.add_extra_chain_cert(extra)
    if own.roots is None:
        context.set_verify(SSL.VERIFY_NONE)
    else:
        store = context.get_cert_store()
        assert store is not None
        for pem in own.roots:
            for one in split_pem(pem):
                store.add_cert(crypto.X509.from_cryptography(x509.load_pem_x509_certificate(one)))
        context.set_verify(SSL.VERIFY_PEER, _note_verify_error)
    return context


def name_problem(cert: x509.Certificate, host: str) -> str | None:
    """None when `cert` names `host` (module docstring), else why not."""
    patterns: Sequence[identity.CertificatePattern] = extract_patterns(cert)
    if not patterns:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        patterns = [identity.DNSPattern.from_bytes(str(cn.value).encode()) for cn in cns if cn.value]
    try:
        wanted: identity.ServiceID = identity.IPAddress_ID(host) if is_ip(host) else identity.DNS_ID(host)
        identity.verify_service_identity(patterns, obligatory_ids=[wanted], optional_ids=[])
    except (identity.VerificationError, identity.CertificateError, ValueError) as exc:
        return f"the certificate does not name {host} ({exc})"
    return None


class _Channel:
    """One TLS connection: pyOpenSSL on memory BIOs between an asyncio stream and h11."""

    __slots__ = ("http", "idle", "reader", "tls", "verify_error", "writer")

    def __init__(self, tls: SSL.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tls = tls
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT)
        self.verify_error: int | None = None
        self.idle: asyncio.TimerHandle | None = None

    def _flush(self) -> None:
        out = []
        while True:
            try:
                chunk = self.tls.bio_read(_READ)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out.append(chunk)
        if out:
            self.writer.write(b"".join(out))

    async def _fill(self) -> bool:
        data = await self.reader.read(_READ)
        if not data:
            return False
        self.tls.bio_write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except SSL.WantReadError:
                self._flush()
                if not await self._fill():
                    raise ConnectionResetError("the server closed the connection during the handshake") from None
                continue
            self._flush()
            return

    async def send(self, data: bytes) -> None:
        self.tls.sendall(data)
        self._flush()
        await self.writer.drain()

    async def receive(self) -> bytes:
        """Decrypted bytes; b"" at the end of the stream."""
        while True:
            try:
                return self.tls.recv(_READ)
            except SSL.WantReadError:
                self._flush()
                if not await self._fill():
                    return b""
            except SSL.ZeroReturnError:
                return b""

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        if self.writer.is_closing():
            return
        try:
            self.tls.shutdown()
            self._flush()
        except (SSL.Error, OSError):
            pass
        self.writer.close()


class _Stale(Exception):
    """A kept connection that the server had closed: no byte of the answer came."""


class OwnCertificateClient:
    """Requests over `OwnCertificate` contexts (module docstring); one per `Transport`."""

    def __init__(
        self, resolver: HostMapResolver, *, timeout: float = 10.0, keepalive: float = 2.0, netns: str | None = None
    ) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.keepalive = keepalive
        self.netns = netns
        self._idle: dict[tuple[OwnCertificate, str, int], _Channel] = {}
        self._contexts: OrderedDict[tuple[Any, ...], SSL.Context] = OrderedDict()

    def _context(self, own: OwnCertificate) -> SSL.Context:
        key = own.context_key
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = _client_context(own)
            if len(self._contexts) > CONTEXTS:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
        return context

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for channel in idle.values():
            channel.close()

    async def request(
        self,
        own: OwnCertificate,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        drop: bool = False,
    ) -> Reply:
        try:
            target = URL(url)
        except (ValueError, TypeError) as exc:
            raise TransportError("invalid-url", str(exc)) from None
        host, port = target.raw_host, target.port  # names in ASCII (IDNA), as they go on the wire
        if not host or port is None or target.scheme != "https":
            raise TransportError("invalid-url", url)
        authority = f"[{host}]" if ":" in host else host
        if target.explicit_port is not None and target.explicit_port != 443:
            authority += f":{target.explicit_port}"
        body = b""
        fields = [("Host", authority), ("User-Agent", USER_AGENT), ("Accept", "*/*")]
        if target.user is not None:  # PRF-2: `user:password@` in the URL is HTTP basic authentication
            secret = base64.b64encode(f"{target.user}:{target.password or ''}".encode()).decode()
            fields.append(("Authorization", f"Basic {secret}"))
        if json is not None:
            body = _json.dumps(json).encode()
            fields.append(("Content-Type", "application/json"))
        elif data is not None:
            body = data.encode() if isinstance(data, str) else bytes(data)
        fields.extend((name, value) for name, value in (headers or {}).items())
        if body or method not in ("GET", "HEAD"):
            fields.append(("Content-Length", str(len(body))))
        head = h11.Request(method=method, target=target.raw_path_qs or "/", headers=fields)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request((own, host, port), head, body, drop)
        except TimeoutError:
            raise TransportError("timeout", "no answer in time") from None

    async def _request(self, key: tuple[OwnCertificate, str, int], head: h11.Request, body: bytes, drop: bool) -> Reply:
        channel = self._idle.pop(key, None)
        if channel is not None and channel.idle is not None:
            channel.idle.cancel()
            channel.idle = None
        if channel is not None and not channel.usable:
            channel.close()
            channel = None
        if channel is not None:
            try:
                return await self._exchange(key, channel, head, body, drop, reused=True)
            except _Stale:
                pass
        channel = await self._open(*key)
        try:
            return await self._exchange(key, channel, head, body, drop, reused=False)
        except _Stale:
            raise TransportError("connection-dropped", "the server closed the connection without answering") from None

    async def _open(self, own: OwnCertificate, host: str, port: int) -> _Channel:
        try:
            found = await self.resolver.resolve(host, port)
            if self.netns is None:
                reader, writer = await asyncio.open_connection(found[0]["host"], port)
            else:
                sock = await connect_in(self.netns, found[0]["host"], port, found[0]["family"])
                reader, writer = await asyncio.open_connection(sock=sock)
        except ConnectionRefusedError as exc:
            raise TransportError("connection-refused", f"{host}:{port}: {exc}") from None
        except OSError as exc:
            raise TransportError("connection-failed", f"{host}:{port}: {exc}") from None
        tls = SSL.Connection(self._context(own), None)
        tls.use_certificate(own.chain[0])
        tls.use_privatekey(own.key)  # type: ignore[arg-type]
        tls.set_connect_state()
        if not is_ip(host):
            tls.set_tlsext_host_name(host.encode("ascii"))
        channel = _Channel(tls, reader, writer)
        tls.set_app_data(channel)
        try:
            await channel.handshake()
        except SSL.Error as exc:
            channel.close()
            if channel.verify_error is not None:
                reason = VERIFY_REASONS.get(channel.verify_error, "server-certificate-untrusted")
                raise TransportError(reason, f"{_describe(exc)} (X509 error {channel.verify_error})") from None
            raise TransportError("tls-handshake-failed", _describe(exc)) from None
        except OSError as exc:
            channel.close()
            raise TransportError("tls-handshake-failed", str(exc) or type(exc).__name__) from None
        except BaseException:
            channel.close()
            raise
        if own.verify:
            problem = self._check_peer(own, channel, host)
            if problem is not None:
                channel.close()
                raise TransportError(*problem)
        return channel

    @staticmethod
    def _check_peer(own: OwnCertificate, channel: _Channel, host: str) -> tuple[str, str] | None:
        cert = channel.tls.get_peer_certificate(as_cryptography=True)
        if cert is None:
            return "server-certificate-untrusted", "the server sent no certificate"
        mismatch = name_problem(cert, host)
        if mismatch is not None:
            return "server-certificate-name-mismatch", mismatch
        if own.policy is not None:
            seen = PeerCertificate.from_certificate(cert)
            problem = own.policy.problem(seen)
            if problem is not None:
                return problem, f"{problem} ({seen.names})"
        return None

    async def _exchange(
        self,
        key: tuple[OwnCertificate, str, int],
        channel: _Channel,
        head: h11.Request,
        body: bytes,
        drop: bool,
        *,
        reused: bool,
    ) -> Reply:
        http = channel.http
        received = closed = False  # a byte of the answer came; the server ended the stream
        try:
            out = http.send(head) or b""
            if body:
                out += http.send(h11.Data(data=body)) or b""
            out += http.send(h11.EndOfMessage()) or b""
            await channel.send(out)
            status = 0
            fields: CIMultiDict[str] = CIMultiDict()
            parts: list[bytes] = []
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await channel.receive()
                    if not data:
                        if reused and not received:
                            raise _Stale
                        closed = True
                    received = received or bool(data)
                    http.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    fields = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                    if drop:
                        raise TransportError("connection-dropped", "the phone closed the connection before the answer")
                elif isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    closed = True
                    raise h11.RemoteProtocolError("the server closed the connection mid-answer")
        except h11.RemoteProtocolError as exc:
            channel.close()
            if closed:  # as aiohttp: an answer cut short is a dropped connection...
                detail = "the server closed the connection " + ("mid-answer" if received else "without answering")
                raise TransportError("connection-dropped", detail) from None
            # ... one that is not HTTP is a failed one
            raise TransportError("connection-failed", f"not an HTTP answer: {exc}") from None
        except (SSL.Error, OSError) as exc:
            channel.close()
            if reused and not received:
                raise _Stale from None
            raise TransportError("connection-dropped", _describe(exc)) from None
        except BaseException:  # _Stale, the drop knob's TransportError, cancellation
            channel.close()
            raise
        self._park(key, channel)
        return Reply(status, fields, b"".join(parts))

    def _park(self, key: tuple[OwnCertificate, str, int], channel: _Channel) -> None:
        http = channel.http
        if http.our_state is not h11.DONE or http.their_state is not h11.DONE or not channel.usable:
            channel.close()
            return
        http.start_next_cycle()
        previous = self._idle.pop(key, None)
        if previous is not None:
            previous.close()
        self._idle[key] = channel
        channel.idle = asyncio.get_running_loop().call_later(self.keepalive, self._expire, key, channel)

    def _expire(self, key: tuple[OwnCertificate, str, int], channel: _Channel) -> None:
        channel.idle = None
        if self._idle.get(key) is channel:
            del self._idle[key]
        channel.close()


def _describe(exc: BaseException) -> str:
    """A one-line account of an OpenSSL or socket error."""
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        reasons = [str(item[-1]) for item in exc.args[0] if isinstance(item, tuple) and item]
        if reasons:
            return "; ".join(reasons)
    return str(exc) or type(exc).__name__
