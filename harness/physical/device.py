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

from harness.errors import HarnessError, NeedsOperator
from harness.fileserver import FileServer
from harness.lab import DeviceSpec
from harness.observers import AuditLogObserver, AuditMark, FileServerObserver, enrollment_result
from harness.physical.operator import ask_operator, has_terminal
from harness.physical.reboot import reboot
from simulators.admin_client import AdminClient
from simulators.capabilities import Capabilities
from simulators.clock import iso
from simulators.phone import Outcome, OutcomeResult, User

__all__ = ["Bench", "PhysicalDevice"]

_REPORTED = re.compile(r"\)\s*:\s*(\S+)\s+(\S+?):\s")
STOPS = {  # enrollment results after which a phone stops asking (PROTOCOL §2)
    "code_invalid": OutcomeResult.CODE_INVALID,
    "locked": OutcomeResult.LOCKED,
    "rejected": OutcomeResult.REJECTED,
    "unknown_device": OutcomeResult.UNKNOWN_DEVICE,
}
SETTINGS = re.compile(r"(^|/)(46xxsettings\.(txt|scr)|[^/]*settings[^/]*\.txt)$", re.IGNORECASE)


@dataclass
class Bench:
    """What a physical phone is rebooted and observed through (module docstring)."""

    admin: Callable[[], contextlib.AbstractAsyncContextManager[AdminClient]] | None = None
    device_url: str = ""
    files: list[FileServer] = field(default_factory=list)
    attended: bool | None = None  # None: attended when there is a controlling terminal
    netns: str | None = None  # the harness's SIP socket (a lab in a box)
    boot_timeout: float = 300.0
    settle: float = 5.0
    poll: float = 0.5

    def is_attended(self) -> bool:
        return has_terminal() if self.attended is None else self.attended


class PhysicalDevice:
    """A phone on the bench (module docstring)."""

    driver = "physical"

    def __init__(self, spec: DeviceSpec, bench: Bench | None = None, *, capabilities: Capabilities | None = None):
        from harness.dut import DeviceIdentity

        self.spec = spec
        self.bench = bench or Bench()
        self.capabilities = capabilities or Capabilities.load()
        self._identity = DeviceIdentity(spec.model, spec.firmware, spec.mac, spec.serial)
        self._events: list[dict[str, Any]] = []
        self.reported: tuple[str, str] | None = None  # (model, firmware) the phone last reported
        self.firmware_checked = False

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
        return self.capabilities.supports(self.spec.model, self.spec.firmware, feature)

    def explain(self, feature: str) -> str:
        return self.capabilities.explain(self.spec.model, self.spec.firmware, feature)

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
        marks = [f.mark() for f in files]
        async with self._audit() as audit:
            mark = await audit.mark() if audit is not None else None
            await start()
            return await self._wait(audit, mark, files, marks)

    @contextlib.asynccontextmanager
    async def _audit(self) -> AsyncIterator[AuditLogObserver | None]:
        if self.bench.admin is None:
            yield None
            return
        async with self.bench.admin() as admin:
            yield AuditLogObserver(admin, device_url=self.bench.device_url)

    async def _wait(self, audit: AuditLogObserver | None, mark: AuditMark | None,
                    files: Sequence[FileServerObserver], marks: Sequence[int]) -> Outcome:
        started = time.monotonic()
        timeout = float(self.spec.extra.get("boot_timeout", self.bench.boot_timeout))
        deadline = started + timeout
        seen_entries: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        last_count = 0
        while True:
            if audit is not None:
                seen_entries = await audit.entries(mark, mac=self.spec.mac, process="ENROLLMENT")
            fetched = [(r, obs) for obs, m in zip(files, marks, strict=True) for r in obs.records(m, device=self)]
            count = len(seen_entries) + len(fetched)
            if count != last_count:
                last_count, quiet_since = count, time.monotonic()
            self._check_firmware(seen_entries)
            results = [enrollment_result(e) for e in seen_entries]
            settings = [r for r, _ in fetched if r.method == "GET" and r.status == 200 and SETTINGS.search(r.path)]
            if settings:
                await asyncio.sleep(min(self.bench.settle, self.bench.poll * 2))  # the MAC file follows at once
                fetched = [(r, obs) for obs, m in zip(files, marks, strict=True) for r in obs.records(m, device=self)]
                return self._outcome(OutcomeResult.PROVISIONED, seen_entries, fetched, results)
            stop = next((STOPS[r] for r in reversed(results) if r in STOPS), None)
            if stop is not None and results and results[-1] in STOPS \
                    and time.monotonic() - quiet_since >= self.bench.settle:
                return self._outcome(stop, seen_entries, fetched, results)
            if time.monotonic() >= deadline:
                answers = ", ".join(r or "?" for r in results) or "none"
                requests = ", ".join(r.path for r, _ in fetched[:8]) or "none"
                raise HarnessError(
                    "phone-silent",
                    f"{self._name} did not reach a provisioning server within {timeout:g} s of the "
                    f"reboot: saw {len(seen_entries)} enrollment answer(s) ({answers}) and {len(fetched)} file "
                    f"request(s) ({requests})",
                    value={"audit": seen_entries, "files": [obs.evidence(r) for r, obs in fetched]},
                )
            await asyncio.sleep(self.bench.poll)

    def _check_firmware(self, entries: Sequence[dict[str, Any]]) -> None:
        for entry in entries:
            found = _REPORTED.search(str(entry.get("message") or ""))
            if not found:
                continue
            self.reported = (found[1], found[2])
            if not self.firmware_checked:
                self.firmware_checked = True
                if found[2] != self.spec.firmware:
                    raise HarnessError(
                        "firmware-mismatch",
                        f"{self._name}: the lab file says firmware {self.spec.firmware}, the phone reports {found[2]} "
                        f"(model {found[1]}): fix the lab file before running tests on it",
                        value=found[2],
                    )
            return

    def _outcome(self, result: OutcomeResult, entries: Sequence[dict[str, Any]], fetched: Sequence[Any],
                 results: Sequence[str | None]) -> Outcome:
        for entry in entries:
            self._note("enrollment", result=enrollment_result(entry), audit=entry.get("message"))
        paths = []
        for r, _ in fetched:
            self._note("file", method=r.method, path=r.path, status=r.status)
            if r.method == "GET" and r.status == 200:
                paths.append(r.path.rsplit("/", 1)[-1])
        server = None
        if fetched:
            r, obs = fetched[-1]
            server = obs.server.url(r.scheme, path="")
        return Outcome(
            result,
            reason=None if result is OutcomeResult.PROVISIONED else (results[-1] if results else None),
            firmware=self.firmware,
            fetched=paths,
            requested=[r.path for r, _ in fetched],
            server=server,
            source="des" if "redirect" in results else "observed",
            detail={"observed": {"enrollments": list(results), "files": [obs.evidence(r) for r, obs in fetched]}},
        )

    def _note(self, name: str, **detail: Any) -> None:
        self._events.append({"at": iso(time.time()), "state": "observed", "event": name, "detail": detail})
