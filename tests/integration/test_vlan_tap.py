"""The software 802.1Q sub-interface (`harness.lab_network.vlan_tap`) in a lab in a box of our own:
a frame a host sends tagged with the VID comes out of the TAP untagged, byte for byte, and a frame
sent on the TAP reaches the host tagged; other VIDs and untagged frames stay on the trunk; the
kernel behind the TAP answers ARP on the VLAN with the trunk's MAC; frames to the TAP's MAC still
arrive after the bridge's MAC changed; closing stops the thread, closes every descriptor and
removes the TAP; `LabTopology.add_vlan` falls back to it on a kernel without 802.1Q."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from scapy.layers.l2 import ARP, Dot1Q, Ether

from harness.lab_network.netns import Host, LabTopology, kernel_vlan_support, run_ip
from harness.lab_network.vlan_tap import (
    PACKET_AUXDATA,
    SOL_PACKET,
    TP_STATUS_VLAN_VALID,
    SoftwareVlan,
    software_vlan_support,
    strip_tag,
    tap_name,
)
from simulators.l2.rawlink import RawLink
from tests.lab_tiers import gap, lab_topology

pytestmark = pytest.mark.timeout(30)

VID = 212
ETHERTYPE = 0x88B5  # IEEE 802 local experimental: nothing in the namespaces answers or eats it
HOST_MAC = "02:00:00:00:21:01"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _frame(dst: str, src: str, payload: bytes, vid: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vid) if vid is not None else b""
    return _mac(dst) + _mac(src) + tag + struct.pack("!H", ETHERTYPE) + payload.ljust(46, b"\0")


class _Frames:
    """Frames received on one interface (tags put back by RawLink), outgoing ones left out."""

    def __init__(self, interface: str, netns: str) -> None:
        self.link = RawLink(interface, netns=netns)
        self.seen: list[bytes] = []

    def _on(self, frame: bytes, outgoing: bool, _at: float) -> None:
        if not outgoing:
            self.seen.append(frame)

    async def wait(self, match: Callable[[bytes], bool], timeout: float = 2.0) -> list[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            found = [f for f in self.seen if match(f)]
            if found:
                return found
            await asyncio.sleep(0.02)
        return []


@asynccontextmanager
async def _links(*where: tuple[str, str]) -> AsyncIterator[list[_Frames]]:
    frames = [_Frames(interface, netns) for interface, netns in where]
    try:
        for f in frames:
            f.link.open(f._on)
        yield frames
    finally:
        for f in frames:
            f.link.close()


def _has(marker: bytes) -> Callable[[bytes], bool]:
    return lambda frame: marker in frame


def _links_in(netns: str) -> list[str]:
    done = subprocess.run(["ip", "-n", netns, "-j", "link", "show"], capture_output=True, text=True, check=True)
    return [link["ifname"] for link in json.loads(done.stdout)]


def _need_tap(lab: LabTopology) -> None:
    why = software_vlan_support(lab.netns)
    if why:
        gap(f"software VLAN sub-interface: {why}")


def _host(lab: LabTopology) -> Host:
    return lab.add_host("h1", mac=HOST_MAC)


# -- the pure part ---------------------------------------------------------------------------------


def _aux(tci: int, status: int = TP_STATUS_VLAN_VALID, tpid: int = 0) -> list[tuple[int, int, bytes]]:
    return [(SOL_PACKET, PACKET_AUXDATA, struct.pack("=IIIHHHH", status, 60, 60, 0, 0, tci, tpid))]


def test_strip_tag_reads_the_tag_from_auxdata_or_from_the_frame() -> None:
    plain = _frame(BROADCAST, HOST_MAC, b"x")
    assert strip_tag(plain, _aux(0xA000 | VID), VID) == plain  # kernel took it out: the frame as it is
    assert strip_tag(plain, _aux(VID + 1), VID) is None
    assert strip_tag(plain, _aux(VID, tpid=0x88A8, status=TP_STATUS_VLAN_VALID | 0x40), VID) is None  # 802.1ad
    assert strip_tag(plain, _aux(VID, status=0), VID) is None  # no tag at all: the kernel's business
    assert strip_tag(plain, [], VID) is None
    tagged = _frame(BROADCAST, HOST_MAC, b"x", vid=0xA000 | VID)
    assert strip_tag(tagged, [], VID) == plain
    assert strip_tag(tagged, [], 100) is None


def test_tap_names_fit_ifnamsiz() -> None:
    assert tap_name("br0", 212) == "br0.212"
    assert tap_name("enp0s31f6long", 4094) == "enp0s31f6l.4094"
    assert len(tap_name("x" * 15, 4094)) == 15
    with pytest.raises(ValueError, match="1-4094"):
        SoftwareVlan("br0", 4095)
    with pytest.raises(ValueError, match="0-7"):
        SoftwareVlan("br0", 1, priority=8)


# -- over the wire ---------------------------------------------------------------------------------


async def test_tagged_frames_come_out_untagged_and_tap_frames_go_back_tagged() -> None:
    with lab_topology("enrollab-vt") as lab:
        _need_tap(lab)
        host = _host(lab)
        with SoftwareVlan(lab.bridge, VID, netns=lab.netns, priority=5) as vlan:
            assert vlan.name == "br0.212" and vlan.name in _links_in(lab.netns)
            async with _links((host.interface, host.netns), (vlan.name, lab.netns)) as (on_host, on_tap):
                # host -> trunk, tagged VID 212 -> TAP, untagged, otherwise the same bytes
                inbound = _frame(BROADCAST, HOST_MAC, b"in-212", vid=VID)
                on_host.link.send(inbound)
                got = await on_tap.wait(_has(b"in-212"))
                assert got == [_frame(BROADCAST, HOST_MAC, b"in-212")]

                # another VID and an untagged frame are not the VLAN's
                on_host.link.send(_frame(BROADCAST, HOST_MAC, b"in-100", vid=100))
                on_host.link.send(_frame(BROADCAST, HOST_MAC, b"in-untagged"))
                await asyncio.sleep(0.3)
                assert not [f for f in on_tap.seen if b"in-100" in f or b"in-untagged" in f]

                # TAP -> trunk: tagged with VID 212 and PCP 5, to the host
                on_tap.link.send(_frame(HOST_MAC, vlan.mac, b"out-212"))
                back = await on_host.wait(_has(b"out-212"))
                assert back == [_frame(HOST_MAC, vlan.mac, b"out-212", vid=5 << 13 | VID)]
                # what the relay sent on the trunk (PACKET_OUTGOING there) is not relayed back
                await asyncio.sleep(0.2)
                assert not [f for f in on_tap.seen if b"out-212" in f]
            assert vlan.error is None and vlan.to_tap == 1 and vlan.to_trunk >= 1 and vlan.dropped == 0


async def test_the_kernel_behind_the_tap_answers_arp_on_the_vlan_with_the_trunks_mac() -> None:
    with lab_topology("enrollab-vt") as lab:
        _need_tap(lab)
        host = _host(lab)
        with SoftwareVlan(lab.bridge, VID, netns=lab.netns) as vlan:
            bridge = json.loads(run_ip("-j", "link", "show", lab.bridge, netns=lab.netns).stdout)[0]
            tap = json.loads(run_ip("-j", "link", "show", vlan.name, netns=lab.netns).stdout)[0]
            assert vlan.mac == bridge["address"] == tap["address"]  # as a kernel VLAN interface's
            assert tap["mtu"] == bridge["mtu"] and "UP" in tap["flags"]
            run_ip("addr", "add", "10.213.212.1/24", "dev", vlan.name, netns=lab.netns)
            async with _links((host.interface, host.netns)) as (on_host,):
                arp = ARP(op=1, hwsrc=HOST_MAC, psrc="10.213.212.9", pdst="10.213.212.1")
                on_host.link.send(bytes(Ether(src=HOST_MAC, dst=BROADCAST) / Dot1Q(vlan=VID) / arp))

                def is_reply(frame: bytes) -> bool:
                    packet = Ether(frame)
                    return ARP in packet and packet[ARP].op == 2

                replies = [Ether(f) for f in await on_host.wait(is_reply)]
                assert replies, on_host.seen
                reply = replies[0]
                assert Dot1Q in reply and reply[Dot1Q].vlan == VID
                assert (reply[ARP].psrc, reply[ARP].hwsrc, reply.dst) == ("10.213.212.1", vlan.mac, HOST_MAC)

                # the same request untagged is br0's own (Linux answers ARP for any of its addresses,
                # arp_ignore 0, as it would with a kernel VLAN interface): untagged, not through the relay
                on_host.seen.clear()
                relayed = vlan.to_tap
                on_host.link.send(bytes(Ether(src=HOST_MAC, dst=BROADCAST) / arp))
                untagged = [Ether(f) for f in await on_host.wait(is_reply)]
                assert untagged and Dot1Q not in untagged[0]
                assert vlan.to_tap == relayed


async def test_frames_to_the_taps_mac_still_arrive_after_the_bridges_mac_changed() -> None:
    with lab_topology("enrollab-vt") as lab:
        _need_tap(lab)
        host = _host(lab)
        # a MAC of the bridge's own, not a port's (a port's MAC stays a local FDB entry of the bridge)
        run_ip("link", "set", lab.bridge, "address", "02:00:00:00:21:fd", netns=lab.netns)
        with SoftwareVlan(lab.bridge, VID, netns=lab.netns) as vlan:
            assert vlan.mac == "02:00:00:00:21:fd"
            run_ip("link", "set", lab.bridge, "address", "02:00:00:00:21:fe", netns=lab.netns)
            async with _links((host.interface, host.netns), (vlan.name, lab.netns)) as (on_host, on_tap):
                on_host.link.send(_frame(vlan.mac, HOST_MAC, b"unicast-212", vid=VID))
                assert await on_tap.wait(_has(b"unicast-212")) == [_frame(vlan.mac, HOST_MAC, b"unicast-212")]


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_close_stops_the_relay_closes_its_descriptors_and_removes_the_tap() -> None:
    with lab_topology("enrollab-vt") as lab:
        _need_tap(lab)
        before = _fds()
        vlan = SoftwareVlan(lab.bridge, VID, netns=lab.netns).open()
        try:
            assert vlan.running and vlan.name in _links_in(lab.netns)
            with pytest.raises(RuntimeError, match="already open"):
                vlan.open()
        finally:
            vlan.close()
        assert not vlan.running
        assert not [t for t in threading.enumerate() if t.name == f"vlan-tap-{vlan.name}"]
        assert _fds() <= before
        assert vlan.name not in _links_in(lab.netns)
        vlan.close()  # again: nothing happens

        # a trunk that is not there: an error, and nothing left behind
        with pytest.raises(OSError):
            SoftwareVlan("nosuchtrunk", VID, netns=lab.netns).open()
        assert _fds() <= before
        assert tap_name("nosuchtrunk", VID) not in _links_in(lab.netns)


def test_add_vlan_falls_back_to_the_software_interface_and_closes_it_with_the_lab() -> None:
    before = _fds()
    with lab_topology("enrollab-vt") as lab:
        _need_tap(lab)
        name = lab.add_vlan(VID)
        assert name == "br0.212" and lab.vlans[VID] == "10.213.212.1"
        addresses: list[dict[str, Any]] = json.loads(run_ip("-j", "addr", "show", name, netns=lab.netns).stdout)
        assert [(a["local"], a["prefixlen"]) for a in addresses[0]["addr_info"] if a["family"] == "inet"] == [
            ("10.213.212.1", 24)]
        if kernel_vlan_support(lab.netns) is None:
            assert lab.software_vlans == {}  # the kernel's own 802.1Q interface
        else:
            vlan = lab.software_vlans[VID]
            assert vlan.running and vlan.name == name
    assert lab.software_vlans == {} and not vlan_threads()
    assert _fds() <= before


def vlan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vlan-tap-")]
