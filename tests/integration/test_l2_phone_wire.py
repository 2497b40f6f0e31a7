"""The phone's WireNetwork on a lab bridge: option 43 and 242 against dnsmasq (precedence on the
wire), and the voice VLAN — an L2QVLAN from option 242 makes the phone DHCP again 802.1Q-tagged,
answered from the harness responder's VLAN scope (dnsmasq can serve a VLAN only on an 802.1Q
sub-interface, which this machine's kernel lacks; that variant is not written)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.lab_network.dhcp_responder import DhcpResponder
from harness.lab_network.spec import DhcpScope
from simulators.l2.option43 import encode_option43
from simulators.l2.wire import WireNetwork
from tests.lab_tiers import lab_topology, need_tool

MAC = "A4251B130001"


def _wire(host: object, **options: float) -> WireNetwork:
    return WireNetwork(host.interface, host.mac, model="J179", firmware="4.1.11.0.9",  # type: ignore[attr-defined]
                       serial="SIM1B130001", netns=host.netns, lldp_wait=0.5, dhcp_timeout=6,  # type: ignore[attr-defined]
                       **options)


@pytest.mark.parametrize(("options", "source", "server"), [
    (["dhcp-option=43," + ":".join(f"{b:02x}" for b in encode_option43({"HTTPSRVR": "10.213.0.7"}))],
     "dhcp-43", "http://10.213.0.7/"),
    (["dhcp-option=43," + ":".join(f"{b:02x}" for b in encode_option43({"HTTPSRVR": "10.213.0.7"})),
      'dhcp-option=242,"HTTPSRVR=10.213.0.9, HTTPDIR=/j"'], "dhcp-242", "http://10.213.0.9/j/"),
])
def test_dnsmasq_option_43_and_242_precedence(tmp_path: Path, options: list[str], source: str, server: str) -> None:
    dnsmasq = need_tool("dnsmasq", package="dnsmasq-base")
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text("\n".join(["interface=br0", "bind-interfaces", "port=0", "user=root", "no-ping",
                               "dhcp-range=10.213.0.50,10.213.0.99,255.255.255.0,10m",
                               f"dhcp-leasefile={tmp_path / 'leases'}", *options, ""]))

    async def run() -> None:
        with lab_topology("enrollab-w") as lab:
            host = lab.add_host("p1", mac=MAC)
            daemon = subprocess.Popen(["ip", "netns", "exec", lab.netns, dnsmasq, "--no-daemon",  # noqa: S603, S607
                                       f"--conf-file={conf}"], stderr=subprocess.DEVNULL, start_new_session=True)
            network = _wire(host)
            try:
                offer = await network.offer()
            finally:
                await network.close()
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=5)
            assert offer.server is not None, offer.notes
            assert (offer.server.source, offer.server.url) == (source, server)
            assert offer.address is not None and offer.address.startswith("10.213.0.")

    asyncio.run(run())


def test_voice_vlan_from_242_makes_the_phone_dhcp_again_tagged() -> None:
    async def run() -> None:
        with lab_topology("enrollab-v") as lab:
            host = lab.add_host("p1", mac=MAC)
            untagged = DhcpScope(address=lab.address, pool=("10.213.0.50", "10.213.0.59"), lease_time=600,
                                 option_242="L2Q=1,L2QVLAN=212")
            voice = DhcpScope(address="10.213.212.1", pool=("10.213.212.50", "10.213.212.59"), lease_time=600,
                              option_242="HTTPSRVR=10.213.212.1")
            async with DhcpResponder(lab.bridge, untagged, netns=lab.netns, vlans={212: voice}) as responder:
                network = _wire(host)
                try:
                    offer = await network.offer()
                finally:
                    await network.close()
            names = [name for name, _ in offer.notes]
            assert ("voice-vlan", {"vlan": 212, "source": "dhcp-242"}) in offer.notes, offer.notes
            assert names.count("dhcp-lease") == 2
            assert offer.address is not None and offer.address.startswith("10.213.212.")
            assert offer.server is not None and offer.server.url == "http://10.213.212.1/"
            tagged = [e for e in responder.events if e.get("vlan") == 212]
            assert tagged, responder.events

    asyncio.run(run())
