"""One simulated phone: an explicit state machine on asyncio that speaks PROTOCOL §2 to an
enrollment server and fetches its settings like an Avaya phone (research §1, §7, §11, §12).

    env = PhoneEnvironment(enrollment_url="https://127.0.0.1:8443", public_roots=[ca_pem],
                           hosts={"files.enrollab.test": "127.0.0.1"}, clock=VirtualClock())
    phone = Phone(identity, factory_key_pem, factory_cert_pem, env, user=User(codes=["12345678"]))
    outcome = await phone.boot()      # never raises for protocol or network problems
    outcome.result, outcome.reason, phone.events

The event sequence (`phone.events`, each an `Event` with the state it happened in):

1. Boot: `power-on`; a phone provisioned before goes `configured-server` -> step 5.
   Otherwise `prompt-shown`, then `prompt-answered` {answer} or, after the model's
   `prompt_seconds` on the clock, `prompt-timeout`.
2. Yes -> step 3. No / timeout -> `network-discovery`, then `network-server` {url, source}
   (-> step 5) or `no-network-server`; after No that leads to `manual-entry` (with the user's
   URL: `manual-server-entered` -> step 5), after a timeout to step 3.
3. Enrollment (`des-discovery`): `enroll-request` -> `enroll-answer` {status, result, …};
   `connection-failed` {reason} and `retry` {attempt, after} in between when the network fails.
   - code_required / code_invalid: (`code-refused-by-server` {attempts_left}) `code-prompt`
     {formats}, `code-refused` {reason, length} per code the firmware cannot take, `code-typed`
     {kind} -> enroll again; no code left: `code-cancelled` -> `manual-entry` (or the end).
   - upgrade: step 4, then `re-trigger` -> `des-discovery` again, or `no-re-trigger` -> the end.
   - redirect: `redirect` {url, server_type, group, trust, firmware, identity}, `url-expanded`,
     then `url-refused` {reason} (the end) or: `group-applied` | `group-not-supported` |
     `non-conforming` {behaviour}; `trust-added` | `trust-ignored`; `identity-requested` ->
     `identity-installed` | `identity-failed` | `identity-ignored`; firmware (step 4, then
     `re-trigger` -> step 3 or `no-re-trigger` -> step 5); step 5.
   - locked, rejected, unknown_device, anything else: the end.
4. Firmware: `firmware-download` {version, url} -> `firmware-verified` -> `reboot` {from, to}
   (state rebooting, `REBOOT_SECONDS` on the clock) -> `booted` {firmware}; or
   `firmware-checksum-mismatch` / `firmware-ignored`.
5. Provisioning: `provisioning` {url, server_type}, `server-not-verified` when nothing is
   verified, `file-fetched` {path, bytes} / `file-not-found` {path, status} per request
   (`upgrade-script-not-found` before falling back to the settings file), `fetch-failed`
   {reason} (the end), `trustcerts-fetched` {files, certificates, limit},
   `settings-applied` {files, parameters, problems}.
6. Every run ends with `outcome` {result, reason}, in a terminal state.
`reprovision()` starts with `reprovision-requested` and goes to step 3.

States (`State`): off, booting, prompt, network-discovery, manual-entry, des-discovery,
code-entry, redirected, identity, upgrading, rebooting, provisioning, and the terminal ready,
idle (booted without a provisioning server), failed.

Outcome results (`OutcomeResult`, stable ids):
- `provisioned`: settings fetched and applied (from enrollment, the network, or manual entry).
- `upgraded-no-retrigger`: upgraded by an `upgrade` answer and rebooted into a version without
  "Re-trigger after firmware upgrade" (FW-6): the phone sits without a provisioning server.
- `code-invalid`: the last answer was `code_invalid` and the user had no more codes.
- `locked` (LCK-2), `rejected` (ENR-4 etc.; reason = the server's reason id),
  `unknown-device` (ENR-1).
- `manual-entry`: waiting at manual server entry (cancelled code entry, "No" without a network
  server, or codes the firmware cannot take) with no URL typed by the user.
- `upgrade-failed`: download failed, SHA-256 mismatch, firmware cannot upgrade, upgrade loop.
- `unreachable`: the enrollment server could not be talked to (connection, TLS either way,
  timeouts after the retries); reason = the transport's id.
- `provisioning-failed`: the phone refused the provisioning URL (reason e.g.
  `http-url-not-supported`), the file server's certificate (`wildcard-certificate-refused`,
  `server-certificate-untrusted`…), could not reach it, or found no settings file.
- `protocol-error`: an answer outside PROTOCOL §2 (reason = the server's error id or `http-<n>`).
- `not-supported`: `reprovision()` where "Re-provisioning devices" is not supported.
- `simulator-error`: a bug in the simulator (never a verdict on the device or server).

Decisions (also in docs/decisions.md, "Phone simulator decisions"):
- A phone that already has a provisioning server (from an earlier boot) does not prompt or run
  discovery again on `boot()`: "DES discovery is attempted … if there is no configuration file
  server provisioned" [tpl S2:L8759]; `reprovision()` (ENR-7) and `factory_reset()` exist for
  that. What it learnt (server, group, trust, identity certificate, parameters, firmware) is
  its non-volatile memory, kept across boots.
- Enrollment is retried after connection failures (not after TLS refusals) `len(RETRY_DELAYS)`
  times, waiting on the phone's clock; a 503 answer after its Retry-After, up to `BUSY_RETRIES`.
- The firmware the phone reports is the one it runs, unless the non-conforming fault knob
  `report_firmware` says otherwise (the way to make a correct server send what this firmware
  cannot use, so the phone's own refusals can be tested).
- Events carry the lab clock's time (the environment's clock, without the skew knob); the
  skew applies to the phone's certificate checks only.
- Codes never appear in events (only their length), passwords in URLs show as `****`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from simulators import est
from simulators.capabilities import REFUSES_WILDCARDS, Capabilities
from simulators.clock import Clock, RealClock
from simulators.discovery import (
    ENROLL_PATH,
    Answer,
    PromptAnswer,
    code_kind,
    code_problem,
    network_server,
    parse_answer,
    prompt,
)
from simulators.events import Event
from simulators.firmware import MAX_UPGRADES, REBOOT_SECONDS, FirmwareInstruction, corrupt, verify
from simulators.identity import PhoneIdentity
from simulators.mtls import OwnCertificate
from simulators.network import NetworkLayer, NetworkServer
from simulators.provisioning import (
    FileFetcher,
    ProvisioningStop,
    expand_url,
    locate,
    max_trustcerts,
    redact,
    trustcerts_names,
    url_problem,
)
from simulators.script import Options, interpret_async
from simulators.tls import HandshakePolicy, TrustStore, split_pem
from simulators.transport import Reply, Transport, TransportError

# What a request is made with: a shared context (no client certificate), the phone's own
# certificate (`simulators.mtls`), or None for plain HTTP.
Context = ssl.SSLContext | OwnCertificate | None

__all__ = ["Faults", "Outcome", "OutcomeResult", "Phone", "PhoneEnvironment", "State", "User"]

log = logging.getLogger(__name__)

RETRY_DELAYS = (10.0, 20.0, 40.0)
BUSY_RETRIES = 20
_RETRYABLE = frozenset({"connection-dropped", "connection-refused", "connection-failed", "timeout"})


class State(StrEnum):
    OFF = "off"
    BOOTING = "booting"
    PROMPT = "prompt"
    NETWORK_DISCOVERY = "network-discovery"
    MANUAL_ENTRY = "manual-entry"
    DES_DISCOVERY = "des-discovery"
    CODE_ENTRY = "code-entry"
    REDIRECTED = "redirected"
    IDENTITY = "identity"
    UPGRADING = "upgrading"
    REBOOTING = "rebooting"
    PROVISIONING = "provisioning"
    READY = "ready"
    IDLE = "idle"
    FAILED = "failed"


class OutcomeResult(StrEnum):
    """How a run ended (module docstring)."""

    PROVISIONED = "provisioned"
    UPGRADED_NO_RETRIGGER = "upgraded-no-retrigger"
    CODE_INVALID = "code-invalid"
    LOCKED = "locked"
    REJECTED = "rejected"
    UNKNOWN_DEVICE = "unknown-device"
    MANUAL_ENTRY = "manual-entry"
    UPGRADE_FAILED = "upgrade-failed"
    UNREACHABLE = "unreachable"
    PROVISIONING_FAILED = "provisioning-failed"
    PROTOCOL_ERROR = "protocol-error"
    NOT_SUPPORTED = "not-supported"
    SIMULATOR_ERROR = "simulator-error"


_TERMINAL_STATE = {
    OutcomeResult.PROVISIONED: State.READY,
    OutcomeResult.UPGRADED_NO_RETRIGGER: State.IDLE,
    OutcomeResult.MANUAL_ENTRY: State.MANUAL_ENTRY,
}


@dataclass(frozen=True, slots=True)
class User:
    """The person at the phone: the prompt answer, the codes typed in order, and the server
    typed at manual server entry (None: nobody types one)."""

    prompt: str = "yes"
    codes: Sequence[str] = ()
    cancel_to_manual: str | None = None

    def __post_init__(self) -> None:
        PromptAnswer(self.prompt)  # ValueError for anything but yes / no / timeout
        object.__setattr__(self, "codes", tuple(self.codes))


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault knobs for negative tests. Expired or foreign factory certificates come from
    `simulators.factory` (`expired=True`, `foreign=True`); a slow file server is the file
    server's knob (`harness.fileserver`).

    - `clock_skew`: seconds the phone's clock is off; it checks server certificates at that time.
    - `drop_connection`: the first N enrollment requests are sent and the connection closed
      before the answer is read (the server did act on them).
    - `corrupt_firmware`: a downloaded image arrives with a flipped bit.
    Non-conforming behaviours (a phone that breaks the rules, for server-side and report tests):
    - `ignore_group`: keeps GROUP 0 whatever the enrollment sent.
    - `ignore_http_refusal`: fetches an HTTP URL although its firmware lacks "HTTP provisioning URL".
    - `report_firmware`: tells the enrollment server this version instead of the one it runs.
    """

    clock_skew: float = 0.0
    drop_connection: int = 0
    corrupt_firmware: bool = False
    ignore_group: bool = False
    ignore_http_refusal: bool = False
    report_firmware: str | None = None


_NO_USER = User()
_NO_FAULTS = Faults()


@dataclass(slots=True)
class Outcome:
    """The end of a run (`boot()` or `reprovision()`)."""

    result: OutcomeResult
    reason: str | None = None
    firmware: str = ""
    group: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    server: str | None = None
    identity_certificate: bytes | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result is OutcomeResult.PROVISIONED

    def to_json(self) -> dict[str, Any]:
        return {
            "result": str(self.result),
            "reason": self.reason,
            "firmware": self.firmware,
            "group": self.group,
            "server": self.server,
            "params": self.params,
            "fetched": self.fetched,
            "identity_certificate": self.identity_certificate is not None,
            "detail": self.detail,
        }


class PhoneEnvironment:
    """What a fleet of phones shares: the enrollment server's URL, the CAs built into the phones
    as public roots, the lab's host names, the network layer, the clock, and one HTTP session.

    The session is opened by the first phone that boots and closed when the last running phone
    finishes (or by `close()` / `async with`), so phones can be made and booted without managing
    it; a fleet booting phones back to back keeps one session throughout.
    """

    def __init__(
        self,
        enrollment_url: str,
        public_roots: Sequence[bytes] = (),
        hosts: Mapping[str, str] | None = None,
        network: NetworkLayer | None = None,
        clock: Clock | None = None,
        http_timeout: float = 10.0,
        *,
        capabilities: Capabilities | None = None,
        keepalive: float = 2.0,
    ) -> None:
        self.enrollment_url = enrollment_url.rstrip("/")
        self.public_roots = tuple(pem if isinstance(pem, bytes) else str(pem).encode() for pem in public_roots)
        self.hosts = dict(hosts or {})
        self.network = network
        self.clock: Clock = clock or RealClock()
        self.http_timeout = http_timeout
        self.capabilities = capabilities or Capabilities.load()
        self.keepalive = keepalive
        self._transport: Transport | None = None
        self._active = 0

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[Transport]:
        if self._transport is None:
            self._transport = Transport(self.hosts, timeout=self.http_timeout, keepalive=self.keepalive)
        transport = self._transport
        self._active += 1
        try:
            yield transport
        finally:
            self._active -= 1
            if self._active == 0 and self._transport is transport:
                self._transport = None
                await transport.close()

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    async def __aenter__(self) -> PhoneEnvironment:
        self._active += 1  # keeps the session open between phones
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._active -= 1
        await self.close()


class _Memory:
    """What the phone keeps across boots (non-volatile)."""

    __slots__ = (
        "block_wildcards",
        "firmware",
        "group",
        "identity_cert",
        "identity_key",
        "params",
        "server_type",
        "server_url",
        "trust",
        "trustcerts",
        "verify",
    )

    def __init__(self, firmware: str) -> None:
        self.firmware = firmware
        self.server_url: str | None = None
        self.server_type: str | None = None
        self.group = 0
        self.trust: list[bytes] = []  # root CA from enrollment
        self.trustcerts: list[bytes] = []  # from TRUSTCERTS
        self.verify = True
        self.identity_cert: bytes | None = None
        self.identity_key: bytes | None = None
        self.params: dict[str, str] = {}
        self.block_wildcards = False


class Phone:
    """One simulated phone (module docstring). Nothing costly exists until `boot()`."""

    __slots__ = ("_busy", "_cert_pem", "_events", "_key_pem", "_memory", "_state", "env", "faults", "identity",
                 "outcome", "user")

    def __init__(
        self,
        identity: PhoneIdentity,
        factory_key_pem: bytes,
        factory_cert_pem: bytes,
        env: PhoneEnvironment,
        user: User | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.identity = identity
        self._key_pem = factory_key_pem
        self._cert_pem = factory_cert_pem
        self.env = env
        self.user = user or _NO_USER
        self.faults = faults or _NO_FAULTS
        self._state = State.OFF
        self._events: list[Event] | None = None
        self._memory: _Memory | None = None
        self.outcome: Outcome | None = None
        self._busy = False

    @property
    def state(self) -> State:
        return self._state

    @property
    def events(self) -> list[Event]:
        return self._events if self._events is not None else []

    @property
    def firmware(self) -> str:
        """The version running now."""
        return self._memory.firmware if self._memory is not None else self.identity.firmware

    @property
    def mac(self) -> str:
        return self.identity.mac

    def factory_reset(self) -> None:
        """Forget everything learnt (server, trust, identity certificate); keep the firmware."""
        firmware = self.firmware
        self._memory = _Memory(firmware)
        self._state = State.OFF

    async def boot(self) -> Outcome:
        """Power on and run to a terminal state."""
        return await self._run("boot")

    async def reprovision(self) -> Outcome:
        """ENR-7: run enrollment discovery again from the settings menu, where supported."""
        return await self._run("reprovision")

    async def _run(self, how: str) -> Outcome:
        if self._busy:
            raise RuntimeError(f"phone {self.mac} is already running")
        self._busy = True
        if self._events is None:
            self._events = []
        if self._memory is None:
            self._memory = _Memory(self.identity.firmware)
        try:
            async with self.env.transport() as transport:
                run = _Run(self, transport)
                try:
                    outcome = await (run.boot() if how == "boot" else run.reprovision())
                except Exception as exc:  # a simulator bug must not take a fleet down
                    log.exception("phone %s: simulator error", self.mac)
                    outcome = run.finish(OutcomeResult.SIMULATOR_ERROR, "simulator-error", error=repr(exc))
        finally:
            self._busy = False
        self.outcome = outcome
        return outcome


class _Run:
    """One run of the state machine; dropped at the end, with its contexts."""

    def __init__(self, phone: Phone, transport: Transport) -> None:
        self.phone = phone
        self.env = phone.env
        self.caps = phone.env.capabilities
        self.model = self.caps.model(phone.identity.model)
        self.transport = transport
        self.clock = phone.env.clock
        assert phone._memory is not None
        self.memory: _Memory = phone._memory
        self.user = phone.user
        self.faults = phone.faults
        self.code_index = 0
        self.drops_left = phone.faults.drop_connection
        self.upgrades = 0
        self.requested: list[str] = []
        self.fetched: list[str] = []
        self._factory_context: OwnCertificate | None = None

    # -- recording ---------------------------------------------------------------------------

    @property
    def mac(self) -> str:
        return self.phone.identity.mac

    @property
    def firmware(self) -> str:
        return self.memory.firmware

    def record(self, name: str, **detail: Any) -> None:
        events = self.phone._events
        assert events is not None
        events.append(Event(self.clock.now(), self.mac, str(self.phone._state), name, detail))

    def enter(self, state: State, name: str, **detail: Any) -> None:
        self.phone._state = state
        self.record(name, **detail)

    def supports(self, feature: str, firmware: str | None = None) -> bool:
        return self.caps.supports(self.model.name, firmware or self.firmware, feature)

    def finish(self, result: OutcomeResult, reason: str | None = None, **detail: Any) -> Outcome:
        self.enter(_TERMINAL_STATE.get(result, State.FAILED), "outcome", result=str(result), reason=reason)
        memory = self.memory
        return Outcome(
            result=result,
            reason=reason,
            firmware=memory.firmware,
            group=memory.group if memory.server_url else None,
            params=dict(memory.params) if result is OutcomeResult.PROVISIONED else {},
            fetched=list(self.fetched),
            requested=list(self.requested),
            server=redact(memory.server_url),
            identity_certificate=memory.identity_cert,
            detail=detail,
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def policy(self) -> HandshakePolicy:
        """The phone's own checks on a server certificate (`simulators.tls`): the wildcard quirk
        (or BLOCK_CERTIFICATE_WILDCARDS 1 from its settings) and its clock skew."""
        refuse = self.caps.has_quirk(self.model.name, self.firmware, REFUSES_WILDCARDS) or self.memory.block_wildcards
        return HandshakePolicy(refuse, self.faults.clock_skew)

    def factory_context(self) -> OwnCertificate:
        """Mutual TLS with the factory certificate, trusting the built-in public roots."""
        if self._factory_context is None:
            self._factory_context = OwnCertificate(
                self.env.public_roots, self.phone._cert_pem, self.phone._key_pem, self.policy()
            )
        return self._factory_context

    async def http(
        self, method: str, url: str, context: Context, *, drop: bool = False, **kwargs: Any
    ) -> Reply:
        return await self.transport.request(method, url, context, drop=drop, **kwargs)

    # -- boot and discovery --------------------------------------------------------------------

    async def boot(self) -> Outcome:
        self.enter(State.BOOTING, "power-on", model=self.model.name, firmware=self.firmware)
        if self.memory.server_url:
            self.record("configured-server", url=redact(self.memory.server_url))
            return await self.provision()
        self.enter(State.PROMPT, "prompt-shown", timeout=self.model.prompt_seconds)
        answer = await prompt(PromptAnswer(self.user.prompt), self.model.prompt_seconds, self.clock)
        if answer is PromptAnswer.TIMEOUT:
            self.record("prompt-timeout", after=self.model.prompt_seconds)
        else:
            self.record("prompt-answered", answer=str(answer))
        if answer is PromptAnswer.YES:
            return await self.des()
        server = await self.network()
        if server is not None:
            return await self.from_network(server)
        if answer is PromptAnswer.NO:
            return await self.manual("no-provisioning-server")
        return await self.des()

    async def reprovision(self) -> Outcome:
        self.enter(State.BOOTING, "reprovision-requested", firmware=self.firmware)
        feature = "re-provisioning-devices"
        if not self.supports(feature):
            explain = self.caps.explain(self.model.name, self.firmware, feature)
            return self.finish(OutcomeResult.NOT_SUPPORTED, "re-provisioning-not-supported", explain=explain)
        return await self.des()

    async def network(self) -> NetworkServer | None:
        self.enter(State.NETWORK_DISCOVERY, "network-discovery", attached=self.env.network is not None)
        try:
            server = await network_server(self.env.network)
        except Exception as exc:
            self.record("no-network-server", error=repr(exc))
            return None
        if server is None:
            self.record("no-network-server")
        else:
            self.record("network-server", url=redact(server.url), source=server.source)
        return server

    async def from_network(self, server: NetworkServer) -> Outcome:
        self.memory.server_url = server.url
        self.memory.server_type = "HTTPS" if server.url.startswith("https:") else "HTTP"
        self.memory.verify = bool(self.memory.trustcerts)
        return await self.provision()

    async def manual(self, reason: str) -> Outcome:
        self.enter(State.MANUAL_ENTRY, "manual-entry", reason=reason)
        url = self.user.cancel_to_manual
        if not url:
            return self.finish(OutcomeResult.MANUAL_ENTRY, reason)
        self.record("manual-server-entered", url=redact(url))
        self.memory.server_url = url
        self.memory.server_type = "HTTPS" if url.lower().startswith("https:") else "HTTP"
        self.memory.verify = bool(self.memory.trustcerts)
        return await self.provision()

    # -- enrollment (PROTOCOL §2) ----------------------------------------------------------

    async def des(self) -> Outcome:
        self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url)
        code: str | None = None
        while True:
            answer = await self.enroll(code)
            if isinstance(answer, Outcome):
                return answer
            result = answer.result
            if result == "redirect" and answer.status == 200:
                return await self.redirect(answer.body)
            if result == "upgrade" and answer.status == 200:
                upgraded = await self.upgrade(answer.body.get("firmware"), in_redirect=False)
                if isinstance(upgraded, Outcome):
                    return upgraded
                if not upgraded:
                    return self.finish(OutcomeResult.UPGRADED_NO_RETRIGGER, "re-trigger-not-supported")
                self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url, after="upgrade")
                code = None
                continue
            if result in ("code_required", "code_invalid"):
                typed = await self.ask_code(answer)
                if isinstance(typed, Outcome):
                    return typed
                code = typed
                continue
            if result == "locked":
                return self.finish(OutcomeResult.LOCKED, None, retry_after=answer.body.get("retry_after"))
            if result == "rejected":
                reason = answer.body.get("reason")
                reason = reason if isinstance(reason, str) else None
                return self.finish(OutcomeResult.REJECTED, reason, detail=answer.body.get("detail"))
            if result == "unknown_device":
                return self.finish(OutcomeResult.UNKNOWN_DEVICE, None)
            return self.finish(OutcomeResult.PROTOCOL_ERROR, answer.error or f"http-{answer.status}",
                               status=answer.status, answer=result)

    def enroll_body(self, code: str | None) -> dict[str, Any]:
        identity = self.phone.identity
        return {
            "model": identity.model,
            "firmware": self.faults.report_firmware or self.firmware,
            "mac": identity.mac,
            "serial": identity.serial,
            "code": code,
        }

    async def enroll(self, code: str | None) -> Answer | Outcome:
        """One enrollment attempt, with the retries of the module docstring."""
        url = self.env.enrollment_url + ENROLL_PATH
        body = self.enroll_body(code)
        if self.faults.report_firmware:
            self.record("non-conforming", behaviour="report-firmware", reported=self.faults.report_firmware,
                        running=self.firmware)
        failures = busy = 0
        while True:
            drop = self.drops_left > 0
            self.record("enroll-request", code=None if code is None else code_kind(code), firmware=body["firmware"])
            try:
                reply = await self.http("POST", url, self.factory_context(), json=body, drop=drop)
            except TransportError as exc:
                if drop:
                    self.drops_left -= 1
                self.record("connection-failed", reason=exc.reason, detail=exc.detail)
                if exc.reason in _RETRYABLE and failures < len(RETRY_DELAYS):
                    delay = RETRY_DELAYS[failures]
                    failures += 1
                    self.record("retry", attempt=failures, after=delay)
                    await self.clock.sleep(delay)
                    continue
                return self.finish(OutcomeResult.UNREACHABLE, exc.reason, error=exc.detail)
            answer = parse_answer(reply.status, reply.body)
            self.record("enroll-answer", **answer.summary())
            if reply.status == 503 and answer.result is None and busy < BUSY_RETRIES:
                busy += 1
                delay = _retry_after(reply.headers.get("Retry-After"))
                self.record("retry", attempt=busy, after=delay, reason="busy")
                await self.clock.sleep(delay)
                continue
            return answer

    async def ask_code(self, answer: Answer) -> str | Outcome:
        """ENR-3: the code the user types next, or what happens when they have none left."""
        formats = self.caps.code_formats(self.model.name, self.firmware)
        if answer.result == "code_invalid":
            self.record("code-refused-by-server", attempts_left=answer.body.get("attempts_left"))
        if not formats:
            return await self.manual("codes-not-supported")
        self.enter(State.CODE_ENTRY, "code-prompt", formats=list(formats), offered=answer.body.get("formats"))
        codes = self.user.codes
        while self.code_index < len(codes):
            code = codes[self.code_index]
            self.code_index += 1
            problem = code_problem(code, formats)
            if problem is not None:
                self.record("code-refused", reason=problem, length=len(code))
                continue
            self.record("code-typed", kind=code_kind(code))
            return code
        self.record("code-cancelled")
        if answer.result == "code_invalid" and not self.user.cancel_to_manual:
            return self.finish(OutcomeResult.CODE_INVALID, None, attempts_left=answer.body.get("attempts_left"))
        return await self.manual("code-entry-cancelled")

    # -- firmware (FW-2, FW-4, FW-6) -------------------------------------------------------

    async def upgrade(self, raw: Any, *, in_redirect: bool) -> Outcome | bool:
        """Install the image; answers whether discovery runs again (FW-6), or how it failed.
        In a redirect, an instruction the phone cannot follow is ignored (False: go on)."""
        instruction = FirmwareInstruction.parse(raw)
        if instruction is None:
            if in_redirect:
                self.record("firmware-ignored", reason="invalid-firmware-object")
                return False
            return self.finish(OutcomeResult.PROTOCOL_ERROR, "invalid-firmware-object")
        if not self.supports("firmware-upgrade"):
            explain = self.caps.explain(self.model.name, self.firmware, "firmware-upgrade")
            self.record("firmware-ignored", reason="firmware-upgrade-not-supported", explain=explain)
            if in_redirect:
                return False
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-upgrade-not-supported")
        self.upgrades += 1
        if self.upgrades > MAX_UPGRADES:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "upgrade-loop", upgrades=self.upgrades - 1)
        self.enter(State.UPGRADING, "firmware-download", version=instruction.version, url=instruction.url)
        try:
            reply = await self.http("GET", instruction.url, self.factory_context())
        except TransportError as exc:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-download-failed", error=exc.reason)
        if reply.status != 200:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-download-failed", status=reply.status)
        image = corrupt(reply.body) if self.faults.corrupt_firmware else reply.body
        if not verify(image, instruction.sha256):
            self.record("firmware-checksum-mismatch", expected=instruction.sha256, size=len(image))
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-checksum-mismatch")
        self.record("firmware-verified", sha256=instruction.sha256.lower(), size=len(image))
        old, self.memory.firmware = self.memory.firmware, instruction.version
        self._factory_context = None  # the new version may check certificates differently
        self.enter(State.REBOOTING, "reboot", **{"from": old, "to": instruction.version})
        await self.clock.sleep(REBOOT_SECONDS)
        self.enter(State.BOOTING, "booted", firmware=instruction.version)
        feature = "re-trigger-after-firmware-upgrade"
        retrigger = self.supports(feature)
        self.record("re-trigger" if retrigger else "no-re-trigger",
                    explain=self.caps.explain(self.model.name, self.firmware, feature))
        return retrigger

    # -- the redirect (ENR-2, ENR-4, ENR-8) --------------------------------------------------

    async def redirect(self, body: Mapping[str, Any]) -> Outcome:
        provisioning = body.get("provisioning")
        if not isinstance(provisioning, Mapping) or not isinstance(provisioning.get("url"), str):
            return self.finish(OutcomeResult.PROTOCOL_ERROR, "invalid-redirect")
        raw_url: str = provisioning["url"]
        server_type = str(provisioning.get("server_type") or "")
        group = provisioning.get("group", 0)
        trust = provisioning.get("trust") or []
        firmware = body.get("firmware")
        identity = body.get("identity")
        self.enter(
            State.REDIRECTED,
            "redirect",
            url=redact(raw_url),
            server_type=server_type,
            group=group,
            trust=len(trust) if isinstance(trust, list) else 0,
            firmware=firmware.get("version") if isinstance(firmware, Mapping) else None,
            identity=identity is not None,
        )
        ident = self.phone.identity
        url = expand_url(raw_url, self.model.model4, ident.mac, ident.serial)
        if url != raw_url:
            self.record("url-expanded", url=redact(url))
        problem = url_problem(self.caps, self.model.name, self.firmware, url, server_type)
        if problem == "http-url-not-supported" and self.faults.ignore_http_refusal:
            self.record("non-conforming", behaviour="ignore-http-refusal", reason=problem)
        elif problem is not None:
            self.record("url-refused", reason=problem, url=redact(url))
            return self.finish(OutcomeResult.PROVISIONING_FAILED, problem, url=redact(url))
        self.apply_group(group)
        memory = self.memory
        memory.server_url, memory.server_type, memory.verify = url, server_type.upper() or None, True
        memory.trust = self.enrollment_trust(trust)
        if identity is not None:
            await self.identity_certificate(identity)
        if firmware is not None:
            upgraded = await self.upgrade(firmware, in_redirect=True)
            if isinstance(upgraded, Outcome):
                return upgraded
            if upgraded:
                self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url, after="upgrade")
                return await self.des()
        return await self.provision()

    def apply_group(self, group: Any) -> None:
        """ENR-2/Device group ID: GROUP takes the enrollment's group where supported, else stays 0."""
        offered = group if isinstance(group, int) and not isinstance(group, bool) and 0 <= group <= 999 else 0
        if not self.supports("device-group-id"):
            self.memory.group = 0
            self.record("group-not-supported", offered=offered)
        elif self.faults.ignore_group:
            self.memory.group = 0
            self.record("non-conforming", behaviour="ignore-group", offered=offered)
        else:
            self.memory.group = offered
            self.record("group-applied", group=offered)

    def enrollment_trust(self, trust: Any) -> list[bytes]:
        """The root CA sent with the URL, kept where "Certificate with provisioning URL" is supported."""
        pems = [pem.encode() for pem in trust if isinstance(pem, str)] if isinstance(trust, list) else []
        if not pems:
            return []
        if not self.supports("certificate-with-provisioning-url"):
            reason = "certificate-with-provisioning-url-not-supported"
            self.record("trust-ignored", reason=reason, certificates=len(pems))
            return []
        kept = [cert for pem in pems for cert in split_pem(pem)]
        self.record("trust-added", source="enrollment", certificates=len(kept))
        return kept

    async def identity_certificate(self, identity: Any) -> None:
        """ENR-8: an identity certificate by EST where instructed and supported; a failure is
        recorded and provisioning goes on (the phone keeps its factory certificate)."""
        base = identity.get("est") if isinstance(identity, Mapping) else None
        if not isinstance(base, str) or not base:
            self.record("identity-ignored", reason="invalid-identity-object")
            return
        if not self.supports("avaya-issued-certificates"):
            self.record("identity-ignored", reason="avaya-issued-certificates-not-supported")
            return
        self.enter(State.IDENTITY, "identity-requested", est=base)
        key_pem, csr = est.make_csr(self.mac)
        try:
            reply = await self.http(
                "POST",
                base.rstrip("/") + "/simpleenroll",
                self.factory_context(),
                data=csr,
                headers={"Content-Type": est.CSR_CONTENT_TYPE},
            )
        except TransportError as exc:
            self.record("identity-failed", reason=exc.reason)
            return
        if reply.status != 200:
            error = parse_answer(reply.status, reply.body).error
            self.record("identity-failed", status=reply.status, error=error)
            return
        try:
            certificates = est.read_certificates(reply.body)
        except ValueError as exc:
            self.record("identity-failed", reason="invalid-pkcs7", detail=str(exc))
            return
        leaf = certificates[0]
        self.memory.identity_cert = leaf.public_bytes(serialization.Encoding.PEM)
        self.memory.identity_key = key_pem
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.record("identity-installed", subject_cn=str(cn[0].value) if cn else None,
                    issuer=leaf.issuer.rfc4514_string(), not_after=leaf.not_valid_after_utc.isoformat())

    # -- provisioning (research §1, §7) ----------------------------------------------------

    def trust_store(self) -> TrustStore:
        memory = self.memory
        store = TrustStore(self.env.public_roots, verify=memory.verify or bool(memory.trustcerts))
        for pem in memory.trust:
            store.add(pem, "enrollment")
        for pem in memory.trustcerts:
            store.add(pem, "trustcerts")
        return store

    def provisioning_context(self, https: bool) -> tuple[Context, TrustStore | None]:
        if not https:
            return None, None
        if self.memory.server_type == "DES":
            return self.factory_context(), None  # ENR-6: the same mutual TLS as enrollment
        store = self.trust_store()
        policy = self.policy()
        if self.memory.identity_cert is not None:
            assert self.memory.identity_key is not None
            return OwnCertificate(store.roots(), self.memory.identity_cert, self.memory.identity_key, policy), store
        return self.transport.contexts.get(store.roots(), policy), store

    async def provision(self) -> Outcome:
        memory = self.memory
        assert memory.server_url is not None
        self.enter(State.PROVISIONING, "provisioning", url=redact(memory.server_url), server_type=memory.server_type)
        location = locate(memory.server_url)
        context, store = self.provisioning_context(location.https)
        if store is not None and not store.verify:
            self.record("server-not-verified", reason="trustcerts-empty")

        async def get(url: str) -> Reply:
            return await self.http("GET", url, context)

        fetcher = FileFetcher(location, get, self.record)
        variables = self.caps.variables(
            self.model.name, self.firmware, self.mac, self.phone.identity.serial,
            group=memory.group, hwvers=self.phone.identity.hwvers,
        )
        if location.directory:
            variables["HTTPDIR"] = location.directory
        options = Options(value_lengths=self.model.value_lengths)
        try:
            result = await interpret_async(self.model.first_file, fetcher, variables, options)
            if not result.files and self.model.upgrade_script:
                self.record("upgrade-script-not-found", path=self.model.first_file)
                result = await interpret_async(self.model.settings_file, fetcher, variables, options)
            if not result.files:
                return self.finish_provisioning(fetcher, "settings-not-found")
            params = dict(result.params)
            await self.trustcerts(params, fetcher, location.directory)
        except ProvisioningStop as stop:
            return self.finish_provisioning(fetcher, stop.reason, **stop.detail)
        memory.params = params
        memory.block_wildcards = params.get("BLOCK_CERTIFICATE_WILDCARDS", "0").strip() == "1"
        self.record(
            "settings-applied",
            files=list(result.files),
            parameters=len(params),
            problems=sorted({p.kind for p in result.problems}),
        )
        self.requested, self.fetched = fetcher.requested, fetcher.found
        return self.finish(OutcomeResult.PROVISIONED)

    def finish_provisioning(self, fetcher: FileFetcher, reason: str, **detail: Any) -> Outcome:
        self.requested, self.fetched = fetcher.requested, fetcher.found
        return self.finish(OutcomeResult.PROVISIONING_FAILED, reason, **detail)

    async def trustcerts(self, params: dict[str, str], fetcher: FileFetcher, directory: str) -> None:
        """TRUSTCERTS (research §7): fetch the named files and keep their certificates."""
        names = trustcerts_names(params)
        if not names:
            return
        limit = max_trustcerts(params)
        folder = params.get("HTTPDIR", directory).strip("/")
        kept: list[bytes] = []
        for name in names:
            if name.lower().startswith(("http://", "https://")):
                data = await fetcher.fetch_url(name, name)
            else:
                data = await fetcher(f"{folder}/{name}" if folder else name)
            if data is None:
                continue
            for cert in split_pem(data):
                if len(kept) < limit and cert not in kept:
                    kept.append(cert)
        self.memory.trustcerts = kept
        self.record("trustcerts-fetched", files=len(names), certificates=len(kept), limit=limit)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(300.0, float(value or 1)))
    except ValueError:
        return 1.0


async def boot_all(phones: Sequence[Phone], concurrency: int = 64) -> list[Outcome]:
    """Boot `phones`, at most `concurrency` at a time; outcomes in the phones' order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(phone: Phone) -> Outcome:
        async with semaphore:
            return await phone.boot()

    return list(await asyncio.gather(*(one(p) for p in phones)))
