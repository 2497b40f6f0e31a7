"""The device under test: one small protocol, and the drivers that answer it (labgrid style).

Conformance tests ask for a `DeviceUnderTest`, never a class; the lab file decides which driver
answers (`bind`):

- `SimulatedDevice` — a `simulators.phone.Phone` with a factory certificate from the
  manufacturer CA the enrollment server trusts, fault knobs passed through (`faults`,
  `reissue_certificate(expired=True | foreign=True)`), the phone itself at `.phone`.
- `harness.physical.device.PhysicalDevice` — a phone on the bench, rebooted by its lab file's
  `reboot` (SIP NOTIFY check-sync, PoE power cycle, an operator) and observed from outside (the
  enrollment server's audit log, the file servers' request logs); what needs a person asks the
  operator, or ends *needs operator* in an unattended run.

The protocol (a few members, so a physical driver can implement it):
- `identity` — model, firmware (as the lab declares it), MAC, serial; `id` is
  `J179@4.1.11.0.9#A4251B000001`; `address` the device's IP address when it has its own.
- `supports(feature)` / `explain(feature)` — Appendix A (`fixtures.features.FeatureMatrix`) for
  the model at the declared firmware (feature id or label); `explain` is the sentence a
  not-applicable result carries. The simulated phone's behaviour reads `simulators.capabilities`.
- `await boot(user=User(...))` — power on and run to a terminal state; the `Outcome` says how it
  ended (`simulators.phone.OutcomeResult`). `await reprovision()` — ENR-7 from the device menu.
- `factory_reset()` — forget everything learnt. A simulated device is also re-imaged to the
  lab's firmware, so every test can start from the device the lab file describes.
- `events` — what the device did, oldest first, as `{"at", "state", "event", "detail"}` dicts
  (the event sequence in `simulators.phone`); kept across boots and resets.
- `arrange_row()` — the device's row of an import file (DEV-1): mac, serial, model, thumbprint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fixtures.features import FeatureMatrix
from harness.errors import LabError
from harness.lab import DeviceSpec
from simulators.capabilities import Capabilities
from simulators.clock import Clock, iso
from simulators.factory import FactoryCredentials, ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.network import NetworkLayer
from simulators.phone import Faults, Outcome, OutcomeResult, Phone, PhoneEnvironment, User

__all__ = [
    "DeviceIdentity",
    "DeviceUnderTest",
    "Faults",
    "Outcome",
    "OutcomeResult",
    "SimLink",
    "SimulatedDevice",
    "User",
    "bind",
]


@dataclass(frozen=True)
class DeviceIdentity:
    model: str
    firmware: str
    mac: str
    serial: str | None

    @property
    def id(self) -> str:
        return f"{self.model}@{self.firmware}#{self.mac}"


@runtime_checkable
class DeviceUnderTest(Protocol):
    """What a conformance test may do with a device (module docstring)."""

    driver: str

    @property
    def identity(self) -> DeviceIdentity: ...

    @property
    def id(self) -> str: ...

    @property
    def address(self) -> str | None: ...

    def supports(self, feature: str) -> bool: ...

    def explain(self, feature: str) -> str: ...

    async def boot(self, user: User | None = None) -> Outcome: ...

    async def reprovision(self) -> Outcome: ...

    def factory_reset(self) -> None: ...

    @property
    def events(self) -> list[dict[str, Any]]: ...

    def arrange_row(self) -> dict[str, str]: ...


@dataclass
class SimLink:
    """Where simulated phones meet the lab: the device URL (from `GET /api/v1/info`), the CAs
    the phones carry as built-in public roots (the server's TLS CA, file servers in `public`
    mode — the list is shared and read at every boot), the lab's host names, the clock."""

    device_url: str
    public_roots: list[bytes] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    clock: Clock | None = None


class SimulatedDevice:
    """A simulated phone as a device under test (module docstring)."""

    driver = "simulated"

    def __init__(
        self,
        identity: DeviceIdentity,
        manufacturer: ManufacturerCA,
        link: SimLink,
        *,
        faults: Faults | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        if identity.serial is None:
            raise LabError("serial-required", f"{identity.id}: a simulated device needs a serial number")
        self._identity = identity
        self._manufacturer = manufacturer
        self.link = link
        self.faults = faults or Faults()
        self.capabilities = capabilities or Capabilities.load()
        self._credentials = manufacturer.issue(identity.mac, identity.serial, identity.model)
        self._events: list[dict[str, Any]] = []
        # The network the phone sits on (DHCP 242/43, LLDP: `simulators.network.NetworkLayer`), a
        # knob of discovery tests; None: no network offers a server. A factory reset keeps it.
        self.network: NetworkLayer | None = None
        self.netns: str | None = None  # the namespace its connections start in (a phone on a lab network)
        # The run's lab network (`harness.lab_network.path.LabPath`, `[options] network_path`):
        # when set, every boot goes over the wire from a namespace of the device's own, `network`
        # saying what the harness's DHCP responder and LLDP advertiser send.
        self.path: Any = None
        self._phone = self._new_phone()

    @classmethod
    def from_spec(cls, spec: DeviceSpec, manufacturer: ManufacturerCA, link: SimLink) -> SimulatedDevice:
        return cls(
            DeviceIdentity(spec.model, spec.firmware, spec.mac, spec.serial),
            manufacturer,
            link,
            faults=Faults(**dict(spec.faults)),
        )

    # -- who it is ---------------------------------------------------------------------------------

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @property
    def id(self) -> str:
        return self._identity.id

    @property
    def address(self) -> str | None:
        return None  # simulated phones share the harness's address

    @property
    def credentials(self) -> FactoryCredentials:
        return self._credentials

    @property
    def phone(self) -> Phone:
        """The simulated phone itself (its state, memory, outcome) — for simulator-only checks."""
        return self._phone

    @property
    def firmware(self) -> str:
        """The version it runs now (it may have upgraded since the lab's firmware)."""
        return self._phone.firmware

    def supports(self, feature: str) -> bool:
        # The declaration (Appendix A for the lab's model and firmware), not the phone's own
        # `Capabilities`: tests judge the phone by it (docs/mutation.md, oracles).
        return FeatureMatrix.load().supports(self._identity.model, self._identity.firmware, feature)

    def explain(self, feature: str) -> str:
        return FeatureMatrix.load().explain(self._identity.model, self._identity.firmware, feature)

    def arrange_row(self) -> dict[str, str]:
        i = self._identity
        assert i.serial is not None
        return {"mac": i.mac, "serial": i.serial, "model": i.model, "thumbprint": self._credentials.thumbprint}

    # -- what it does ------------------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    async def boot(self, user: User | None = None) -> Outcome:
        if user is not None:
            self._phone.user = user
        return await self._run("boot")

    async def reprovision(self) -> Outcome:
        return await self._run("reprovision")

    def factory_reset(self) -> None:
        """Forget everything and re-image to the lab's firmware (a fresh phone, same identity)."""
        self._phone = self._new_phone()
        self._note("factory-reset", firmware=self._identity.firmware)

    def reissue_certificate(self, *, foreign: bool = False, **issue: Any) -> FactoryCredentials:
        """Fault knob: a new factory certificate (`expired=True`, `not_after=…`, or `foreign=True`
        for a manufacturer CA nobody trusts); the phone is reset to use it."""
        issuer = ManufacturerCA.generate() if foreign else self._manufacturer
        i = self._identity
        assert i.serial is not None
        self._credentials = issuer.issue(i.mac, i.serial, i.model, **issue)
        self.factory_reset()
        return self._credentials

    # -- internals ---------------------------------------------------------------------------------

    def _environment(self, network: NetworkLayer | None = None, netns: str | None = None) -> PhoneEnvironment:
        return PhoneEnvironment(
            self.link.device_url,
            list(self.link.public_roots),
            dict(self.link.hosts),
            network or self.network,
            self.link.clock,
            capabilities=self.capabilities,
            netns=netns or self.netns,
        )

    def _new_phone(self) -> Phone:
        i = self._identity
        assert i.serial is not None
        return Phone(
            PhoneIdentity(i.model, i.firmware, i.mac, i.serial),
            self._credentials.key_pem,
            self._credentials.cert_pem,
            self._environment(),
            faults=self.faults,
        )

    async def _run(self, how: str) -> Outcome:
        phone = self._phone
        phone.faults = self.faults
        start = len(phone.events)
        try:
            if self.path is None:
                phone.env = self._environment()
                async with phone.env:
                    return await (phone.boot() if how == "boot" else phone.reprovision())
            async with self.path.boot(self._identity, self.network, reboot=how == "boot") as (wire, netns):
                phone.env = self._environment(wire, netns)
                async with phone.env:
                    return await (phone.boot() if how == "boot" else phone.reprovision())
        finally:
            self._events.extend(_event_json(e.to_json()) for e in phone.events[start:])

    def _note(self, name: str, **detail: Any) -> None:
        self._events.append({"at": iso(time.time()), "state": "off", "event": name, "detail": detail})


def _event_json(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {"at": raw["at"], "state": raw["state"], "event": raw["event"], "detail": dict(raw["detail"])}


def bind(spec: DeviceSpec, *, manufacturer: ManufacturerCA | None = None, link: SimLink | None = None,
         bench: Any = None) -> Any:
    """The driver for a lab resource: simulated -> `SimulatedDevice` (needs the manufacturer CA
    and the link), physical -> `harness.physical.device.PhysicalDevice` observed through `bench`
    (`harness.physical.device.Bench`: the server's audit log, the file servers, attended or not)."""
    if spec.driver == "simulated":
        if manufacturer is None or link is None:
            raise LabError("no-manufacturer-ca", f"{spec.id}: a simulated device needs the server's manufacturer CA")
        return SimulatedDevice.from_spec(spec, manufacturer, link)
    from harness.physical.device import PhysicalDevice

    return PhysicalDevice(spec, bench)
