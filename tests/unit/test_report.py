"""harness.report and harness.report_html: the record's schema, its aggregation rules, exit status,
reading and writing, and an HTML page that escapes everything and loads nothing."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.report import (
    Outcome,
    ReportError,
    aggregate_cell,
    aggregate_matrix,
    exit_status,
    load_report,
    report_schema,
    rule_coverage,
    summarize,
    summary_line,
    validate_report,
    with_added_counts,
    write_report,
)
from harness.report_html import render_html

# A report written before issue 14: without the needs_operator counts (a report enrollab must still read).
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-report.json"
J179 = "J179@4.1.11.0.9#A4251B000001"
B199 = "B199@1.0.1#B0ADAA000004"
K175 = "K175@2.0#C81FEA000003"  # a physical phone in the sample
TYPE_THE_CODE = "type the enrollment code on the keypad"


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def refresh(doc: dict[str, Any]) -> dict[str, Any]:
    """Recompute what the plugin computes from the tests, as after a test changed."""
    doc["summary"] = summarize(doc["tests"])
    doc["matrix"] = aggregate_matrix(doc["tests"], doc["devices"], doc["features"])
    doc["rules"] = rule_coverage(doc["tests"])
    return doc


def find(doc: dict[str, Any], name: str, device: str | None = None) -> dict[str, Any]:
    return next(t for t in doc["tests"] if t["name"] == name and t["device"] == device)


def needing_an_operator(doc: dict[str, Any], name: str = "test_enrolls_with_8_digit_code",
                        device: str | None = K175, reason: str = TYPE_THE_CODE) -> dict[str, Any]:
    """`doc` (refreshed) with one test of a physical phone ended *needs operator*."""
    test = find(doc, name, device)
    test.update(outcome="needs_operator", reason=reason, message=None)
    return refresh(doc)


def with_outcomes(*outcomes: str) -> dict[str, Any]:
    """The sample cut down to one test per given outcome."""
    doc = needing_an_operator(sample())
    doc["tests"] = [copy.deepcopy(next(t for t in doc["tests"] if t["outcome"] == o)) for o in outcomes]
    for i, test in enumerate(doc["tests"]):
        test["id"] += f"#{i}"
    return refresh(doc)


# -- the schema and the sample ----------------------------------------------------------------------


def test_the_sample_is_a_valid_self_consistent_record() -> None:
    doc = sample()
    validate_report(doc)
    assert report_schema()["$schema"].endswith("2020-12/schema")
    assert with_added_counts(doc) == refresh(copy.deepcopy(doc))
    outcomes = {t["outcome"] for t in doc["tests"]}
    assert outcomes == {o.value for o in Outcome} - {"needs_operator"}  # written before issue 14
    assert {d["model"] for d in doc["devices"]} >= {"B199", "K175"}
    assert len(doc["features"]) == 16


def _drop(doc: dict[str, Any], *path: Any) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


BAD = [
    ("outcome 'skipped'", lambda d: d["tests"][0].update(outcome="skipped"), "report-invalid", "$.tests[0].outcome"),
    ("no seed", lambda d: _drop(d, "provenance", "seed"), "report-invalid", "$.provenance"),
    ("no tests", lambda d: _drop(d, "tests"), "report-invalid", "'tests' is required"),
    ("lower-case MAC", lambda d: d["devices"][0].update(mac="a4251b000001"), "report-invalid", "$.devices[0].mac"),
    ("target 'cloud'", lambda d: d["provenance"].update(target="cloud"), "report-invalid", "$.provenance.target"),
    ("bad lab digest", lambda d: d["provenance"].update(lab_digest="md5:x"), "report-invalid", "lab_digest"),
    ("who 'proxy'", lambda d: find(d, "test_device_group_id_applied", J179)["evidence"]["http"][0].update(who="proxy"),
     "report-invalid", ".evidence.http[0].who"),
    ("n/a without reason", lambda d: find(d, "test_enrolls_with_12_digit_code", B199).update(reason=None),
     "report-invalid", ".reason"),
    ("fail without message", lambda d: find(d, "test_device_group_id_applied", J179).update(message=None),
     "report-invalid", ".message"),
    ("needs operator without reason", lambda d: needing_an_operator(d, reason=""), "report-invalid", ".reason"),
    ("step 'skipped'", lambda d: find(d, "test_device_group_id_applied", J179)["steps"][0].update(outcome="skipped"),
     "report-invalid", ".steps[0].outcome"),
    ("needs_operator count lies", lambda d: d["summary"].update(needs_operator=2), "report-inconsistent",
     "$.summary.needs_operator"),
    ("needs_operator missing but counted", lambda d: needing_an_operator(d)["summary"].pop("needs_operator"),
     "report-inconsistent", "$.summary.needs_operator: says 0 but the tests count 1"),
    ("cell 'passed'", lambda d: d["matrix"][J179].update({"provisioning-urls": "passed"}), "report-invalid",
     '$.matrix["J179@4.1.11.0.9#A4251B000001"]["provisioning-urls"]'),
    ("schema_version 2", lambda d: d.update(schema_version=2), "report-unsupported-version", "schema_version 2"),
    ("summary lies", lambda d: d["summary"].update(fail=0), "report-inconsistent", "$.summary.fail"),
    ("cell lies", lambda d: d["matrix"][J179].update({"device-group-id": "pass"}), "report-inconsistent",
     "the cell's tests make it fail"),
    ("rules lie", lambda d: d["rules"].pop("LCK-2"), "report-inconsistent", '$.rules["LCK-2"]'),
    ("unknown device", lambda d: d["tests"][10].update(device="X"), "report-inconsistent", "$.tests[10].device"),
    ("twice the same test", lambda d: d["tests"][1].update(id=d["tests"][0]["id"]), "report-inconsistent",
     "$.tests[1].id"),
]


@pytest.mark.parametrize(("mutate", "error", "where"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_broken_record_is_refused_naming_the_json_path(mutate: Any, error: str, where: str) -> None:
    doc = sample()
    mutate(doc)
    with pytest.raises(ReportError) as caught:
        validate_report(doc)
    assert caught.value.error == error
    assert where in caught.value.detail
    assert len(caught.value.detail) < 600  # a sentence, not the whole offending object


def test_optional_extra_fields_are_allowed() -> None:
    doc = sample()
    doc["tests"][0]["traceback"] = "Traceback …"
    doc["provenance"]["host"] = "bench-2"
    doc["devices"][0]["ip"] = "10.20.0.41"
    validate_report(doc)


# -- aggregation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "cell"),
    [
        (["pass", "fail", "error", "not_applicable"], "fail"),
        (["pass", "error", "not_applicable"], "error"),
        (["pass", "error", "needs_operator"], "error"),
        (["pass", "needs_operator", "not_applicable"], "needs_operator"),
        (["needs_operator"], "needs_operator"),
        (["not_applicable", "pass"], "pass"),
        (["not_applicable", "not_applicable"], "not_applicable"),
        ([], "not_applicable"),
    ],
)
def test_a_cell_is_fail_then_error_then_needs_operator_then_pass_then_not_applicable(
        outcomes: list[str], cell: str) -> None:
    assert aggregate_cell(outcomes) is Outcome(cell)


def test_the_matrix_has_every_device_and_feature_and_ignores_tests_without_one() -> None:
    tests: list[dict[str, Any]] = [
        {"device": "d1", "feature": "f1", "outcome": "pass"},
        {"device": "d1", "feature": "f1", "outcome": "error"},
        {"device": "d2", "feature": "f2", "outcome": "fail"},
        {"device": None, "feature": "f1", "outcome": "fail"},  # server suite
        {"device": "d2", "feature": None, "outcome": "fail"},  # not about a feature
    ]
    matrix = aggregate_matrix(tests, [{"id": "d1"}, "d2"], ["f1", {"id": "f2", "label": "F2"}])
    assert matrix == {
        "d1": {"f1": "error", "f2": "not_applicable"},
        "d2": {"f1": "not_applicable", "f2": "fail"},
    }


def test_summary_and_rule_coverage_count_each_outcome() -> None:
    tests = [
        {"outcome": "pass", "rules": ["ENR-10", "EC-3"]},
        {"outcome": "fail", "rules": ["ENR-2"]},
        {"outcome": "not_applicable", "rules": ["ENR-2"]},
        {"outcome": "error", "rules": []},
        {"outcome": "needs_operator", "rules": ["ENR-2"]},
    ]
    summary = summarize(tests)
    assert summary == {"pass": 1, "fail": 1, "error": 1, "needs_operator": 1, "not_applicable": 1, "total": 5}
    assert summary_line(summary) == "1 pass, 1 fail, 1 error, 1 needs operator, 1 not applicable"
    coverage = rule_coverage(tests)
    assert list(coverage) == ["EC-3", "ENR-2", "ENR-10"]
    assert coverage["ENR-2"] == {"pass": 0, "fail": 1, "error": 0, "needs_operator": 1, "not_applicable": 1}
    assert Outcome.NEEDS_OPERATOR.label == "needs operator" and Outcome.NOT_APPLICABLE.label == "n/a"
    with pytest.raises(ValueError):
        summarize([{"outcome": "skipped"}])


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (["pass"], 0),
        (["pass", "not_applicable"], 0),
        (["not_applicable"], 0),
        (["pass", "fail"], 1),
        (["pass", "error"], 1),
        (["not_applicable", "error"], 1),
        (["pass", "needs_operator"], 1),  # not finished is not green
        (["needs_operator", "not_applicable"], 1),
    ],
)
def test_exit_status_is_zero_only_when_every_test_passed_or_was_not_applicable(
        outcomes: list[str], status: int) -> None:
    doc = with_outcomes(*outcomes)
    validate_report(doc)
    assert exit_status(doc) == status


# -- reading and writing ----------------------------------------------------------------------------


def test_load_report_reads_a_valid_file(tmp_path: Path) -> None:
    assert load_report(SAMPLE) == with_added_counts(sample())


def test_a_report_from_before_needs_operator_reads_as_zero_of_them(tmp_path: Path) -> None:
    old = sample()
    assert "needs_operator" not in old["summary"]
    validate_report(old)
    loaded = load_report(SAMPLE)
    assert loaded["summary"]["needs_operator"] == 0
    assert all(counts["needs_operator"] == 0 for counts in loaded["rules"].values())
    assert loaded["summary"] == summarize(old["tests"]) and loaded["rules"] == rule_coverage(old["tests"])
    assert summary_line(old["summary"]) == "51 pass, 3 fail, 1 error, 0 needs operator, 15 not applicable"
    assert with_added_counts(loaded) == loaded  # a current report is left as it is


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "report-not-found"),
        (b"{not json", "report-not-json"),
        (b'{"schema_version": NaN}', "report-not-json"),
        (b"\xff\xfe{}", "report-not-json"),
        (b"[]", "report-invalid"),
        (b'{"schema_version": 1}', "report-invalid"),
        ("dir", "report-unreadable"),
    ],
)
def test_load_report_explains_every_unreadable_file(tmp_path: Path, content: Any, error: str) -> None:
    path = tmp_path / "report.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ReportError) as caught:
        load_report(path)
    assert caught.value.error == error
    assert str(path) in caught.value.detail


def test_write_report_writes_json_and_html_atomically(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "run-1"
    files = write_report(sample(), out)
    assert files.json == out / "report.json" and files.html == out / "report.html"
    assert load_report(files.json) == with_added_counts(sample())
    assert files.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]  # no temporary left

    second = with_outcomes("pass")
    write_report(second, out)
    assert load_report(files.json) == second


def test_write_report_refuses_an_invalid_record_and_writes_nothing(tmp_path: Path) -> None:
    doc = sample()
    doc["summary"]["pass"] += 1
    with pytest.raises(ReportError, match="report-inconsistent"):
        write_report(doc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_report_names_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError) as caught:
        write_report(sample(), blocker / "out")
    assert caught.value.error == "report-unwritable"


# -- the HTML page ----------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>" onmouseover="alert(1)'


def test_html_escapes_hostile_strings_everywhere() -> None:
    doc = sample()
    find(doc, "test_enrolls_with_12_digit_code", B199)["reason"] = "B199 1.0.1: " + HOSTILE
    failed = find(doc, "test_device_group_id_applied", J179)
    failed["message"] = HOSTILE
    failed["evidence"]["events"][0]["detail"] = {"note": HOSTILE}
    failed["evidence"]["http"][0]["url"] = "https://10.20.0.5/" + HOSTILE
    failed["steps"][-1]["evidence"] = {"got": HOSTILE}
    doc["devices"][0]["driver"] = HOSTILE
    doc["features"][0]["label"] = HOSTILE
    doc["provenance"]["command"] = HOSTILE
    doc["unobservable_rules"][0]["why"] = HOSTILE
    validate_report(doc)

    page = render_html(doc)
    assert "<script" not in page.lower()
    assert 'onmouseover="' not in page
    assert "&lt;script&gt;" in page
    assert page.count("&#34; onmouseover=&#34;") >= 8


def test_html_loads_nothing_from_outside() -> None:
    page = render_html(sample())
    assert "https://10.20.0.5:8080" in page  # the server URL is shown as text
    links = re.findall(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", page, re.IGNORECASE)
    assert links and all(link.startswith("#") for link in links)
    for needle in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert needle not in page.lower()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_matrix_has_a_cell_per_device_and_feature_with_its_outcome() -> None:
    doc = sample()
    page = render_html(doc)
    match = re.search(r'<table id="matrix">(.*?)</table>', page, re.DOTALL)
    assert match is not None
    matrix = match.group(1)
    assert matrix.count("<tr data-device=") == len(doc["devices"])
    cells = re.findall(r'<td data-outcome="([a-z_]+)" data-feature="([^"]+)"', matrix)
    assert len(cells) == len(doc["devices"]) * len(doc["features"])
    expected = [(doc["matrix"][d["id"]][f["id"]], f["id"]) for d in doc["devices"] for f in doc["features"]]
    assert cells == expected
    # the not-applicable cell's tooltip says why (Appendix A)
    assert 'title="B199 1.0.1 · 12-digit numeric enrollment code: n/a' in page
    assert "12-digit numeric enrollment code not supported (N/A)" in page


def test_html_shows_each_failure_and_error_with_its_evidence() -> None:
    doc = sample()
    page = render_html(doc)
    failures = page.split('<section id="failures">')[1].split("</section>")[0]
    bad = [t for t in doc["tests"] if t["outcome"] in ("fail", "error")]
    assert failures.count('<article class="problem') == len(bad) == 4
    for test in bad:
        assert test["id"] in failures
        for event in test["evidence"]["events"]:
            assert event["event"] in failures
        for exchange in test["evidence"]["http"]:
            assert exchange["url"] in failures
    assert "no answer" in failures  # a file server that never answered
    assert "declared, never reached" in failures  # the errored test's step that never ran
    assert 'id="verdict">failed<' in page


def test_html_of_a_clean_run_says_passed() -> None:
    page = render_html(with_outcomes("pass", "not_applicable"))
    assert 'id="verdict">passed<' in page
    assert "None: nothing failed and nothing errored." in page


def test_html_of_a_server_suite_run_has_no_matrix_rows() -> None:
    doc = sample()
    doc["devices"] = []
    doc["tests"] = [t for t in doc["tests"] if t["suite"] == "server"]
    doc["provenance"]["suites"] = ["server"]
    refresh(doc)
    validate_report(doc)
    page = render_html(doc)
    assert "No devices under test in this run." in page and 'id="matrix"' not in page
    assert "test_locks_after_wrong_codes" in page.split('<section id="failures">')[1]


def test_html_shows_needs_operator_as_its_own_outcome_with_what_to_do() -> None:
    doc = needing_an_operator(sample())
    validate_report(doc)
    page = render_html(doc)
    counts = dict(re.findall(r'<div class="count ([a-z_]+)" data-outcome="[a-z_]+"><b>([0-9]+)</b>', page))
    assert counts == {"pass": "50", "fail": "3", "error": "1", "needs_operator": "1", "not_applicable": "15"}
    section = page.split('<section id="needs-operator">')[1].split("</section>")[0]
    assert section.count('<article class="problem needs_operator"') == 1
    assert '<span class="badge needs_operator">needs operator</span>' in section
    assert f"test_enrolls_with_8_digit_code[{K175}]" in section and TYPE_THE_CODE in section
    # its matrix cell is the needs-operator colour and links to that section
    cell = re.search(r'<td data-outcome="needs_operator" data-feature="8-digit-numeric-enrollment-code" '
                     r'title="([^"]*)"><a href="#(t[0-9]+)">\?</a></td>', page)
    assert cell is not None and TYPE_THE_CODE in cell.group(1)
    assert f'id="{cell.group(2)}" data-outcome="needs_operator"' in section
    # it is not among the failures, and all tests show the reason
    assert TYPE_THE_CODE not in page.split('<section id="failures">')[1].split("</section>")[0]
    row = page.split('<section id="all-tests">')[1]
    assert f'<a href="#{cell.group(2)}">conformance/device/test_codes.py::test_enrolls_with_8_digit_code[{K175}]' in row
    assert "needs_operator" in page.split('<table id="rules"')[1].split("</table>")[0]
    assert 'id="verdict">failed<' in page  # the sample has failures too


def test_html_of_a_run_that_only_needed_an_operator_is_incomplete_not_passed() -> None:
    page = render_html(with_outcomes("pass", "needs_operator", "not_applicable"))
    assert 'id="verdict">incomplete<' in page
    assert "1 needing an operator" in page.split("</title>")[0]
    assert "None: nothing failed and nothing errored." in page
    assert "None: no test needed a person at the bench." not in page
    assert "None: no test needed a person at the bench." in render_html(with_outcomes("pass"))
