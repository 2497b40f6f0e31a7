"""A phone's network on a real interface: DHCP and LLDP on raw frames, behind `NetworkLayer`.

    network = WireNetwork("eth0", "A4251B000001", model="J179", firmware="4.1.11.0.9",
                          serial="SIM1B000001", netns="enrollab-t1-p1", lldp_wait=35)
    offer = await network.offer()       # NetworkOffer: server (source dhcp-242/dhcp-43/dhcp-siaddr/lldp),
    ...                                 # params with their sources, the leased address, notes
    await network.close()

Decisions:
- One `RawLink` per phone; frames go to the `DhcpClient` and the `LldpAgent` (both ignore what
  is not theirs). The lease's address (and a default route via its router) is put on the
  interface inside the phone's namespace with `ip`, as the phone "takes" it.
- LLDP: the phone listens from the start. When DHCP named no server it waits up to `lldp_wait`
  seconds for a neighbour (a switch sends every 30 s, PROTOCOL §5); when DHCP named one it takes
  only what was heard by then plus `LLDP_GRACE` seconds — a server from DHCP is never replaced
  by LLDP anyway (research §10), and a booting phone does not sit out 30 s for a VLAN [inf].
- Precedence: `simulators.l2.precedence.combine` (siaddr < 43 < 242; LLDP's file server only
  when none is set; LLDP's L2Q/L2QVLAN over 242's).
- Voice VLAN: an L2QVLAN (from 242, 43 or the LLDP-MED policy) with L2Q not off makes the phone
  DHCP again, 802.1Q-tagged on that VLAN; that lease's options are combined again with the LLDP
  heard, and its address replaces the first one on the interface. The kernels this runs on may
  lack 802.1Q sub-interfaces, so the address goes on the untagged interface itself: the DHCP
  exchange on the VLAN is real frames, the phone's later TCP traffic is untagged [inf].
- The phone sends its own LLDPDU (chassis = IP, port = MAC, TTL 120, `host_name` as system
  name, MED inventory) once it has an address, every 30 s while the network is open.
- The lease is renewed at T1 while the network is open (`renew` notes); a failed renewal is a
  note, the address is kept until `close()`.
- The offer is made once; later calls return it (a phone's network comes up once per boot).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import Any

from simulators.l2.dhcp import DhcpClient, Lease, host_name
from simulators.l2.lldp_agent import LldpAgent
from simulators.l2.precedence import Combined, combine, voice_vlan
from simulators.l2.rawlink import RawLink
from simulators.network import NetworkOffer, Note

__all__ = ["LLDP_GRACE", "WireNetwork"]

LLDP_GRACE = 1.0


def _mask(prefixlen: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
    return ".".join(str((bits >> shift) & 0xFF) for shift in (24, 16, 8, 0))


class WireNetwork:
    """The phone's network on `interface` (module docstring)."""

    def __init__(self, interface: str, mac: str, *, model: str, firmware: str, serial: str,
                 netns: str | None = None, lldp_wait: float = 35.0, dhcp_timeout: float = 10.0,
                 transmit_lldp: bool = True) -> None:
        self.interface = interface
        self.mac = mac.replace(":", "").upper()
        self.netns = netns
        self.lldp_wait = lldp_wait
        self.dhcp_timeout = dhcp_timeout
        self.transmit_lldp = transmit_lldp
        self.host_name = host_name(self.mac)
        self._model, self._firmware, self._serial = model, firmware, serial
        self._link: RawLink | None = None
        self._dhcp: DhcpClient | None = None
        self._agent: LldpAgent | None = None
        self._offer: NetworkOffer | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._address: str | None = None
        self.lease: Lease | None = None
        self._transmitting = False

    # -- the frames ------------------------------------------------------------------------------

    def _on_frame(self, frame: bytes, outgoing: bool, at: float) -> None:
        if outgoing:
            return
        if self._dhcp is not None:
            self._dhcp.feed(frame, at)
        if self._agent is not None:
            self._agent.feed(frame, at)

    def _send(self, frame: bytes) -> None:
        if self._link is not None:
            self._link.send(frame)

    # -- the offer -------------------------------------------------------------------------------

    async def offer(self) -> NetworkOffer:
        if self._offer is None:
            self._offer = await self._bring_up()
        return self._offer

    async def _bring_up(self) -> NetworkOffer:
        notes: list[Note] = []
        self._link = RawLink(self.interface, netns=self.netns)
        self._link.open(self._on_frame)
        self._agent = LldpAgent(self._send, mac=self.mac, system_name=self.host_name, model=self._model,
                                firmware=self._firmware, serial=self._serial)
        self._dhcp = DhcpClient(self._send, mac=self.mac, host_name=self.host_name)
        notes.append(("dhcp-discover", {"interface": self.interface, "host_name": self.host_name}))
        lease = await self._dhcp.acquire(self.dhcp_timeout)
        if lease is None:
            notes.append(("no-dhcp-lease", {"after": self.dhcp_timeout, "ignored": self._dhcp.ignored}))
        else:
            notes.append(("dhcp-lease", lease.summary()))
            await self._take(lease, notes)
        combined = self._combine(lease, None)
        wait = self.lldp_wait if combined.server is None else min(self.lldp_wait, LLDP_GRACE)
        lldp = await self._agent.first(wait)
        if lldp is None:
            notes.append(("no-lldp", {"waited": wait}))
        else:
            notes.append(("lldp-neighbour", {"chassis": lldp.chassis_id, "port": lldp.port_id,
                                             "system_name": lldp.system_name, "file_servers": list(lldp.file_servers),
                                             "call_servers": list(lldp.call_servers),
                                             "med_vlan": lldp.med_policy.vlan if lldp.med_policy else None}))
        combined = self._combine(lease, lldp)
        vlan = voice_vlan(combined)
        if vlan is not None and lease is not None and lease.vlan != vlan[0]:
            vid, source = vlan
            notes.append(("voice-vlan", {"vlan": vid, "source": source}))
            self._dhcp = DhcpClient(self._send, mac=self.mac, host_name=self.host_name, vlan=vid)
            tagged = await self._dhcp.acquire(self.dhcp_timeout)
            if tagged is None:
                notes.append(("no-dhcp-lease", {"after": self.dhcp_timeout, "vlan": vid}))
            else:
                notes.append(("dhcp-lease", tagged.summary()))
                await self._take(tagged, notes)
                lease = tagged
                combined = self._combine(lease, lldp)
        for name, detail in combined.notes:
            notes.append((name, detail))
        if lease is not None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew(lease))
        return NetworkOffer(combined.server, dict(combined.params), dict(combined.sources), self._address,
                            tuple(notes))

    def _combine(self, lease: Lease | None, lldp: Any) -> Combined:
        if lease is None:
            return combine(lldp=lldp)
        return combine(siaddr=lease.siaddr, option_43=lease.option_43, option_242=lease.option_242, lldp=lldp,
                       server_id=lease.server_id)

    async def _take(self, lease: Lease, notes: list[Note]) -> None:
        """Put the leased address on the interface (module docstring)."""
        if self._address is not None and self._address != lease.address:
            await self._ip("addr", "del", f"{self._address}/{self.lease.prefixlen if self.lease else 24}",
                           "dev", self.interface, check=False)
        ok = await self._ip("addr", "replace", f"{lease.address}/{lease.prefixlen}", "dev", self.interface)
        if lease.router:
            await self._ip("route", "replace", "default", "via", lease.router, "dev", self.interface, check=False)
        if not ok:
            notes.append(("address-not-applied", {"ip": lease.address, "interface": self.interface}))
        self._address = lease.address
        self.lease = lease
        assert self._agent is not None
        self._agent.set_address(lease.address, netmask=_mask(lease.prefixlen), gateway=lease.router)
        if self.transmit_lldp and not self._transmitting:
            self._transmitting = True
            self._agent.start()

    async def _ip(self, *args: str, check: bool = True) -> bool:
        command = ["ip", *(["-n", self.netns] if self.netns else []), *args]
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False)
        return done.returncode == 0 or not check

    async def _renew(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(max(lease.renew_at, 1.0))
            if self._dhcp is None:
                return
            renewed = await self._dhcp.renew(lease)
            if renewed is not None:
                lease = renewed
                self.lease = renewed

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer
            self._renewer = None
        if self._agent is not None:
            await self._agent.stop()
        if self._link is not None:
            self._link.close()
            self._link = None
