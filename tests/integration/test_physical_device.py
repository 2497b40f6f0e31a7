"""The whole physical path on one machine (issue 14): a "physical" phone — a simulated phone in a
network namespace of its own whose SIP stack (`simulators.sip_agent`) reboots it with
`enrollab phone boot` when NOTIFY check-sync arrives — driven by the harness only through
`PhysicalDevice`: arranged through the admin API, rebooted by SIP NOTIFY from the lab namespace,
and its enrollment observed from outside (the enrollment server's audit log, the file server's
request log). Also: a phone that reports other firmware than the lab file says, and one that never
comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.arrangement import Arranger
from harness.errors import HarnessError
from harness.lab import DeviceSpec
from harness.lab_box import BootResult, BoxPhone, LabBox
from harness.lab_network.netns import run_ip
from harness.lab_network.service import LabNetwork
from harness.lab_network.spec import DhcpScope, NetworkSpec
from harness.physical.device import Bench, PhysicalDevice
from simulators.phone import OutcomeResult
from simulators.sip_agent import SipAgent
from tests.lab_tiers import need_netns

pytestmark = pytest.mark.timeout(300)


def _network(box: LabBox, ip: str) -> NetworkSpec:
    """The lab's DHCP server with the phone's address reserved (a pool of one), nothing else: the
    phone finds its provisioning server through the enrollment server (DES)."""
    scope = DhcpScope(address=box.address, prefixlen=box.topology.subnet.prefixlen, pool=(ip, ip),
                      router=box.address, lease_time=600)
    return NetworkSpec(interface=box.topology.bridge, dhcp=scope, capture=False)


class BenchPhone:
    """The phone on the bench: its SIP agent reboots it (`enrollab phone boot` in its namespace)."""

    def __init__(self, box: LabBox, phone: BoxPhone, *, boots: bool = True) -> None:
        self.box, self.phone, self.boots = box, phone, boots
        self.runs: list[asyncio.Task[BootResult]] = []

    def reboot(self) -> None:
        if self.boots:
            self.runs.append(asyncio.ensure_future(self.box.boot(self.phone, prompt="yes", lldp_wait=0.5,
                                                                 dhcp_timeout=8)))


def _spec(phone: BoxPhone, ip: str, firmware: str | None = None) -> DeviceSpec:
    return DeviceSpec(driver="physical", model=phone.model, firmware=firmware or phone.firmware, mac=phone.mac,
                      serial=phone.serial, name="desk-1", ip=ip, reboot="sip-notify", thumbprint=phone.thumbprint,
                      extra={"sip": {"t1": 0.1}})


async def _bench(tmp_path: Path, *, boots: bool = True, firmware: str | None = None,
                 boot_timeout: float = 90) -> Any:
    need_netns()
    box = LabBox(tmp_path / "box", prefix="enrollab-ph")
    await box.__aenter__()
    phone = box.add_phone("desk1", "J179", "4.1.11.0.9", "A4251BEE0001")
    ip = str(box.topology.subnet.network_address + 60)
    run_ip("addr", "add", f"{ip}/{box.topology.subnet.prefixlen}", "dev", phone.host.interface,
           netns=phone.host.netns)  # powered and on the LAN before the harness reboots it
    assert box.server is not None and box.files is not None
    dut = PhysicalDevice(_spec(phone, ip, firmware), Bench(
        admin=box.server.admin, device_url=box.server.device_url, files=[box.files], attended=False,
        netns=box.topology.netns, boot_timeout=boot_timeout, settle=2, poll=0.2))
    async with box.server.admin() as admin:
        await Arranger(box.server, admin).zero_touch(dut, box.files_url())
    return box, phone, ip, dut, BenchPhone(box, phone, boots=boots)


async def test_a_phone_rebooted_by_sip_notify_is_seen_enrolling_and_fetching_its_settings(tmp_path: Path) -> None:
    box, phone, ip, dut, bench_phone = await _bench(tmp_path)
    try:
        async with LabNetwork(_network(box, ip), interface=box.topology.bridge, netns=box.topology.netns), \
                SipAgent(bench_phone.reboot, netns=phone.host.netns) as agent:
            outcome = await dut.boot()
            booted = await asyncio.gather(*bench_phone.runs)
    finally:
        await box.__aexit__(None, None, None)
    assert agent.notifies == 1 and len(booted) == 1
    assert booted[0].summary is not None and booted[0].summary["source"] == "des", booted[0].stderr[-2000:]
    # What the harness saw from outside equals what the phone says it did.
    assert outcome.result is OutcomeResult.PROVISIONED
    assert "46xxsettings.txt" in outcome.fetched
    assert outcome.detail["observed"]["enrollments"][-1] == "redirect"
    assert dut.reported == ("J179", "4.1.11.0.9")
    events = [e["event"] for e in dut.events]
    assert events[0] == "reboot" and "enrollment" in events and "file" in events
    assert dut.events[0]["detail"]["method"] == "sip-notify"
    assert {e["detail"]["path"] for e in dut.events if e["event"] == "file"} >= {"46xxsettings.txt"}


async def test_a_phone_reporting_other_firmware_than_the_lab_file_is_an_error_before_any_result(
    tmp_path: Path,
) -> None:
    box, phone, ip, dut, bench_phone = await _bench(tmp_path, firmware="4.0.6.0")
    try:
        async with LabNetwork(_network(box, ip), interface=box.topology.bridge, netns=box.topology.netns), \
                SipAgent(bench_phone.reboot, netns=phone.host.netns):
            with pytest.raises(HarnessError) as mismatch:
                await dut.boot()
            await asyncio.gather(*bench_phone.runs, return_exceptions=True)
    finally:
        await box.__aexit__(None, None, None)
    assert mismatch.value.error == "firmware-mismatch"
    assert "the lab file says firmware 4.0.6.0, the phone reports 4.1.11.0.9" in mismatch.value.detail


async def test_a_phone_that_takes_the_notify_but_never_comes_back_is_an_error_with_what_was_seen(
    tmp_path: Path,
) -> None:
    box, phone, ip, dut, bench_phone = await _bench(tmp_path, boots=False, boot_timeout=3)
    try:
        async with SipAgent(bench_phone.reboot, netns=phone.host.netns) as agent:
            with pytest.raises(HarnessError) as silent:
                await dut.boot()
    finally:
        await box.__aexit__(None, None, None)
    assert agent.notifies == 1
    assert silent.value.error == "phone-silent"
    assert silent.value.detail == ("desk-1 did not reach a provisioning server within 3 s of the reboot: saw 0 "
                                   "enrollment answer(s) (none) and 0 file request(s) (none)")
