"""Device suite: discovery over a real lab network, with captured packets as evidence.

The device sits in a network namespace of its own on a lab bridge (`harness.lab_network`); the
harness's lab network (`LabNetwork`: DHCP responder with option 242, capture) and a file server
listen in the lab's namespace. The device must take a lease, use the server option 242 names and
fetch its settings from its leased address. The capture's DHCP and HTTP entries for the device's
MAC go into the test's `evidence.network` (the report shows them as steps: "DHCPACK … option 242
= …" with a timestamp); the pcap is kept beside the report (`network/<test>.pcap`).

Needs root (raw sockets, namespaces): elsewhere the test is *not applicable* with that reason.
Simulated devices only, until physical drivers exist.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

import fixtures
from conformance.device.settings_files import SETTINGS_FILE
from harness.fileserver import FileServer
from harness.lab_network.netns import LabTopology, available
from harness.lab_network.service import LabNetwork, attach_capture_evidence
from harness.lab_network.spec import DhcpScope, NetworkSpec
from harness.outcomes import not_applicable
from simulators.phone import User

NEEDS = ("provisioning-urls", "http-provisioning-url", "provisioning-url-with-ip-address")


def _capture_path(request: pytest.FixtureRequest) -> Path:
    report_dir = request.config.getoption("enrollab_report_dir", None)
    base = Path(report_dir) / "network" if report_dir else Path(tempfile.mkdtemp(prefix="enrollab-capture-"))
    base.mkdir(parents=True, exist_ok=True)
    return base / (re.sub(r"[^A-Za-z0-9_.@#-]+", "_", request.node.name) + ".pcap")


@pytest.mark.needs(*NEEDS)
@pytest.mark.steps("arrange", "boot", "check")
async def test_option_242_on_a_lab_network(request: pytest.FixtureRequest, dut: Any, step: Any) -> None:
    from harness.dut import SimulatedDevice
    from simulators.l2.wire import WireNetwork

    why = available()
    if why:
        not_applicable(f"discovery over a lab network needs network namespaces: {why}")
    if not isinstance(dut, SimulatedDevice):
        not_applicable("only simulated devices can be put in a lab namespace (physical drivers: a later issue)")
    if dut.path is not None:
        not_applicable('this run\'s devices all boot over the lab network (network_path = "namespaces"): '
                       "the discovery tests (test_discovery.py) run on it")
    suffix = dut.identity.mac[-6:].lower()
    capture = _capture_path(request)
    with LabTopology(f"enrollab-d{suffix}") as lab:
        host = lab.add_host("dut", mac=dut.identity.mac)
        files = FileServer(fixtures.path("provisioning"), host=lab.address, netns=lab.netns)
        await files.start()
        try:
            port = files.http_url.rsplit(":", 1)[1].strip("/")
            option_242 = f"HTTPSRVR={lab.address},HTTPPORT={port}"
            scope = DhcpScope(address=lab.address, pool=("10.213.0.50", "10.213.0.99"), lease_time=600,
                              option_242=option_242)
            with step("arrange", evidence={"option_242": option_242, "capture": str(capture)}):
                network = LabNetwork(NetworkSpec(interface=lab.bridge, dhcp=scope), interface=lab.bridge,
                                     netns=lab.netns, capture_path=capture)
                wire = WireNetwork(host.interface, dut.identity.mac, model=dut.identity.model,
                                   firmware=dut.identity.firmware, serial=dut.identity.serial or "", netns=host.netns,
                                   lldp_wait=0.5, dhcp_timeout=6)
                dut.network, dut.netns = wire, host.netns
            async with network:
                try:
                    with step("boot") as s:
                        outcome = await dut.boot(User(prompt="no"))
                        s.record(outcome=outcome.to_json())
                finally:
                    await wire.close()
                entries = attach_capture_evidence(request.node, network, mac=dut.identity.mac)
            with step("check", evidence={"network_entries": len(entries)}):
                leased = wire.lease.address if wire.lease else None
                assert leased is not None, "the device took no DHCP lease"
                assert outcome.source == "dhcp-242", f"the server came from {outcome.source}, not option 242"
                fetched = [r for r in files.requests if r.path == SETTINGS_FILE and r.status == 200]
                assert any(r.client == leased for r in fetched), (
                    f"{SETTINGS_FILE} was not fetched from the leased address {leased}: "
                    f"{[(r.path, r.client, r.status) for r in files.requests]}")
                acks = [e for e in entries if "DHCPACK" in str(e.get("summary", ""))]
                assert acks and option_242 in str(acks[0]), "the capture shows no DHCPACK with option 242"
        finally:
            await files.stop()
