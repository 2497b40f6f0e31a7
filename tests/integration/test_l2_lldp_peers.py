"""The simulated phone's LLDP against lldpd, an independent LLDP implementation, in the lab in a
box: the phone's LldpAgent (on a RawLink in the phone's namespace) hears lldpd's Avaya file-server
TLV, lldpd decodes the phone's LLDPDU (chassis IP, port MAC, TTL, system name, LLDP-MED
inventory), and the phone hears the harness's own advertiser, with the capture's evidence agreeing.
Daemons are killed in `finally`; each test stays under ~15 s."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.lab_network.capture import Capture
from harness.lab_network.evidence import read_evidence
from harness.lab_network.lldp_advertiser import LldpAdvertiser
from harness.lab_network.spec import LldpSpec
from simulators.l2.lldp import LldpInfo
from simulators.l2.lldp_agent import LldpAgent
from simulators.l2.rawlink import RawLink
from tests.lab_tiers import lab_topology, need_tool

PHONE_MAC = "A4251B000001"
PHONE = "a4:25:1b:00:00:01"


@dataclass
class Lldpd:
    """An lldpd running in a namespace, with its own control socket."""

    netns: str
    sock: Path
    lldpcli: str
    log: Path

    def neighbours(self) -> list[dict[str, Any]]:
        """`lldpcli show neighbors details` as a list of per-neighbour objects."""
        done = subprocess.run(["ip", "netns", "exec", self.netns, self.lldpcli, "-u", str(self.sock), "-f", "json",
                               "show", "neighbors", "details"], capture_output=True, text=True, timeout=5)
        if done.returncode != 0 or not done.stdout.strip():
            return []
        interfaces = json.loads(done.stdout).get("lldp", {}).get("interface", [])
        if isinstance(interfaces, dict):  # one neighbour: an object keyed by interface name
            interfaces = [{name: value} for name, value in interfaces.items()]
        return [value for item in interfaces for value in item.values()]


@contextlib.asynccontextmanager
async def lldpd_in(netns: str, interface: str, *config: str) -> AsyncIterator[Lldpd]:
    """lldpd in `netns` on `interface`, configured with `config` lines, killed afterwards."""
    lldpd = need_tool("lldpd", package="lldpd")
    lldpcli = need_tool("lldpcli", package="lldpd")
    # lldpcli is setuid _lldpd: its socket and the configuration it reads must be in a directory that
    # user can enter, which pytest's tmp_path (under a 0700 directory) is not
    run_dir = Path(tempfile.mkdtemp(prefix="enrollab-lldpd-"))
    run_dir.chmod(0o755)
    conf = run_dir / "lldpd.conf"
    conf.write_text("".join(f"{line}\n" for line in config))
    conf.chmod(0o644)
    log = run_dir / "lldpd.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(["ip", "netns", "exec", netns, lldpd, "-d", "-I", interface, "-u",
                                   str(run_dir / "lldpd.sock"), "-O", str(conf)],
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Lldpd(netns, run_dir / "lldpd.sock", lldpcli, log)
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=5)
        shutil.rmtree(run_dir, ignore_errors=True)


def phone_agent(link: RawLink, interval: float = 30.0) -> LldpAgent:
    agent = LldpAgent(link.send, mac=PHONE_MAC, system_name="AVA000001", model="J179D01A", firmware="4.1.0.0.10",
                      serial="22WZ00000001", interval=interval)
    link.open(lambda frame, outgoing, at: None if outgoing else agent.feed(frame, at))
    return agent


async def wait_for(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


def test_phone_agent_hears_lldpds_avaya_file_server_tlv() -> None:
    async def run() -> None:
        with lab_topology("enrollab-la") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            link = RawLink(phone.interface, netns=phone.netns)
            agent = phone_agent(link)
            try:
                async with lldpd_in(lab.netns, lab.bridge, "configure lldp tx-interval 1",
                                    "configure system hostname lab-lldpd",
                                    "configure lldp custom-tlv oui 00,04,0d subtype 6 oui-info 0a,d5,00,01") as lldpd:
                    switch = await agent.first(timeout=8)
                    assert switch is not None, lldpd.log.read_text()
            finally:
                link.close()
            assert switch.file_servers == ("10.213.0.1",)
            assert switch.system_name == "lab-lldpd" and not switch.is_telephone
            assert switch.problems == (), switch.problems  # lldpd's 802.3 and other TLVs all read
            assert switch.chassis_subtype == 4 and switch.ttl > 0
            assert "10.213.0.1" in switch.management_addresses  # br0's address, as lldpd tells it
            assert agent.sent == 0  # never started: it only listened

    asyncio.run(run())  # each wait above has its own deadline: a hang is a failure there


def test_lldpd_decodes_the_phones_lldpdu() -> None:
    async def run() -> dict[str, Any]:
        with lab_topology("enrollab-lb") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            async with lldpd_in(lab.netns, lab.bridge, "configure lldp tx-interval 1") as lldpd:
                link = RawLink(phone.interface, netns=phone.netns)
                agent = phone_agent(link, interval=1.0)
                agent.set_address("10.213.0.50", netmask="255.255.255.0", gateway=lab.address)  # one identity only
                agent.start()
                try:
                    neighbours = await wait_for(lldpd.neighbours, 8)
                    heard = await agent.first(timeout=5)
                finally:
                    await agent.stop()
                    link.close()
                assert neighbours, lldpd.log.read_text()
                assert agent.sent >= 1
                assert heard is not None and heard.system_name  # lldpd answered; the phone heard it
                return dict(neighbours[0])

    neighbour = asyncio.run(run())
    (name, chassis), = neighbour["chassis"].items()
    assert name == "AVA000001"
    assert chassis["id"] == {"type": "ip", "value": "10.213.0.50"}
    assert chassis["mgmt-ip"] == "10.213.0.50" and chassis["capability"] == {"type": "Tel", "enabled": True}
    assert neighbour["port"]["id"] == {"type": "mac", "value": PHONE}
    assert neighbour["port"]["ttl"] == "120"
    med = neighbour["lldp-med"]
    assert med["device-type"] == "Communication Device Endpoint (Class III)"
    assert {c["type"] for c in med["capability"]} == {"Capabilities", "Policy", "Inventory"}
    assert med["inventory"] == {"hardware": "J179D01A", "software": "4.1.0.0.10", "firmware": "4.1.0.0.10",
                                "serial": "22WZ00000001", "manufacturer": "Avaya", "model": "J179"}
    # lldpd knows every TLV the phone sends except Avaya's IP phone addresses (subtype 4)
    unknown = neighbour["unknown-tlvs"]["unknown-tlv"]
    assert unknown == {"oui": "00,04,0D", "subtype": "4", "len": "12",
                       "value": "0A,D5,00,32,FF,FF,FF,00,0A,D5,00,01"}, unknown


def test_phone_hears_the_harness_advertiser_and_the_capture_shows_both(tmp_path: Path) -> None:
    pcap = tmp_path / "lldp.pcap"
    spec = LldpSpec(interval=1.0, system_name="lab-switch", file_servers=("10.213.0.1",), call_servers=("10.213.0.5",),
                    dot1q_framing=2, med_vlan=212)

    async def run() -> tuple[LldpInfo | None, dict[str, LldpInfo]]:
        with lab_topology("enrollab-lc") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            async with Capture(lab.bridge, pcap, netns=lab.netns), \
                    LldpAdvertiser(lab.bridge, spec, netns=lab.netns) as advertiser:
                link = RawLink(phone.interface, netns=phone.netns)
                agent = phone_agent(link, interval=1.0)
                agent.set_address("10.213.0.50")
                agent.start()
                try:
                    switch = await agent.first(timeout=5)
                    await wait_for(lambda: PHONE in advertiser.neighbours, 5)
                finally:
                    await agent.stop()
                    link.close()
                return switch, dict(advertiser.neighbours)

    switch, neighbours = asyncio.run(run())
    assert switch is not None and switch.file_servers == ("10.213.0.1",) and switch.call_servers == ("10.213.0.5",)
    assert switch.dot1q_framing == 2 and switch.med_policy is not None and switch.med_policy.vlan == 212
    assert switch.med_policy.priority == 5 and switch.med_policy.dscp == 46 and switch.med_policy.tagged
    assert neighbours[PHONE].chassis_id == "10.213.0.50" and neighbours[PHONE].system_name == "AVA000001"

    entries = [e for e in read_evidence(pcap, mac=PHONE_MAC) if e["proto"] == "lldp"]
    assert entries, "no LLDPDU from the phone in the capture"
    assert entries[0]["detail"]["chassis_id"] == "10.213.0.50"
    assert entries[0]["detail"]["inventory"]["model"] == "J179"
    assert entries[0]["summary"].startswith(f"LLDPDU from {PHONE}: chassis 10.213.0.50, port {PHONE}, ttl 120")
    switch_entries = [e for e in read_evidence(pcap) if e["proto"] == "lldp" and e["src_mac"] != PHONE]
    assert switch_entries and "file servers 10.213.0.1" in switch_entries[0]["summary"]
