"""`enrollab lab check`: is the bench ready? For each physical phone of a lab file, whatever its
`reboot` method needs, tried without rebooting anything:

- `sip-notify` — SIP OPTIONS to the phone's ip and SIP port: any final answer means its SIP stack
  is there to take a NOTIFY (OPTIONS changes nothing on a phone);
- `poe` — an SNMPv2c get of the port's pethPsePortAdminEnable with the community from the
  environment: the switch answers, the community works, the port exists (and is on or off);
- `manual` — a terminal for the operator (an unattended run ends such tests *needs operator*).

Each check ends in a `Check` (ready or not, and a one-line reason); nothing raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.lab import DeviceSpec
from harness.physical.operator import has_terminal
from harness.physical.poe import PoePort, read_state
from harness.physical.sip_notify import SIP_PORT, SipTimers, options

__all__ = ["Check", "check_device", "check_devices"]

CHECK_TIMERS = SipTimers(t1=0.25, t2=1.0)  # gives up after 16 s: a check, not a reboot


@dataclass(frozen=True)
class Check:
    phone: str
    mac: str
    ip: str | None
    reboot: str
    what: str  # what was checked: "SIP 10.0.40.21:5060", "PoE 10.0.40.2 port 1.7", "terminal"
    ready: bool
    detail: str


async def check_device(spec: DeviceSpec, *, netns: str | None = None, timers: SipTimers | None = None) -> Check:
    name = spec.name or spec.mac
    method = spec.reboot or "manual"

    def done(what: str, ready: bool, detail: str) -> Check:
        return Check(name, spec.mac, spec.ip, method, what, ready, detail)

    if method == "sip-notify":
        sip = dict(spec.extra.get("sip") or {})
        port = int(sip.get("port", SIP_PORT))
        what = f"SIP {spec.ip}:{port}"
        if not spec.ip:
            return done("SIP", False, "no ip in the lab file")
        t1 = float(sip["t1"]) if "t1" in sip else None
        try:
            answer = await options(spec.ip, port, user=sip.get("user"), netns=netns,
                                   timers=timers or (SipTimers(t1=t1, t2=max(1.0, t1)) if t1 else CHECK_TIMERS))
        except HarnessError as err:
            return done(what, False, err.detail)
        return done(what, True, f"OPTIONS answered {answer.status} {answer.reason}".rstrip())
    if method == "poe":
        try:
            port_spec = PoePort.from_lab(spec.extra.get("poe") or {}, name)
        except HarnessError as err:
            return done("PoE", False, err.detail)
        what = f"PoE {port_spec.switch} port {port_spec.group}.{port_spec.port}"
        try:
            state = await read_state(port_spec)
        except HarnessError as err:
            return done(what, False, err.detail)
        return done(what, True, "the port is " + {1: "on", 2: "off (the phone has no power)"}.get(state, str(state)))
    if method == "manual":
        if has_terminal():
            return done("terminal", True, "an operator will be asked on this terminal")
        return done("terminal", False, "no terminal: tests on it end needs operator unless run attended")
    return done(method, False, f"reboot = {method!r} is not sip-notify, poe or manual")


async def check_devices(specs: list[DeviceSpec], *, netns: str | None = None,
                        timers: SipTimers | None = None) -> list[Check]:
    """All at once (each check is a network round trip or a timeout)."""
    return list(await asyncio.gather(*(check_device(s, netns=netns, timers=timers) for s in specs)))
