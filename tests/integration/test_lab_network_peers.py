"""The harness's lab network services against independent peers in namespaces (lab in a box):
busybox udhcpc takes a lease from our DHCP responder, lldpd decodes our LLDP advertiser, and
tcpdump reads our capture. Daemons are killed in `finally`; each test stays under ~15 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.lab_network.capture import Capture
from harness.lab_network.dhcp_responder import DhcpResponder
from harness.lab_network.evidence import read_evidence
from harness.lab_network.spec import DhcpScope, LldpSpec
from tests.lab_tiers import lab_topology, need_netns, need_tool

OPTION_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/j/$MODEL4,DES_STAT=2, L2Q=1"  # a stray space, as real ones have
PHONE_MAC = "A4251B000001"

SCRIPT = """#!/bin/sh
# udhcpc calls this with the event (deconfig, bound, renew, nak) and the lease in its environment
env > "{out}.$1"
"""


def _scope(address: str) -> DhcpScope:
    return DhcpScope(address=address, pool=("10.213.0.50", "10.213.0.59"), router=address, dns=(address,),
                     domain="lab.example", lease_time=600, option_242=OPTION_242,
                     option_43={"HTTPSRVR": address, "HTTPDIR": "/j"})


def _udhcpc_script(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "lease"
    script = tmp_path / "udhcpc.sh"
    script.write_text(SCRIPT.format(out=out))
    script.chmod(0o755)
    return script, out


async def _udhcpc(busybox: str, netns: str, script: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, busybox, "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
        "-O", "242", "-O", "43", "-x", "hostname:AVA000001", "-s", str(script),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 12)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return process.returncode or 0, out.decode(errors="replace")


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


def test_busybox_udhcpc_takes_a_lease_with_option_242_byte_exact(tmp_path: Path) -> None:
    need_netns()
    busybox = need_tool("busybox", package="busybox")
    script, out = _udhcpc_script(tmp_path)

    async def run() -> None:
        with lab_topology("enrollab-d") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            async with DhcpResponder(lab.bridge, _scope(lab.address), netns=lab.netns) as dhcp:
                code, log = await _udhcpc(busybox, phone.netns, script)
                assert code == 0, log
                env = _env(Path(f"{out}.bound"))
                assert env["ip"] == "10.213.0.50"
                assert env["subnet"] == "255.255.255.0" and env["router"] == lab.address
                assert env["serverid"] == lab.address and env["lease"] == "600"
                assert env["dns"].strip() == lab.address and env["domain"] == "lab.example"
                # busybox has no name for 242 / 43 and exports them as optNNN in hex: the bytes as given
                assert bytes.fromhex(env["opt242"]) == OPTION_242.encode()
                assert bytes.fromhex(env["opt43"]).startswith(b"\x01\x046889\x02\x0a10.213.0.1")
                lease = dhcp.leases[(None, "a4:25:1b:00:00:01")]
                assert lease.ip == "10.213.0.50" and lease.state == "bound" and lease.host_name == "AVA000001"
                assert [e["event"] for e in dhcp.events if e["event"] in ("offer", "ack")] == ["offer", "ack"]
                assert dhcp.malformed == 0

                # a second run (a reboot) keeps the client's address
                code, log = await _udhcpc(busybox, phone.netns, script)
                assert code == 0, log
                assert _env(Path(f"{out}.bound"))["ip"] == "10.213.0.50"

    asyncio.run(run())


def test_capture_records_the_lease_and_tcpdump_agrees(tmp_path: Path) -> None:
    need_netns()
    busybox = need_tool("busybox", package="busybox")
    tcpdump = need_tool("tcpdump", package="tcpdump")
    script, _out = _udhcpc_script(tmp_path)
    pcap = tmp_path / "network.pcap"

    async def run() -> int:
        with lab_topology("enrollab-c") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            async with (Capture(lab.bridge, pcap, netns=lab.netns) as capture,
                        DhcpResponder(lab.bridge, _scope(lab.address), netns=lab.netns)):
                code, log = await _udhcpc(busybox, phone.netns, script)
                assert code == 0, log
            return capture.packets

    packets = asyncio.run(run())
    entries = read_evidence(pcap, mac="A4-25-1B-00-00-01")
    kinds = [e["detail"]["message_type"] for e in entries if e["proto"] == "dhcp"]
    assert kinds == ["DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"], kinds
    ack = entries[kinds.index("DHCPACK")]
    assert ack["detail"]["option_242"] == OPTION_242 and ack["detail"]["yiaddr"] == "10.213.0.50"
    assert ack["detail"]["option_43"]["params"] == {"HTTPSRVR": "10.213.0.1", "HTTPDIR": "/j"}
    assert ack["summary"].startswith('DHCPACK 10.213.0.50 to a4:25:1b:00:00:01, option 242 = "HTTPSRVR=')
    discover = entries[0]
    assert discover["detail"]["host_name"] == "AVA000001" and 242 in discover["detail"]["parameter_request_list"]
    assert all(e["at"].endswith("Z") for e in entries)

    # an independent reader sees the same number of frames
    done = subprocess.run([tcpdump, "-r", str(pcap), "-nn"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == packets > 0
    assert "BOOTP/DHCP" in done.stdout


def _lldpd_neighbours(lldpcli: str, netns: str, sock: Path) -> list[dict[str, object]]:
    done = subprocess.run(["ip", "netns", "exec", netns, lldpcli, "-u", str(sock), "show", "neighbors", "details",
                           "-f", "json"], capture_output=True, text=True, timeout=5)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    data = json.loads(done.stdout)
    interfaces = data.get("lldp", {}).get("interface", [])
    if isinstance(interfaces, dict):  # one neighbour: an object keyed by interface name
        interfaces = [{name: value} for name, value in interfaces.items()]
    return [value for item in interfaces for value in (item.values() if isinstance(item, dict) else [])]


LLDP_SPEC = LldpSpec(interval=1.0, system_name="lab-switch", file_servers=("10.213.0.1", "10.213.0.2"),
                     call_servers=("10.213.0.5",), dot1q_framing=1, med_vlan=212, med_priority=6, med_dscp=46)


def test_lldpd_decodes_our_advertiser_and_we_hear_lldpd(tmp_path: Path) -> None:
    need_netns()
    lldpd = need_tool("lldpd", package="lldpd")
    lldpcli = need_tool("lldpcli", package="lldpd")
    import shutil
    import tempfile

    from harness.lab_network.lldp_advertiser import LldpAdvertiser  # needs simulators.l2.lldp

    # lldpcli is setuid _lldpd: the control socket and the configuration lldpd hands it must lie in a
    # directory that user can enter, which pytest's tmp_path (under a 0700 directory) is not
    run_dir = Path(tempfile.mkdtemp(prefix="enrollab-lldpd-"))
    run_dir.chmod(0o755)
    sock = run_dir / "lldpd.sock"
    conf = run_dir / "lldpd.conf"
    conf.write_text("configure system hostname lab-phone\n")  # the system name TLV (-S is the description)
    conf.chmod(0o644)

    async def run() -> None:
        with lab_topology("enrollab-l") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            daemon = subprocess.Popen(  # noqa: S603
                ["ip", "netns", "exec", phone.netns, lldpd, "-d", "-I", "eth0", "-u", str(sock), "-O", str(conf),
                 "-S", "lab-phone"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                async with LldpAdvertiser(lab.bridge, LLDP_SPEC, netns=lab.netns) as advertiser:
                    neighbours: list[dict[str, object]] = []
                    deadline = time.monotonic() + 8
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        neighbours = _lldpd_neighbours(lldpcli, phone.netns, sock)
                        if neighbours and advertiser.neighbours:
                            break
                    assert neighbours, "lldpd saw no neighbour"
                    _check_lldpd_view(neighbours[0], advertiser)
                    assert advertiser.sent >= 1
                    heard = advertiser.neighbours.get("a4:25:1b:00:00:01")
                    assert heard is not None, advertiser.neighbours
                    assert heard.system_name == "lab-phone"
            finally:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=5)

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_lldpd_view(neighbour: dict[str, object], advertiser: object) -> None:
    text = json.dumps(neighbour)
    chassis = neighbour["chassis"]
    assert isinstance(chassis, dict)
    name, body = next(iter(chassis.items())) if "id" not in chassis else ("", chassis)
    assert name == "lab-switch" or "lab-switch" in text
    assert advertiser.src_mac in text.lower()  # type: ignore[attr-defined]
    port = neighbour["port"]
    assert isinstance(port, dict)
    assert '"br0"' in json.dumps(port["id"])
    assert str(port.get("ttl", neighbour.get("ttl", ""))) in ("120", "") or '"120"' in text
    assert "212" in json.dumps(neighbour.get("lldp-med", {})), neighbour.get("lldp-med")
    unknown = json.dumps(neighbour.get("unknown-tlvs", {})).lower()
    assert "00,04,0d" in unknown, neighbour.get("unknown-tlvs")
    assert '"6"' in unknown and '"3"' in unknown
    assert "0a,d5,00,01,0a,d5,00,02" in unknown  # subtype 6: 10.213.0.1 and 10.213.0.2
    assert "0a,d5,00,05" in unknown  # subtype 3: 10.213.0.5
    del body


@pytest.fixture(autouse=True)
def _no_leftover_daemons() -> None:
    return None
