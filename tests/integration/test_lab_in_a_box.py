"""Issue 12's must-show, against peers we did not write: three J179s, each in a namespace of its
own on one lab bridge, booted with `enrollab phone boot`. dnsmasq hands every phone a lease and
only the first one option 242; lldpd sends the Avaya file-server TLV only down the second one's
port; the third hears neither and falls back to the enrollment server (DES), which redirects it.
The first two decline the auto-provisioning prompt ("No": the network's server is used, research
§11.3 — a J100 answered "Yes" asks only DES), the third accepts it.
Each phone's summary names the right `source`, and the file server's access log shows the first
two fetching 46xxsettings.txt from their leased addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.lab_box import BootResult, LabBox
from tests.lab_tiers import need_netns, need_tool

pytestmark = pytest.mark.timeout(240)

FIRMWARE = "4.1.11.0.9"
MACS = {"p1": "A4251B120001", "p2": "A4251B120002", "p3": "A4251B120003"}


def _colons(mac: str) -> str:
    return ":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower()


@contextmanager
def _daemon(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,  # noqa: S603
                               start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _dnsmasq_conf(tmp: Path, lab_address: str) -> Path:
    conf = tmp / "dnsmasq.conf"
    conf.write_text("\n".join([
        "interface=br0", "bind-interfaces", "port=0", "dhcp-authoritative", "user=root",  # tmp_path is 0700
        "no-ping",  # offer at once (dnsmasq pings an address for ~3 s before offering it)
        "dhcp-range=10.213.0.50,10.213.0.99,255.255.255.0,10m",
        f"dhcp-leasefile={tmp / 'dnsmasq.leases'}",
        f"dhcp-host={_colons(MACS['p1'])},set:sson",
        f'dhcp-option=tag:sson,242,"HTTPSRVR={lab_address},HTTPDIR=/"',
        "",
    ]))
    return conf


def _lldpd_conf(tmp: Path, lab_address: str) -> Path:
    oui_info = ",".join(f"{octet:02x}" for octet in ipaddress.IPv4Address(lab_address).packed)
    conf = tmp / "lldpd.conf"
    conf.write_text(f"configure lldp tx-interval 1\n"
                    f"configure lldp custom-tlv oui 00,04,0d subtype 6 oui-info {oui_info}\n")
    return conf


def _summary(result: BootResult) -> dict[str, object]:
    assert result.summary is not None, f"no summary line (rc {result.rc}): {result.stderr[-2000:]}"
    return result.summary


def test_three_j179s_take_their_server_from_242_lldp_and_des(tmp_path: Path) -> None:
    need_netns()
    dnsmasq = need_tool("dnsmasq", package="dnsmasq-base")
    lldpd = need_tool("lldpd", package="lldpd")

    # lldpd's client side runs as user _lldpd, which cannot enter pytest's 0700 tmp_path.
    lldpd_dir = Path(tempfile.mkdtemp(prefix="enrollab-lldpd-"))
    lldpd_dir.chmod(0o755)

    async def run() -> None:
        async with LabBox(tmp_path / "box", prefix=f"enrollab-m{os.getpid() % 1000}") as box:
            phones = {name: box.add_phone(name, "J179", FIRMWARE, mac) for name, mac in MACS.items()}
            assert box.files is not None
            await box.arrange_zero_touch(phones["p3"], box.files.url("http", host=box.address))
            lab = box.topology
            with _daemon(["ip", "netns", "exec", lab.netns, dnsmasq, "--no-daemon", "--conf-file="
                          + str(_dnsmasq_conf(tmp_path, box.address))]), \
                 _daemon(["ip", "netns", "exec", lab.netns, lldpd, "-d", "-I", phones["p2"].host.peer,
                          "-u", str(lldpd_dir / "lldpd.sock"), "-O", str(_lldpd_conf(lldpd_dir, box.address)),
                          "-S", "lab-switch"]):
                results = await asyncio.gather(
                    box.boot(phones["p1"], lldp_wait=3, prompt="no"),
                    box.boot(phones["p2"], lldp_wait=15, prompt="no"),
                    box.boot(phones["p3"], lldp_wait=3, prompt="yes"),
                )
            by_name = dict(zip(phones, results, strict=True))
            summaries = {name: _summary(result) for name, result in by_name.items()}
            expected = {"p1": "dhcp-242", "p2": "lldp", "p3": "des"}
            for name, source in expected.items():
                summary = summaries[name]
                assert summary["source"] == source, (name, summary, by_name[name].stderr[-1500:])
                tail = [(e["event"], e["detail"]) for e in by_name[name].events[-8:]]
                assert summary["settings_fetched"] is True, (name, summary, tail)
                assert by_name[name].rc == 0
                assert summary["mac"] == MACS[name]
                assert ipaddress.IPv4Address(str(summary["ip"])) in ipaddress.IPv4Network("10.213.0.0/24")
            assert summaries["p3"]["des_result"] == "redirect"
            assert summaries["p1"]["des_result"] is None and summaries["p2"]["des_result"] is None
            leases = (tmp_path / "dnsmasq.leases").read_text().lower()
            for name in ("p1", "p2"):
                ip = str(summaries[name]["ip"])
                assert _colons(MACS[name]) in leases and ip in leases  # dnsmasq leased it
                fetched = [r for r in box.files.requests if r.path.endswith("46xxsettings.txt")]
                assert any(r.client == ip and r.status == 200 for r in fetched), (name, ip, box.files.requests)

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(lldpd_dir, ignore_errors=True)
