"""`PhysicalDevice`: a real phone on the bench as a device under test, the peer of
`harness.dut.SimulatedDevice` behind the same protocol (labgrid's resource/driver split, OpenHTF's
plug): a test body runs unchanged on either.

A physical phone is known only from outside. `boot()` reboots it by the lab file's `reboot`
method (`harness.physical.reboot`) and then *waits for what it does*, seen by the bench:

- the enrollment server's audit log (`GET /api/v1/logs`, ENR-5): every enrollment answer for the
  phone's MAC, with its result and the model and firmware the phone reported;
- the harness's file servers' request logs: each file the phone's address fetched, with status;
- (the lab network capture joins them as evidence when the run has one).

The wait is an event wait with a deadline (the lab file's `boot_timeout`, else
`Bench.boot_timeout`, 300 s): it polls the two logs and ends as soon as the phone reached a terminal point —
a settings file fetched (provisioned), or an enrollment answer after which a phone stops
(`code_invalid`, `locked`, `rejected`, `unknown_device`) and `settle` seconds of quiet. A phone
that never comes back is a `HarnessError("phone-silent")` whose message says what was seen.

The firmware the lab file declares is checked against what the phone reported in its first
enrollment request of the run: a mismatch is a `HarnessError("firmware-mismatch")` (the matrix's
predictions would be about another firmware). A boot that needs a person (codes to type, a
prompt to answer, a manual reboot) asks the operator when the run is attended and raises
`NeedsOperator` when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fixtures.features import FeatureMatrix
from harness.errors import HarnessError, NeedsOperator
from harness.fileserver import FileServer
from harness.lab import DeviceSpec
from harness.lab_network.dhcp_responder import mac_text
from harness.observers import AuditLogObserver, AuditMark, FileServerObserver, enrollment_result
from harness.physical.bench_spec import BenchSpec
from harness.physical.operator import ask_operator, has_terminal
from harness.physical.reboot import reboot
from simulators.admin_client import AdminClient
from simulators.clock import iso
from simulators.identity import canonical_mac
from simulators.phone import Outcome, OutcomeResult, User

__all__ = ["Bench", "PhysicalDevice"]

_REPORTED = re.compile(r"\)\s*:\s*(\S+)\s+(\S+?):\s")
STOPS = {  # enrollment results after which a phone stops asking (PROTOCOL §2)
    "code_invalid": OutcomeResult.CODE_INVALID,
    "locked": OutcomeResult.LOCKED,
    "rejected": OutcomeResult.REJECTED,
    "unknown_device": OutcomeResult.UNKNOWN_DEVICE,
}
DES_FILES = "/device/v1/files/"  # harness.scripted_des.FILES_PATH: DES-hosted files (ENR-6)
FIRMWARE = "/device/v1/firmware/"  # harness.scripted_des.FIRMWARE_PATH: images (FW-2)
SETTINGS = re.compile(r"(^|/)(46xxsettings\.(txt|scr)|[^/]*settings[^/]*\.txt)$", re.IGNORECASE)


@dataclass
class Bench:
    """What a physical phone is rebooted and observed through (module docstring)."""

    admin: Callable[[], contextlib.AbstractAsyncContextManager[AdminClient]] | None = None
    device_url: str = ""
    files: list[FileServer] = field(default_factory=list)
    attended: bool | None = None  # None: attended when there is a controlling terminal
    netns: str | None = None  # the harness's SIP socket (a lab in a box)
    spec: BenchSpec = field(default_factory=BenchSpec)  # the lab file's [bench]
    des: list[Any] = field(default_factory=list)  # scripted enrollment servers running (harness.scripted_des)
    network: Any = None  # harness.lab_network.service.LabNetwork serving [network], capturing
    boot_timeout: float = 300.0
    quiet_after_lease: float = 90.0  # a lease, then nothing for this long: the phone asked no server
    settle: float = 5.0
    poll: float = 0.5

    def is_attended(self) -> bool:
        return has_terminal() if self.attended is None else self.attended


@dataclass
class Seen:
    """What the bench saw of one phone since its reboot."""

    entries: list[dict[str, Any]] = field(default_factory=list)  # the enrollment server's audit entries
    fetched: list[tuple[Any, FileServerObserver]] = field(default_factory=list)  # harness file servers
    des_requests: list[Any] = field(default_factory=list)  # scripted DES: enrollment requests
    des_files: list[Any] = field(default_factory=list)  # scripted DES: DES-hosted files
    downloads: list[Any] = field(default_factory=list)  # scripted DES: firmware images
    refused: list[Any] = field(default_factory=list)  # harness file servers: TLS handshakes it did not complete
    leases: list[dict[str, Any]] = field(default_factory=list)  # the bench's DHCP: acks to its MAC

    @property
    def count(self) -> int:
        return len(self.entries) + len(self.fetched) + len(self.des_requests) + len(self.des_files) + \
            len(self.downloads) + len(self.refused) + len(self.leases)

    @property
    def only_lease(self) -> bool:
        """It came back on the LAN (a DHCP lease) and asked nothing the bench serves."""
        return bool(self.leases) and self.count == len(self.leases)

    @property
    def last(self) -> str | None:
        """What the phone did last: "enrollment", "download", "refused" or "file" (None: nothing)."""
        times = [(e.time, "enrollment") for e in self.des_requests] + [(d.time, "download") for d in self.downloads] \
            + [(h.time, "refused") for h in self.refused] + [(r.time, "file") for r, _ in self.fetched] \
            + [(d.time, "file") for d in self.des_files]
        return max(times)[1] if times else ("enrollment" if self.entries else None)

    @property
    def results(self) -> list[str | None]:
        """The enrollment answers in order (the audit log's, then a scripted server's)."""
        return [enrollment_result(e) for e in self.entries] + [r.result for r in self.des_requests]

    @property
    def settings_fetched(self) -> bool:
        return any(r.method == "GET" and r.status == 200 and SETTINGS.search(r.path) for r, _ in self.fetched) or \
            any(d.status == 200 and SETTINGS.search(d.path) for d in self.des_files)

    def reported(self) -> tuple[str, str] | None:
        """(model, firmware) the phone reported in its latest enrollment request."""
        for r in reversed(self.des_requests):
            body = r.body or {}
            if isinstance(body.get("model"), str) and isinstance(body.get("firmware"), str):
                return body["model"], body["firmware"]
        for entry in reversed(self.entries):
            found = _REPORTED.search(str(entry.get("message") or ""))
            if found:
                return found[1], found[2]
        return None


def _as_offer(layer: Any) -> tuple[str | None, str | None]:
    """(option 242 text, LLDP file server) of a test's network layer: a
    `simulators.network.StaticNetwork`, or one with `params` (option 242 already parsed)."""
    if hasattr(layer, "params"):
        return ",".join(f"{k}={v}" for k, v in dict(layer.params).items()) or None, None
    if hasattr(layer, "option_242") or hasattr(layer, "lldp_file_server"):
        return getattr(layer, "option_242", None), getattr(layer, "lldp_file_server", None)
    raise HarnessError("bench-network-unknown", f"a physical phone's network offer is option 242 or an LLDP file "
                       f"server, not {type(layer).__name__}")


class PhysicalDevice:
    """A phone on the bench (module docstring)."""

    driver = "physical"

    def __init__(self, spec: DeviceSpec, bench: Bench | None = None):
        from harness.dut import DeviceIdentity

        self.spec = spec
        self.bench = bench or Bench()
        self._identity = DeviceIdentity(spec.model, spec.firmware, spec.mac, spec.serial)
        self._events: list[dict[str, Any]] = []
        self.reported: tuple[str, str] | None = None  # (model, firmware) the phone last reported
        self.firmware_checked = False
        self._evidence_since: float | None = None
        self._lease_mark = 0
        self.network: Any = None  # what the bench's DHCP offers it for this test (set_network)

    # -- who it is ---------------------------------------------------------------------------------

    @property
    def identity(self) -> Any:
        return self._identity

    @property
    def id(self) -> str:
        return self._identity.id

    @property
    def address(self) -> str | None:
        return self.spec.ip

    @property
    def firmware(self) -> str:
        return self.reported[1] if self.reported else self.spec.firmware

    def supports(self, feature: str) -> bool:
        """Appendix A for the model and firmware the lab file declares (not the simulators' reading)."""
        return FeatureMatrix.load().supports(self.spec.model, self.spec.firmware, feature)

    def explain(self, feature: str) -> str:
        return FeatureMatrix.load().explain(self.spec.model, self.spec.firmware, feature)

    def arrange_row(self) -> dict[str, str]:
        if not self.spec.serial:
            raise HarnessError("serial-required", f"{self.id}: give the phone's serial in the lab file (the label on "
                               "its back) to import or claim it")
        row = {"mac": self.spec.mac, "serial": self.spec.serial, "model": self.spec.model}
        if self.spec.thumbprint:
            row["thumbprint"] = self.spec.thumbprint
        return row

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    # -- what it does ------------------------------------------------------------------------------

    async def boot(self, user: User | None = None) -> Outcome:
        """Reboot it and wait for what it does (module docstring)."""
        self._person_for(user)
        return await self._observe(lambda: self._reboot())

    async def reprovision(self) -> Outcome:
        """ENR-7 from the phone's own menu: a person's job on a real phone."""
        return await self._observe(lambda: self._operator(
            f"on the phone {self._name} choose Administration > Enrollment (re-run DES) from its menu"))

    def factory_reset(self) -> None:
        """Between tests the harness forgets what it observed; the phone itself is not touched
        (a real phone is reset from its craft menu: `erase`). A test therefore starts from the
        phone as the bench left it — which the lab engineer sets up (docs: "Pointing enrollab at
        your phones"); what the phone learnt from DHCP and the server is asked for again at the
        next reboot."""
        self._note("test-start", kept="the phone's own state (a physical phone is not reset between tests)")
        self.network = None
        dhcp = self._dhcp()
        if dhcp is not None:
            dhcp.clear_242(self.spec.mac)

    def erase(self) -> None:
        """A real factory reset, by the operator at the craft menu (CLEAR); `NeedsOperator` when
        the run is unattended."""
        instruction = f"reset the phone {self._name} to factory defaults (craft menu: CLEAR) and let it come back " \
                      "to the first-boot screen"
        if not self.bench.is_attended():
            raise NeedsOperator(instruction)
        if not ask_operator(instruction):
            raise HarnessError("operator-skipped", f"the operator did not reset {self._name}")
        self._note("factory-reset", by="operator")

    # -- internals ---------------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return self.spec.name or self.spec.mac

    def _person_for(self, user: User | None) -> None:
        """What a person must do at the phone during this boot, asked now (the boot may need it
        within seconds of the reboot)."""
        if user is None:
            return
        asks = []
        if user.prompt != "yes":
            asks.append("answer the auto-provisioning prompt with " + {"no": "No", "timeout": "nothing (let it time "
                                                                           "out)"}[user.prompt])
        if user.codes:
            asks.append("type the enrollment code" + ("s " if len(user.codes) > 1 else " ")
                        + ", then ".join(user.codes) + " when the phone asks")
        if not asks:
            return
        instruction = f"on the phone {self._name} after it restarts: " + "; ".join(asks)
        if not self.bench.is_attended():
            raise NeedsOperator(instruction)
        if not ask_operator(instruction, done="press Enter to reboot it now, or type 'skip'"):
            raise HarnessError("operator-skipped", f"the operator skipped: {instruction}")

    async def _reboot(self) -> None:
        if self.spec.reboot == "manual" and not self.bench.is_attended():
            raise NeedsOperator(f"power-cycle the phone {self._name} (MAC {self.spec.mac})")
        done = await reboot(self.spec, netns=self.bench.netns)
        self._note("reboot", method=done.method, how=done.detail)

    async def _operator(self, instruction: str) -> None:
        if not self.bench.is_attended():
            raise NeedsOperator(instruction)
        if not ask_operator(instruction):
            raise HarnessError("operator-skipped", f"the operator skipped: {instruction}")

    async def _observe(self, start: Callable[[], Any]) -> Outcome:
        files = [FileServerObserver(f) for f in self.bench.files]
        marks = [(f.mark(), f.handshake_mark()) for f in files]
        des = [(d, len(d.requests)) for d in self.bench.des]
        self._offer_network()
        dhcp = self._dhcp()
        self._lease_mark = len(dhcp.events) if dhcp is not None else 0
        async with self._audit() as audit:
            mark = await audit.mark() if audit is not None else None
            await start()
            return await self._wait(audit, mark, files, marks, des)

    def _dhcp(self) -> Any:
        network = self.bench.network
        return getattr(network, "dhcp", None) if network is not None else None

    def _offer_network(self) -> None:
        """What a test set as the network's offer (`dut.network`: option 242, an LLDP file
        server) goes out on the bench's DHCP to this phone only; without a bench DHCP it cannot."""
        layer = self.network
        if layer is None:
            return
        option_242, lldp = _as_offer(layer)
        if lldp is not None:
            raise HarnessError("bench-lldp-per-test", f"{self._name}: this test offers an LLDP file server to one "
                               "phone; the bench's LLDP advertiser speaks to the whole LAN (set it in [network.lldp] "
                               "and run the test alone)")
        dhcp = self._dhcp()
        if dhcp is None:
            raise HarnessError("bench-dhcp-unavailable", f"{self._name}: this test sets what DHCP offers the phone; "
                               "give the lab file [network] with [network.dhcp] so the harness serves its DHCP")
        dhcp.offer_242(self.spec.mac, option_242)
        self._note("network-offer", option_242=option_242)

    @contextlib.asynccontextmanager
    async def _audit(self) -> AsyncIterator[AuditLogObserver | None]:
        if self.bench.admin is None:
            yield None
            return
        async with self.bench.admin() as admin:
            yield AuditLogObserver(admin, device_url=self.bench.device_url)

    def _des_seen(self, des: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[Any], list[Any]]:
        """The scripted enrollment servers' records of this phone since the boot: its enrollment
        requests, the DES-hosted files and the firmware images it fetched."""
        mac = canonical_mac(self.spec.mac)
        seen = [r for server, mark in des for r in server.requests[mark:] if mac in (r.cn, r.mac)]
        return ([r for r in seen if r.is_enrollment], [r for r in seen if r.path.startswith(DES_FILES)],
                [r for r in seen if r.path.startswith(FIRMWARE)])

    async def _wait(self, audit: AuditLogObserver | None, mark: AuditMark | None,
                    files: Sequence[FileServerObserver], marks: Sequence[tuple[int, int]],
                    des: Sequence[tuple[Any, int]] = ()) -> Outcome:
        started = time.monotonic()
        timeout = float(self.spec.extra.get("boot_timeout", self.bench.boot_timeout))
        deadline = started + timeout
        quiet_after_lease = float(self.spec.extra.get("quiet_timeout", self.bench.quiet_after_lease))
        seen = Seen()
        quiet_since = time.monotonic()
        last_count = downloaded = 0
        while True:
            seen = await self._look(audit, mark, files, marks, des)
            if seen.count != last_count:
                last_count, quiet_since = seen.count, time.monotonic()
            self._check_firmware(seen)
            if seen.settings_fetched:
                await asyncio.sleep(min(self.bench.settle, self.bench.poll * 2))  # the MAC file follows at once
                seen = await self._look(audit, mark, files, marks, des)
                return self._outcome(OutcomeResult.PROVISIONED, seen)
            results = seen.results
            stop = STOPS.get(results[-1] or "") if results else None
            quiet = time.monotonic() - quiet_since >= self.bench.settle
            if stop is not None and seen.last not in ("download", "refused") and quiet:
                return self._outcome(stop, seen)
            if seen.only_lease and time.monotonic() - quiet_since >= quiet_after_lease:
                return self._outcome(OutcomeResult.MANUAL_ENTRY, seen)  # no server named: at its manual screen
            if seen.last == "refused" and quiet:  # it refused the server's certificate and went quiet
                return self._outcome(OutcomeResult.PROVISIONING_FAILED, seen)
            if seen.downloads and downloaded < len(seen.downloads):  # installing: it restarts on its own
                downloaded = len(seen.downloads)
                deadline = max(deadline, time.monotonic() + timeout)
            if time.monotonic() >= deadline:
                if seen.last == "download":  # installed and never came back, or refused the image
                    return self._outcome(OutcomeResult.UPGRADE_FAILED, seen)
                answers = ", ".join(r or "?" for r in results) or "none"
                requests = ", ".join(r.path for r, _ in seen.fetched[:8]) or "none"
                raise HarnessError(
                    "phone-silent",
                    f"{self._name} did not reach a provisioning server within {timeout:g} s of the "
                    f"reboot: saw {len(results)} enrollment answer(s) ({answers}) and {len(seen.fetched)} file "
                    f"request(s) ({requests})",
                    value={"audit": seen.entries, "files": [obs.evidence(r) for r, obs in seen.fetched],
                           "des": [r.to_json() for r in seen.des_requests]},
                )
            await asyncio.sleep(self.bench.poll)

    async def _look(self, audit: AuditLogObserver | None, mark: AuditMark | None,
                    files: Sequence[FileServerObserver], marks: Sequence[tuple[int, int]],
                    des: Sequence[tuple[Any, int]]) -> Seen:
        entries = await audit.entries(mark, mac=self.spec.mac, process="ENROLLMENT") if audit is not None else []
        fetched = [(r, obs) for obs, (m, _) in zip(files, marks, strict=True) for r in obs.records(m, device=self)]
        refused = [h for obs, (_, m) in zip(files, marks, strict=True) for h in obs.handshakes(m, device=self)
                   if not h.ok]
        des_requests, des_files, downloads = self._des_seen(des)
        dhcp = self._dhcp()
        mac = mac_text(self.spec.mac)  # the responder's notation
        leases = [e for e in dhcp.events[self._lease_mark:] if e.get("event") == "ack" and e.get("mac") == mac] \
            if dhcp is not None else []
        return Seen(entries, fetched, des_requests, des_files, downloads, refused, leases)

    def _check_firmware(self, seen: Seen) -> None:
        reported = seen.reported()
        if reported is None:
            return
        self.reported = reported
        if not self.firmware_checked:
            self.firmware_checked = True
            if reported[1] != self.spec.firmware:
                raise HarnessError(
                    "firmware-mismatch",
                    f"{self._name}: the lab file says firmware {self.spec.firmware}, the phone reports {reported[1]} "
                    f"(model {reported[0]}): fix the lab file before running tests on it",
                    value=reported[1],
                )

    def _outcome(self, result: OutcomeResult, seen: Seen) -> Outcome:
        for entry in seen.entries:
            self._note("enrollment", result=enrollment_result(entry), audit=entry.get("message"))
        for r in seen.des_requests:
            self._note("enrollment", result=r.result, reason=r.reason, server="scripted", status=r.status)
        paths = []
        for r, _ in seen.fetched:
            self._note("file", method=r.method, path=r.path, status=r.status)
            if r.method == "GET" and r.status == 200:
                paths.append(r.path.rsplit("/", 1)[-1])
        for d in seen.downloads:
            self._note("firmware-download", path=d.path, status=d.status, server="scripted")
        for h in seen.refused:
            self._note("tls-refused", client=h.client, reason=h.reason)
        for d in seen.des_files:
            self._note("file", method=d.method, path=d.path, status=d.status, server="scripted")
            if d.status == 200:
                paths.append(d.path.rsplit("/", 1)[-1])
        server = None
        if seen.fetched:
            r, obs = seen.fetched[-1]
            server = obs.server.url(r.scheme, path="")
        results = seen.results
        reason = None
        if result is OutcomeResult.PROVISIONING_FAILED and seen.refused:
            reason = f"tls-refused ({seen.refused[-1].reason})"
        elif result is OutcomeResult.UPGRADE_FAILED:
            reason = "silent-after-firmware-download"
        elif result is OutcomeResult.MANUAL_ENTRY:
            reason = "quiet-after-dhcp"
        elif result is not OutcomeResult.PROVISIONED:
            reason = seen.des_requests[-1].reason if seen.des_requests else (results[-1] if results else None)
        return Outcome(
            result,
            reason=reason,
            firmware=self.firmware,
            fetched=paths,
            requested=[r.path for r, _ in seen.fetched] + [d.path for d in seen.des_files],
            server=server,
            source="des" if "redirect" in results else "observed",
            detail={"observed": {"enrollments": list(results), "files": [obs.evidence(r) for r, obs in seen.fetched],
                                 "des": [r.to_json() for r in seen.des_requests + seen.des_files + seen.downloads],
                                 "refused": [h.to_json() for h in seen.refused]}},
        )

    def take_evidence(self) -> list[dict[str, Any]]:
        """What the bench network's capture saw of this phone since the last call (DHCP, LLDP,
        HTTP, TLS: `harness.lab_network.evidence`); empty without a capturing `[network]`."""
        network = self.bench.network
        if network is None or getattr(network, "capture_path", None) is None:
            return []
        since, self._evidence_since = self._evidence_since, time.time()
        try:
            return network.evidence(self.spec.mac, since=since)
        except (OSError, HarnessError, ValueError) as exc:
            self._note("capture-unreadable", why=str(exc))
            return []

    def _note(self, name: str, **detail: Any) -> None:
        self._events.append({"at": iso(time.time()), "state": "observed", "event": name, "detail": detail})
