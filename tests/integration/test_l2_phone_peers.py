"""The phone's `WireNetwork` against peers we did not write, in the lab in a box: dnsmasq hands
out leases with option 242 and/or 43 (the server's source, the address on the phone's eth0, the
host name in dnsmasq's lease file, a unicast renewal), no server at all gives an offer without an
address, lldpd's Avaya file-server TLV names the server when DHCP named none (and lldpd hears the
phone's own LLDPDU), and an L2QVLAN from 242 or an LLDP-MED voice policy moves the phone to a
tagged DHCP on the voice VLAN — answered by the harness responder's VLAN scope, and by dnsmasq
bound to the lab's VLAN sub-interface `br0.212` (the kernel's 802.1Q interface, else the software
one of `harness.lab_network.vlan_tap` on a kernel without 802.1Q, as this machine's).
Daemons are killed in `finally`; each test stays under 20 s."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.lab_network.dhcp_responder import DhcpResponder
from harness.lab_network.lldp_advertiser import LldpAdvertiser
from harness.lab_network.netns import Host
from harness.lab_network.spec import DhcpScope, LldpSpec
from simulators.l2.option43 import encode_option43
from simulators.l2.wire import WireNetwork
from simulators.network import NetworkOffer
from tests.integration.test_l2_lldp_peers import lldpd_in, wait_for
from tests.lab_tiers import lab_topology, need_tool, need_vlans

pytestmark = pytest.mark.timeout(60)

MAC = "00040D140001"  # Avaya's OUI: option 12 is AVA140001 (research §9)
COLONS = "00:04:0d:14:00:01"
OPTION_242 = 'dhcp-option=242,"HTTPSRVR=10.213.0.1,HTTPDIR=/j"'
OPTION_43 = "dhcp-option=43," + ":".join(f"{b:02x}" for b in encode_option43({"HTTPSRVR": "10.213.0.7",
                                                                              "HTTPDIR": "/43"}))


def _wire(host: Host, **options: Any) -> WireNetwork:
    values: dict[str, Any] = {"lldp_wait": 1.0, "dhcp_timeout": 6.0}
    values.update(options)
    return WireNetwork(host.interface, host.mac, model="J179", firmware="4.1.11.0.9", serial="SIM140001",
                       netns=host.netns, **values)


@contextmanager
def _dnsmasq(netns: str, tmp: Path, *lines: str, interface: str = "br0",
             dhcp_range: str = "10.213.0.50,10.213.0.99,255.255.255.0,10m") -> Iterator[Path]:
    """dnsmasq as the lab's DHCP server (no DNS: port 0), killed afterwards; its lease file."""
    dnsmasq = need_tool("dnsmasq", package="dnsmasq-base")
    leases = tmp / "dnsmasq.leases"
    conf = tmp / "dnsmasq.conf"
    conf.write_text("\n".join([
        f"interface={interface}", "bind-interfaces", "port=0", "user=root",  # tmp_path is 0700
        "no-ping",  # offer at once (dnsmasq pings a new address for ~3 s first)
        f"dhcp-range={dhcp_range}", f"dhcp-leasefile={leases}", *lines, ""]))
    log = tmp / "dnsmasq.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(["ip", "netns", "exec", netns, dnsmasq, "--no-daemon",  # noqa: S603, S607
                                   f"--conf-file={conf}", f"--pid-file={tmp / 'dnsmasq.pid'}"],
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield leases
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=5)


def _addresses(netns: str, interface: str = "eth0") -> list[tuple[str, int]]:
    done = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", interface],  # noqa: S603, S607
                          capture_output=True, text=True, check=True)
    return [(info["local"], info["prefixlen"]) for link in json.loads(done.stdout)
            for info in link.get("addr_info", []) if info.get("family") == "inet"]


def _default_route(netns: str) -> str | None:
    done = subprocess.run(["ip", "-n", netns, "-j", "route", "show", "default"],  # noqa: S603, S607
                          capture_output=True, text=True, check=True)
    routes = json.loads(done.stdout or "[]")
    return routes[0].get("gateway") if routes else None


def _names(offer: NetworkOffer) -> list[str]:
    return [name for name, _ in offer.notes]


def _note(offer: NetworkOffer, name: str) -> dict[str, Any]:
    found = [detail for note, detail in offer.notes if note == name]
    assert found, f"no {name!r} note in {offer.notes}"
    return dict(found[0])


def _timed(coroutine: Any, limit: float = 20.0) -> None:
    """Run the scenario under a deadline: a hang fails it (no elapsed-time assertion)."""
    asyncio.run(asyncio.wait_for(coroutine, limit))


# -- (a), (b), (c): dnsmasq with 242, 43, both ---------------------------------------------------


@pytest.mark.parametrize(("options", "source", "url"), [
    ([OPTION_242], "dhcp-242", "http://10.213.0.1/j/"),
    ([OPTION_43], "dhcp-43", "http://10.213.0.7/43/"),
    ([OPTION_43, OPTION_242], "dhcp-242", "http://10.213.0.1/j/"),  # 242 supersedes 43 (research §9)
], ids=["242", "43", "both"])
def test_dnsmasq_lease_names_the_server_and_the_address_goes_on_eth0(tmp_path: Path, options: list[str],
                                                                     source: str, url: str) -> None:
    async def run() -> None:
        with lab_topology("enrollab-pa") as lab:
            host = lab.add_host("p1", mac=MAC)
            with _dnsmasq(lab.netns, tmp_path, *options) as leases:
                network = _wire(host)
                try:
                    offer = await network.offer()
                    assert offer.server is not None, offer.notes
                    assert (offer.server.url, offer.server.source) == (url, source)
                    assert offer.sources["HTTPSRVR"] == source
                    address = offer.address
                    assert address is not None and ipaddress.IPv4Address(address) in lab.subnet
                    assert (address, 24) in _addresses(host.netns)
                    assert _default_route(host.netns) == lab.address  # dnsmasq's router option: itself
                    lease = _note(offer, "dhcp-lease")
                    assert lease["ip"] == address and lease["server"] == lab.address and lease["lease"] == 600
                    if "dhcp-option=43" in "".join(options):
                        assert bytes.fromhex(lease["option_43"]).startswith(b"\x01\x046889")
                    if source == "dhcp-242":
                        assert lease["option_242"] == "HTTPSRVR=10.213.0.1,HTTPDIR=/j"
                        assert "no-lldp" in _names(offer) or "lldp-neighbour" in _names(offer)
                    # dnsmasq puts its own address in siaddr: set aside, not a file server [inf]
                    assert _note(offer, "siaddr-ignored")["siaddr"] == lab.address
                    text = await wait_for(lambda: leases.exists() and leases.read_text(), 3)
                    assert COLONS in text and address in text and "AVA140001" in text, text

                    # RENEWING: a unicast REQUEST from the leased address, which dnsmasq ACKs
                    assert network.dhcp is not None
                    renewed = await network.dhcp.renew(timeout=4)
                    assert renewed is not None and renewed.address == address
                    assert network.dhcp.malformed == 0
                finally:
                    await network.close()

    _timed(run())


# -- (d): no DHCP server -------------------------------------------------------------------------


def test_no_dhcp_server_gives_an_offer_without_an_address_quickly() -> None:
    async def run() -> None:
        with lab_topology("enrollab-pd") as lab:
            host = lab.add_host("p1", mac=MAC)
            network = _wire(host, dhcp_timeout=2.0, lldp_wait=0.5)
            try:  # the DHCP and LLDP waits end by themselves; the deadline only catches a hang
                offer = await asyncio.wait_for(network.offer(), 30)
            finally:
                await network.close()
            assert offer.address is None and offer.server is None and offer.params == {}
            assert _names(offer) == ["dhcp-discover", "no-dhcp-lease", "no-lldp"]
            assert _note(offer, "no-dhcp-lease")["sent"] >= 2  # DISCOVER retransmitted
            assert _addresses(host.netns) == []
            assert await network.offer() is offer  # once per boot

    _timed(run())


# -- (e): the voice VLAN -------------------------------------------------------------------------


def _voice_scope() -> DhcpScope:
    return DhcpScope(address="10.213.212.1", pool=("10.213.212.50", "10.213.212.59"), router="10.213.212.1",
                     lease_time=300, option_242="HTTPSRVR=10.213.212.1,HTTPDIR=/voice")


def test_l2qvlan_from_242_makes_the_phone_dhcp_again_tagged_on_the_voice_vlan() -> None:
    async def run() -> None:
        with lab_topology("enrollab-pe") as lab:
            host = lab.add_host("p1", mac=MAC)
            data = DhcpScope(address=lab.address, pool=("10.213.0.50", "10.213.0.59"), router=lab.address,
                             lease_time=600, option_242="L2Q=1,L2QVLAN=212")
            async with DhcpResponder(lab.bridge, data, netns=lab.netns, vlans={212: _voice_scope()}) as responder:
                network = _wire(host)
                try:
                    offer = await network.offer()
                    assert _addresses(host.netns) == [("10.213.212.50", 24)]  # the data address is gone
                    assert _default_route(host.netns) == "10.213.212.1"
                finally:
                    await network.close()
            assert ("voice-vlan", {"vlan": 212, "source": "dhcp-242"}) in offer.notes, offer.notes
            leases = [detail for name, detail in offer.notes if name == "dhcp-lease"]
            assert [(d["ip"], d["vlan"]) for d in leases] == [("10.213.0.50", None), ("10.213.212.50", 212)]
            assert offer.address == "10.213.212.50"
            assert offer.server is not None and offer.server.url == "http://10.213.212.1/voice/"
            assert offer.server.source == "dhcp-242"
            # the responder saw the phone's tagged DISCOVER/REQUEST and answered on VLAN 212
            tagged = [e["event"] for e in responder.events if e.get("vlan") == 212 and e.get("mac") == COLONS]
            assert tagged == ["offer", "ack"], responder.events
            assert responder.leases[(212, COLONS)].host_name == "AVA140001"

    _timed(run())


def test_lldp_med_voice_policy_moves_the_phone_to_its_vlan_over_242s() -> None:
    async def run() -> None:
        with lab_topology("enrollab-pm") as lab:
            host = lab.add_host("p1", mac=MAC)
            data = DhcpScope(address=lab.address, pool=("10.213.0.50", "10.213.0.59"), lease_time=600,
                             option_242="L2QVLAN=100")  # LLDP's VLAN wins (research §9)
            lldp = LldpSpec(interval=0.5, system_name="lab-switch", med_vlan=212, med_priority=6, med_dscp=46)
            async with DhcpResponder(lab.bridge, data, netns=lab.netns, vlans={212: _voice_scope()}), \
                       LldpAdvertiser(lab.bridge, lldp, netns=lab.netns):
                network = _wire(host, lldp_wait=3.0)
                try:
                    offer = await network.offer()
                finally:
                    await network.close()
            assert ("voice-vlan", {"vlan": 212, "source": "lldp"}) in offer.notes, offer.notes
            assert _note(offer, "lldp-neighbour")["med_policy"]["vlan"] == 212
            assert _note(offer, "sson-ignored")["parameter"] == "L2QVLAN", offer.notes
            assert offer.address == "10.213.212.50" and offer.sources["L2QVLAN"] == "lldp"
            assert (offer.params["L2QAUD"], offer.params["DSCPAUD"]) == ("6", "46")
            assert offer.server is not None and offer.server.source == "dhcp-242"  # the VLAN scope's 242

    _timed(run())


def test_dnsmasq_on_a_vlan_sub_interface_serves_the_voice_vlan(tmp_path: Path) -> None:
    async def run() -> None:
        with lab_topology("enrollab-pv") as lab:
            need_vlans(lab.netns)
            host = lab.add_host("p1", mac=MAC)
            voice_if = lab.add_vlan(212)
            with _dnsmasq(lab.netns, tmp_path, 'dhcp-option=tag:br0,242,"L2Q=1,L2QVLAN=212"',
                          f'dhcp-option=tag:{voice_if},242,"HTTPSRVR={lab.vlans[212]}"',
                          f"dhcp-range=set:{voice_if},10.213.212.50,10.213.212.99,255.255.255.0,10m",
                          f"interface={voice_if}",
                          dhcp_range="set:br0,10.213.0.50,10.213.0.99,255.255.255.0,10m") as leases:
                network = _wire(host)
                try:
                    offer = await network.offer()
                    text = await wait_for(lambda: leases.exists() and "10.213.212." in leases.read_text()
                                          and leases.read_text(), 3)
                finally:
                    await network.close()
                software = lab.software_vlans.get(212)
                if software is not None:  # the relay carried the tagged exchange both ways
                    assert software.error is None and software.to_tap >= 2 and software.to_trunk >= 2
            assert ("voice-vlan", {"vlan": 212, "source": "dhcp-242"}) in offer.notes, offer.notes
            leases_seen = [(d["ip"], d["vlan"], d["server"]) for name, d in offer.notes if name == "dhcp-lease"]
            assert [(vlan, server) for _, vlan, server in leases_seen] == [(None, lab.address), (212, lab.vlans[212])]
            assert offer.address is not None and offer.address.startswith("10.213.212.")
            assert offer.server is not None and offer.server.url == f"http://{lab.vlans[212]}/"
            assert (offer.address, 24) in _addresses(host.netns)
            # dnsmasq's own record: one lease per client, so the voice address has replaced the data one
            assert text and f"{COLONS} {offer.address} AVA140001" in text and leases_seen[0][0] not in text, text

    _timed(run())


# -- (f): LLDP from lldpd -------------------------------------------------------------------------


def test_lldpds_file_server_tlv_names_the_server_when_dhcp_named_none(tmp_path: Path) -> None:
    async def run() -> None:
        with lab_topology("enrollab-pf") as lab:
            host = lab.add_host("p1", mac=MAC)
            with _dnsmasq(lab.netns, tmp_path):  # a lease, no 242/43; siaddr is dnsmasq's own
                async with lldpd_in(lab.netns, host.peer, "configure lldp tx-interval 1",
                                    "configure system hostname lab-lldpd",
                                    "configure lldp custom-tlv oui 00,04,0d subtype 6 oui-info 0a,d5,00,09") as lldpd:
                    network = _wire(host, lldp_wait=8.0)
                    try:
                        offer = await network.offer()
                        assert offer.server is not None, offer.notes
                        assert (offer.server.url, offer.server.source) == ("http://10.213.0.9/", "lldp")
                        assert offer.sources == {"HTTPSRVR": "lldp"}
                        assert _note(offer, "lldp-neighbour")["system_name"] == "lab-lldpd"
                        address = offer.address
                        assert address is not None

                        def phone_seen() -> dict[str, Any] | None:
                            return next((n for n in lldpd.neighbours()
                                         if n.get("chassis", {}).get("AVA140001") is not None), None)

                        # the phone's own LLDPDU: chassis = its leased address, name = option 12
                        seen = await wait_for(phone_seen, 4)
                        assert seen is not None, lldpd.neighbours()
                        chassis = seen["chassis"]["AVA140001"]
                        assert chassis["id"]["type"] == "ip" and chassis["id"]["value"] == address
                    finally:
                        await network.close()

    _timed(run())


def test_lldp_file_server_never_replaces_dhcps(tmp_path: Path) -> None:
    async def run() -> None:
        with lab_topology("enrollab-pg") as lab:
            host = lab.add_host("p1", mac=MAC)
            with _dnsmasq(lab.netns, tmp_path, OPTION_242):
                async with lldpd_in(lab.netns, host.peer, "configure lldp tx-interval 1",
                                    "configure lldp custom-tlv oui 00,04,0d subtype 6 oui-info 0a,d5,00,09"):
                    network = _wire(host, lldp_wait=8.0)
                    try:
                        # lldpd is up and speaking every second before the phone boots, so it is
                        # heard during DHCP or the grace after it (simulators.l2.wire LLDP_GRACE)
                        await asyncio.sleep(2.0)
                        offer = await network.offer()
                    finally:
                        await network.close()
            assert offer.server is not None and offer.server.source == "dhcp-242", offer.notes
            assert offer.server.url == "http://10.213.0.1/j/"
            assert "lldp-neighbour" in _names(offer), offer.notes
            assert _note(offer, "lldp-file-server-ignored")["file_servers"] == "10.213.0.9"

    _timed(run())


# -- renewal while the network is open ---------------------------------------------------------------


def test_the_lease_is_renewed_at_t1_and_lost_at_expiry_when_the_server_goes() -> None:
    async def run() -> None:
        with lab_topology("enrollab-pr") as lab:
            host = lab.add_host("p1", mac=MAC)
            scope = DhcpScope(address=lab.address, pool=("10.213.0.50", "10.213.0.59"), lease_time=6,
                              option_242="HTTPSRVR=10.213.0.1")  # T1 3 s, T2 5.25 s
            network = _wire(host, lldp_wait=0.2)
            try:
                async with DhcpResponder(lab.bridge, scope, netns=lab.netns) as responder:
                    offer = await network.offer()
                    assert offer.address == "10.213.0.50"
                    renewed = await wait_for(lambda: [e for e in network.events if e[0] == "dhcp-renewed"], 5)
                    assert renewed and renewed[0][1]["ip"] == "10.213.0.50", network.events
                    acks = [e for e in responder.events if e["event"] == "ack" and e["mac"] == COLONS]
                    assert len(acks) == 2
                # the server is gone: RENEWING and REBINDING go unanswered until the lease runs out
                lost = await wait_for(lambda: [e for e in network.events if e[0] == "lease-lost"], 8)
                assert lost == [("lease-lost", {"ip": "10.213.0.50", "vlan": None, "why": "expired"})], network.events
                assert _addresses(host.netns) == []
                assert network.dhcp is not None and "request" in network.dhcp.sent[2:]
            finally:
                await network.close()

    _timed(run())
