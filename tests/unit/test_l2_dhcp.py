"""The phone's DHCP client without sockets: its frames read by scapy and by the harness responder's
own parser, whole exchanges against the responder's pure part (`DhcpResponder.answer`), and
replies built with scapy to be odd (no option 51, NAK, garbage)."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.lab_network.dhcp_responder import DhcpResponder, parse_dhcp_frame
from harness.lab_network.spec import DhcpScope
from simulators.l2.dhcp import PARAMETER_REQUEST_LIST, DhcpClient, host_name, read_options

MAC = "00040D123456"
COLONS = "00:04:0d:12:34:56"
SERVER_MAC = "02:00:00:00:00:01"
UNSPECIFIED = str(ipaddress.IPv4Address(0))


def _scope(**extra: object) -> DhcpScope:
    values: dict[str, object] = {"address": "10.213.0.1", "pool": ("10.213.0.50", "10.213.0.59"),
                                 "router": "10.213.0.1", "dns": ("10.213.0.1", "10.213.0.2"),
                                 "domain": "lab.example", "lease_time": 600,
                                 "option_242": "HTTPSRVR=10.213.0.1,HTTPDIR=/j", "option_43": {"HTTPSRVR": "10.0.0.5"}}
    values.update(extra)
    return DhcpScope(**values)  # type: ignore[arg-type]


class Wire:
    """A fake link: what the client sends goes to `server`; its reply is fed back on the loop."""

    def __init__(self, server: Callable[[bytes], bytes | None]) -> None:
        self.server = server
        self.frames: list[bytes] = []
        self.client: DhcpClient | None = None

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        reply = self.server(frame)
        if reply is not None and self.client is not None:
            asyncio.get_running_loop().call_soon(self.client.feed, reply, 0.0)


def _client(server: Callable[[bytes], bytes | None], **options: object) -> tuple[DhcpClient, Wire]:
    wire = Wire(server)
    client = DhcpClient(wire.send, mac=MAC, host_name=host_name(MAC), **options)  # type: ignore[arg-type]
    wire.client = client
    return client, wire


def _responder(**extra: object) -> DhcpResponder:
    return DhcpResponder("br0", _scope(**extra), mac=SERVER_MAC)


@pytest.mark.parametrize(("mac", "name"), [
    ("00:04:0D:12:34:56", "AVA123456"), ("001B4F000001", "AVB000001"), ("00-09-6E-AB-CD-EF", "AVEABCDEF"),
    ("00601D010203", "AVL010203"), ("00073B0A0B0C", "AVT0A0B0C"),
    ("c8:1f:ea:9b:65:00", "AVX9B6500"),  # research §9: the J129 of obs C-21
])
def test_option_12_is_av_oui_letter_and_last_three_octets(mac: str, name: str) -> None:
    assert host_name(mac) == name


def test_discover_asks_for_242_and_43_as_a_j100_does() -> None:
    async def run() -> bytes:
        client, wire = _client(lambda frame: None)
        await client.acquire(0.2)
        return wire.frames[0]

    frame = asyncio.run(run())
    packet = Ether(frame)
    assert packet.dst == "ff:ff:ff:ff:ff:ff" and packet.src == COLONS and Dot1Q not in packet
    assert packet[IP].src == UNSPECIFIED and packet[IP].dst == "255.255.255.255"
    assert (packet[UDP].sport, packet[UDP].dport) == (68, 67)
    assert packet[BOOTP].op == 1 and packet[BOOTP].flags == 0x8000
    # read by the harness responder's own parser, not scapy's
    message = parse_dhcp_frame(frame)
    assert message.message_type == 1 and message.chaddr == COLONS
    assert message.options[12] == b"AVA123456"
    assert list(message.options[55]) == list(PARAMETER_REQUEST_LIST)
    assert {1, 3, 6, 15, 43, 242} <= set(message.options[55])
    assert 60 not in message.options  # research §9 names no vendor class for J100 SIP [inf]


def test_vendor_class_is_sent_when_given() -> None:
    async def run() -> bytes:
        client, wire = _client(lambda frame: None, vendor_class="ccp.avaya.com")
        await client.acquire(0.2)
        return wire.frames[0]

    assert parse_dhcp_frame(asyncio.run(run())).options[60] == b"ccp.avaya.com"


def test_a_whole_exchange_with_the_harness_responder() -> None:
    responder = _responder()

    async def run() -> tuple[DhcpClient, Wire]:
        client, wire = _client(responder.answer)
        assert await client.acquire(3) is not None
        return client, wire

    client, wire = asyncio.run(run())
    lease = client.lease
    assert lease is not None
    assert client.sent == ["discover", "request"]
    assert (lease.address, lease.prefixlen, lease.router) == ("10.213.0.50", 24, "10.213.0.1")
    assert lease.dns == ("10.213.0.1", "10.213.0.2") and lease.domain == "lab.example"
    assert lease.server_id == "10.213.0.1" and lease.server_mac == SERVER_MAC and lease.siaddr is None
    assert (lease.lease_time, lease.renew_at, lease.rebind_at) == (600, 300.0, 525.0)
    assert lease.option_242 == "HTTPSRVR=10.213.0.1,HTTPDIR=/j"
    assert lease.option_43 == b"\x01\x046889\x02\x0810.0.0.5"
    assert lease.options[53] == b"\x05" and lease.vlan is None
    request = parse_dhcp_frame(wire.frames[1])
    assert request.message_type == 3 and request.option_ip(50) == "10.213.0.50"
    assert request.option_ip(54) == "10.213.0.1" and request.options[12] == b"AVA123456"
    held = responder.leases[(None, COLONS)]
    assert held.state == "bound" and held.host_name == "AVA123456"
    assert client.ignored == 0 and client.malformed == 0


def test_siaddr_and_a_long_242_split_in_two_options_are_read() -> None:
    long_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/" + "x" * 300  # RFC 3396: the responder splits it
    responder = _responder(option_242=long_242, siaddr="10.213.0.9")

    async def run() -> DhcpClient:
        client, _wire = _client(responder.answer)
        await client.acquire(3)
        return client

    lease = asyncio.run(run()).lease
    assert lease is not None and lease.option_242 == long_242 and lease.siaddr == "10.213.0.9"


def test_on_a_voice_vlan_every_frame_is_tagged_and_only_that_vlan_answers() -> None:
    voice = DhcpScope(address="10.213.212.1", pool=("10.213.212.50", "10.213.212.59"), lease_time=300,
                      option_242="HTTPSRVR=10.213.212.1")
    responder = DhcpResponder("br0", _scope(), mac=SERVER_MAC, vlans={212: voice})

    def answer(frame: bytes) -> bytes | None:
        reply = responder.answer(frame)
        if reply is not None:
            assert client_wire.client is not None
            client_wire.client.feed(reply[:12] + reply[16:], 0.0)  # the same reply untagged: dropped
        return reply

    async def run() -> tuple[DhcpClient, list[bytes]]:
        client = DhcpClient(client_wire.send, mac=MAC, host_name=host_name(MAC), vlan=212)
        client_wire.client = client
        await client.acquire(3)
        return client, client_wire.frames

    client_wire = Wire(answer)
    client, frames = asyncio.run(run())
    for frame in frames:
        tag = Ether(frame)[Dot1Q]
        assert (tag.vlan, tag.prio) == (212, 5)
    lease = client.lease
    assert lease is not None and lease.vlan == 212 and lease.address == "10.213.212.50"
    assert lease.option_242 == "HTTPSRVR=10.213.212.1" and lease.server_id == "10.213.212.1"
    assert (212, COLONS) in responder.leases and (None, COLONS) not in responder.leases


def _reply(request: bytes, kind: str, *, options: list[object] | None = None, yiaddr: str = "10.213.0.77",
           lease_time: int | None = 120, xid: int | None = None) -> bytes:
    asked = Ether(request)
    dhcp: list[object] = [("message-type", kind), ("server_id", "10.213.0.1"), ("subnet_mask", "255.255.255.0")]
    if lease_time is not None:
        dhcp.append(("lease_time", lease_time))
    dhcp += options or []
    dhcp.append("end")
    return bytes(Ether(src=SERVER_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.213.0.1", dst="255.255.255.255")
                 / UDP(sport=67, dport=68)
                 / BOOTP(op=2, xid=asked[BOOTP].xid if xid is None else xid, yiaddr=yiaddr,
                         chaddr=asked[BOOTP].chaddr)
                 / DHCP(options=dhcp))


def _kind(frame: bytes) -> int:
    return read_options(bytes(Ether(frame)[UDP].payload)[240:])[53][0]


def test_an_offer_without_option_51_is_not_accepted() -> None:
    def server(frame: bytes) -> bytes | None:
        return _reply(frame, "offer", lease_time=None) if _kind(frame) == 1 else None

    async def run() -> tuple[DhcpClient, object]:
        client, _wire = _client(server)
        return client, await client.acquire(1.5)

    client, lease = asyncio.run(run())
    assert lease is None and "request" not in client.sent
    assert client.malformed >= 1 and "option 51" in client.problems[0]


def test_a_nak_starts_over_from_discover() -> None:
    naks = [True]

    def server(frame: bytes) -> bytes | None:
        kind = _kind(frame)
        if kind == 1:
            return _reply(frame, "offer")
        if kind == 3:
            if naks.pop() if naks else False:
                return _reply(frame, "nak", lease_time=None, yiaddr=UNSPECIFIED)
            return _reply(frame, "ack")
        return None

    async def run() -> DhcpClient:
        client, _wire = _client(server)
        await client.acquire(5)
        return client

    client = asyncio.run(run())
    assert client.sent == ["discover", "request", "discover", "request"]
    assert client.naks == 1 and client.lease is not None and client.lease.address == "10.213.0.77"
    assert client.lease.renew_at == 60.0  # no option 58: half the lease


def test_discover_is_retransmitted_with_back_off_and_gives_up_at_the_timeout() -> None:
    async def run() -> tuple[DhcpClient, object, float]:
        client, _wire = _client(lambda frame: None)
        loop = asyncio.get_running_loop()
        started = loop.time()
        lease = await client.acquire(3.5)
        return client, lease, loop.time() - started

    client, lease, took = asyncio.run(run())
    assert lease is None and client.sent == ["discover"] * 3  # at 0, 1 and 3 s
    assert 3.4 < took < 4.0


def test_replies_for_others_and_garbage_are_ignored_and_counted() -> None:
    def server(frame: bytes) -> bytes | None:
        assert wire.client is not None
        good = _reply(frame, "offer") if _kind(frame) == 1 else _reply(frame, "ack")
        feed = wire.client.feed
        feed(_reply(frame, "offer", xid=1), 0.0)  # another exchange
        feed(good[:300], 0.0)  # truncated in the options: unreadable
        bad = bytearray(good)
        bad[-3:] = b"\x2b\xff\x01"  # option 43 claims 255 bytes
        feed(bytes(bad)[: len(good) - 1], 0.0)
        feed(b"\xff" * 14 + b"\x08\x00" + b"\x45" + b"\0" * 8 + b"\x11" + b"\0" * 10 + b"\0\x43\0\x44\0\0", 0.0)
        feed(b"", 0.0)
        feed(b"\x00" * 60, 0.0)
        return good

    async def run() -> DhcpClient:
        client = DhcpClient(wire.send, mac=MAC, host_name=host_name(MAC))
        wire.client = client
        await client.acquire(3)
        return client

    wire = Wire(server)
    client = asyncio.run(run())
    assert client.lease is not None
    assert client.ignored >= 2 and client.malformed >= 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_feed_never_raises_on_any_bytes(tail: bytes) -> None:
    client = DhcpClient(lambda frame: None, mac=MAC, host_name="AVA123456")
    header = bytes.fromhex("ffffffffffff0200000000010800") + b"\x45" + b"\0" * 8 + b"\x11" + b"\0" * 10
    client.feed(header + b"\0\x43\0\x44" + struct.pack("!H", 8 + len(tail)) + b"\0\0" + tail, 0.0)
    client.feed(tail, 0.0)


def test_renew_is_unicast_to_the_server_and_a_nak_drops_the_lease() -> None:
    responder = _responder()

    async def run() -> tuple[DhcpClient, Wire, object, object]:
        client, wire = _client(responder.answer)
        await client.acquire(3)
        renewed = await client.renew(timeout=2)
        responder.leases.clear()  # the server forgot: RENEWING gets a NAK
        after_nak = await client.renew(timeout=2)
        return client, wire, renewed, after_nak

    client, wire, renewed, after_nak = asyncio.run(run())
    assert renewed is not None and renewed.address == "10.213.0.50"  # type: ignore[attr-defined]
    renewal = Ether(wire.frames[2])
    assert renewal.dst == SERVER_MAC and renewal[IP].src == "10.213.0.50" and renewal[IP].dst == "10.213.0.1"
    message = parse_dhcp_frame(wire.frames[2])
    assert message.message_type == 3 and message.ciaddr == "10.213.0.50" and 50 not in message.options
    assert after_nak is None and client.lease is None and client.naks == 1


def test_rebinding_is_broadcast_and_release_frees_the_lease() -> None:
    responder = _responder()

    async def run() -> tuple[DhcpClient, Wire]:
        client, wire = _client(responder.answer)
        await client.acquire(3)
        assert await client.renew(timeout=2, rebinding=True) is not None
        client.release()
        return client, wire

    client, wire = asyncio.run(run())
    rebind = Ether(wire.frames[2])
    assert rebind.dst == "ff:ff:ff:ff:ff:ff" and rebind[IP].dst == "255.255.255.255"
    release = parse_dhcp_frame(wire.frames[3])
    assert release.message_type == 7 and release.option_ip(54) == "10.213.0.1" and release.ciaddr == "10.213.0.50"
    assert client.lease is None and (None, COLONS) not in responder.leases
    assert [e["event"] for e in responder.events][-1] == "release"


def test_read_options_joins_split_options_and_refuses_overruns() -> None:
    assert read_options(b"\xf2\x02ab\x00\xf2\x01c\xff") == {242: b"abc"}
    assert read_options(b"\x01\x04\xff\xff\xff\x00") == {1: b"\xff\xff\xff\x00"}  # no end option: tolerated
    with pytest.raises(ValueError, match="runs past the end"):
        read_options(b"\x2b\x05ab")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        DhcpClient(lambda frame: None, mac="00040D", host_name="x")
    with pytest.raises(ValueError, match="VLAN 4095"):
        DhcpClient(lambda frame: None, mac=MAC, host_name="x", vlan=4095)
