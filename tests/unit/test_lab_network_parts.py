"""The lab network's parts without sockets: the DHCP responder's `answer(frame)` on frames built
by scapy (an independent encoder) and read back by scapy, and evidence from a pcap scapy wrote."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import wrpcap

from harness.lab_network.capture import PcapWriter, read_pcap
from harness.lab_network.dhcp_responder import ZERO, DhcpResponder
from harness.lab_network.evidence import read_evidence, summarise
from harness.lab_network.spec import DhcpScope
from simulators.l2.option43 import decode_option43

SERVER_MAC = "02:00:00:00:00:fe"
MAC = "a4:25:1b:00:00:01"
OTHER = "a4:25:1b:00:00:02"
OPTION_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/j,DES_STAT=2, L2Q=1,TLSSRVR=é"  # a stray space and a non-ASCII byte


def scope(**changes: Any) -> DhcpScope:
    base: dict[str, Any] = dict(address="10.213.0.1", pool=("10.213.0.50", "10.213.0.52"), router="10.213.0.1",
                                dns=("10.213.0.1", "10.213.0.2"), domain="lab.example", lease_time=3600,
                                option_242=OPTION_242, option_43={"TLSSRVR": "10.213.0.1", "TLSPORT": "443"},
                                siaddr="10.213.0.1")
    base.update(changes)
    return DhcpScope(**base)


def responder(**kwargs: Any) -> DhcpResponder:
    vlans = kwargs.pop("vlans", None)
    return DhcpResponder("eth0", scope(**kwargs), vlans=vlans, mac=SERVER_MAC)


def client(kind: str, mac: str = MAC, *, xid: int = 0x1234, vlan: int | None = None, ciaddr: str = ZERO,
           options: list[tuple[str, Any]] | None = None) -> bytes:
    ether = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    if vlan is not None:
        ether = ether / Dot1Q(vlan=vlan, prio=5)
    packet = (ether / IP(src=ciaddr, dst="255.255.255.255") / UDP(sport=68, dport=67)
              / BOOTP(op=1, chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, ciaddr=ciaddr)
              / DHCP(options=[("message-type", kind), *(options or []), "end"]))
    return bytes(packet)


def options_of(frame: bytes) -> dict[Any, Any]:
    dhcp = Ether(frame)[DHCP]
    return {opt[0]: opt[1] if len(opt) == 2 else opt[1:] for opt in dhcp.options if isinstance(opt, tuple)}


def raw_option(frame: bytes, code: int) -> bytes:
    """Option `code`'s bytes, walked by hand (scapy names 242 nothing and 43 'vendor_specific')."""
    raw = bytes(Ether(frame)[BOOTP])[240:]
    i = 0
    while i < len(raw) and raw[i] != 255:
        if raw[i] == 0:
            i += 1
            continue
        if raw[i] == code:
            return raw[i + 2 : i + 2 + raw[i + 1]]
        i += 2 + raw[i + 1]
    raise KeyError(code)


def test_discover_gets_an_offer_with_every_option_and_242_byte_exact() -> None:
    dhcp = responder()
    reply = dhcp.answer(client("discover", options=[("param_req_list", [1, 3, 242, 43])]))
    assert reply is not None
    packet = Ether(reply)
    assert packet.src == SERVER_MAC and packet.dst == MAC
    assert packet[IP].src == "10.213.0.1" and packet[IP].dst == "255.255.255.255"
    assert packet[UDP].sport == 67 and packet[UDP].dport == 68
    # checksums as a receiver computes them
    rebuilt = Ether(reply)
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert rebuilt[IP].chksum == packet[IP].chksum and rebuilt[UDP].chksum == packet[UDP].chksum
    bootp = packet[BOOTP]
    assert bootp.op == 2 and bootp.xid == 0x1234 and bootp.yiaddr == "10.213.0.50" and bootp.siaddr == "10.213.0.1"
    assert len(bytes(bootp)) >= 300
    opts = options_of(reply)
    assert opts["message-type"] == 2 and opts["server_id"] == "10.213.0.1"
    assert opts["lease_time"] == 3600 and opts["renewal_time"] == 1800 and opts["rebinding_time"] == 3150
    assert opts["subnet_mask"] == "255.255.255.0" and opts["router"] == "10.213.0.1"
    assert opts["name_server"] == ("10.213.0.1", "10.213.0.2")
    assert opts["domain"] == b"lab.example"
    assert raw_option(reply, 242) == OPTION_242.encode("utf-8")
    option43 = decode_option43(raw_option(reply, 43))
    assert option43.avaya and option43.params == {"TLSSRVR": "10.213.0.1", "TLSPORT": "443"}
    assert dhcp.leases[(None, MAC)].state == "offered"
    assert dhcp.events[-1]["event"] == "offer"


def test_request_for_the_offer_gets_an_ack_and_the_lease_sticks() -> None:
    dhcp = responder()
    dhcp.answer(client("discover"))
    ack = dhcp.answer(client("request", options=[("server_id", "10.213.0.1"), ("requested_addr", "10.213.0.50"),
                                                 ("hostname", b"AVA000001")]))
    assert ack is not None and options_of(ack)["message-type"] == 5
    assert Ether(ack)[BOOTP].yiaddr == "10.213.0.50"
    assert raw_option(ack, 242) == OPTION_242.encode("utf-8")
    lease = dhcp.leases[(None, MAC)]
    assert lease.state == "bound" and lease.host_name == "AVA000001"
    # a second client gets the next address, the first one keeps its own on a new DISCOVER
    assert Ether(dhcp.answer(client("discover", OTHER)))[BOOTP].yiaddr == "10.213.0.51"  # type: ignore[arg-type]
    assert Ether(dhcp.answer(client("discover")))[BOOTP].yiaddr == "10.213.0.50"  # type: ignore[arg-type]
    # renewal: unicast from the client's address, answered to it
    renew = dhcp.answer(client("request", ciaddr="10.213.0.50"))
    assert renew is not None and options_of(renew)["message-type"] == 5
    assert Ether(renew)[IP].dst == "10.213.0.50" and Ether(renew)[BOOTP].ciaddr == "10.213.0.50"
    # release frees it
    assert dhcp.answer(client("release", ciaddr="10.213.0.50", options=[("server_id", "10.213.0.1")])) is None
    assert (None, MAC) not in dhcp.leases and dhcp.events[-1]["event"] == "release"


def test_request_naming_another_server_is_met_with_silence() -> None:
    dhcp = responder()
    dhcp.answer(client("discover"))
    reply = dhcp.answer(client("request", options=[("server_id", "10.213.0.9"), ("requested_addr", "10.213.0.50")]))
    assert reply is None
    assert (None, MAC) not in dhcp.leases  # our offer was withdrawn
    assert "10.213.0.9" in dhcp.events[-1]["why"]


@pytest.mark.parametrize("address,why", [("192.168.7.7", "not on this network"),
                                         ("10.213.0.200", "outside the pool")])
def test_init_reboot_for_a_foreign_address_gets_a_nak(address: str, why: str) -> None:
    dhcp = responder()
    nak = dhcp.answer(client("request", options=[("requested_addr", address)]))
    assert nak is not None
    opts = options_of(nak)
    assert opts["message-type"] == 6 and opts["server_id"] == "10.213.0.1" and "lease_time" not in opts
    assert Ether(nak)[BOOTP].yiaddr == ZERO
    assert why in dhcp.events[-1]["why"]


def test_an_address_held_by_another_client_gets_a_nak_and_a_wrong_selection_too() -> None:
    dhcp = responder()
    dhcp.answer(client("discover", OTHER))
    nak = dhcp.answer(client("request", options=[("requested_addr", "10.213.0.50")]))
    assert nak is not None and options_of(nak)["message-type"] == 6
    dhcp.answer(client("discover"))
    nak = dhcp.answer(client("request", options=[("server_id", "10.213.0.1"), ("requested_addr", "10.213.0.52")]))
    assert nak is not None and options_of(nak)["message-type"] == 6


def test_pool_exhaustion_is_silence_and_an_event() -> None:
    dhcp = responder(pool=("10.213.0.50", "10.213.0.51"))
    for n in (1, 2):
        assert dhcp.answer(client("discover", f"a4:25:1b:00:00:1{n}")) is not None
    assert dhcp.answer(client("discover", "a4:25:1b:00:00:13")) is None
    assert dhcp.events[-1]["event"] == "pool-exhausted"


def test_malformed_frames_are_counted_never_raised() -> None:
    dhcp = responder()
    good = client("discover")
    udp_at = 14 + 20
    cases = [
        good[: udp_at + 8 + 100],                                   # BOOTP cut short
        good[: udp_at + 8 + 236] + b"\x00\x00\x00\x00" + good[udp_at + 8 + 240 :],  # no magic cookie
        good[: udp_at + 8 + 240] + b"\x35\x40\x01",                  # option runs past the end
        good[: udp_at + 8 + 240] + b"\x0c\x03abc\xff",               # no option 53
    ]
    for frame in cases:
        fixed = bytearray(frame)
        struct.pack_into("!H", fixed, 14 + 2, len(frame) - 14)        # IP total length
        struct.pack_into("!H", fixed, udp_at + 4, len(frame) - udp_at)  # UDP length
        assert dhcp.answer(bytes(fixed)) is None
    assert dhcp.answer(b"\x01\x02") is None  # a runt: not DHCP at all
    assert dhcp.malformed == len(cases)
    assert [e["event"] for e in dhcp.events] == ["malformed"] * len(cases)
    assert dhcp.answer(good) is not None  # still serving


def test_tagged_request_is_answered_tagged_from_the_vlan_scope() -> None:
    voice = DhcpScope(pool=("10.213.212.100", "10.213.212.199"), option_242="HTTPSRVR=10.213.212.1")
    dhcp = responder(vlans={212: voice})
    reply = dhcp.answer(client("discover", vlan=212))
    assert reply is not None
    packet = Ether(reply)
    assert packet[Dot1Q].vlan == 212 and packet[Dot1Q].prio == 5
    assert packet[BOOTP].yiaddr == "10.213.212.100" and packet[IP].src == "10.213.212.1"
    assert options_of(reply)["server_id"] == "10.213.212.1"
    assert raw_option(reply, 242) == b"HTTPSRVR=10.213.212.1"
    assert (212, MAC) in dhcp.leases and (None, MAC) not in dhcp.leases
    # the untagged scope still answers untagged; an unknown VID is ignored
    assert Dot1Q not in Ether(dhcp.answer(client("discover")))  # type: ignore[arg-type]
    assert dhcp.answer(client("discover", vlan=300)) is None


@pytest.mark.parametrize("changes,field", [({"pool": None}, "dhcp.pool"),
                                           ({"pool": ("10.213.1.5", "10.213.1.9")}, "dhcp.pool"),
                                           ({"option_43": {"NOPE": "1"}}, "dhcp.option_43")])
def test_bad_configuration_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        responder(**changes)


def test_vlan_scope_outside_its_subnet_is_refused() -> None:
    with pytest.raises(ValueError, match=r"vlans\.212\.pool"):
        responder(vlans={212: DhcpScope(address="10.213.212.1", pool=("10.9.0.1", "10.9.0.5"))})


def _tls_client_hello(sni: str) -> bytes:
    name = sni.encode()
    server_name = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    extensions = struct.pack("!HH", 0, len(server_name)) + server_name
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def test_evidence_from_a_pcap_scapy_wrote(tmp_path: Path) -> None:
    dhcp = responder()
    discover = client("discover", options=[("hostname", b"AVA000001"), ("param_req_list", [1, 3, 242])])
    offer = dhcp.answer(discover)
    assert offer is not None
    phone_ip, server = "10.213.0.50", "10.213.0.1"
    http_get = (Ether(src=MAC, dst=SERVER_MAC) / IP(src=phone_ip, dst=server) / TCP(sport=40000, dport=80, flags="PA")
                / b"GET /j/46xxsettings.txt HTTP/1.1\r\nHost: 10.213.0.1\r\nUser-Agent: AVAYA/J179\r\n\r\n")
    http_ok = (Ether(src=SERVER_MAC, dst=MAC) / IP(src=server, dst=phone_ip) / TCP(sport=80, dport=40000, flags="PA")
               / b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    hello = (Ether(src=MAC, dst=SERVER_MAC) / IP(src=phone_ip, dst=server) / TCP(sport=40001, dport=443, flags="PA")
             / _tls_client_hello("des.example.net"))
    stranger = Ether(src=OTHER, dst=SERVER_MAC) / IP(src="10.213.0.51", dst=server) / TCP(sport=1, dport=80)
    arp_like = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\x00" * 28)
    frames = [Ether(discover), Ether(offer), http_get, http_ok, hello, stranger, arp_like]
    lldp = _lldp_frame()
    if lldp is not None:
        frames.append(Ether(lldp))
    for n, frame in enumerate(frames):
        frame.time = 1_800_000_000 + n * 0.25
    pcap = tmp_path / "t.pcap"
    wrpcap(str(pcap), frames)

    entries = read_evidence(pcap, mac="A4-25-1B-00-00-01")
    protos = [e["proto"] for e in entries]
    assert protos[:5] == ["dhcp", "dhcp", "http", "http", "tls"]
    assert entries[0]["at"] == "2027-01-15T08:00:00.000Z" and entries[1]["at"].endswith(":00.250Z")
    d, o, get, ok, tls = entries[:5]
    assert d["summary"] == "DHCPDISCOVER from a4:25:1b:00:00:01 (host name AVA000001), asks for option 242"
    assert d["detail"]["parameter_request_list"] == [1, 3, 242] and d["vlan"] is None
    assert o["summary"].startswith(f'DHCPOFFER 10.213.0.50 to {MAC}, option 242 = "{OPTION_242}", option 43 = ')
    assert o["detail"]["option_43"]["params"] == {"TLSSRVR": "10.213.0.1", "TLSPORT": "443"}
    assert o["detail"]["option_242_hex"] == OPTION_242.encode().hex()
    assert o["src"] == server and o["dst"] == "255.255.255.255" and o["src_mac"] == SERVER_MAC
    assert get["detail"] == {"request_line": "GET /j/46xxsettings.txt HTTP/1.1", "method": "GET", "host": server}
    assert get["src"] == "10.213.0.50:40000"
    assert ok["detail"]["status"] == 200
    assert tls["detail"]["sni"] == "des.example.net"
    assert all(e["src_mac"] != OTHER for e in entries)
    if lldp is not None:
        assert entries[-1]["proto"] == "lldp" and entries[-1]["detail"]["system_name"] == "lab-switch"
    assert len(read_evidence(pcap, mac=MAC, include_other=True)) == len(entries) + 1
    # `since` keeps a frame stamped at that very instant (the GET at +0.5 s) and drops earlier ones
    assert [e["summary"] for e in read_evidence(pcap, since=1_800_000_000.5)][:2] == [get["summary"], ok["summary"]]
    assert [e["summary"] for e in read_evidence(pcap, since=1_800_000_000.6)][:1] == [ok["summary"]]
    assert len(summarise(entries)) == len(entries)


def _lldp_frame() -> bytes | None:
    try:
        from simulators.l2.lldp import build_lldpdu
    except ImportError:
        return None
    return build_lldpdu(MAC, chassis_mac=MAC, port_name="br0", system_name="lab-switch")


def test_pcap_writer_leaves_a_readable_file_at_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    writer = PcapWriter(path)
    writer.write(b"\x01" * 60, 1_800_000_000.5)
    assert read_pcap(path) == [(1_800_000_000.5, b"\x01" * 60)]  # before close: flushed
    writer.write(b"\x02" * 64, 1_800_000_001.0)
    writer.close()
    assert [len(f) for _, f in read_pcap(path)] == [60, 64]
    # a file cut in the middle of a record still reads up to it
    path.write_bytes(path.read_bytes()[:-10])
    assert len(read_pcap(path)) == 1


# -- network evidence in summaries, reports and the CLI's lines ---------------------------------------

SAMPLE_REPORT = Path(__file__).resolve().parents[1] / "data" / "sample-report.json"


def _ack_entries() -> list[dict[str, Any]]:
    from harness.lab_network.evidence import describe_frame

    dhcp = responder()
    offer = dhcp.answer(client("discover"))
    ack = dhcp.answer(client("request", options=[("server_id", "10.213.0.1"), ("requested_addr", "10.213.0.50")]))
    assert offer is not None and ack is not None
    entries = [describe_frame(offer, 1_800_000_000.25), describe_frame(ack, 1_800_002_462.123)]
    return [e for e in entries if e is not None]


def test_summary_lines_read_as_report_steps() -> None:
    from harness.lab_network.evidence import summary_line

    offer, ack = _ack_entries()
    assert summarise([offer, ack]) == [summary_line(offer), summary_line(ack)]
    line = summary_line(ack)
    assert line.startswith(f'DHCPACK 10.213.0.50 to {MAC}, option 242 = "{OPTION_242}"')
    assert line.endswith(" (08:41:02.123)")  # the UTC time of day of `at`
    assert summary_line({"summary": "x", "at": ""}) == "x"


def test_network_evidence_in_report_json_html_and_junit(tmp_path: Path) -> None:
    import copy
    import json
    import xml.etree.ElementTree as ET

    from harness.record import annotate_junit
    from harness.report import ReportError, validate_report
    from harness.report_html import render_html

    doc = json.loads(SAMPLE_REPORT.read_text(encoding="utf-8"))
    validate_report(doc)  # a report without evidence.network (older runs) stays valid
    failed = next(t for t in doc["tests"] if t["outcome"] == "fail")
    entries = _ack_entries()
    failed["evidence"]["network"] = entries
    validate_report(doc)
    html = render_html(doc)
    assert "Lab network capture (2)" in html
    assert "DHCPACK 10.213.0.50 to a4:25:1b:00:00:01, option 242 = &#34;HTTPSRVR=10.213.0.1" in html
    assert "(08:41:02.123)</li>" in html or "(08:41:02.123) <details>" in html
    assert "lab network capture (" not in html  # no passing test carries any yet
    passed = next(t for t in doc["tests"] if t["outcome"] == "pass")
    passed["evidence"]["network"] = entries[1:]
    html = render_html(doc)
    assert "lab network capture (1)" in html  # a passing test's capture, folded under its row
    assert html.count("DHCPACK 10.213.0.50 to a4:25:1b:00:00:01") == 2

    bad = copy.deepcopy(doc)
    next(t for t in bad["tests"] if t["id"] == failed["id"])["evidence"]["network"][0]["proto"] = "smtp"
    with pytest.raises(ReportError, match=r"evidence\.network\[0\]\.proto"):
        validate_report(bad)

    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite name="pytest"><testcase name="x"><properties>'
                     f'<property name="enrollab.nodeid" value="{failed["id"]}"/></properties>'
                     '<failure message="m"/></testcase></testsuite></testsuites>')
    annotate_junit(junit, doc)
    props = [(p.get("name"), p.get("value")) for p in ET.parse(junit).getroot().iter("property")]  # noqa: S314
    network = [str(value) for name, value in props if name == "enrollab.network"]
    assert len(network) == 2 and network[1].startswith("DHCPACK 10.213.0.50") and network[1].endswith("(08:41:02.123)")


def test_add_evidence_keeps_network_entries() -> None:
    from types import SimpleNamespace

    from harness.lab_network.service import attach_capture_evidence
    from harness.pytest_plugin import STATE_KEY, add_evidence

    state = SimpleNamespace(http=[], events=[], network=[])
    node = SimpleNamespace(stash={STATE_KEY: state})
    entries = _ack_entries()
    add_evidence(node, network=entries)
    assert state.network == entries and state.network[0] is not entries[0]  # copies
    add_evidence(SimpleNamespace(), network=entries)  # outside a conformance run: nothing, no error
    assert attach_capture_evidence(node, None, MAC) == []  # no lab network: nothing either


def test_the_cli_lines_say_what_is_served_and_what_happened() -> None:
    from harness.lab_network.service import describe_event, describe_serving
    from harness.lab_network.spec import LldpSpec, NetworkSpec

    voice = DhcpScope(pool=("10.213.212.100", "10.213.212.199"))
    spec = NetworkSpec(interface="br0", dhcp=scope(), vlans={212: voice},
                       lldp=LldpSpec(interval=30, file_servers=("10.213.0.1",), call_servers=("10.213.0.5",),
                                     dot1q_framing=1, med_vlan=212))
    lines = describe_serving(spec, interface="br0", netns="lab", capture=Path("n.pcap"), mac=SERVER_MAC,
                             addresses=["10.213.0.1"])
    text = "\n".join(lines)
    assert lines[0] == f"interface br0 in namespace lab ({SERVER_MAC}, 10.213.0.1)"
    assert f'option 242 = "{OPTION_242}" ({len(OPTION_242.encode())} bytes)' in text
    assert "option 43 (Avaya 6889) = TLSSRVR=10.213.0.1,TLSPORT=443" in text
    assert "DHCP on VLAN 212 (802.1Q-tagged): pool 10.213.212.100-10.213.212.199/24" in text
    assert "server 10.213.212.1 (the .1 of its subnet)" in text
    assert "Avaya file servers (TLV 00-04-0D/6) = 10.213.0.1" in text
    assert "Avaya call servers (TLV 00-04-0D/3) = 10.213.0.5" in text
    assert "802.1Q framing (TLV 00-04-0D/7) = 1 (tagging)" in text
    assert "LLDP-MED voice policy: VLAN 212 tagged, priority 5, DSCP 46" in text
    assert lines[-1] == "capture: n.pcap"
    bare = describe_serving(NetworkSpec(), interface="eth1")
    assert bare == ["interface eth1", "DHCP: off (no [network.dhcp]: another server hands out addresses)",
                    "LLDP: off (no [network.lldp])", "capture: off"]
    event = {"source": "dhcp", "at": "2027-01-15T08:00:00.250Z", "event": "ack", "mac": MAC, "vlan": None,
             "xid": 0x1234, "ip": "10.213.0.50"}
    assert describe_event(event) == f"08:00:00.250 dhcp    ack mac={MAC} xid=0x00001234 ip=10.213.0.50"


def test_option_242_set_for_one_client_goes_to_it_alone_until_cleared() -> None:
    """The device suite's per-test offer to one physical phone (harness.physical.device)."""
    dhcp = responder()
    dhcp.offer_242("A4251B000001", "DES_STAT=0")  # any MAC notation
    assert raw_option(dhcp.answer(client("discover")), 242) == b"DES_STAT=0"  # type: ignore[arg-type]
    assert raw_option(dhcp.answer(client("discover", OTHER)), 242) == OPTION_242.encode("utf-8")  # type: ignore[arg-type]
    dhcp.offer_242(MAC, None)  # none at all
    with pytest.raises(KeyError):
        raw_option(dhcp.answer(client("discover")), 242)  # type: ignore[arg-type]
    dhcp.clear_242(MAC)
    assert raw_option(dhcp.answer(client("discover")), 242) == OPTION_242.encode("utf-8")  # type: ignore[arg-type]
    assert [e["event"] for e in dhcp.events if "242" in e["event"]] == ["option-242-set", "option-242-set",
                                                                          "option-242-cleared"]
    with pytest.raises(ValueError):
        dhcp.offer_242(MAC, "")
