"""The device conformance suite (`conformance/device/`) tested as a whole, through
`enrollab conformance run --suite device` in a subprocess:

- over simulated devices on both sides of Appendix A's minimums, the report's device x feature
  matrix is Appendix A's pass / not-applicable pattern exactly (a cell passes iff
  `FeatureMatrix.supports`), nothing fails or errors, every test of the suite passes somewhere,
  and cells pass through a behavioural test except where the suite declares the feature
  unobservable (the conformance statement);
- it can fail: non-conforming simulated devices (fault knobs) fail exactly the tests that watch
  what they break, citing the rules they break.

The full `fixtures/labs/appendix-a.toml` run (101 devices, about 3,600 tests, 80-90 s) is the
slow tier; the default tier runs a representative dozen devices that still meets every test.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import fixtures
from conformance.device.observability import observable
from fixtures.features import FeatureMatrix
from harness.lab import load_lab
from harness.report import load_report
from simulators.mix import boundary_mix

APPENDIX_A_LAB = fixtures.path("labs/appendix-a.toml")
SUITE = Path(__file__).resolve().parents[2] / "conformance" / "device"
STATEMENT = "test_conformance_statement"

# Every kind of column: J100 at the latest and below the minimums, a J139 below its "Provisioning
# URLs" minimum (DES as provisioning server declared), Vantage around 1.1 SP1 and HW-3, B199
# with and without its features, CU360.
REPRESENTATIVE = [
    ("J179", "4.1.11.0.9"), ("J129", "1.5"), ("J129", "2.0"), ("J139", "2.0"), ("K155", "1.1SP1"),
    ("K165", "1.1"), ("K165", "1.1SP1"), ("K175-HW3", "3.0"), ("B199", "1.0.0"), ("B199", "1.0.4.0"),
    ("CU360", "11.3.0.40"),
]


def write_lab(where: Path, devices: Iterable[tuple[str, str, dict[str, Any]]]) -> Path:
    lines = ["[server]", "embedded = true", "", "[options]", "seed = 3", ""]
    for model, firmware, faults in devices:
        lines += ["[[devices]]", 'driver = "simulated"', f'model = "{model}"', f'firmware = "{firmware}"']
        if faults:
            lines.append("[devices.faults]")
            lines += [f"{key} = {_toml(value)}" for key, value in faults.items()]
        lines.append("")
    path = where / "lab.toml"
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def run_device_suite(cwd: Path, lab: Path, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "conformance", "run", "--target", "sim", "--suite", "device",
         "--lab", str(lab), "--report-dir", "reports"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ENROLLAB_PASSWORD_HASH": "test"},
    )
    report = cwd / "reports" / "report.json"
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode, load_report(report), done.stdout[-3000:] + done.stderr[-3000:]


def assert_appendix_a(doc: dict[str, Any]) -> None:
    """The matrix is Appendix A's pattern; nothing failed or errored; each test passed somewhere;
    pass cells come from behavioural tests except the declared, unobservable ones."""
    matrix = FeatureMatrix.load()
    devices = {d["id"]: d for d in doc["devices"]}
    assert {f["id"] for f in doc["features"]} == set(matrix.features)
    expected = {
        device: {
            fid: "pass" if matrix.supports(d["model"], d["firmware"], fid) else "not_applicable"
            for fid in matrix.features
        }
        for device, d in devices.items()
    }
    wrong = [(device, fid, row[fid], expected[device][fid]) for device, row in doc["matrix"].items()
             for fid in row if row[fid] != expected[device][fid]]
    assert wrong == [], f"{len(wrong)} cells differ from Appendix A (device, feature, got, expected): {wrong[:10]}"
    assert set(doc["matrix"]) == set(devices)
    broken = [(t["id"], t["outcome"], t["message"]) for t in doc["tests"] if t["outcome"] in ("fail", "error")]
    assert broken == []
    assert doc["summary"]["fail"] == doc["summary"]["error"] == 0

    passed_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for t in doc["tests"]:
        if t["outcome"] == "pass" and t["feature"] is not None:
            passed_by[(t["device"], t["feature"])].add(t["name"])
    for (device, fid), names in passed_by.items():
        supports = functools.partial(matrix.supports, devices[device]["model"], devices[device]["firmware"])
        behaviour = names - {STATEMENT}
        if observable(supports, fid):
            assert behaviour, f"{device} {fid}: observable, yet only the conformance statement passed"
        else:
            assert names == {STATEMENT}, f"{device} {fid}: declared unobservable, yet {behaviour} passed"
    for t in doc["tests"]:
        if t["outcome"] == "not_applicable":
            assert t["reason"], t["id"]


def negative_checks() -> set[str]:
    """The suite's tests marked `lacks_feature` (read from the source, without importing it)."""
    found = set()
    for path in sorted(SUITE.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and any(
                "lacks_feature" in ast.unparse(d) for d in node.decorator_list
            ):
                found.add(node.name)
    return found


def every_test_passed_somewhere(doc: dict[str, Any]) -> None:
    names = {t["name"] for t in doc["tests"]}
    passed = {t["name"] for t in doc["tests"] if t["outcome"] == "pass"}
    assert names - passed == set(), "tests that never passed on these devices (dead or untested)"
    statements = {t["feature"] for t in doc["tests"] if t["name"] == STATEMENT and t["outcome"] == "pass"}
    assert statements == {t["feature"] for t in doc["tests"] if t["name"] == STATEMENT}


def test_the_appendix_a_lab_is_the_boundary_mix() -> None:
    """fixtures/labs/appendix-a.toml lists exactly `boundary_mix(1)`'s model@firmware pairs."""
    lab = load_lab(APPENDIX_A_LAB)
    assert [(d.model, d.firmware) for d in lab.devices] == [(g.model, g.firmware) for g in boundary_mix(1)]
    assert {d.driver for d in lab.devices} == {"simulated"} and lab.server.embedded


def test_the_device_suite_shows_appendix_a_on_representative_devices(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, [(m, f, {}) for m, f in REPRESENTATIVE])
    code, doc, output = run_device_suite(tmp_path, lab)
    assert code == 0, output
    assert_appendix_a(doc)
    every_test_passed_somewhere(doc)
    assert doc["provenance"]["suites"] == ["device"]
    assert all(t["suite"] == "device" for t in doc["tests"])
    assert "ACO-1" in {r["rule"] for r in doc["unobservable_rules"]}
    # Negative checks name no feature, so they never touch the matrix.
    negatives = [t for t in doc["tests"] if t["name"] in negative_checks()]
    assert negatives and all(t["feature"] is None for t in negatives)
    # Tests against the scripted enrollment server carry its exchanges as evidence.
    est_test = "test_identity_certificate_enrolled_by_est"
    est = [t for t in doc["tests"] if t["name"] == est_test and t["outcome"] == "pass"]
    assert est and all(
        any(e.get("url", "").endswith("/device/v1/enroll") for e in t["evidence"]["http"]) for t in est
    ), est[:1]


@pytest.mark.slow
def test_the_device_suite_over_the_appendix_a_lab_is_appendix_a(tmp_path: Path) -> None:
    """Every simulated model at versions on both sides of each minimum (101 devices)."""
    code, doc, output = run_device_suite(tmp_path, APPENDIX_A_LAB, timeout=1500)
    assert code == 0, output
    assert len(doc["devices"]) == len(boundary_mix(1))
    assert_appendix_a(doc)
    every_test_passed_somewhere(doc)


# Non-conforming devices: (model, firmware, faults) -> the tests they must fail, with their rules.
FIRMWARE_TESTS: dict[tuple[str, str | None], list[str]] = {
    ("test_upgrade_installs_the_named_image", None): ["FW-2", "FW-4"],
    ("test_discovery_runs_again_after_the_upgrade", None): ["FW-6"],
    ("test_selected_previous_release_is_installed", None): ["SIT-3", "FW-3"],
}
NON_CONFORMING: list[tuple[str, str, dict[str, Any], dict[tuple[str, str | None], list[str]]]] = [
    # Declares "Device group ID" and keeps GROUP 0.
    ("J179", "4.1.11.0.9", {"ignore_group": True},
     {("test_group_from_enrollment_selects_the_settings", None): ["ENR-2", "PRF-1"]}),
    # A K165 at 1.1 (no "HTTP provisioning URL") that follows an HTTP URL anyway.
    ("K165", "1.1", {"ignore_http_refusal": True},
     {("test_http_url_refused_without_the_feature", None): ["ENR-4"]}),
    # Every image arrives with a flipped bit: nothing installs, so nothing re-triggers either.
    ("J179", "4.0.6.0", {"corrupt_firmware": True}, FIRMWARE_TESTS),
    # Says it runs 3.0: its identity (and the ACO statement resting on it) is wrong, and so is
    # every version it reports after an upgrade.
    ("J179", "4.1.11.0.9", {"report_firmware": "3.0"},
     {("test_enrollment_request_identifies_the_device", None): ["ENR-1"],
      (STATEMENT, "avaya-cloud-office-support"): ["ENR-1"],
      **FIRMWARE_TESTS}),
]


def test_non_conforming_devices_fail_the_right_tests_with_the_right_rules(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, [(m, f, faults) for m, f, faults, _ in NON_CONFORMING])
    code, doc, output = run_device_suite(tmp_path, lab)
    assert code == 1, output
    assert doc["summary"]["error"] == 0, [t["message"] for t in doc["tests"] if t["outcome"] == "error"]
    ids = [d["id"] for d in doc["devices"]]  # in the lab's order
    failed: dict[str, dict[tuple[str, str | None], list[str]]] = defaultdict(dict)
    for t in doc["tests"]:
        if t["outcome"] == "fail":
            key = (t["name"], t["feature"] if t["name"] == STATEMENT else None)
            failed[t["device"]][key] = t["rules"]
            assert t["message"], t["id"]
    for device, (model, firmware, faults, expected) in zip(ids, NON_CONFORMING, strict=True):
        assert device.startswith(f"{model}@{firmware}#")
        assert failed[device] == expected, f"{device} with {faults}"
    # A failing behavioural test marks its feature's cell failed; negative checks mark none.
    assert doc["matrix"][ids[0]]["device-group-id"] == "fail"
    assert doc["matrix"][ids[2]]["firmware-upgrade"] == "fail"
    assert doc["matrix"][ids[3]]["avaya-cloud-office-support"] == "fail"
    assert doc["matrix"][ids[1]]["http-provisioning-url"] == "not_applicable"
    assert doc["rules"]["ENR-4"]["fail"] == 1 and doc["rules"]["FW-6"]["fail"] == 2
