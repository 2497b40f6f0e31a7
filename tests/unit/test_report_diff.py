"""harness.report_diff: regressions gate, everything else is listed (improvements, changes, missing, added)."""

from __future__ import annotations

import json
from typing import Any

from harness.report import validate_report
from harness.report_diff import diff_reports, render_diff
from tests.unit.test_report import B199, J179, K175, find, refresh, sample


def rerun(change: Any) -> dict[str, Any]:
    doc = sample()
    change(doc)
    refresh(doc)
    validate_report(doc)
    return doc


def set_outcome(test: dict[str, Any], outcome: str, text: str | None = None) -> None:
    test["outcome"] = outcome
    test["reason"] = text if outcome in ("not_applicable", "needs_operator") else None
    test["message"] = text if outcome in ("fail", "error") else None


def test_the_same_run_twice_has_no_regression() -> None:
    diff = diff_reports(sample(), sample())
    assert not diff.has_regressions
    assert (diff.improvements, diff.changed, diff.missing, diff.added) == ((), (), (), ())
    assert diff.unchanged == len(sample()["tests"])
    assert "result: no regressions" in render_diff(diff)


def test_pass_or_not_applicable_to_fail_or_error_is_a_regression() -> None:
    def worse(doc: dict[str, Any]) -> None:
        set_outcome(find(doc, "test_redirects_to_the_profile_url", J179), "fail", "ENR-2: no redirect\nmore")
        set_outcome(find(doc, "test_enrolls_with_12_digit_code", B199), "error", "harness: simulator crashed")
        set_outcome(find(doc, "test_code_total_never_overshoots"), "error", "database locked")

    diff = diff_reports(sample(), rerun(worse))
    tests = {(c.key.split("::")[1], c.old, c.new) for c in diff.regressions if c.kind == "test"}
    assert tests == {
        (f"test_redirects_to_the_profile_url[{J179}]", "pass", "fail"),
        (f"test_enrolls_with_12_digit_code[{B199}]", "not_applicable", "error"),
        ("test_code_total_never_overshoots", "pass", "error"),
    }
    # only the pass -> fail cell is a cell regression; n/a -> error shows as the test's
    cells = [(c.key, c.old, c.new) for c in diff.regressions if c.kind == "cell"]
    assert cells == [("J179 4.1.11.0.9 (A4251B000001) · Provisioning URLs", "pass", "fail")]
    text = render_diff(diff)
    assert "REGRESSIONS (4):" in text and "ENR-2: no redirect" in text and "more" not in text
    assert "result: 4 regressions" in text


def test_improvements_and_other_changes_are_listed_but_do_not_gate() -> None:
    def moved(doc: dict[str, Any]) -> None:
        set_outcome(find(doc, "test_device_group_id_applied", J179), "pass")
        set_outcome(find(doc, "test_upgrades_before_redirect", K175), "fail", "FW-2: no upgrade")
        set_outcome(find(doc, "test_https_provisioning_url", J179), "not_applicable", "declared N/A")

    diff = diff_reports(sample(), rerun(moved))
    assert not diff.has_regressions
    assert {(c.kind, c.old, c.new) for c in diff.improvements} == {("test", "fail", "pass"), ("cell", "fail", "pass")}
    assert {(c.old, c.new) for c in diff.changed} == {("error", "fail"), ("pass", "not_applicable")}
    text = render_diff(diff)
    assert "improvements (2):" in text and "other changes (2):" in text and "REGRESSIONS" not in text


def test_missing_and_added_tests_are_no_regressions() -> None:
    gone = f"conformance/device/test_firmware.py::test_firmware_manager_tool[{J179}]"

    def reshaped(doc: dict[str, Any]) -> None:
        doc["tests"] = [t for t in doc["tests"] if t["id"] != gone]
        extra = json.loads(json.dumps(find(doc, "test_locks_after_wrong_codes")))
        extra["id"] = extra["id"].replace("test_locks_after_wrong_codes", "test_locks_per_device")
        extra["name"] = "test_locks_per_device"
        doc["tests"].append(extra)

    diff = diff_reports(sample(), rerun(reshaped))
    assert [(c.key, c.old, c.new) for c in diff.missing] == [(gone, "pass", None)]
    assert [(c.key.split("::")[1], c.old, c.new) for c in diff.added] == [("test_locks_per_device", None, "fail")]
    # the cell lost its only test (pass -> n/a): not a regression either
    assert not diff.has_regressions
    text = render_diff(diff)
    assert "missing from new (not regressions) (1):" in text and "added in new (not regressions) (1):" in text


def test_a_renamed_test_that_now_fails_still_regresses_its_cell() -> None:
    def renamed(doc: dict[str, Any]) -> None:
        test = find(doc, "test_redirects_to_the_profile_url", J179)
        test["id"] = test["id"].replace("test_redirects_to_the_profile_url", "test_redirect")
        test["name"] = "test_redirect"
        set_outcome(test, "fail", "ENR-2: no redirect")

    diff = diff_reports(sample(), rerun(renamed))
    assert [(c.kind, c.old, c.new) for c in diff.regressions] == [("cell", "pass", "fail")]
    assert len(diff.missing) == len(diff.added) == 1


def test_a_new_firmware_on_the_same_phone_is_compared_by_mac() -> None:
    new_id = "J179@4.1.12.0.1#A4251B000001"

    def upgraded(doc: dict[str, Any]) -> None:
        device = next(d for d in doc["devices"] if d["id"] == J179)
        device.update(id=new_id, firmware="4.1.12.0.1")
        for test in doc["tests"]:
            if test["device"] == J179:
                test["device"] = new_id
                test["id"] = test["id"].replace(J179, new_id)
        set_outcome(find(doc, "test_enrolls_with_8_digit_code", new_id), "fail", "EC-1: code refused")

    diff = diff_reports(sample(), rerun(upgraded))
    assert not diff.missing and not diff.added
    [test, cell] = diff.regressions
    assert test.key.endswith(f"test_enrolls_with_8_digit_code[{new_id}]")
    assert test.old_key is not None and test.old_key.endswith(f"[{J179}]")
    assert cell.key == "J179 4.1.12.0.1 (A4251B000001) · 8-digit numeric enrollment code"
    pair = next(p for p in diff.devices if p.new is not None and p.new["id"] == new_id)
    assert pair.matched_by == "mac" and pair.old is not None and pair.old["id"] == J179
    text = render_diff(diff)
    assert "J179 (A4251B000001): firmware 4.1.11.0.9 → 4.1.12.0.1" in text
    assert f"(old: conformance/device/test_codes.py::test_enrolls_with_8_digit_code[{J179}])" in text


def test_devices_pair_by_model_when_the_mac_changed_and_the_rest_stay_apart() -> None:
    new_id = "B199@1.0.3.0#B0ADAA0000FF"

    def replaced(doc: dict[str, Any]) -> None:
        device = next(d for d in doc["devices"] if d["id"] == B199)
        device.update(id=new_id, firmware="1.0.3.0", mac="B0ADAA0000FF")
        for test in doc["tests"]:
            if test["device"] == B199:
                test["device"] = new_id
                test["id"] = test["id"].replace(B199, new_id)

    diff = diff_reports(sample(), rerun(replaced))
    pair = next(p for p in diff.devices if p.new is not None and p.new["id"] == new_id)
    assert pair.matched_by == "model"
    assert not diff.missing and not diff.added and not diff.has_regressions

    # two unpaired devices of one model: no guessing, their tests are missing and added
    doc = sample()
    other = rerun(replaced)
    clone = dict(other["devices"][-1], id="B199@1.0.3.0#B0ADAA0000EE", mac="B0ADAA0000EE")
    other["devices"].append(clone)
    refresh(other)
    diff = diff_reports(doc, other)
    assert len(diff.missing) == 16 and len(diff.added) == 16 and not diff.has_regressions
    text = render_diff(diff)
    assert "only in old: B199 1.0.1 (B0ADAA000004)" in text and "only in new: B199 1.0.3.0 (B0ADAA0000EE)" in text


def test_the_diff_is_json_for_programs() -> None:
    diff = diff_reports(sample(), sample())
    data = json.loads(json.dumps(diff.as_dict()))
    assert data["has_regressions"] is False and data["old"]["version"] == "0.1.0"


def test_pass_to_needs_operator_gates_like_an_error_and_back_is_an_improvement() -> None:
    """A test that passed and could not be run now (nobody at the bench) has not shown that nothing broke."""
    def unattended(doc: dict[str, Any]) -> None:
        set_outcome(find(doc, "test_enrolls_with_8_digit_code", K175), "needs_operator",
                    "type the enrollment code on the keypad")
        set_outcome(find(doc, "test_upgrades_before_redirect", K175), "needs_operator", "power-cycle it by hand")

    old, new = sample(), rerun(unattended)  # OLD is a report from before needs_operator existed
    diff = diff_reports(old, new)
    assert {(c.kind, c.old, c.new) for c in diff.regressions} == {
        ("test", "pass", "needs_operator"), ("cell", "pass", "needs_operator")}
    assert [(c.old, c.new) for c in diff.changed] == [("error", "needs_operator")]  # neither better nor worse
    text = render_diff(diff)
    assert "REGRESSIONS (2):" in text and "pass → needs operator" in text
    assert "type the enrollment code on the keypad" in text
    assert "70 tests: 50 pass, 3 fail, 0 error, 2 needs operator, 15 not applicable" in text
    assert "70 tests: 51 pass, 3 fail, 1 error, 0 needs operator, 15 not applicable" in text

    back = diff_reports(new, old)
    assert not back.has_regressions
    assert {(c.kind, c.old, c.new) for c in back.improvements} == {
        ("test", "needs_operator", "pass"), ("cell", "needs_operator", "pass")}
