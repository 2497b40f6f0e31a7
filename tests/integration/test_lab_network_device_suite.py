"""Issue 12: the device suite passes over the real network path for J179, K175 and B199.

`enrollab conformance run --suite device --lab fixtures/labs/example-network.toml` (`[options]
network_path = "namespaces"`): every device boots in a namespace of its own on a lab bridge,
takes its lease from the harness's DHCP responder, hears its LLDP advertiser, and reaches the
servers on the lab address (`harness.lab_network.path`). The run must end with nothing failed,
every device must have passed tests, and the report must carry what the capture saw: each device's
DHCPACK for its leased address, the option 242 a discovery test declared, TLS from the leased
address; the pcaps stay in `<report-dir>/network/`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fixtures
from harness.lab_network.netns import sweep
from simulators.capabilities import Capabilities
from tests.lab_tiers import need_netns

pytestmark = pytest.mark.timeout(600)

LAB = fixtures.path("labs/example-network.toml")
DEVICES = ("J179@4.1.11.0.9", "K175@3.0", "B199@1.0.3.0")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    need_netns()
    out = tmp_path_factory.mktemp("wire-run")
    enrollab = str(Path(sys.executable).with_name("enrollab"))
    try:
        done = subprocess.run(  # noqa: S603
            [enrollab, "conformance", "run", "--target", "sim", "--suite", "device", "--lab", str(LAB),
             "--report-dir", str(out)], capture_output=True, text=True, timeout=540, check=False)
    finally:
        sweep("enrollab-c")  # whatever happened, no namespace of the run is left behind
    report = json.loads((out / "report.json").read_text())
    return done, report, out


def _of(report: dict[str, Any], device: str) -> list[dict[str, Any]]:
    return [t for t in report["tests"] if f"[{device}#" in t["id"]]


def test_the_device_suite_passes_on_the_wire(run: tuple[Any, dict[str, Any], Path]) -> None:
    done, report, _ = run
    bad = [(t["id"], t["outcome"], t["message"]) for t in report["tests"] if t["outcome"] in ("fail", "error")]
    assert done.returncode == 0 and not bad, (done.stdout[-2000:], done.stderr[-2000:], bad)
    for device in DEVICES:
        passed = [t for t in _of(report, device) if t["outcome"] == "pass"]
        assert len(passed) >= 15, f"{device}: only {len(passed)} tests passed"


def test_every_boot_is_in_the_evidence(run: tuple[Any, dict[str, Any], Path]) -> None:
    _, report, out = run
    for device in DEVICES:
        booted = [t for t in _of(report, device) if t["outcome"] == "pass" and t["evidence"]["events"]]
        for test in booted:
            summaries = [str(e.get("summary", "")) for e in test["evidence"]["network"]]
            assert any(s.startswith("DHCPACK 10.213.0.") for s in summaries), (test["id"], summaries[:6])
    pcaps = list((out / "network").glob("*.pcap"))
    assert len(pcaps) >= 3 * 15, f"{len(pcaps)} captures kept beside the report"


def test_a_declared_option_242_is_what_the_wire_carried(run: tuple[Any, dict[str, Any], Path]) -> None:
    _, report, _ = run
    des_stat = [t for t in report["tests"] if "test_des_stat_3_forces_des" in t["id"]]
    assert len(des_stat) == len(DEVICES)
    for test in des_stat:
        summaries = [str(e.get("summary", "")) for e in test["evidence"]["network"]]
        assert any("DHCPACK" in s and 'option 242 = "DES_STAT=3"' in s for s in summaries), summaries[:6]
        to_des = any(s.startswith("TLS ClientHello from 10.213.0.") and "SNI des.enrollab.test" in s
                     for s in summaries)
        # DES_STAT=3 forces DES only where the firmware has it; elsewhere it acts as 2 and the prompt
        # answered No asks nobody (research §11).
        model, firmware = test["id"].rsplit("[", 1)[1].split("#")[0].split("@")
        assert to_des == Capabilities.load().can_force_des(model, firmware), (test["id"], summaries)


def test_the_server_suite_is_refused_on_this_path(tmp_path: Path) -> None:
    enrollab = str(Path(sys.executable).with_name("enrollab"))
    done = subprocess.run(  # noqa: S603
        [enrollab, "conformance", "run", "--target", "sim", "--suite", "server", "--lab", str(LAB),
         "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "device suite only" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
