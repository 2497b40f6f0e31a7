"""`enrollab phone boot` and `enrollab demo --network` as a user runs them (PROTOCOL §5): bad
arguments are one line and exit 2; a phone on a wire with no DHCP server ends with a summary
(source none) and exit 1; the network demo boots its three rounds over namespaces it creates and
leaves none behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab_tiers import lab_topology, need_netns

ENROLLAB = str(Path(sys.executable).with_name("enrollab"))


def _run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENROLLAB, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,  # noqa: S603
                          check=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "J179", "--firmware", "4.1.11.0.9", "--mac", "zz", "--interface", "eth0", "--data", "."],
     "--mac"),
    (["--model", "X999", "--firmware", "4.1.11.0.9", "--mac", "A4251B000001", "--interface", "eth0",
      "--data", "."], "--model"),
    (["--model", "J179", "--firmware", "four", "--mac", "A4251B000001", "--interface", "eth0", "--data", "."],
     "--firmware"),
    (["--model", "J179", "--firmware", "4.1.11.0.9", "--mac", "A4251B000001", "--interface", "eth0"],
     "exactly one of --data"),
    (["--model", "J179", "--firmware", "4.1.11.0.9", "--mac", "A4251B000001", "--interface", "eth0",
      "--data", "/nonexistent-enrollab"], "no manufacturer CA"),
])
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = _run("phone", "boot", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_phone_without_dhcp_ends_with_a_summary_and_exit_1(tmp_path: Path) -> None:
    need_netns()
    from simulators.factory import ManufacturerCA

    credentials = ManufacturerCA.generate().issue("A4251B000031", "SIM1B000031", "J179")
    (tmp_path / "p.key").write_bytes(credentials.key_pem)
    (tmp_path / "p.crt").write_bytes(credentials.cert_pem)
    with lab_topology("enrollab-c") as lab:
        phone = lab.add_host("p1", mac="A4251B000031")
        done = _run("phone", "boot", "--model", "J179", "--firmware", "4.1.11.0.9", "--mac", phone.mac,
                    "--interface", phone.interface, "--netns", phone.netns, "--factory-cert", str(tmp_path / "p"),
                    "--des-url", "https://10.213.0.1:8443", "--prompt", "no", "--lldp-wait", "1",
                    "--dhcp-timeout", "2", "--json")
        wrong = _run("phone", "boot", "--model", "J179", "--firmware", "4.1.11.0.9", "--mac", "A4251B000099",
                     "--interface", phone.interface, "--netns", phone.netns, "--factory-cert", str(tmp_path / "p"))
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, done.stderr
    summary = lines[-1]
    assert summary == {"event": "summary", "mac": "A4251B000031", "ip": None, "source": "none", "server": None,
                       "settings_fetched": False, "des_result": None}
    assert any(line["event"] == "no-dhcp-lease" for line in lines[:-1])
    assert wrong.returncode == 2 and "mac-mismatch" in wrong.stderr and "link set" in wrong.stderr


@pytest.mark.timeout(240)
def test_demo_network_boots_three_rounds_and_removes_its_namespaces(tmp_path: Path) -> None:
    need_netns()
    done = _run("demo", "--network", cwd=tmp_path, timeout=200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "network demo complete" in done.stdout
    for source in ("dhcp-242", "lldp", "des"):
        assert source in done.stdout
    assert "DHCPACK" in done.stdout  # evidence read back from the capture
    assert sorted(p.name for p in (tmp_path / "enrollab-report").glob("network-*.pcap")) == [
        "network-1.pcap", "network-2.pcap", "network-3.pcap"]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout  # noqa: S607
    assert "enrollab-demo" not in listed
