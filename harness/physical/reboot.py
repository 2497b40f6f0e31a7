"""Rebooting a physical phone by its lab file's `reboot` method (PROTOCOL §5): `sip-notify`,
`poe` or `manual`. Each ends in a `Rebooted` saying how, or a `HarnessError` with a one-line
reason (no answer, wrong community, no terminal) — never a traceback, never a hang.

Lab file settings (`[[devices]]` of `driver = "physical"`):
- `sip = {port = 5060, user = "1001", t1 = 0.5}` — optional; NOTIFY goes to `ip`:`port`, given
  up after 64·T1.
- `poe = {switch = "10.0.0.2", port = 12, community_env = "POE_COMMUNITY", group = 1,
  snmp_port = 161, off_seconds = 5}` — needed for `reboot = "poe"`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.lab import DeviceSpec
from harness.physical.operator import ask_operator
from harness.physical.poe import PoePort, power_cycle
from harness.physical.sip_notify import SIP_PORT, SipTimers, check_sync

__all__ = ["METHODS", "Rebooted", "reboot"]

METHODS = ("sip-notify", "poe", "manual")


@dataclass(frozen=True)
class Rebooted:
    method: str
    detail: str


def _name(spec: DeviceSpec) -> str:
    return spec.name or spec.mac


async def reboot(spec: DeviceSpec, *, sip_timers: SipTimers | None = None, netns: str | None = None,
                 progress: Callable[[str], None] | None = None) -> Rebooted:
    """Reboot `spec` by its `reboot` method; `netns`: the harness's SIP socket in that network
    namespace (a lab in a box), else the caller's."""
    method = spec.reboot or "manual"
    if method == "sip-notify":
        if not spec.ip:
            raise HarnessError("no-ip", f"{_name(spec)}: reboot = \"sip-notify\" needs the phone's ip")
        sip = dict(spec.extra.get("sip") or {})
        port = int(sip.get("port", SIP_PORT))
        if sip_timers is None and "t1" in sip:
            sip_timers = SipTimers(t1=float(sip["t1"]), t2=max(4.0, float(sip["t1"])))
        answer = await check_sync(spec.ip, port, user=sip.get("user"), timers=sip_timers, netns=netns)
        if not answer.accepted:
            raise HarnessError("sip-refused", f"{_name(spec)} ({spec.ip}:{port}) answered NOTIFY check-sync with "
                               f"{answer.status} {answer.reason}".rstrip())
        return Rebooted(method, f"NOTIFY check-sync to {spec.ip}:{port}: {answer.status} {answer.reason} "
                                f"after {answer.transmissions} transmission(s), {answer.seconds:.2f} s")
    if method == "poe":
        port_spec = PoePort.from_lab(spec.extra.get("poe") or {}, _name(spec))
        await power_cycle(port_spec, progress=progress)
        return Rebooted(method, f"PoE port {port_spec.group}.{port_spec.port} on {port_spec.switch} off "
                                f"{port_spec.off_seconds:g} s, then on")
    if method == "manual":
        did = ask_operator(f"power-cycle the phone {_name(spec)} (MAC {spec.mac}"
                           + (f", {spec.ip}" if spec.ip else "") + ")")
        if not did:
            raise HarnessError("operator-skipped", f"the operator did not reboot {_name(spec)}")
        return Rebooted(method, "the operator power-cycled it")
    raise HarnessError("unknown-reboot", f"{_name(spec)}: reboot = {method!r} is not one of {', '.join(METHODS)}")
