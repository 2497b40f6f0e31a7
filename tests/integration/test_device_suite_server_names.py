"""The device suite catches a phone that accepts a wildcard server certificate whatever its
firmware's quirk says (issue 13: such a phone passed the whole suite before
`conformance/device/test_server_names.py`).

Non-conforming simulated phones (`accept_wildcards`, a fault knob) at firmware that must refuse
wildcard certificates — a Vantage below 3.0 and a B199 — run the whole device suite through
`enrollab conformance run`: each fails exactly the two wildcard tests (a wildcard certificate;
a wildcard SAN after an exact common name, `test_wildcard_names.py`), citing PRF-6, and nothing
else; the same models without the knob, and a J179 (which accepts wildcards) with it, pass.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tests.integration.test_device_suite import run_device_suite, write_lab

WILDCARD_TEST = "test_wildcard_certificate_refused_where_the_firmware_refuses"
WILDCARD_SAN_TEST = "test_wildcard_after_an_exact_common_name"
FAILED = {WILDCARD_TEST: ["PRF-6"], WILDCARD_SAN_TEST: ["PRF-6", "ENR-2"]}
DEVICES = [
    ("K165", "1.1SP1", {"accept_wildcards": True}),
    ("B199", "1.0.4.0", {"accept_wildcards": True}),
    ("K165", "1.1SP1", {}),
    ("B199", "1.0.4.0", {}),
    ("J179", "4.1.11.0.9", {"accept_wildcards": True}),  # accepts wildcards anyway: conforming
]


def test_a_phone_that_accepts_wildcards_against_its_firmware_fails_the_wildcard_test(tmp_path: Path) -> None:
    code, doc, output = run_device_suite(tmp_path, write_lab(tmp_path, DEVICES))
    assert code == 1, output
    assert doc["summary"]["error"] == 0, [t["message"] for t in doc["tests"] if t["outcome"] == "error"]
    ids = [d["id"] for d in doc["devices"]]
    failed: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for t in doc["tests"]:
        if t["outcome"] == "fail":
            failed[t["device"]][t["name"]] = t["rules"]
            assert "must refuse" in t["message"], t["message"]
    assert dict(failed) == {ids[0]: FAILED, ids[1]: FAILED}
    passed = {(t["device"], t["name"]) for t in doc["tests"] if t["outcome"] == "pass"}
    assert {(ids[2], WILDCARD_TEST), (ids[3], WILDCARD_TEST)} <= passed
    assert (ids[4], "test_wildcard_certificate_accepted_where_the_firmware_accepts") in passed
    assert {(ids[2], WILDCARD_SAN_TEST), (ids[3], WILDCARD_SAN_TEST), (ids[4], WILDCARD_SAN_TEST)} <= passed
    # Negative checks name no feature: the device x feature matrix is untouched by the failure.
    assert "fail" not in {cell for row in doc["matrix"].values() for cell in row.values()}
    assert doc["rules"]["PRF-6"]["fail"] == 4
