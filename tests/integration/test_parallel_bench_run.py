"""Issue 14's last piece: `enrollab conformance run --target all --jobs 3` with `[options]
physical_jobs = 2` tests two physical phones at the same time, each in a shard of its own, beside
a simulated one — all three in one report, each physical phone's passes with its own evidence.

The bench is built as in `test_mixed_bench_run.py` (namespaces; the run inside the bench's
namespace; each "phone" a simulated phone in a namespace of its own whose SIP agent boots it with
`enrollab phone boot` on NOTIFY check-sync), with two phones of different MACs and addresses. Both
ask des.avaya.com on port 443 — the one port of the bench — and the run's bench hub
(`harness.bench_hub`) forwards each phone's connections to its own shard's scripted enrollment
server, by the phone's address; the bench's DHCP (per-MAC option 242) and capture are the hub's.

The phones' lab addresses (SIP, and the source of their connections) are set on their interfaces
before they boot; their DHCP leases come from a pool apart from those, so whichever phone asks
first, no address is on the LAN twice.

"At the same time" is shown without comparing clocks: each phone's first boot waits for the
other phone's first NOTIFY, which two shards run one after the other would never send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.lab_network.dhcp_responder import mac_text
from harness.lab_network.netns import LabTopology, run_ip
from harness.processes import run_bounded
from harness.scripted_des import DesPki
from simulators.factory import ManufacturerCA
from simulators.sip_agent import SipAgent
from tests.lab_tiers import need_netns

pytestmark = pytest.mark.timeout(600)

ENROLLAB = str(Path(sys.executable).with_name("enrollab"))
MODEL, FIRMWARE = "J179", "4.1.11.0.9"
PHONES = {"desk-1": ("A4251BEE0B01", "13WZ51BEE0B01"), "desk-2": ("A4251BEE0B02", "13WZ51BEE0B02")}
# Enrolled and told where its settings are (the scripted DES, through the hub's front), then DES-
# hosted settings fetched; DES_STAT=0 and 1 from the bench DHCP for one phone only (option 242 by MAC).
TESTS = "enrollment_request_identifies_the_device or settings_from_the_enrollment_server or des_stat_0_and_1"
PASSES_EACH = 4  # the three tests, DES_STAT 0 and 1 as two
SHORT = "enrollment_request_identifies_the_device"


def _lab(bench: Path, bridge: str, address: str, addresses: dict[str, str], pool: tuple[str, str]) -> str:
    phones = "".join(f"""
[[devices]]
driver = "physical"
name = "{label}"
model = "{MODEL}"
firmware = "{FIRMWARE}"
mac = "{mac}"
serial = "{serial}"
ip = "{addresses[label]}"
reboot = "sip-notify"
boot_timeout = 150
quiet_timeout = 15
""" for label, (mac, serial) in PHONES.items())
    return f"""
[options]
seed = 3
physical_jobs = 2

[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"
{phones}
[network]
interface = "{bridge}"
capture = true
[network.dhcp]
address = "{address}"
prefixlen = 24
pool = ["{pool[0]}", "{pool[1]}"]
router = "{address}"
lease_time = 600

[bench]
des_cert = "{bench / 'des.crt'}"
des_key = "{bench / 'des.key'}"
manufacturer_ca = "{bench / 'manufacturer-ca.pem'}"
"""


def _bench_files(bench: Path) -> None:
    """The bench owner's certificate for des.avaya.com and manufacturer CA; each phone's factory
    certificate."""
    bench.mkdir()
    public = DesPki.create(("des.avaya.com",))  # the bench owner's: a root the phones trust, and its leaf
    (bench / "des.crt").write_bytes(public.cert_pem)
    (bench / "des.key").write_bytes(public.key_pem)
    (bench / "public-root.pem").write_bytes(public.ca_pem)
    manufacturer = ManufacturerCA.generate("Bench Manufacturer CA", "Avaya")
    (bench / "manufacturer-ca.pem").write_bytes(manufacturer.cert_pem)
    for label, (mac, serial) in PHONES.items():
        born = manufacturer.issue(mac, serial, MODEL)
        (bench / f"{label}.key").write_bytes(born.key_pem)
        (bench / f"{label}.crt").write_bytes(born.cert_pem)


class Phone:
    """One phone's own side: on NOTIFY check-sync it restarts (`enrollab phone boot`)."""

    def __init__(self, label: str, netns: str, interface: str, bench: Path, address: str) -> None:
        mac, serial = PHONES[label]
        self.command = [ENROLLAB, "phone", "boot", "--model", MODEL, "--firmware", FIRMWARE, "--mac", mac,
                        "--serial", serial, "--interface", interface, "--netns", netns,
                        "--factory-cert", str(bench / label), "--cacert", str(bench / "public-root.pem"),
                        "--host", f"des.avaya.com={address}", "--prompt", "yes", "--lldp-wait", "0.5",
                        "--dhcp-timeout", "8", "--json"]
        self.boots: list[asyncio.Task[tuple[int, str, str]]] = []
        self.asked = asyncio.Event()  # its shard sent its first NOTIFY
        self.other: Phone | None = None
        self.met_other = False  # the other phone's shard was running before this phone first booted

    def reboot(self) -> None:
        self.asked.set()
        self.boots.append(asyncio.ensure_future(self._boot()))

    async def _boot(self) -> tuple[int, str, str]:
        if len(self.boots) == 1 and self.other is not None:
            # "at the same time" without comparing clocks: the first boot waits for the other
            # phone's first NOTIFY, which shards run one after the other would never send
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.other.asked.wait(), 120)
                self.met_other = True
        code, out, err = await run_bounded(*self.command, timeout=120)
        return code, out.decode(errors="replace"), err.decode(errors="replace")


async def _parallel_bench_run(tmp_path: Path, selection: str, timeout: float) -> Any:
    """Build the bench (module docstring), run the device suite with --jobs 3 on it."""
    need_netns()
    topology = LabTopology(prefix=f"enrollab-pb{uuid.uuid4().hex[:3]}")
    topology.start()
    try:
        run_ip("link", "set", "lo", "up", netns=topology.netns)
        base = topology.subnet.network_address
        addresses, phones, agents = {}, {}, {}
        bench = tmp_path / "bench"
        _bench_files(bench)
        for n, (label, (mac, _)) in enumerate(PHONES.items()):
            host = topology.add_host(f"desk{n + 1}", mac)
            addresses[label] = str(base + 60 + n)
            run_ip("addr", "add", f"{addresses[label]}/{topology.subnet.prefixlen}", "dev", host.interface,
                   netns=host.netns)
            phones[label] = Phone(label, host.netns, host.interface, bench, topology.address)
            agents[label] = SipAgent(phones[label].reboot, netns=host.netns)
        phones["desk-1"].other, phones["desk-2"].other = phones["desk-2"], phones["desk-1"]
        lab = tmp_path / "lab.toml"
        lab.write_text(_lab(bench, topology.bridge, topology.address, addresses, (str(base + 100), str(base + 101))))
        report = tmp_path / "report"
        async with agents["desk-1"], agents["desk-2"]:
            code, out, err = await run_bounded(
                "ip", "netns", "exec", topology.netns, ENROLLAB, "conformance", "run", "--target", "all",
                "--suite", "device", "--lab", str(lab), "--unattended", "-k", selection, "--report-dir", str(report),
                "--jobs", "3", timeout=timeout, stdin=asyncio.subprocess.DEVNULL)
            booted = {label: await asyncio.gather(*p.boots, return_exceptions=True) for label, p in phones.items()}
    finally:
        topology.close()
    text = out.decode(errors="replace") + err.decode(errors="replace")
    assert (report / "report.json").exists(), text[-4000:]
    return code, text, booted, agents, report, addresses, phones


def _check_one_report(code: int, text: str, report: Path, passes_each: int) -> dict[str, list[dict[str, Any]]]:
    """One report, three devices, no fail or error; each physical phone's tests passed. Its tests, by MAC."""
    assert "3 shards: 1 device(s), 1 device(s), 1 device(s)" in text, text[-3000:]
    assert "bench hub: 2 bench shards share [network] br0" in text, text[-3000:]
    doc = json.loads((report / "report.json").read_text())
    tests: list[dict[str, Any]] = doc["tests"]
    problems = [(t["name"], t["device"], t["outcome"], t.get("message")) for t in tests
                if t["outcome"] in ("fail", "error")]
    assert code == 0 and not problems, (problems, text[-3000:])
    devices = {d["id"]: d for d in doc["devices"]}
    assert sorted(d["driver"] for d in devices.values()) == ["physical", "physical", "simulated"], devices
    mine: dict[str, list[dict[str, Any]]] = {}
    for mac, _ in PHONES.values():
        (device,) = [i for i, d in devices.items() if d["mac"] == mac]
        mine[mac] = [t for t in tests if t["device"] == device]
        assert Counter(t["outcome"] for t in mine[mac]) == {"pass": passes_each}, mine[mac]
    return mine


async def test_two_physical_phones_run_at_once_through_one_bench_into_one_report(tmp_path: Path) -> None:
    code, text, booted, agents, report, addresses, phones = await _parallel_bench_run(tmp_path, TESTS, timeout=560)
    mine = _check_one_report(code, text, report, PASSES_EACH)
    for mac, tests in mine.items():
        for test in tests:  # its own evidence: DHCP for its MAC, the scripted DES's requests from its MAC
            evidence = test["evidence"]
            acks = [e for e in evidence["network"] if e["proto"] == "dhcp" and "DHCPACK" in e["summary"]]
            assert acks and all(mac_text(mac) in (e["dst_mac"], e["detail"].get("chaddr")) for e in acks), \
                (test["name"], evidence["network"])
            asked = [x for x in evidence["http"] if x["who"] == "device-api"]
            assert all(x["cn"] == mac for x in asked), (test["name"], asked)
            assert bool(asked) is ("des_stat" not in test["name"]), (test["name"], asked)
            assert all(x["url"].startswith("https://des.avaya.com:443/") for x in asked), asked
    assert all(p.met_other for p in phones.values()), booted  # the two phones' tests at the same time
    assert all(agent.notifies >= PASSES_EACH for agent in agents.values())
    assert all(isinstance(b, tuple) for boots in booted.values() for b in boots), booted
    front = [json.loads(line) for line in (report / "network" / "bench-hub.jsonl").read_text().splitlines()]
    forwarded = Counter(c["peer"] for c in front if c["event"] == "forwarded")
    assert set(forwarded) == set(addresses.values()), front  # each phone's connections, to its own shard
    assert (report / "network" / "bench.pcap").stat().st_size > 0
