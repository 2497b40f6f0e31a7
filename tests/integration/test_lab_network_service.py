"""The lab network service and `enrollab lab network` on a lab in a box: busybox udhcpc, in a
phone's namespace, takes a lease with option 242 from `LabNetwork` (and from the command, run as
a subprocess until SIGINT); the capture is read back by tcpdump and as evidence. Set-ups the
service cannot run in, and bad arguments, are one-line errors. Daemons are killed in `finally`;
each test stays under 20 s."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import LabError
from harness.lab_network.netns import run_ip
from harness.lab_network.service import LabNetwork, attach_capture_evidence
from harness.lab_network.spec import DhcpScope, LldpSpec, NetworkSpec
from harness.pytest_plugin import STATE_KEY
from tests.lab_tiers import lab_topology, need_netns, need_tool

OPTION_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/j,DES_STAT=2"
PHONE_MAC = "A4251B000001"
PHONE = "a4:25:1b:00:00:01"
ENROLLAB = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _spec(address: str, **changes: Any) -> NetworkSpec:
    scope = DhcpScope(address=address, pool=("10.213.0.50", "10.213.0.59"), router=address, lease_time=600,
                      option_242=OPTION_242, option_43={"TLSSRVR": address})
    base: dict[str, Any] = {"interface": "br0", "dhcp": scope,
                            "lldp": LldpSpec(interval=1.0, system_name="lab-switch", file_servers=(address,))}
    base.update(changes)
    return NetworkSpec(**base)


def _udhcpc(busybox: str, netns: str) -> subprocess.CompletedProcess[str]:
    command = ["ip", "netns", "exec", netns, busybox, "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
               "-O", "242", "-s", "/bin/true"]
    return subprocess.run(command, capture_output=True, text=True, timeout=12, check=False)  # noqa: S603


async def _audhcpc(busybox: str, netns: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_udhcpc, busybox, netns)


def test_lab_network_leases_to_udhcpc_and_its_capture_is_evidence(tmp_path: Path) -> None:
    need_netns()
    busybox = need_tool("busybox", package="busybox")
    tcpdump = need_tool("tcpdump", package="tcpdump")
    pcap = tmp_path / "network.pcap"
    state = SimpleNamespace(http=[], events=[], network=[])
    node = SimpleNamespace(stash={STATE_KEY: state})

    async def run() -> list[dict[str, Any]]:
        with lab_topology("enrollab-s") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            async with LabNetwork(_spec(lab.address), netns=lab.netns, capture_path=pcap) as net:
                mark = time.time()
                done = await _audhcpc(busybox, phone.netns)
                assert done.returncode == 0, done.stdout + done.stderr
                assert "lease of 10.213.0.50 obtained" in done.stdout + done.stderr
                assert net.dhcp is not None and net.dhcp.leases[(None, PHONE)].state == "bound"
                assert net.lldp is not None and net.lldp.sent >= 1
                entries = attach_capture_evidence(node, net, PHONE_MAC, since=mark)  # while it runs
            assert ("dhcp", "ack") in [(e["source"], e["event"]) for e in net.events]
            return entries

    entries = asyncio.run(run())

    acks = [e for e in entries if e["proto"] == "dhcp" and e["detail"]["message_type"] == "DHCPACK"]
    assert len(acks) == 1 and acks[0]["detail"]["option_242"] == OPTION_242
    assert acks[0]["summary"].startswith(f'DHCPACK 10.213.0.50 to {PHONE}, option 242 = "{OPTION_242}"')
    assert state.network == entries  # the test's evidence.network
    # an independent reader opens the file the service flushed and closed
    done = subprocess.run([tcpdump, "-r", str(pcap), "-nn"], capture_output=True, text=True, timeout=10)  # noqa: S603
    assert done.returncode == 0, done.stderr
    assert "BOOTP/DHCP" in done.stdout and "LLDP" in done.stdout


def test_lab_network_merges_events_in_time_order() -> None:
    need_netns()
    busybox = need_tool("busybox", package="busybox")

    async def run() -> list[dict[str, Any]]:
        with lab_topology("enrollab-e") as lab:
            phone = lab.add_host("p1", mac=PHONE_MAC)
            net = LabNetwork(_spec(lab.address, capture=False), netns=lab.netns)
            async with net:
                assert net.capture is None and net.capture_path is None
                done = await _audhcpc(busybox, phone.netns)
                assert done.returncode == 0, done.stdout + done.stderr
                first = net.new_events()
                assert net.new_events() == []  # each handed out once
            assert [e["event"] for e in net.new_events()] == ["stopped", "stopped", "stopped"]
            with pytest.raises(LabError, match="captures nothing"):
                net.evidence()
            return first

    events = asyncio.run(run())
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    kinds = [(e["source"], e["event"]) for e in events]
    for wanted in [("dhcp", "started"), ("lldp", "started"), ("network", "started"), ("dhcp", "offer"),
                   ("dhcp", "ack")]:
        assert wanted in kinds, kinds
    assert kinds.index(("dhcp", "offer")) < kinds.index(("dhcp", "ack"))


def test_set_ups_it_cannot_run_in_are_lab_errors() -> None:
    need_netns()

    async def error_of(net: LabNetwork) -> LabError:
        with pytest.raises(LabError) as caught:
            async with net:
                pass
        assert net.dhcp is None and net.capture is None  # nothing was left open
        return caught.value

    async def run() -> None:
        with lab_topology("enrollab-x") as lab:
            err = await error_of(LabNetwork(_spec(lab.address), interface="nope0", netns=lab.netns))
            assert err.error == "network-no-interface" and "br0" in str(err)
            err = await error_of(LabNetwork(_spec(lab.address), netns=lab.netns + "-gone"))
            assert err.error == "network-no-netns"
            err = await error_of(LabNetwork(_spec("10.213.0.9"), netns=lab.netns))
            assert err.error == "network-address-missing" and "ip addr add 10.213.0.9/24 dev br0" in str(err)
            err = await error_of(LabNetwork(_spec(lab.address, interface=None), netns=lab.netns))
            assert err.error == "network-no-interface" and "--interface" in str(err)
            outside = DhcpScope(address=lab.address, pool=("10.9.0.1", "10.9.0.5"))
            err = await error_of(LabNetwork(_spec(lab.address, dhcp=outside), netns=lab.netns))
            assert err.error == "network-bad-config" and err.field == "network.dhcp.pool" and "10.9.0.1" in str(err)
            err = await error_of(LabNetwork(_spec(lab.address, dhcp=None, vlans={212: outside}), netns=lab.netns))
            assert err.error == "network-bad-config" and "[network.dhcp]" in str(err)
            run_ip("link", "add", "down0", "type", "veth", "peer", "name", "down1", netns=lab.netns)  # left down
            err = await error_of(LabNetwork(_spec(lab.address), interface="down0", netns=lab.netns))
            assert err.error == "network-interface-down" and "ip link set down0 up" in str(err)

    asyncio.run(run())


# -- the command ----------------------------------------------------------------------------------


def _lab_file(tmp_path: Path, address: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(f"""[network]
interface = "eth9"
[network.dhcp]
address = "{address}"
pool = ["10.213.0.50", "10.213.0.59"]
lease_time = 600
option_242 = "{OPTION_242}"
[network.dhcp.option_43]
TLSSRVR = "{address}"
[network.lldp]
interval = 1
file_servers = ["{address}"]
""")
    return path


class _Command:
    """`enrollab lab network` as a subprocess whose stdout lines are read on a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [*ENROLLAB, "lab", "network", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 8) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        raise AssertionError(f"no line with {text!r}: {self.seen} {stderr}")

    def interrupt(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        self.process.wait(timeout=10)
        self.reader.join(timeout=5)  # stdout is the reader's alone: the last lines are in the queue now
        stderr = self.process.stderr.read() if self.process.stderr else ""
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@pytest.mark.parametrize("as_json,sig", [(False, signal.SIGINT), (True, signal.SIGTERM)],
                         ids=["text-sigint", "json-sigterm"])
def test_the_command_serves_until_sigint(tmp_path: Path, as_json: bool, sig: int) -> None:
    need_netns()
    busybox = need_tool("busybox", package="busybox")
    tcpdump = need_tool("tcpdump", package="tcpdump")
    pcap = tmp_path / "out" / "network.pcap"
    with lab_topology("enrollab-k") as lab:
        phone = lab.add_host("p1", mac=PHONE_MAC)
        command = _Command("--netns", lab.netns, "--interface", "br0", "--lab", str(_lab_file(tmp_path, lab.address)),
                           "--capture", str(pcap), *(["--json"] if as_json else []))
        try:
            if as_json:
                serving = json.loads(command.wait_for('"serving"'))
                assert serving["dhcp"]["option_242"] == OPTION_242 and serving["capture"] == str(pcap)
                assert serving["lldp"]["file_servers"] == [lab.address] and serving["interface"] == "br0"
            else:
                command.wait_for(f'option 242 = "{OPTION_242}"')
                command.wait_for("Avaya file servers (TLV 00-04-0D/6) = 10.213.0.1")
                command.wait_for(f"capture: {pcap}")
                command.wait_for("serving until")
            done = _udhcpc(busybox, phone.netns)
            assert done.returncode == 0, done.stdout + done.stderr
            ack = command.wait_for('"ack"' if as_json else "dhcp    ack")
            if as_json:
                assert json.loads(ack)["ip"] == "10.213.0.50"
            else:
                assert f"mac={PHONE}" in ack and "ip=10.213.0.50" in ack
            code, stderr = command.interrupt(sig)
        finally:
            command.kill()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    last = command.seen[-1]
    if as_json:
        summary = json.loads(last)
        assert summary["event"] == "summary" and summary["leases"] == 1 and summary["packets"] > 0
    else:
        assert last.startswith("stopped: 2 DHCP replies, 1 leases") and str(pcap) in last
    done = subprocess.run([tcpdump, "-r", str(pcap), "-nn"], capture_output=True, text=True, timeout=10)  # noqa: S603
    assert done.returncode == 0 and "BOOTP/DHCP" in done.stdout, done.stderr


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENROLLAB, "lab", "network", *args], capture_output=True, text=True,  # noqa: S603
                          timeout=15, cwd=cwd, check=False)


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path) -> None:
    no_network = tmp_path / "sim.toml"
    no_network.write_text('[options]\nseed = 1\n')
    broken = tmp_path / "broken.toml"
    broken.write_text('[network]\ninterface = "br0"\n[network.dhcp]\npool = ["10.0.0.9", "10.0.0.1"]\n')
    cases = [
        (["--bogus"], "No such option"),
        (["--lab", str(tmp_path / "missing.toml")], "lab-unreadable"),
        (["--lab", str(no_network)], "has no [network] table"),
        (["--lab", str(broken)], "runs backwards"),
        (["--lab", str(_lab_file(tmp_path, "10.213.0.1")), "--interface", "nope0"], "nope0"),
    ]
    for args, text in cases:
        done = _run(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert text in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "network.pcap").exists()  # nothing served, nothing captured
    done = _run("--help")
    assert done.returncode == 0 and "--netns" in done.stdout and "SIGTERM" in done.stdout


def test_a_lab_network_in_a_missing_namespace_is_one_line(tmp_path: Path) -> None:
    need_netns()
    done = _run("--netns", "enrollab-no-such-ns", "--interface", "br0", "--lab", str(_lab_file(tmp_path, "10.213.0.1")),
                cwd=tmp_path)
    assert done.returncode == 2 and "network-no-netns" in done.stderr and "Traceback" not in done.stderr
