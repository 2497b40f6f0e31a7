"""The harness playing the enrollment server for a device under test (PROTOCOL §2): an aiohttp
server over real mutual TLS whose enrollment answers come from a script the test sets.

    async with ScriptedDES(manufacturer_ca_pem) as des:      # client certificates chain to it
        des.script(mac, code_required(["nec8"]), des_answer)   # a queue of answers per MAC
        des.handle(mac, lambda body: redirect(des.files_url))  # or a callable(request JSON)
        des.url, des.ca_pem                                    # the device's enrollment URL, its root
        des.enrollments(mac)                                   # what the device sent, in order

Endpoints (all over the same mutual TLS; a client certificate that does not chain to the given
manufacturer CA bundle ends the handshake):
- `POST /device/v1/enroll`: the script's answer for the body's MAC (module functions
  `redirect`, `upgrade`, `code_required`, `code_invalid`, `locked`, `rejected`,
  `unknown_device` build each answer of PROTOCOL §2's table). A body that is no JSON object is
  400 `invalid-body`.
- `GET /device/v1/firmware/{model}/{version}`: a small simulated image (`image_bytes`) for any
  model and version; `firmware(model, version)` is the answer's `firmware` object naming it and
  its SHA-256.
- `GET /device/v1/files/{name}`: the DES-hosted files (`files`, a dict the test may change).
- `GET /.well-known/est/cacerts`, `POST /.well-known/est/simpleenroll` (RFC 7030): identity
  certificates from the harness's device CA for a base64 PKCS#10 request whose subject CN is the
  MAC in the client certificate's CN (else 403 `est-subject-mismatch`).

Decisions:
- It sends whatever the test says, also what the device's firmware cannot use (an HTTP URL to a
  device without "HTTP provisioning URL", a 12-digit code format to a B199, a root CA to a
  device without "Certificate with provisioning URL"): that is how the device suite tests a
  device's own refusals. It checks nothing a reference server would refuse on (ENR-1's
  MAC = CN included): it records, and the test judges.
- Script order per MAC: queued answers first (`script`, each used once; a queued callable is
  called once), then the MAC's handler (`handle`), then: for a MAC never scripted the `default`
  (404 `unknown_device`, as for a device nobody imported), for a used-up script 403 `rejected`
  `script-exhausted` (a test that did not expect another request sees it in the evidence).
- Every request is recorded (`DesRequest`): method, path, the client certificate's CN, the
  enrollment body with a code's digits masked (`"********"`: only the length stays), the time
  (the `clock`, seconds) and the answer's status and result (or error id). `exchanges()` gives
  them in the report's exchange shape (`who: device-api`).
- Certificates: a harness CA ("enrollab Scripted DES CA") signs the server certificate for the
  host names and 127.0.0.1; a separate device CA issues identity certificates. Both are made
  once per process and host-name set (`DesPki.shared`), since a suite starts many servers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import inspect
import ipaddress
import json
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.listen import server_context, start_sites
from server.pki.authority import CertificateAuthority, name
from server.pki.keys import certificate_pem, generate_key, private_key_pem
from simulators.clock import iso
from simulators.identity import canonical_mac

__all__ = [
    "CODE_FORMATS",
    "DEFAULT_HOSTNAMES",
    "Answer",
    "DesPki",
    "DesRequest",
    "Handler",
    "ScriptedDES",
    "code_invalid",
    "code_required",
    "image_bytes",
    "locked",
    "redirect",
    "rejected",
    "unknown_device",
    "upgrade",
]

ENROLL_PATH = "/device/v1/enroll"
FIRMWARE_PATH = "/device/v1/firmware"
FILES_PATH = "/device/v1/files/"
EST_ROOT = "/.well-known/est"
CSR_CONTENT_TYPE = "application/pkcs10"
DEFAULT_HOSTNAMES = ("des.enrollab.test",)
CODE_FORMATS = ("nec8", "nec12", "pec12")
IMAGE_SIZE = 2048
MAX_BODY = 64 * 1024

Answer = tuple[int, dict[str, Any]]
"""One enrollment answer: (HTTP status, JSON body)."""

Handler = Callable[[dict[str, Any]], "Answer | Awaitable[Answer]"]
"""A scripted answer computed from the request's JSON body (sync or async)."""


# -- the answers of PROTOCOL §2 -------------------------------------------------------------------


def _pem_text(pem: bytes | str) -> str:
    return pem.decode("ascii") if isinstance(pem, bytes) else pem


def redirect(
    url: str,
    server_type: str = "HTTPS",
    group: int = 0,
    trust: Iterable[bytes | str] = (),
    firmware: Mapping[str, Any] | None = None,
    identity: str | Mapping[str, Any] | None = None,
) -> Answer:
    """200 `redirect` (ENR-2): `identity` is the EST base URL (or the whole object). Values are
    sent as given, including ones PROTOCOL §2 would not allow (a negative check's business)."""
    ident = {"est": identity} if isinstance(identity, str) else (dict(identity) if identity is not None else None)
    return 200, {
        "result": "redirect",
        "provisioning": {
            "url": url,
            "server_type": server_type,
            "group": group,
            "trust": [_pem_text(pem) for pem in trust],
        },
        "firmware": dict(firmware) if firmware is not None else None,
        "identity": ident,
    }


def upgrade(firmware: Mapping[str, Any], reason: str = "upgrade-required") -> Answer:
    """200 `upgrade` (FW-2, FW-4): upgrade first, then run discovery again."""
    return 200, {"result": "upgrade", "firmware": dict(firmware), "reason": reason}


def code_required(formats: Iterable[str] = CODE_FORMATS) -> Answer:
    """200 `code_required` (ENR-3) with the formats offered."""
    return 200, {"result": "code_required", "formats": list(formats)}


def code_invalid(attempts_left: int) -> Answer:
    """422 `code_invalid` (EC, LCK)."""
    return 422, {"result": "code_invalid", "attempts_left": attempts_left}


def locked(retry_after: int) -> Answer:
    """423 `locked` (LCK-2); the server adds the same seconds as `Retry-After`."""
    return 423, {"result": "locked", "retry_after": retry_after}


def rejected(reason: str, detail: str = "") -> Answer:
    """403 `rejected` (ENR-4): `reason` a stable kebab-case id."""
    return 403, {"result": "rejected", "reason": reason, "detail": detail or f"refused: {reason}"}


def unknown_device() -> Answer:
    """404 `unknown_device` (ENR-1)."""
    return 404, {"result": "unknown_device"}


def image_bytes(model: str, version: str) -> bytes:
    """The simulated firmware image of `model` at `version`: deterministic, different per pair."""
    header = f"ENROLLAB SCRIPTED DES IMAGE\nmodel: {model}\nversion: {version}\n\n".encode()
    return header + hashlib.shake_256(header).digest(IMAGE_SIZE - len(header))


# -- certificates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesPki:
    """The scripted DES's certificates: its TLS CA and server certificate, and the device CA."""

    hostnames: tuple[str, ...]
    ca: CertificateAuthority
    device_ca: CertificateAuthority
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes | None = None  # a bench's certificate: the root a phone already has for it

    @classmethod
    def create(cls, hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> DesPki:
        ca = CertificateAuthority.create("enrollab Scripted DES CA", organization="enrollab harness")
        device_ca = CertificateAuthority.create("enrollab Scripted DES Device CA", organization="enrollab harness")
        key = generate_key()
        san: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
        san.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = ca.issue(
            subject=name(hostnames[0] if hostnames else "127.0.0.1", "enrollab harness"),
            public_key=key.public_key(),
            extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
            san=san,
        )
        return cls(tuple(hostnames), ca, device_ca, certificate_pem(cert), private_key_pem(key))

    @classmethod
    def from_files(cls, cert_pem: bytes, key_pem: bytes, hostnames: Sequence[str]) -> DesPki:
        """A bench's own server certificate (`[bench] des_cert`/`des_key`): one its physical phones
        trust for their enrollment server's name. `ca_pem` is then the certificate chain itself
        (the harness has no key of that CA); the device CA for EST is the harness's own."""
        shared = cls.shared(hostnames)
        return cls(tuple(hostnames), shared.ca, shared.device_ca, cert_pem, key_pem, chain_pem=cert_pem)

    @classmethod
    def shared(cls, hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> DesPki:
        """One per process and host-name set (module docstring)."""
        return _shared_pki(tuple(hostnames))

    @property
    def ca_pem(self) -> bytes:
        return self.chain_pem if self.chain_pem is not None else certificate_pem(self.ca.certificate)

    @property
    def device_ca_pem(self) -> bytes:
        return certificate_pem(self.device_ca.certificate)


@functools.cache
def _shared_pki(hostnames: tuple[str, ...]) -> DesPki:
    return DesPki.create(hostnames)


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesRequest:
    """One request as the scripted DES saw it (module docstring)."""

    method: str
    path: str
    cn: str | None
    time: float
    status: int
    result: str | None = None
    body: dict[str, Any] | None = None
    reason: str | None = None  # an enrollment answer's `reason` (rejected) or `error` id

    @property
    def mac(self) -> str | None:
        """The body's MAC for an enrollment, else the client certificate's CN."""
        if self.body is not None and isinstance(self.body.get("mac"), str):
            return _mac_key(self.body["mac"])
        return self.cn

    @property
    def is_enrollment(self) -> bool:
        return self.path == ENROLL_PATH and self.method == "POST"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "cn": self.cn,
            "at": iso(self.time),
            "status": self.status,
            "result": self.result,
            "body": self.body,
            "reason": self.reason,
        }


def _mac_key(mac: str) -> str:
    try:
        return canonical_mac(mac)
    except ValueError:
        return mac


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    code = body.get("code")
    if code is None:
        return dict(body)
    return {**body, "code": "*" * len(code) if isinstance(code, str) else "*"}


# -- the server -------------------------------------------------------------------------------------


@dataclass
class _Script:
    queue: deque[Answer | Handler] = field(default_factory=deque)
    handler: Handler | None = None


class ScriptedDES:
    """The scripted enrollment server (module docstring)."""

    def __init__(
        self,
        manufacturer_cas: bytes | str | Sequence[bytes | str],
        *,
        hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
        host: str = "127.0.0.1",
        files: Mapping[str, bytes] | None = None,
        clock: Callable[[], float] = time.time,
        pki: DesPki | None = None,
        netns: str | None = None,
        port: int = 0,
    ) -> None:
        bundle = [manufacturer_cas] if isinstance(manufacturer_cas, bytes | str) else list(manufacturer_cas)
        self.manufacturer_pem = "".join(_pem_text(pem).strip() + "\n" for pem in bundle)
        if "BEGIN CERTIFICATE" not in self.manufacturer_pem:
            raise ValueError("ScriptedDES needs the manufacturer CA bundle its devices' certificates chain to")
        self.pki = pki or DesPki.shared(hostnames)
        self.hostnames = self.pki.hostnames
        self.host = host
        self.netns = netns
        self.files: dict[str, bytes] = dict(files or {})
        self.clock = clock
        self.default: Handler = lambda body: unknown_device()
        self.est_refusal: tuple[int, str] | None = None
        self.requests: list[DesRequest] = []
        self.port = port  # 0: a free one, chosen at start
        self._scripts: dict[str, _Script] = {}
        self._runner: web.AppRunner | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The enrollment server's base URL (by host name; the device must resolve it to `host`)."""
        return f"https://{self.hostnames[0]}:{self.port}" if self.hostnames else self.ip_url

    @property
    def ip_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def files_url(self) -> str:
        """The provisioning URL of DES-hosted files (server type `DES`, ENR-6)."""
        return self.url + FILES_PATH

    @property
    def est_url(self) -> str:
        """The `identity.est` base URL of a redirect (ENR-8)."""
        return self.url + EST_ROOT

    @property
    def ca_pem(self) -> bytes:
        """The CA of the server certificate: the device's root for this server."""
        return self.pki.ca_pem

    @property
    def device_ca_pem(self) -> bytes:
        return self.pki.device_ca_pem

    def firmware(self, model: str, version: str) -> dict[str, str]:
        """The `firmware` object of an answer: this server's image of `model` at `version`."""
        url = f"{self.url}{FIRMWARE_PATH}/{quote(model, safe='')}/{quote(version, safe='')}"
        return {"version": version, "url": url, "sha256": hashlib.sha256(image_bytes(model, version)).hexdigest()}

    # -- the script ---------------------------------------------------------------------------

    def script(self, mac: str, *answers: Answer | Handler) -> ScriptedDES:
        """Queue answers for `mac` (each used once, in order)."""
        self._script(mac).queue.extend(answers)
        return self

    def handle(self, mac: str, handler: Handler | None) -> ScriptedDES:
        """Answer `mac` with `handler(request JSON)` once its queue is empty (None: no handler)."""
        self._script(mac).handler = handler
        return self

    def pending(self, mac: str) -> int:
        """How many queued answers `mac` has not used."""
        script = self._scripts.get(_mac_key(mac))
        return len(script.queue) if script is not None else 0

    def reset(self) -> None:
        """Forget scripts, files, records and knobs (one server reused by several tests)."""
        self._scripts.clear()
        self.requests.clear()
        self.files.clear()
        self.default = lambda body: unknown_device()
        self.est_refusal = None

    def _script(self, mac: str) -> _Script:
        return self._scripts.setdefault(_mac_key(mac), _Script())

    async def _answer(self, mac: str, body: dict[str, Any]) -> Answer:
        script = self._scripts.get(mac)
        step: Answer | Handler
        if script is None:
            step = self.default
        elif script.queue:
            step = script.queue.popleft()
        elif script.handler is not None:
            step = script.handler
        else:
            return rejected("script-exhausted", f"the test scripted no further answer for {mac}")
        if callable(step):
            produced = step(dict(body))
            answer = await produced if inspect.isawaitable(produced) else produced
        else:
            answer = step
        status, payload = answer
        return int(status), dict(payload)

    # -- what the device did ------------------------------------------------------------------

    def enrollments(self, mac: str | None = None) -> list[DesRequest]:
        """The enrollment requests (of `mac`), in order."""
        key = _mac_key(mac) if mac is not None else None
        return [r for r in self.requests if r.is_enrollment and (key is None or r.mac == key)]

    def of(self, mac: str, path_prefix: str = "") -> list[DesRequest]:
        """Every request of `mac` (by client certificate CN, or the enrollment body's MAC)."""
        key = _mac_key(mac)
        return [r for r in self.requests if (r.cn == key or r.mac == key) and r.path.startswith(path_prefix)]

    def firmware_downloads(self, mac: str | None = None) -> list[DesRequest]:
        return [r for r in self.requests if r.path.startswith(FIRMWARE_PATH) and (mac is None or r.cn == mac)]

    def est_requests(self, mac: str | None = None) -> list[DesRequest]:
        return [r for r in self.requests if r.path.startswith(EST_ROOT) and (mac is None or r.cn == mac)]

    def file_requests(self, mac: str | None = None) -> list[DesRequest]:
        return [r for r in self.requests if r.path.startswith(FILES_PATH) and (mac is None or r.cn == mac)]

    def exchanges(self) -> list[dict[str, Any]]:
        """The records in the conformance report's exchange shape."""
        out = []
        for r in self.requests:
            exchange: dict[str, Any] = {
                "method": r.method,
                "url": f"{self.url}{r.path}",
                "status": r.status,
                "at": iso(r.time),
                "who": "device-api",
                "cn": r.cn,
                "result": r.result,
            }
            if r.body is not None:
                exchange["body"] = r.body
            out.append(exchange)
        return out

    # -- serving --------------------------------------------------------------------------------

    async def start(self) -> ScriptedDES:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_post(ENROLL_PATH, self._enroll)
        app.router.add_get(FIRMWARE_PATH + "/{model}/{version}", self._firmware)
        app.router.add_get(FILES_PATH + "{name:.+}", self._file)
        app.router.add_get(EST_ROOT + "/cacerts", self._cacerts)
        app.router.add_post(EST_ROOT + "/simpleenroll", self._simpleenroll)
        self._runner, (self.port,) = await start_sites(app, self.host, [self._ssl_context()], netns=self.netns,
                                                       ports=[self.port] if self.port else None)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedDES:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _ssl_context(self) -> ssl.SSLContext:
        """Mutual TLS (PROTOCOL §2): TLS 1.2+, a client certificate chaining to the bundle."""
        return server_context(self.pki.cert_pem, self.pki.key_pem, client_cas=self.manufacturer_pem)

    def _record(
        self, request: web.Request, status: int, result: str | None, body: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        self.requests.append(
            DesRequest(request.method, request.path, _peer_cn(request), self.clock(), status, result, body, reason)
        )

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(exc.status, "http-error")
            self._record(request, exc.status, error)
            return _error(error, exc.reason, exc.status)

    async def _enroll(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            self._record(request, 400, "invalid-body")
            return _error("invalid-body", "The body must be a JSON object (PROTOCOL §2).", 400)
        mac = body.get("mac")
        status, answer = await self._answer(_mac_key(mac) if isinstance(mac, str) else "", body)
        result = answer.get("result") if isinstance(answer.get("result"), str) else answer.get("error")
        reason = answer.get("reason") if isinstance(answer.get("reason"), str) else None
        self._record(request, status, result, _masked(body), reason)
        headers = {"Retry-After": str(answer.get("retry_after", 1))} if result == "locked" else None
        return web.json_response(answer, status=status, headers=headers)

    async def _firmware(self, request: web.Request) -> web.Response:
        model, version = request.match_info["model"], request.match_info["version"]
        image = image_bytes(model, version)
        self._record(request, 200, "image")
        return web.Response(
            body=image,
            content_type="application/octet-stream",
            headers={"X-Checksum-Sha256": hashlib.sha256(image).hexdigest()},
        )

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            self._record(request, 404, "file-not-found")
            return _error("file-not-found", "No such DES-hosted file.", 404)
        self._record(request, 200, "file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _cacerts(self, request: web.Request) -> web.Response:
        self._record(request, 200, "cacerts")
        body = _b64(pkcs7.serialize_certificates([self.pki.device_ca.certificate], serialization.Encoding.DER))
        return web.Response(body=body, headers={"Content-Type": "application/pkcs7-mime",
                                                "Content-Transfer-Encoding": "base64"})

    async def _simpleenroll(self, request: web.Request) -> web.Response:
        """ENR-8: issue for a CSR whose CN is the client certificate's CN."""
        if self.est_refusal is not None:
            status, error = self.est_refusal
            self._record(request, status, error)
            return _error(error, "refused by the test's script", status)
        if request.content_type != CSR_CONTENT_TYPE:
            self._record(request, 415, "unsupported-media-type")
            return _error("unsupported-media-type", f"simpleenroll takes {CSR_CONTENT_TYPE} (RFC 7030).", 415)
        csr = _load_csr(await request.read())
        if csr is None:
            self._record(request, 400, "est-bad-csr")
            return _error("est-bad-csr", "The body is not a base64 PKCS#10 request with a valid signature.", 400)
        cn = _peer_cn(request)
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        requested = _mac_key(str(cns[0].value)) if len(cns) == 1 else None
        public_key = csr.public_key()
        if cn is None or requested != cn:
            self._record(request, 403, "est-subject-mismatch")
            return _error("est-subject-mismatch", f"The CSR's subject must be CN={cn}.", 403)
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            self._record(request, 422, "est-weak-key")
            return _error("est-weak-key", "The CSR's key is neither ECDSA nor RSA.", 422)
        cert = self.pki.device_ca.issue(
            subject=name(cn), public_key=public_key, extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        self._record(request, 200, "issued")
        body = _b64(pkcs7.serialize_certificates([cert], serialization.Encoding.DER))
        return web.Response(body=body, headers={"Content-Type": "application/pkcs7-mime; smime-type=certs-only",
                                                "Content-Transfer-Encoding": "base64"})


def _error(error: str, detail: str, status: int) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def _b64(der: bytes) -> bytes:
    text = base64.b64encode(der)
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\n"


def _peer_cn(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    cns = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return _mac_key(str(cns[0].value)) if cns else None


def _load_csr(body: bytes) -> x509.CertificateSigningRequest | None:
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
        csr = x509.load_der_x509_csr(der)
        return csr if csr.is_signature_valid else None
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm):
        return None
