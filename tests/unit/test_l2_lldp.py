"""LLDP without sockets: `simulators.l2.lldp` against scapy's LLDP layers (an independent encoder
and dissector) and hand-computed bytes, malformed frames, the phone's LldpAgent with a fake link,
and the harness advertiser's pure part."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.lldp import (
    LLDPDU,
    LLDPDUChassisID,
    LLDPDUEndOfLLDPDU,
    LLDPDUGenericOrganisationSpecific,
    LLDPDUManagementAddress,
    LLDPDUPortID,
    LLDPDUSystemCapabilities,
    LLDPDUSystemName,
    LLDPDUTimeToLive,
)
from scapy.layers.l2 import Dot1Q, Ether

from harness.lab_network.lldp_advertiser import LldpAdvertiser
from harness.lab_network.spec import LldpSpec
from simulators.l2.lldp import (
    AVAYA_OUI,
    LLDP_MULTICAST,
    UNKNOWN_IPV4,
    LldpInfo,
    MedPolicy,
    build_lldpdu,
    model_name,
    parse_lldpdu,
    phone_lldpdu,
    switch_lldpdu,
)
from simulators.l2.lldp_agent import LldpAgent

PHONE = "a4:25:1b:00:00:01"
SWITCH = "02:00:00:00:00:fe"
VOICE = MedPolicy(app_type=1, unknown=False, tagged=True, vlan=212, priority=6, dscp=46)


def phone_frame(ip: str | None = "10.213.0.50", **kwargs: object) -> bytes:
    return phone_lldpdu(PHONE, ip=ip, system_name="AVA000001", model="J179D01A", firmware="4.1.0.0.10",
                        serial="22WZ00000001", **kwargs)  # type: ignore[arg-type]


def switch_frame(**kwargs: object) -> bytes:
    base: dict[str, object] = dict(port="br0", system_name="lab-switch", file_servers=("10.213.0.1", "10.213.0.2"),
                                   call_servers=("10.213.0.5",), dot1q_framing=1, med=VOICE)
    base.update(kwargs)
    return switch_lldpdu(SWITCH, **base)  # type: ignore[arg-type]


def tlvs(frame: bytes) -> list[tuple[int, bytes]]:
    """(type, value) of each TLV, End included, read by hand."""
    body, out, i = frame[14:], [], 0
    while True:
        header = struct.unpack_from("!H", body, i)[0]
        kind, length = header >> 9, header & 0x1FF
        out.append((kind, body[i + 2 : i + 2 + length]))
        if kind == 0:
            return out
        i += 2 + length


def org(oui: int, subtype: int, data: bytes) -> LLDPDUGenericOrganisationSpecific:
    return LLDPDUGenericOrganisationSpecific(org_code=oui, subtype=subtype, data=data)


def raw_frame(*tlv_bytes: bytes, src: str = SWITCH, end: bool = True) -> bytes:
    body = b"".join(tlv_bytes) + (b"\x00\x00" if end else b"")
    return bytes.fromhex("0180c200000e") + bytes.fromhex(src.replace(":", "")) + b"\x88\xcc" + body


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", kind << 9 | len(value)) + value


MANDATORY = tlv(1, b"\x04" + bytes.fromhex("0200000000fe")) + tlv(2, b"\x05br0") + tlv(3, b"\x00\x78")


# -- bytes on the wire ---------------------------------------------------------------------------


def test_phone_mandatory_tlvs_are_byte_exact() -> None:
    frame = phone_frame()
    assert frame[:14] == bytes.fromhex("0180c200000e a4251b000001 88cc")
    # chassis: type 1, length 6, subtype 5 (network address), family 1 (IPv4), 10.213.0.50
    # port: type 2, length 7, subtype 3 (MAC); TTL: type 3, length 2, 120; system name: type 5
    assert frame[14:14 + 32] == bytes.fromhex(
        "0206 05 01 0ad50032" "0407 03 a4251b000001" "0602 0078" "0a09") + b"AVA000001"
    assert frame.endswith(b"\x00\x00") and len(frame) >= 60


def test_phone_lldpdu_equals_scapys_encoding() -> None:
    tia = 0x0012BB
    expected = (Ether(dst=LLDP_MULTICAST, src=PHONE) / LLDPDU()
                / LLDPDUChassisID(subtype=5, family=1, id="10.213.0.50")
                / LLDPDUPortID(subtype=3, id=PHONE)
                / LLDPDUTimeToLive(ttl=120)
                / LLDPDUSystemName(system_name=b"AVA000001")
                / LLDPDUSystemCapabilities(telephone_available=1, telephone_enabled=1)
                / LLDPDUManagementAddress(management_address_subtype=1, management_address=bytes([10, 213, 0, 50]),
                                          interface_numbering_subtype=1, interface_number=0)
                / org(0x00120F, 1, bytes.fromhex("036c000010"))
                / org(tia, 1, bytes.fromhex("002303"))  # capabilities, policy, inventory; class III
                / org(tia, 5, b"J179D01A") / org(tia, 6, b"4.1.0.0.10") / org(tia, 7, b"4.1.0.0.10")
                / org(tia, 8, b"22WZ00000001") / org(tia, 9, b"Avaya") / org(tia, 10, b"J179")
                / org(0x00040D, 4, bytes([10, 213, 0, 50, 255, 255, 255, 0, 10, 213, 0, 1]))  # IP phone addresses
                / LLDPDUEndOfLLDPDU())
    assert phone_frame(netmask="255.255.255.0", gateway="10.213.0.1") == bytes(expected)


def test_switch_lldpdu_equals_scapys_encoding() -> None:
    expected = (Ether(dst=LLDP_MULTICAST, src=SWITCH) / LLDPDU()
                / LLDPDUChassisID(subtype=4, id=SWITCH)
                / LLDPDUPortID(subtype=5, id=b"br0")
                / LLDPDUTimeToLive(ttl=120)
                / LLDPDUSystemName(system_name=b"lab-switch")
                / LLDPDUSystemCapabilities(mac_bridge_available=1, mac_bridge_enabled=1)
                / org(0x0012BB, 1, bytes.fromhex("000304"))  # capabilities + policy; network connectivity
                # voice, T=1, VLAN 212, priority 6, DSCP 46: 0 1 0 000011010100 110 101110
                / org(0x0012BB, 2, bytes.fromhex("01 41a9ae"))
                / org(0x00040D, 3, bytes([10, 213, 0, 5]))
                / org(0x00040D, 6, bytes([10, 213, 0, 1, 10, 213, 0, 2]))
                / org(0x00040D, 7, b"\x01")
                / LLDPDUEndOfLLDPDU())
    frame = switch_frame()
    assert frame[: len(bytes(expected))] == bytes(expected)
    assert set(frame[len(bytes(expected)) :]) <= {0} and len(frame) >= 60  # padded to the Ethernet minimum


def test_scapy_dissects_our_phone_frame() -> None:
    packet = Ether(phone_frame(file_servers=("10.213.0.1",)))
    assert packet[LLDPDUChassisID].id == "10.213.0.50" and packet[LLDPDUChassisID].subtype == 5
    assert packet[LLDPDUPortID].id == PHONE and packet[LLDPDUTimeToLive].ttl == 120
    assert packet[LLDPDUSystemName].system_name == b"AVA000001"
    orgs = [(layer.org_code, layer.subtype, layer.data) for layer in _layers(packet, LLDPDUGenericOrganisationSpecific)]
    assert (0x00040D, 6, bytes([10, 213, 0, 1])) in orgs
    assert (0x0012BB, 10, b"J179") in orgs and (0x0012BB, 5, b"J179D01A") in orgs


def _layers(packet: Any, kind: type) -> list[Any]:
    found: list[Any] = []
    layer = packet
    while layer:
        if isinstance(layer, kind):
            found.append(layer)
        layer = layer.payload
    return found


def test_phone_without_an_address_sends_its_mac_as_chassis() -> None:
    frame = phone_frame(ip=None)
    assert tlvs(frame)[0] == (1, b"\x04" + bytes.fromhex("a4251b000001"))
    assert all(kind != 8 for kind, _ in tlvs(frame))  # no management address either


def test_model_name_drops_the_final_dxxx() -> None:
    assert model_name("J179D01A") == "J179" and model_name("K175D01A") == "K175"
    assert model_name("9621GD01A") == "9621G" and model_name("J179") == "J179"


def test_avaya_tlvs_use_oui_00040d_and_section_10_subtypes() -> None:
    orgs = [v for k, v in tlvs(switch_frame()) if k == 127 and v[:3] == AVAYA_OUI]
    assert orgs == [AVAYA_OUI + b"\x03" + bytes([10, 213, 0, 5]),
                    AVAYA_OUI + b"\x06" + bytes([10, 213, 0, 1, 10, 213, 0, 2]),
                    AVAYA_OUI + b"\x07\x01"]


def test_building_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="file servers"):
        switch_frame(file_servers=("files.example",))
    with pytest.raises(ValueError, match="vlan"):
        switch_frame(med=MedPolicy(1, False, True, 4096, 5, 46))
    with pytest.raises(ValueError, match="MAC"):
        switch_lldpdu("nope", port="br0", system_name="x")
    with pytest.raises(ValueError, match="at most 511"):
        switch_frame(file_servers=tuple(f"10.0.{i // 250}.{i % 250}" for i in range(128)))


# -- reading ---------------------------------------------------------------------------------------


def test_round_trip_of_the_switch_frame() -> None:
    info = parse_lldpdu(switch_frame())
    assert info == LldpInfo(src_mac=SWITCH, chassis_id=SWITCH, chassis_subtype=4, port_id="br0", port_subtype=5,
                            ttl=120, system_name="lab-switch", file_servers=("10.213.0.1", "10.213.0.2"),
                            call_servers=("10.213.0.5",), dot1q_framing=1, med_policy=VOICE,
                            system_capabilities=4, enabled_capabilities=4, med_device_class=4)
    assert not info.is_telephone


def test_round_trip_of_the_phone_frame() -> None:
    info = parse_lldpdu(phone_frame())
    assert info is not None and info.problems == ()
    assert (info.chassis_id, info.chassis_subtype, info.port_id, info.port_subtype) == ("10.213.0.50", 5, PHONE, 3)
    assert info.ttl == 120 and info.system_name == "AVA000001" and info.management_addresses == ("10.213.0.50",)
    assert dict(info.inventory or {}) == {"hardware_revision": "J179D01A", "firmware_revision": "4.1.0.0.10",
                                          "software_revision": "4.1.0.0.10", "serial_number": "22WZ00000001",
                                          "manufacturer": "Avaya", "model": "J179"}
    assert info.is_telephone and info.med_device_class == 3 and info.med_policy is None
    assert info.phone_addresses == ("10.213.0.50", UNKNOWN_IPV4, UNKNOWN_IPV4)  # mask and router not known
    reporting = parse_lldpdu(phone_frame(file_servers=("10.213.0.1",), call_servers=("10.213.0.5",), dot1q_framing=2))
    assert reporting is not None and reporting.problems == ()
    assert (reporting.file_servers, reporting.call_servers, reporting.dot1q_framing) == (
        ("10.213.0.1",), ("10.213.0.5",), 2)


def test_scapy_built_frame_with_8021_vlan_tlvs_is_read() -> None:
    packet = (Ether(dst=LLDP_MULTICAST, src=SWITCH) / LLDPDU()
              / LLDPDUChassisID(subtype=7, id=b"switch-1") / LLDPDUPortID(subtype=1, id=b"Gi1/0/7")
              / LLDPDUTimeToLive(ttl=90)
              / org(0x0080C2, 1, b"\x00\x0c")  # port VLAN ID 12
              / org(0x0080C2, 3, b"\x00\xd4\x0aVoice-VLAN")  # VLAN 212 named Voice-VLAN
              / org(0x0012BB, 2, bytes.fromhex("02 41a9ae"))  # voice signalling first
              / org(0x0012BB, 2, bytes.fromhex("01 c00000"))  # then voice, U and T set, VLAN 0
              / LLDPDUEndOfLLDPDU())
    info = parse_lldpdu(bytes(packet))
    assert info is not None and info.problems == ()
    assert (info.chassis_id, info.port_id, info.ttl) == ("switch-1", "Gi1/0/7", 90)
    assert info.port_vlan == 12 and info.vlan_name == "Voice-VLAN"
    assert info.med_policy == MedPolicy(app_type=1, unknown=True, tagged=True, vlan=0, priority=0, dscp=0)


def test_tagged_frames_are_read_with_their_vlan() -> None:
    frame = switch_frame()
    tagged = frame[:12] + struct.pack("!HH", 0x8100, 5 << 13 | 212) + frame[12:]
    info = parse_lldpdu(tagged)
    assert info is not None and info.vlan == 212 and info.file_servers == ("10.213.0.1", "10.213.0.2")
    scapy_tagged = bytes(Ether(dst=LLDP_MULTICAST, src=SWITCH) / Dot1Q(vlan=7) / Ether(frame).payload)
    assert parse_lldpdu(scapy_tagged) is not None and parse_lldpdu(scapy_tagged).vlan == 7  # type: ignore[union-attr]
    qinq = frame[:12] + struct.pack("!HHHH", 0x88A8, 100, 0x8100, 212) + frame[12:]
    assert parse_lldpdu(qinq).vlan == 212  # type: ignore[union-attr]


@pytest.mark.parametrize("frame", [
    b"", b"\x01" * 13, bytes(60),  # runts, ethertype 0
    bytes.fromhex("ffffffffffff020000000001 0800") + bytes(46),  # IPv4
    raw_frame(tlv(2, b"\x05br0"), tlv(1, b"\x04" + bytes(6)), tlv(3, b"\x00\x78")),  # out of order
    raw_frame(tlv(1, b"\x04" + bytes(6)), tlv(3, b"\x00\x78")),  # no port ID
    raw_frame(tlv(1, b"\x04"), tlv(2, b"\x05br0"), tlv(3, b"\x00\x78")),  # empty chassis ID
    raw_frame(tlv(1, b"\x04" + bytes(6)), tlv(2, b"\x05br0"), tlv(3, b"\x78")),  # one-byte TTL
    raw_frame(tlv(1, b"\x04" + bytes(6)), tlv(2, b"\x05br0"))[:-3],  # chassis, port, then cut
], ids=["empty", "runt", "zeros", "ipv4", "order", "no-port", "empty-chassis", "short-ttl", "cut"])
def test_unreadable_frames_are_none(frame: bytes) -> None:
    assert parse_lldpdu(frame) is None


def test_odd_tlvs_after_the_mandatory_ones_become_problems() -> None:
    frame = raw_frame(MANDATORY,
                      tlv(127, AVAYA_OUI + b"\x06" + bytes([10, 213, 0, 1, 10])),  # a stray fifth octet
                      tlv(127, AVAYA_OUI + b"\x09hello"),  # an Avaya subtype nobody documents
                      tlv(127, b"\x00\x00\x0c\x01abc"),  # Cisco's OUI
                      tlv(127, b"\x00\x04"),  # too short for OUI and subtype
                      tlv(127, AVAYA_OUI + b"\x07\x01\x02"),  # 802.1Q framing of two octets
                      tlv(42, b"x"),  # a reserved type
                      tlv(1, b"\x04" + bytes(6)),  # a second chassis ID
                      tlv(127, AVAYA_OUI + b"\x04" + bytes(12)),  # IP phone addresses: known, not kept
                      end=False)
    info = parse_lldpdu(frame)
    assert info is not None
    assert info.file_servers == ("10.213.0.1",) and info.dot1q_framing is None
    text = "\n".join(info.problems)
    for expected in ("file server TLV of 5 bytes", "unknown Avaya subtype 9", "unknown OUI 00-00-0c subtype 1",
                     "organisationally specific TLV of 2 bytes", "802.1Q framing TLV of 2 bytes",
                     "reserved TLV type 42", "a second TLV of type 1", "no End of LLDPDU TLV"):
        assert expected in text, info.problems
    assert len(info.problems) == 8


def test_a_tlv_running_past_the_end_keeps_what_came_before() -> None:
    whole = raw_frame(MANDATORY, tlv(5, b"lab-switch"), tlv(127, AVAYA_OUI + b"\x06" + bytes([10, 213, 0, 1])))
    cut = whole[:-5]
    info = parse_lldpdu(cut)
    assert info is not None and info.system_name == "lab-switch" and info.file_servers == ()
    assert any("runs past the end" in p for p in info.problems)


def test_every_truncation_of_a_real_frame_is_none_or_readable() -> None:
    frame = switch_frame()
    for end in range(len(frame)):
        info = parse_lldpdu(frame[:end])
        assert info is None or info.chassis_id == SWITCH


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_lldp_payloads_never_raise(body: bytes) -> None:
    info = parse_lldpdu(raw_frame(body, end=False))
    assert info is None or isinstance(info, LldpInfo)
    mixed = raw_frame(MANDATORY, body, end=False)
    assert parse_lldpdu(mixed) is not None


def test_build_lldpdu_plain_frame() -> None:
    info = parse_lldpdu(build_lldpdu(PHONE, chassis_mac=SWITCH, port_name="br0", system_name="lab-switch"))
    assert info is not None and (info.src_mac, info.chassis_id, info.port_id) == (PHONE, SWITCH, "br0")
    assert info.system_name == "lab-switch" and info.problems == ()


# -- the phone's agent -----------------------------------------------------------------------------


def agent(sent: list[bytes], interval: float = 30.0) -> LldpAgent:
    return LldpAgent(sent.append, mac="A4-25-1B-00-00-01", system_name="AVA000001", model="J179D01A",
                     firmware="4.1.0.0.10", serial="22WZ00000001", interval=interval)


def test_agent_keeps_neighbours_and_ignores_itself_and_other_frames() -> None:
    sent: list[bytes] = []
    phone = agent(sent)
    phone.feed(phone_frame(), 1.0)  # its own LLDPDU, looped back
    phone.feed(bytes.fromhex("ffffffffffff020000000001 0800") + bytes(46), 2.0)
    phone.feed(b"\x00" * 5, 2.5)
    other_phone = phone_lldpdu("a4:25:1b:00:00:02", ip="10.213.0.51", system_name="AVA000002", model="J179D01A",
                               firmware="4.1", serial="2")
    phone.feed(other_phone, 3.0)
    phone.feed(switch_frame(), 4.0)
    assert [(at, info.src_mac) for at, info in phone.heard] == [(3.0, "a4:25:1b:00:00:02"), (4.0, SWITCH)]

    async def first() -> LldpInfo | None:
        return await phone.first(timeout=0)

    found = asyncio.run(first())
    assert found is not None and found.src_mac == SWITCH  # the other phone is not a switch
    assert sent == [] and phone.sent == 0


def test_agent_first_waits_for_a_neighbour_or_times_out() -> None:
    async def run() -> tuple[LldpInfo | None, LldpInfo | None]:
        phone = agent([])
        nothing = await phone.first(timeout=0.05)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, phone.feed, switch_frame(), 9.0)
        return nothing, await phone.first(timeout=2)

    nothing, found = asyncio.run(run())
    assert nothing is None and found is not None and found.file_servers == ("10.213.0.1", "10.213.0.2")


def test_agent_sends_at_start_every_interval_and_at_once_on_a_new_address() -> None:
    sent: list[bytes] = []

    async def run() -> LldpAgent:
        phone = agent(sent, interval=0.1)
        phone.start()
        await asyncio.sleep(0.05)
        assert len(sent) == 1 and parse_lldpdu(sent[0]).chassis_id == PHONE  # type: ignore[union-attr]
        phone.set_address("10.213.0.50")
        assert len(sent) == 2 and parse_lldpdu(sent[1]).chassis_id == "10.213.0.50"  # type: ignore[union-attr]
        await asyncio.sleep(0.22)
        await phone.stop()
        return phone

    phone = asyncio.run(run())
    count = len(sent)
    assert count >= 4 and phone.sent == count
    assert all(parse_lldpdu(frame).chassis_id == "10.213.0.50" for frame in sent[1:])  # type: ignore[union-attr]
    assert sent[1] == phone.lldpdu()


def test_agent_reports_what_the_phone_uses_and_refuses_what_cannot_be_sent() -> None:
    sent: list[bytes] = []

    async def run() -> LldpAgent:
        phone = agent(sent, interval=30)
        phone.start()
        await asyncio.sleep(0.01)
        phone.set_address("10.213.0.50", netmask="255.255.255.0", gateway="10.213.0.1")
        phone.set_reported(file_servers=["10.213.0.1"], dot1q_framing=2)
        phone.set_reported(file_servers=["10.213.0.1"], dot1q_framing=2)  # no change: nothing sent
        with pytest.raises(ValueError, match="file servers"):
            phone.set_reported(file_servers=["files.example"])
        await phone.stop()
        return phone

    phone = asyncio.run(run())
    assert len(sent) == 3 and phone.file_servers == ("10.213.0.1",)
    last = parse_lldpdu(sent[-1])
    assert last is not None and last.file_servers == ("10.213.0.1",) and last.dot1q_framing == 2
    assert last.phone_addresses == ("10.213.0.50", "255.255.255.0", "10.213.0.1")


def test_agent_counts_failed_sends() -> None:
    def broken(_frame: bytes) -> None:
        raise OSError("link down")

    async def run() -> LldpAgent:
        phone = LldpAgent(broken, mac=PHONE, system_name="AVA000001", model="J179D01A", firmware="4.1",
                          serial="1", interval=10)
        phone.start()
        await asyncio.sleep(0.01)
        await phone.stop()
        return phone

    phone = asyncio.run(run())
    assert phone.sent == 0 and phone.send_failures == 1


# -- the harness's advertiser (pure part) ------------------------------------------------------------


def test_advertiser_frame_follows_the_spec() -> None:
    spec = LldpSpec(interval=1.0, system_name="lab-switch", file_servers=("10.213.0.1", "10.213.0.2"),
                    call_servers=("10.213.0.5",), dot1q_framing=1, med_vlan=212, med_priority=6, med_dscp=46)
    advertiser = LldpAdvertiser("br0", spec, mac=SWITCH)
    assert advertiser.lldpdu() == switch_frame()
    plain = LldpAdvertiser("br0", LldpSpec(file_servers=("10.213.0.1",)), mac=SWITCH)
    info = parse_lldpdu(plain.lldpdu())
    assert info is not None and info.system_name is None and info.med_policy is None
    assert info.med_device_class is None and info.file_servers == ("10.213.0.1",)
    with pytest.raises(ValueError, match="file servers"):
        LldpAdvertiser("br0", LldpSpec(file_servers=("x",)), mac=SWITCH)


def test_advertiser_records_neighbours_once_per_change() -> None:
    advertiser = LldpAdvertiser("br0", LldpSpec(), mac=SWITCH)
    assert advertiser.hear(switch_frame(), 1.0) is None  # its own
    assert advertiser.hear(bytes(60), 1.0) is None
    for at in (2.0, 3.0):
        advertiser.hear(phone_frame(ip=None), at)
    advertiser.hear(phone_frame(), 4.0)
    assert list(advertiser.neighbours) == [PHONE] and advertiser.neighbours[PHONE].chassis_id == "10.213.0.50"
    events = [(e["event"], e["new"], e["chassis_id"]) for e in advertiser.events]
    assert events == [("neighbour", True, PHONE), ("neighbour", False, "10.213.0.50")]
    assert advertiser.events[0]["inventory"]["model"] == "J179"
