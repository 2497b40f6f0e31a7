"""Peers we did not write, for the physical-phone tests (issue 14): net-snmp's snmpd with a
`pass` handler standing in for a PoE switch's PSE port table (tests/data/physical/pse_pass.py),
and SIPp as a phone's SIP stack in a network namespace (tests/data/physical/notify-*.xml)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab_tiers import need_tool

DATA = Path(__file__).parent.parent / "data" / "physical"
COMMUNITY = "lab-write-7f3a"  # the write community of the stand-in switch


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def snmpd(tmp: Path, ports: dict[str, int]) -> Iterator[tuple[int, Path]]:
    """snmpd on 127.0.0.1 (its own port) with write community COMMUNITY, read-only `lab-read`;
    yields the port and the state file of the PSE table."""
    snmpd = need_tool("snmpd", package="snmpd")
    state = tmp / "pse.json"
    state.write_text(json.dumps({"ports": ports}))
    conf = tmp / "snmpd.conf"
    conf.write_text(
        f"rwcommunity {COMMUNITY} 127.0.0.1\nrocommunity lab-read 127.0.0.1\n"
        f"pass .1.3.6.1.2.1.105.1.1.1.3 /usr/bin/python3 {DATA / 'pse_pass.py'} {state}\n"
    )
    port = free_udp_port()
    proc = subprocess.Popen([snmpd, "-f", "-C", "-c", str(conf), "-Lf", str(tmp / "snmpd.log"),
                             "-p", str(tmp / "snmpd.pid"), f"udp:127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while "Connection from" not in probe(port) and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"snmpd exited: {(tmp / 'snmpd.log').read_text()[-2000:]}")
        yield port, state
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def probe(port: int) -> str:
    """An SNMP get of sysUpTime with the read community: 'Connection from' once snmpd answers."""
    done = subprocess.run(["snmpget", "-v2c", "-c", "lab-read", "-t", "0.3", "-r", "0", f"127.0.0.1:{port}",
                           ".1.3.6.1.2.1.1.3.0"], capture_output=True, text=True, check=False)
    return "Connection from" if done.returncode == 0 else done.stderr


@contextlib.contextmanager
def sipp(netns: str, ip: str, scenario: str, tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    sipp = need_tool("sipp", package="sip-tester")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sipp, "-sf", str(DATA / scenario), "-i", ip, "-p", "5060", "-m", "1",
         "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", str(tmp / "sipp-errors.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"{ip}:5060" not in udp_listeners(netns):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def udp_listeners(netns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "ss", "-lunH"], capture_output=True, text=True,
                          check=False).stdout


