"""The enrollab pytest plugin (harness.pytest_plugin) on small throwaway test files, each run by
pytest in a subprocess: the four outcomes kept apart, declared steps, the feature marker's
not-applicable reason, report.json with provenance, junit.xml telling the outcomes apart — and
a run without the plugin's options left alone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

import fixtures
from harness.report import validate_report
from simulators.capabilities import Capabilities

LAB = """\
[server]
embedded = true

[options]
seed = 7

[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"

[[devices]]
driver = "simulated"
model = "B199"
firmware = "1.0.1"
"""

TESTS = '''
import pytest

from harness.errors import HarnessError
from harness.outcomes import not_applicable


@pytest.mark.rule("ENR-4", "EC-1")
@pytest.mark.steps("arrange", "check")
def test_pass(step):
    with step("arrange", evidence={"raw": b"bytes"}) as s:
        s.record(count=2)
    with step("check"):
        assert 1 + 1 == 2


@pytest.mark.rule("EC-3")
@pytest.mark.steps("count")
def test_fail(step):
    with step("count"):
        assert 1 == 2, "the server enrolled one device more"


@pytest.mark.rule("EC-3")
def test_harness_error():
    raise HarnessError("file-server-down", "the provisioning file server is down")


def test_other_exception_is_an_error():
    raise KeyError("no such thing")


@pytest.fixture
def broken_lab():
    raise RuntimeError("no route to the lab network")


def test_fixture_error(broken_lab):
    pass


@pytest.mark.steps("arrange", "enroll", "check")
def test_missing_steps(step):
    with step("arrange"):
        pass


@pytest.mark.steps("arrange")
def test_undeclared_step(step):
    with step("arange"):
        pass


def test_silent_skip():
    pytest.skip("later")


@pytest.mark.rule("EC-1")
@pytest.mark.feature("12-digit numeric enrollment code")
@pytest.mark.steps("check")
def test_feature(dut, step):
    with step("check", evidence={"device": dut.id}):
        assert dut.supports("12-digit-numeric-enrollment-code")


async def test_found_not_applicable(dut, enrollment_server):
    assert enrollment_server.name == "enrollab"
    not_applicable(f"{dut.identity.model} told so")


@pytest.mark.rule("ENR 4")
def test_bad_rule_marker():
    pass
'''

EXPECTED = {
    "test_pass": "pass",
    "test_fail": "fail",
    "test_harness_error": "error",
    "test_other_exception_is_an_error": "error",
    "test_fixture_error": "error",
    "test_missing_steps": "error",
    "test_undeclared_step": "error",
    "test_silent_skip": "error",
    "test_bad_rule_marker": "error",
}


def run_pytest(where: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # faker's and hypothesis's plugins cost seconds of imports per run and play no part here
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:faker", "-p", "no:hypothesispytest",
         "-o", "asyncio_default_fixture_loop_scope=function", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def by_name(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for test in doc["tests"]:
        out.setdefault(test["name"], []).append(test)
    return out


def test_outcomes_steps_not_applicable_and_the_record(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(LAB)
    (tmp_path / "test_demo.py").write_text(TESTS)
    done = run_pytest(tmp_path, "test_demo.py", "--target=sim", "--lab=lab.toml", "--report-dir=out")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "enrollab conformance" in done.stdout

    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(doc)
    assert (tmp_path / "out" / "report.html").is_file()
    tests = by_name(doc)
    for name, outcome in EXPECTED.items():
        assert [t["outcome"] for t in tests[name]] == [outcome], (name, tests[name])
    assert doc["summary"] == {"pass": 2, "fail": 1, "error": 7, "needs_operator": 0, "not_applicable": 3,
                             "total": 13}

    # fail vs error: an assertion is the DUT's fault; a harness error, a fixture, a missing step are not
    assert tests["test_fail"][0]["message"].startswith("AssertionError: the server enrolled one device more")
    assert tests["test_fail"][0]["steps"][0]["outcome"] == "fail"
    assert "file-server-down: the provisioning file server is down" in tests["test_harness_error"][0]["message"]
    assert "no route to the lab network" in tests["test_fixture_error"][0]["message"]
    assert "['enroll', 'check']" in tests["test_missing_steps"][0]["message"]
    assert tests["test_missing_steps"][0]["declared_steps"] == ["arrange", "enroll", "check"]
    assert "undeclared-step" in tests["test_undeclared_step"][0]["message"]
    assert "never skips silently" in tests["test_silent_skip"][0]["message"]
    assert "'ENR 4' is not a SPEC rule id" in tests["test_bad_rule_marker"][0]["message"]

    # steps and their evidence
    passed = tests["test_pass"][0]
    assert [(s["name"], s["outcome"]) for s in passed["steps"]] == [("arrange", "pass"), ("check", "pass")]
    assert passed["steps"][0]["evidence"] == {"raw": "bytes", "count": 2}
    assert passed["rules"] == ["ENR-4", "EC-1"] and passed["suite"] == "server" and passed["device"] is None

    # the feature marker: pass on J179, not applicable on B199 1.0.1 with Appendix A's reason
    lab = {d["model"]: d for d in doc["devices"]}
    j179, b199 = lab["J179"]["id"], lab["B199"]["id"]
    feature = {t["device"]: t for t in tests["test_feature"]}
    assert feature[j179]["outcome"] == "pass" and feature[j179]["suite"] == "device"
    reason = Capabilities.load().explain("B199", "1.0.1", "12-digit numeric enrollment code")
    assert reason.startswith("B199 1.0.1: 12-digit numeric enrollment code not supported")
    assert feature[b199]["outcome"] == "not_applicable" and feature[b199]["reason"] == reason
    assert feature[b199]["feature"] == "12-digit-numeric-enrollment-code"
    assert doc["matrix"] == {j179: {"12-digit-numeric-enrollment-code": "pass"},
                             b199: {"12-digit-numeric-enrollment-code": "not_applicable"}}
    assert doc["rules"]["EC-1"] == {"pass": 2, "fail": 0, "error": 0, "needs_operator": 0, "not_applicable": 1}
    assert doc["rules"]["EC-3"] == {"pass": 0, "fail": 1, "error": 1, "needs_operator": 0, "not_applicable": 0}
    assert {t["reason"] for t in tests["test_found_not_applicable"]} == {"J179 told so", "B199 told so"}
    assert [e["event"] for e in feature[j179]["evidence"]["events"]] == ["factory-reset"]

    # provenance
    prov = doc["provenance"]
    assert prov["project"] == "enrollab" and prov["version"] == metadata.version("enrollab")
    assert prov["lab_file"] == "lab.toml"
    assert prov["lab_digest"] == "sha256:" + hashlib.sha256(LAB.encode()).hexdigest()
    assert prov["seed"] == 7 and prov["target"] == "sim" and prov["suites"] == ["server", "device"]
    assert prov["git_sha"] is None or len(prov["git_sha"].removesuffix("-dirty")) == 40
    assert prov["server"]["name"] == "enrollab" and prov["server"]["embedded"] is True
    assert prov["server"]["version"] == metadata.version("enrollab")
    assert prov["server"]["url"].startswith("http://127.0.0.1:")
    assert {(d["model"], d["firmware"], d["driver"]) for d in doc["devices"]} == {
        ("J179", "4.1.11.0.9", "simulated"), ("B199", "1.0.1", "simulated")
    }
    assert all(len(d["mac"]) == 12 and d["id"].endswith("#" + d["mac"]) for d in doc["devices"])

    # junit.xml: fail is a failure, error an error, not applicable a skip with the reason
    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["test_fail"].find("failure") is not None and cases["test_fail"].find("error") is None
    for name in ("test_harness_error", "test_other_exception_is_an_error", "test_missing_steps", "test_silent_skip",
                 "test_fixture_error"):
        assert cases[name].find("error") is not None and cases[name].find("failure") is None, name
    skipped = cases[f"test_feature[{b199}]"].find("skipped")
    assert skipped is not None and skipped.get("message") == "not applicable: " + reason
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "7", "3")
    props = {p.get("name"): p.get("value") for p in suite.iter("property") if p.get("name", "").startswith("enrollab.")}
    assert props["enrollab.lab_digest"] == prov["lab_digest"] and props["enrollab.seed"] == "7"
    assert props[f"enrollab.device.{j179}"].startswith("J179 4.1.11.0.9 ")


def test_on_the_lab_target_an_unreachable_server_makes_the_tests_errors(tmp_path: Path) -> None:
    (tmp_path / "test_lab.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.feature('12-digit numeric enrollment code')\n"
        "def test_device(dut):\n    pass\n\n"
        "def test_server(enrollment_server):\n    pass\n"
    )
    lab = fixtures.path("labs/example-lab.toml")
    done = run_pytest(tmp_path, "test_lab.py", "--target=lab", f"--lab={lab}", "--server=http://127.0.0.1:9",
                      "--report-dir=out", env={"ENROLLAB_ADMIN_PASSWORD": "x"})
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(doc)
    outcomes = {(t["name"], t["device"]): (t["outcome"], t["message"] or t["reason"]) for t in doc["tests"]}
    j179 = "J179@4.1.11.0.9#A4251B0C3D5E"
    outcome, message = outcomes[("test_device", j179)]
    assert outcome == "error" and "server-unreachable" in message  # a physical driver observes through the server
    outcome, reason = outcomes[("test_device", "B199@1.0.3.0#A4251B0C3D60")]
    assert outcome == "not_applicable" and reason.startswith("B199 1.0.3.0: 12-digit numeric enrollment code")
    outcome, message = outcomes[("test_server", None)]
    assert outcome == "error" and "server-unreachable" in message
    assert doc["provenance"]["target"] == "lab"
    assert doc["provenance"]["server"]["url"] == "http://127.0.0.1:9"
    assert doc["provenance"]["server"]["embedded"] is False


def test_a_lab_without_devices_for_the_target_is_an_error_not_a_skip(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_device(dut):\n    pass\n")
    done = run_pytest(tmp_path, "test_x.py", "--target=lab", "--report-dir=out")
    assert done.returncode == 1, done.stdout + done.stderr
    (test,) = json.loads((tmp_path / "out" / "report.json").read_text())["tests"]
    assert test["outcome"] == "error" and "lists no physical devices" in test["message"]


def test_without_the_options_the_plugin_stays_out_of_the_way(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.rule('EC-3')\n@pytest.mark.feature('Firmware upgrade')\n@pytest.mark.steps('a')\n"
        "def test_marked():\n    pass\n\n"
        "def test_skip():\n    pytest.skip('later')\n\n"
        "def test_dut(dut):\n    pass\n"
    )
    done = run_pytest(tmp_path, "test_plain.py", "-W", "error::pytest.PytestUnknownMarkWarning", "-rA")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 skipped, 1 error" in done.stdout
    assert "SKIPPED [1] test_plain.py:10: later" in done.stdout
    assert "not-a-conformance-run" in done.stdout and "--target sim|lab" in done.stdout
    assert "= enrollab conformance =" not in done.stdout
    assert not (tmp_path / "out").exists()


def test_a_bad_lab_file_stops_the_run_naming_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.x"\n')
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = run_pytest(tmp_path, "test_x.py", "--target=sim", "--lab=lab.toml")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "lab.toml:4: devices[0].firmware: '4.x' is not a firmware version" in done.stderr


ARRANGED = '''
import pytest

from harness.dut import OutcomeResult, User
from harness.observers import FileServerObserver


async def boot_from(dut, arrange, files, url, step, audit_log=None):
    with step("arrange", evidence={"url": url}) as s:
        arrangement = await arrange.zero_touch(dut, url, group=3)
        s.record(site=arrangement.site_id, provider=arrangement.service_provider_id)
    with step("boot") as s:
        outcome = await dut.boot(User(prompt="yes"))
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        s.record(files=FileServerObserver(files).since(device=dut))
        if audit_log is not None:
            s.record(audit=await audit_log.since(mac=dut.identity.mac, process="ENROLLMENT"))
        assert outcome.result == OutcomeResult.PROVISIONED, (outcome.result, outcome.reason)
        assert outcome.group == 3


@pytest.mark.rule("ENR-2", "ENR-5")
@pytest.mark.feature("HTTPS provisioning URL")
@pytest.mark.steps("arrange", "boot", "check")
async def test_https(dut, arrange, file_server, audit_log, step):
    files = await file_server(cert_mode="public")
    await boot_from(dut, arrange, files, files.https_url, step, audit_log)


@pytest.mark.rule("ENR-2")
@pytest.mark.feature("HTTP provisioning URL")
@pytest.mark.steps("arrange", "boot", "check")
async def test_http_again(dut, arrange, file_server, step):
    files = await file_server()
    await boot_from(dut, arrange, files, files.http_url, step)
'''


def test_arrange_boot_and_observe_a_simulated_device_twice(tmp_path: Path) -> None:
    """The fixtures a device suite builds on, against the reference server: zero-touch arrangement
    (the second test takes the device back from the first one's provider), the file server and
    the audit log as evidence, the device's events."""
    (tmp_path / "lab.toml").write_text(
        '[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\nmac = "A4251B0000AA"\n'
    )
    (tmp_path / "test_arranged.py").write_text(ARRANGED)
    done = run_pytest(tmp_path, "test_arranged.py", "--target=sim", "--lab=lab.toml", "--report-dir=out")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(doc)
    https, http = doc["tests"]
    assert (https["outcome"], http["outcome"]) == ("pass", "pass")
    assert https["device"] == http["device"] == "J179@4.1.11.0.9#A4251B0000AA"
    assert https["steps"][0]["evidence"]["provider"] != http["steps"][0]["evidence"]["provider"]

    check = https["steps"][2]["evidence"]
    (enrollment,) = check["audit"]
    assert (enrollment["who"], enrollment["method"], enrollment["status"]) == ("device-api", "POST", 200)
    assert enrollment["url"].endswith("/device/v1/enroll") and "A4251B0000AA" in enrollment["audit"]["message"]
    assert [r["path"] for r in check["files"] if r["status"] == 200] == ["J100Supgrade.txt", "46xxsettings.txt"]
    assert all(r["url"].startswith("https://files.enrollab.test:") for r in check["files"])
    assert {e["who"] for e in https["evidence"]["http"]} == {"file-server"}
    assert {e["url"].split(":")[0] for e in http["evidence"]["http"]} == {"http"}
    events = [e["event"] for e in https["evidence"]["events"]]
    assert events[0] == "factory-reset" and events[1] == "power-on" and events[-1] == "outcome"
    assert "group-applied" in events
    assert doc["matrix"]["J179@4.1.11.0.9#A4251B0000AA"] == {"https-provisioning-url": "pass",
                                                              "http-provisioning-url": "pass"}


# -- needs operator (issue 14) ------------------------------------------------------------------------

OPERATOR_LAB = """\
[server]
embedded = true

[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"
mac = "A4251B0000B1"

[[devices]]
driver = "physical"
model = "J179"
firmware = "4.1.11.0.9"
mac = "A4:25:1B:0C:3D:5E"
ip = "192.0.2.21"
reboot = "manual"

[[devices]]
driver = "physical"
model = "B199"
firmware = "1.0.1"
mac = "B0:AD:AA:0C:3D:60"
ip = "192.0.2.22"
reboot = "manual"
"""

# A suite's conftest deciding not-applicable in its own set-up hook (as conformance/device/conftest.py
# does): that decision comes before the operator marker's.
OPERATOR_CONFTEST = '''
import pytest

from harness.outcomes import not_applicable


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_lacks: the bench has no such thing")


def pytest_runtest_setup(item):
    if item.get_closest_marker("bench_lacks") is not None:
        not_applicable("this bench has no second phone line")
'''

OPERATOR_TESTS = '''
import pytest

from harness.errors import NeedsOperator


@pytest.fixture
def dut(request):
    """The lab's device spec itself: no driver is bound (these tests are about outcomes)."""
    return request.param


@pytest.fixture
def keypad():
    raise NeedsOperator("type 40172635 on the keypad of the phone")


@pytest.mark.rule("ENR-3")
def test_passes():
    pass


@pytest.mark.rule("ENR-3")
@pytest.mark.steps("reboot", "check")
def test_body_needs_operator(step):
    with step("reboot"):
        raise NeedsOperator("power-cycle the phone by hand")


def test_fixture_needs_operator(keypad):
    pass


@pytest.mark.rule("EC-1")
@pytest.mark.feature("8-digit numeric enrollment code")
@pytest.mark.operator("type the enrollment code on the keypad")
def test_marked(dut):
    assert dut.model in ("J179", "B199")


@pytest.mark.feature("12-digit numeric enrollment code")
@pytest.mark.operator("answer Yes at the auto-provisioning prompt")
def test_marked_not_applicable_by_feature(dut):
    pass


@pytest.mark.bench_lacks
@pytest.mark.operator("answer Yes at the auto-provisioning prompt")
def test_marked_not_applicable_by_conftest(dut):
    pass
'''


def _operator_run(tmp_path: Path, target: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    (tmp_path / "lab.toml").write_text(OPERATOR_LAB)
    (tmp_path / "conftest.py").write_text(OPERATOR_CONFTEST)
    (tmp_path / "test_operator.py").write_text(OPERATOR_TESTS)
    out = f"out-{target}"
    done = run_pytest(tmp_path, "test_operator.py", f"--target={target}", "--lab=lab.toml", f"--report-dir={out}",
                      *extra)
    doc = json.loads((tmp_path / out / "report.json").read_text())
    validate_report(doc)
    return done, doc


def test_needs_operator_is_a_fifth_outcome_in_report_junit_html_and_summary(tmp_path: Path) -> None:
    """Unattended, on physical phones: NeedsOperator in a body (in a step), in a fixture's set-up,
    and the operator marker end *needs operator* with what the person would have done — never pass,
    never error — while a not-applicable decision still wins and a plain test still passes."""
    done, doc = _operator_run(tmp_path, "lab", "--enrollab-unattended")
    assert done.returncode == 1, done.stdout + done.stderr  # nothing failed, and still not green
    j179, b199 = "J179@4.1.11.0.9#A4251B0C3D5E", "B199@1.0.1#B0ADAA0C3D60"
    outcomes = {(t["name"], t["device"]): (t["outcome"], t["reason"], t["message"]) for t in doc["tests"]}
    assert outcomes == {
        ("test_passes", None): ("pass", None, None),
        ("test_body_needs_operator", None): ("needs_operator", "power-cycle the phone by hand", None),
        ("test_fixture_needs_operator", None): ("needs_operator", "type 40172635 on the keypad of the phone", None),
        ("test_marked", j179): ("needs_operator", "type the enrollment code on the keypad", None),
        ("test_marked", b199): ("needs_operator", "type the enrollment code on the keypad", None),
        ("test_marked_not_applicable_by_feature", j179): (
            "needs_operator", "answer Yes at the auto-provisioning prompt", None),
        ("test_marked_not_applicable_by_feature", b199): (
            "not_applicable", Capabilities.load().explain("B199", "1.0.1", "12-digit numeric enrollment code"), None),
        ("test_marked_not_applicable_by_conftest", j179): (
            "not_applicable", "this bench has no second phone line", None),
        ("test_marked_not_applicable_by_conftest", b199): (
            "not_applicable", "this bench has no second phone line", None),
    }
    assert doc["summary"] == {"pass": 1, "fail": 0, "error": 0, "needs_operator": 5, "not_applicable": 3, "total": 9}
    assert doc["rules"]["ENR-3"] == {"pass": 1, "fail": 0, "error": 0, "needs_operator": 1, "not_applicable": 0}
    assert doc["matrix"][j179]["8-digit-numeric-enrollment-code"] == "needs_operator"
    assert doc["matrix"][b199]["12-digit-numeric-enrollment-code"] == "not_applicable"
    body = next(t for t in doc["tests"] if t["name"] == "test_body_needs_operator")
    assert [(s["name"], s["outcome"]) for s in body["steps"]] == [("reboot", "needs_operator")]
    assert "traceback" not in body

    # the terminal: pytest's own line and the enrollab summary count it and say what to do
    assert "1 passed, 3 skipped, 5 needs operator" in done.stdout, done.stdout
    assert "1 pass, 0 fail, 0 error, 5 needs operator, 3 not applicable (9 tests; target lab" in done.stdout
    assert f"needs operator: test_operator.py::test_marked[{j179}]: type the enrollment code on the keypad" \
        in done.stdout

    # junit.xml: skipped with the reason, never a failure or an error
    suite = ET.parse(tmp_path / "out-lab" / "junit.xml").getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    for name, reason in (("test_body_needs_operator", "power-cycle the phone by hand"),
                         ("test_fixture_needs_operator", "type 40172635 on the keypad of the phone"),
                         (f"test_marked[{j179}]", "type the enrollment code on the keypad")):
        skipped = cases[name].find("skipped")
        assert skipped is not None and skipped.get("message") == f"needs operator: {reason}", name
        assert cases[name].find("failure") is None and cases[name].find("error") is None, name
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "8")
    props = {p.get("name"): p.get("value") for p in suite.iter("property") if p.get("name", "").startswith("enrollab.")}
    assert props["enrollab.summary"] == "1 pass, 0 fail, 0 error, 5 needs_operator, 3 not_applicable"

    # report.html: its own count, section with the reason, verdict not "passed"
    page = (tmp_path / "out-lab" / "report.html").read_text()
    assert '<div class="count needs_operator" data-outcome="needs_operator"><b>5</b>needs operator</div>' in page
    section = page.split('<section id="needs-operator">')[1].split("</section>")[0]
    assert section.count('<article class="problem needs_operator"') == 5
    assert "type 40172635 on the keypad of the phone" in section and "power-cycle the phone by hand" in section
    assert 'id="verdict">incomplete<' in page


def test_the_operator_marker_leaves_simulated_devices_alone(tmp_path: Path) -> None:
    done, doc = _operator_run(tmp_path, "sim", "--enrollab-unattended")
    marked = [t for t in doc["tests"] if t["name"] == "test_marked"]
    assert [(t["device"], t["outcome"]) for t in marked] == [("J179@4.1.11.0.9#A4251B0000B1", "pass")]
    assert doc["summary"]["needs_operator"] == 2  # the NeedsOperator raised in a body and in a fixture
    assert done.returncode == 1, done.stdout + done.stderr


def test_attended_the_operator_marker_does_nothing_at_set_up(tmp_path: Path) -> None:
    """On a terminal, without --enrollab-unattended: the marked test runs (its driver would prompt)."""
    import pexpect

    (tmp_path / "lab.toml").write_text(OPERATOR_LAB)
    (tmp_path / "conftest.py").write_text(OPERATOR_CONFTEST)
    (tmp_path / "test_operator.py").write_text(OPERATOR_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "ENROLLAB_NO_OPERATOR"}
    child = pexpect.spawn(sys.executable, ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:faker", "-p",
                                           "no:hypothesispytest", "-o", "asyncio_default_fixture_loop_scope=function",
                                           "test_operator.py", "-k", "test_marked and not not_applicable",
                                           "--target=lab", "--lab=lab.toml", "--report-dir=out"],
                          cwd=str(tmp_path), env=env, encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(t["name"], t["outcome"]) for t in doc["tests"]] == [("test_marked", "pass"), ("test_marked", "pass")]
    assert child.exitstatus == 0, child.before


def test_unattended_on_a_terminal_the_physical_driver_asks_nobody(tmp_path: Path) -> None:
    """--enrollab-unattended reaches the PhysicalDevice (its bench is unattended) even where a terminal
    is there to ask on: a phone rebooted by hand (reboot = "manual") ends the test needs operator."""
    import pexpect

    (tmp_path / "lab.toml").write_text(OPERATOR_LAB)
    (tmp_path / "test_boot.py").write_text("async def test_boot(dut):\n    await dut.boot()\n")
    env = {k: v for k, v in os.environ.items() if k != "ENROLLAB_NO_OPERATOR"}
    child = pexpect.spawn(sys.executable, ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:faker", "-p",
                                           "no:hypothesispytest", "-o", "asyncio_default_fixture_loop_scope=function",
                                           "test_boot.py", "--target=lab", "--lab=lab.toml", "--report-dir=out",
                                           "--enrollab-unattended"],
                          cwd=str(tmp_path), env=env, encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(t["outcome"], t["reason"]) for t in doc["tests"]] == [
        ("needs_operator", "power-cycle the phone A4251B0C3D5E (MAC A4251B0C3D5E)"),
        ("needs_operator", "power-cycle the phone B0ADAA0C3D60 (MAC B0ADAA0C3D60)"),
    ], child.before
    assert child.exitstatus == 1
