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

The stages live in `simulators.stages` (`boot`, `enroll`, `firmware`, `redirect`, `provision`,
composed by `simulators.stages.run.Run`); this module keeps the phone, its environment, the
person at it, the fault knobs, what it remembers across boots and how a run ends.

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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from simulators.capabilities import Capabilities
from simulators.clock import Clock, RealClock
from simulators.discovery import PromptAnswer
from simulators.events import Event
from simulators.identity import PhoneIdentity
from simulators.network import NetworkLayer, NetworkOffer
from simulators.transport import Transport

__all__ = ["Faults", "Outcome", "OutcomeResult", "Phone", "PhoneEnvironment", "State", "User"]

log = logging.getLogger(__name__)

RETRY_DELAYS = (10.0, 20.0, 40.0)
BUSY_RETRIES = 20


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


TERMINAL_STATE = {
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
    - `accept_wildcards`: accepts a wildcard server certificate although its firmware refuses them
      (quirk `refuses-wildcard-certificates`, or BLOCK_CERTIFICATE_WILDCARDS 1).
    - `report_firmware`: tells the enrollment server this version instead of the one it runs.
    """

    clock_skew: float = 0.0
    drop_connection: int = 0
    corrupt_firmware: bool = False
    ignore_group: bool = False
    ignore_http_refusal: bool = False
    report_firmware: str | None = None
    accept_wildcards: bool = False  # after report_firmware: the knobs' positional order is kept


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
    source: str = "none"  # where `server` came from (simulators.network.SOURCES); "none" without one

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
            "source": self.source,
            "params": self.params,
            "fetched": self.fetched,
            "identity_certificate": self.identity_certificate is not None,
            "detail": self.detail,
        }


class PhoneEnvironment:
    """What a fleet of phones shares: the enrollment server's URL, the CAs built into the phones
    as public roots, the lab's host names, the network layer, the clock, and one HTTP session —
    made inside the network namespace `netns` when given (a phone on a lab network of its own).

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
        netns: str | None = None,
    ) -> None:
        self.enrollment_url = enrollment_url.rstrip("/")
        self.public_roots = tuple(pem if isinstance(pem, bytes) else str(pem).encode() for pem in public_roots)
        self.hosts = dict(hosts or {})
        self.network = network
        self.clock: Clock = clock or RealClock()
        self.http_timeout = http_timeout
        self.capabilities = capabilities or Capabilities.load()
        self.keepalive = keepalive
        self.netns = netns
        self._transport: Transport | None = None
        self._active = 0

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[Transport]:
        if self._transport is None:
            self._transport = Transport(self.hosts, timeout=self.http_timeout, keepalive=self.keepalive,
                                        netns=self.netns)
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


class Memory:
    """What the phone keeps across boots (non-volatile)."""

    __slots__ = (
        "block_wildcards",
        "firmware",
        "group",
        "identity_cert",
        "identity_key",
        "params",
        "server_source",
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
        self.server_source: str | None = None  # simulators.network.SOURCES: where server_url came from
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

    __slots__ = ("_busy", "_cert_pem", "_events", "_key_pem", "_memory", "_offer", "_state", "env", "faults",
                 "identity", "outcome", "user")

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
        self._memory: Memory | None = None
        self._offer: NetworkOffer | None = None  # what the network offered since power-on (volatile)
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
        self._memory = Memory(firmware)
        self._offer = None
        self._state = State.OFF

    async def boot(self) -> Outcome:
        """Power on and run to a terminal state."""
        return await self._run("boot")

    async def reprovision(self) -> Outcome:
        """ENR-7: run enrollment discovery again from the settings menu, where supported."""
        return await self._run("reprovision")

    async def _run(self, how: str) -> Outcome:
        from simulators.stages.run import Run  # the stages import this module's types

        if self._busy:
            raise RuntimeError(f"phone {self.mac} is already running")
        self._busy = True
        if self._events is None:
            self._events = []
        if self._memory is None:
            self._memory = Memory(self.identity.firmware)
        try:
            async with self.env.transport() as transport:
                run = Run(self, transport)
                try:
                    outcome = await (run.boot() if how == "boot" else run.reprovision())
                except Exception as exc:  # a simulator bug must not take a fleet down
                    log.exception("phone %s: simulator error", self.mac)
                    outcome = run.finish(OutcomeResult.SIMULATOR_ERROR, "simulator-error", error=repr(exc))
        finally:
            self._busy = False
        self.outcome = outcome
        return outcome


async def boot_all(phones: Sequence[Phone], concurrency: int = 64) -> list[Outcome]:
    """Boot `phones`, at most `concurrency` at a time; outcomes in the phones' order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(phone: Phone) -> Outcome:
        async with semaphore:
            return await phone.boot()

    return list(await asyncio.gather(*(one(p) for p in phones)))
