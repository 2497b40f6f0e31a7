"""The bench hub (harness.bench_hub) on a lab in a box: it serves the lab network's DHCP, and its
front routes a phone that connects from the address the DHCP leased it — an address the lab file
does not name — by the MAC of that lease; option 242 per MAC and the capture's evidence go
through its control channel, as a shard's physical tests use them."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bench_hub import BenchHub, HubClient
from harness.lab import parse_lab
from harness.lab_network.dhcp_responder import mac_text
from harness.lab_network.spec import NetworkSpec
from harness.listen import listening_socket
from simulators.l2.netns import connect_in
from simulators.l2.wire import WireNetwork
from simulators.network import NetworkOffer
from tests.lab_tiers import lab_topology

pytestmark = pytest.mark.timeout(120)

MAC, OTHER = "A4251BEE0C01", "A4251BEE0C02"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="hubn-"))
    yield where
    shutil.rmtree(where, ignore_errors=True)


def _network(address: str, pool: str) -> NetworkSpec | None:
    lab = parse_lab(f"""
[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"

[network]
interface = "br0"
capture = true
[network.dhcp]
address = "{address}"
prefixlen = 24
pool = ["{pool}", "{pool}"]
lease_time = 600
""")
    return lab.network


async def _lease(interface: str, netns: str) -> NetworkOffer:
    network = WireNetwork(interface, MAC, model="J179", firmware="4.1.11.0.9", serial="13WZ51BEE0C01", netns=netns,
                          lldp_wait=0.2, dhcp_timeout=8, transmit_lldp=False)
    try:
        return await network.offer()
    finally:
        await network.close()


async def test_a_phone_on_a_dhcp_address_is_routed_by_its_lease_and_its_242_goes_through_the_hub(
        short_dir: Path) -> None:
    with lab_topology("enrollab-hn") as lab:
        host = lab.add_host("p1", MAC)
        pool = str(lab.subnet.network_address + 100)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"backend:" + await reader.read(100))
            await writer.drain()
            writer.close()

        backend = await asyncio.start_server(echo, sock=listening_socket(lab.address, 0, lab.netns))
        backend_port = backend.sockets[0].getsockname()[1]
        hub = await BenchHub(address=lab.address, port=0, control=short_dir / "hub.sock", netns=lab.netns,
                             phones={OTHER: str(lab.subnet.network_address + 7)}, network=_network(lab.address, pool),
                             capture_path=short_dir / "bench.pcap").start()
        try:
            assert hub.network_error is None and hub.front_error is None
            client = await asyncio.to_thread(HubClient, hub.control)
            assert client.dhcp is not None and client.capture_path == short_dir / "bench.pcap"
            await asyncio.to_thread(client.dhcp.offer_242, MAC, "DES_STAT=0,HTTPSRVR=10.213.0.9")
            await asyncio.to_thread(client.route, MAC, lab.address, backend_port)
            offer = await _lease(host.interface, host.netns)
            assert offer.address == pool and offer.params.get("DES_STAT") == "0", offer
            sock = await connect_in(host.netns, lab.address, hub.port)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"hello")
            answer = await asyncio.wait_for(reader.read(100), 10)
            writer.close()
            connections = await asyncio.to_thread(client.connections)
            events = await asyncio.to_thread(lambda: client.dhcp.events if client.dhcp else [])
            evidence = await asyncio.to_thread(client.evidence, MAC, None)
        finally:
            await hub.stop()
            backend.close()
    assert answer == b"backend:hello"
    assert [(c["peer"], c["mac"], c["event"]) for c in connections] == [(pool, MAC, "forwarded")]
    assert any(e["event"] == "ack" and e["mac"] == mac_text(MAC) and e["ip"] == pool for e in events), events
    assert any(e["proto"] == "dhcp" and "DHCPACK" in e["summary"] for e in evidence), evidence
