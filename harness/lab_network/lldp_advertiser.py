"""The harness's LLDP advertiser: the voice switch's part of the lab LAN. It sends an LLDPDU with
the lab file's Avaya TLVs (file and call servers, 802.1Q framing) and LLDP-MED voice policy
every `interval` seconds, and records the LLDPDUs the phones send back.

    async with LldpAdvertiser("br0", spec, netns="enrollab-t1-lab") as adv:
        ...
    adv.sent                     # LLDPDUs sent
    adv.neighbours               # {"a4:25:1b:00:00:01": LldpInfo}, the latest from each MAC
    adv.events                   # started, neighbour (new or changed), send-failed, stopped
    adv.lldpdu()                 # the pure part: the frame it sends

Decisions:
- The frame is `simulators.l2.lldp.switch_lldpdu` from the interface's MAC: chassis = that MAC,
  port ID = the interface name, system name = `spec.system_name` (left out when None), Avaya
  TLVs with OUI 00-04-0D (research §10: 6 file server, 3 call server, 7 802.1Q framing).
- `spec.med_vlan` set means an LLDP-MED network policy for voice (application type 1) with
  `med_tagged`, `med_priority`, `med_dscp` (research §10: the phone takes L2Q, L2QVLAN,
  L2QAUD/L2QSIG and DSCPAUD/DSCPSIG from it); unset means no MED TLVs at all [inf].
- TTL 120, whatever the interval, as the phone's own (research §10) [inf: a switch would send
  4 x interval; a long TTL keeps a neighbour entry alive through a lab's pauses].
- Sent at start and then every `spec.interval` seconds, on the untagged LAN only: LLDP is
  link-local and never VLAN-tagged by a switch port [inf].
- A neighbour event is recorded when a MAC is heard first or its LLDPDU says something new, not
  for every repeat (a phone repeats every 30 s) [inf]. Frames this host sent are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from harness.lab_network.spec import LldpSpec
from simulators.l2.lldp import LldpInfo, MedPolicy, parse_lldpdu, switch_lldpdu

__all__ = ["LldpAdvertiser"]

APP_VOICE = 1
TTL = 120


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def med_policy(spec: LldpSpec) -> MedPolicy | None:
    """The LLDP-MED voice policy of `spec`, or None when it names no VLAN."""
    if spec.med_vlan is None:
        return None
    return MedPolicy(app_type=APP_VOICE, unknown=False, tagged=spec.med_tagged, vlan=spec.med_vlan,
                     priority=spec.med_priority, dscp=spec.med_dscp)


class LldpAdvertiser:
    """LLDP for one interface of the lab LAN (module docstring)."""

    def __init__(self, interface: str, spec: LldpSpec, *, netns: str | None = None, mac: str | None = None) -> None:
        if spec.interval <= 0:
            raise ValueError(f"lldp.interval {spec.interval}: must be positive")
        self.interface = interface
        self.spec = spec
        self.netns = netns
        self.src_mac = mac.lower() if mac else ""
        self.sent = 0
        self.neighbours: dict[str, LldpInfo] = {}
        self.events: list[dict[str, Any]] = []
        self.clock = time.time
        self._link: Any = None
        self._task: asyncio.Task[None] | None = None
        if self.src_mac:
            self.lldpdu()  # check the spec now (addresses, framing, policy ranges)

    def _event(self, kind: str, **data: Any) -> None:
        self.events.append({"at": _iso(self.clock()), "event": kind, **data})

    # -- the pure part -------------------------------------------------------------------------

    def lldpdu(self) -> bytes:
        """The LLDP frame this advertiser sends."""
        spec = self.spec
        return switch_lldpdu(self.src_mac, port=self.interface, system_name=spec.system_name,
                             file_servers=spec.file_servers, call_servers=spec.call_servers,
                             dot1q_framing=spec.dot1q_framing, med=med_policy(spec), ttl=TTL)

    def hear(self, frame: bytes, at: float) -> LldpInfo | None:
        """Record one received frame when it is another station's LLDPDU; its LldpInfo."""
        info = parse_lldpdu(frame)
        if info is None or info.src_mac == self.src_mac:
            return None
        previous = self.neighbours.get(info.src_mac)
        self.neighbours[info.src_mac] = info
        if previous != info:
            self._event("neighbour", mac=info.src_mac, new=previous is None, chassis_id=info.chassis_id,
                        port_id=info.port_id, ttl=info.ttl, system_name=info.system_name,
                        inventory=dict(info.inventory or {}), problems=list(info.problems),
                        heard_at=_iso(at))
        return info

    # -- the socket part -----------------------------------------------------------------------

    async def start(self) -> LldpAdvertiser:
        from simulators.l2.rawlink import RawLink, interface_mac

        if not self.src_mac:
            self.src_mac = interface_mac(self.interface, self.netns)
        frame = self.lldpdu()
        link = RawLink(self.interface, netns=self.netns)
        link.open(self._on_frame)
        self._link = link
        self._event("started", interface=self.interface, mac=self.src_mac, interval=self.spec.interval,
                    file_servers=list(self.spec.file_servers), call_servers=list(self.spec.call_servers))
        self._task = asyncio.get_running_loop().create_task(self._run(frame))
        return self

    async def _run(self, frame: bytes) -> None:
        while self._link is not None:
            try:
                self._link.send(frame)
                self.sent += 1
            except OSError as exc:
                self._event("send-failed", why=str(exc))
            await asyncio.sleep(self.spec.interval)

    def _on_frame(self, frame: bytes, outgoing: bool, at: float) -> None:
        if not outgoing and len(frame) >= 14:
            self.hear(frame, at)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        link, self._link = self._link, None
        if link is not None:
            link.close()
            self._event("stopped", sent=self.sent)

    async def __aenter__(self) -> LldpAdvertiser:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
