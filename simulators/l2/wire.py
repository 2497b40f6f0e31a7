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
  DHCP again, 802.1Q-tagged on that VLAN, as a J100 does (research §10) — also when the
  untagged DHCP gave no lease but LLDP-MED named a VLAN. That lease's options are combined again
  with the LLDP heard, and its address replaces the first one on the interface. Without an
  answer on the VLAN the untagged lease stays the phone's [inf]. The kernels this runs on may
  lack 802.1Q sub-interfaces, so the address goes on the untagged interface itself: the DHCP
  exchange on the VLAN is real tagged frames, the phone's later TCP traffic is untagged [inf].
- The phone sends its own LLDPDU (chassis = IP, port = MAC, TTL 120, `host_name` as system
  name, MED inventory) once it has an address, every 30 s while the network is open; its Avaya
  TLVs report the IPv4 file and call servers it took, and 802.1Q framing when on a VLAN
  (research §10) [inf: what a J100 reports before it has fetched its settings].
- The lease is renewed while the network is open: RENEWING (unicast) from T1, REBINDING
  (broadcast) from T2; at expiry or a NAK the address is removed (`lease-lost`). These come
  after the offer, so they are kept in `events`, not in the offer's notes.
- Notes, in order: dhcp-discover, dhcp-lease / no-dhcp-lease (per exchange; dhcp-malformed when
  replies could not be read), lldp-neighbour / no-lldp, voice-vlan, what precedence set aside
  (siaddr-ignored, sson-ignored, lldp-file-server-ignored, …), network-server.
- Nothing the network answers or leaves unanswered raises; a missing interface or no raw
  sockets does (OSError), being the bench's fault, not the network's.
- The offer is made once; later calls return it (a phone's network comes up once per boot).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import subprocess
import time
from typing import Any

from simulators.l2.dhcp import DhcpClient, Lease, host_name
from simulators.l2.lldp import LldpInfo
from simulators.l2.lldp_agent import LldpAgent
from simulators.l2.precedence import Combined, combine, voice_vlan
from simulators.l2.rawlink import RawLink
from simulators.network import NetworkOffer, Note

__all__ = ["LLDP_GRACE", "WireNetwork"]

LLDP_GRACE = 1.0
RENEW_WAIT = 4.0  # the longest wait for one renewal's answer [inf]


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _neighbour(lldp: LldpInfo) -> dict[str, object]:
    med = lldp.med_policy
    return {"src_mac": lldp.src_mac, "chassis": lldp.chassis_id, "port": lldp.port_id,
            "system_name": lldp.system_name, "ttl": lldp.ttl, "file_servers": list(lldp.file_servers),
            "call_servers": list(lldp.call_servers), "dot1q_framing": lldp.dot1q_framing,
            "med_policy": None if med is None else {"app_type": med.app_type, "unknown": med.unknown,
                                                    "tagged": med.tagged, "vlan": med.vlan,
                                                    "priority": med.priority, "dscp": med.dscp},
            "port_vlan": lldp.port_vlan, "vlan_name": lldp.vlan_name, "problems": list(lldp.problems)}


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
        self.events: list[Note] = []  # what happened after the offer (renewals), oldest first

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

    @property
    def dhcp(self) -> DhcpClient | None:
        """The DHCP client holding the phone's lease (the voice VLAN's once the phone moved there)."""
        return self._dhcp

    @property
    def agent(self) -> LldpAgent | None:
        """The phone's LLDP agent (what it heard and sent)."""
        return self._agent

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
        lease = await self._acquire(self._dhcp, notes)
        combined = self._combine(lease, None)
        wait = self.lldp_wait if combined.server is None else min(self.lldp_wait, LLDP_GRACE)
        lldp = await self._agent.first(wait)
        if lldp is None:
            notes.append(("no-lldp", {"waited": wait}))
        else:
            notes.append(("lldp-neighbour", _neighbour(lldp)))
        combined = self._combine(lease, lldp)
        vlan = voice_vlan(combined)
        if vlan is not None and (lease is None or lease.vlan != vlan[0]):
            vid, source = vlan
            notes.extend(combined.notes)  # what the data VLAN's lease set aside, before moving
            notes.append(("voice-vlan", {"vlan": vid, "source": source}))
            tagged_client = DhcpClient(self._send, mac=self.mac, host_name=self.host_name, vlan=vid)
            previous, self._dhcp = self._dhcp, tagged_client
            tagged = await self._acquire(tagged_client, notes)
            if tagged is None:
                self._dhcp = previous  # the untagged lease (if any) stays the phone's [inf]
            else:
                lease = tagged
                combined = self._combine(lease, lldp)
        notes.extend(note for note in combined.notes if note not in notes)
        if combined.server is not None:
            notes.append(("network-server", {"url": combined.server.url, "source": combined.server.source}))
        self._report(combined)
        if lease is not None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew())
        return NetworkOffer(combined.server, dict(combined.params), dict(combined.sources), self._address,
                            tuple(notes))

    async def _acquire(self, client: DhcpClient, notes: list[Note]) -> Lease | None:
        lease = await client.acquire(self.dhcp_timeout)
        if lease is None:
            notes.append(("no-dhcp-lease", {"after": self.dhcp_timeout, "vlan": client.vlan, "sent": len(client.sent),
                                            "ignored": client.ignored, "malformed": client.malformed,
                                            "problems": client.problems[-5:]}))
            return None
        notes.append(("dhcp-lease", lease.summary()))
        if client.malformed:
            notes.append(("dhcp-malformed", {"count": client.malformed, "problems": client.problems[-5:]}))
        await self._take(lease, notes)
        return lease

    def _report(self, combined: Combined) -> None:
        """What the phone uses goes into its own LLDPDU's Avaya TLVs (research §10)."""
        if self._agent is None:
            return
        files = [h for h in combined.params.get("HTTPSRVR", "").split(",") if _is_ipv4(h.strip())][:4]
        calls = [h for h in combined.params.get("MCIPADD", "").split(",") if _is_ipv4(h.strip())][:8]
        framing = 1 if self.lease is not None and self.lease.vlan is not None else None
        with contextlib.suppress(ValueError):
            self._agent.set_reported(file_servers=[f.strip() for f in files], call_servers=[c.strip() for c in calls],
                                     dot1q_framing=framing)

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

    async def _renew(self) -> None:
        """RENEWING from T1, REBINDING from T2, each try waiting at most until the next deadline;
        at expiry or a NAK the address goes (module docstring)."""
        while self._dhcp is not None and self._dhcp.lease is not None:
            client, lease = self._dhcp, self._dhcp.lease
            t1, t2, end = (lease.bound_at + lease.renew_at, lease.bound_at + lease.rebind_at,
                           lease.bound_at + lease.lease_time)
            await asyncio.sleep(max(t1 - time.monotonic(), 0.5))
            renewed = None
            while renewed is None and client.lease is not None and time.monotonic() < end:
                rebinding = time.monotonic() >= t2
                until = end if rebinding else t2
                renewed = await client.renew(timeout=min(RENEW_WAIT, max(until - time.monotonic(), 0.2)),
                                             rebinding=rebinding)
            if renewed is None:
                self.events.append(("lease-lost", {"ip": lease.address, "vlan": lease.vlan,
                                                   "why": "NAK" if client.lease is None else "expired"}))
                client.lease = None
                await self._ip("addr", "del", f"{lease.address}/{lease.prefixlen}", "dev", self.interface, check=False)
                self._address = None
                if self._agent is not None:
                    self._agent.set_address(None)
                return
            self.events.append(("dhcp-renewed", renewed.summary()))
            if renewed.address != lease.address:
                await self._take(renewed, self.events)
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
