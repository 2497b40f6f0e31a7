"""`enrollab conformance run --target all` (issue 14): one lab file with simulated and physical
devices gives one run and one report, device by device, each device's driver named. Unattended,
the physical phone's tests that need a person end *needs operator* and the rest that cannot reach
it end in *error* with the reason — never pass — while the simulated phones pass."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ENROLLAB = str(Path(sys.executable).with_name("enrollab"))
LAB = """
[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"

[[devices]]
driver = "simulated"
model = "K175"
firmware = "3.0"

[[devices]]
driver = "physical"
name = "desk-1"
model = "J179"
firmware = "4.1.11.0.9"
mac = "A4251B00E001"
ip = "127.0.0.1"
reboot = "manual"
"""


def test_a_mixed_lab_gives_one_report_with_every_device_and_its_driver(tmp_path: Path) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text(LAB)
    report = tmp_path / "report"
    done = subprocess.run([ENROLLAB, "conformance", "run", "--target", "all", "--suite", "device", "--lab", str(lab),
                           "--unattended", "-k", "identifies or codes", "--report-dir", str(report)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]  # incomplete, not green
    doc = json.loads((report / "report.json").read_text())
    assert doc["provenance"]["target"] == "all"
    # Without --jobs a mixed lab runs the bench's shard beside the simulated devices' (issue 14).
    assert sorted(p.name for p in (report / "shards").iterdir()) == ["0", "1"], done.stderr[-2000:]
    drivers = {d["id"].split("#")[0] + "/" + d["driver"] for d in doc["devices"]}
    assert drivers == {"J179@4.1.11.0.9/simulated", "K175@3.0/simulated", "J179@4.1.11.0.9/physical"}
    physical = next(d["id"] for d in doc["devices"] if d["driver"] == "physical")
    outcomes = Counter((t["device"] == physical, t["outcome"]) for t in doc["tests"])
    assert outcomes[(True, "pass")] == 0 and outcomes[(False, "pass")] >= 8
    assert outcomes[(False, "error")] == outcomes[(False, "fail")] == outcomes[(False, "needs_operator")] == 0
    needs = [t for t in doc["tests"] if t["outcome"] == "needs_operator"]
    assert needs and all(t["device"] == physical and "keypad" in (t["reason"] or "") for t in needs), needs
    errors = [t for t in doc["tests"] if t["outcome"] == "error"]
    assert all(t["device"] == physical and "scripted-des-unreachable" in t["message"] for t in errors)
    assert doc["summary"]["needs_operator"] == len(needs)
