"""The conformance report: one immutable final record (`report.json`) and the files rendered from it.

The record's shape is `fixtures/schemas/report.schema.json`; the pytest plugin builds it (filling
`summary`, `matrix` and `rules` with `summarize`, `aggregate_matrix` and `rule_coverage`) and
hands it to `write_report`, which writes `report.json` and `report.html` atomically.

Decisions:
- Five outcomes, kept apart everywhere (`Outcome`): pass, fail (the device or server under test
  broke a rule), error (the harness or lab broke), needs operator (a person had to act at the
  bench — type a code on the keypad, answer the phone's prompt — and the run was unattended, so
  nothing is known yet; issue 14), not applicable (Appendix A: the model and firmware lack the
  feature).
- `exit_status` is 0 only when every test passed or was not applicable: fail, error *and* needs
  operator make it 1. A physical run that could not be completed must not look green; a run on
  simulated devices never needs an operator, so CI on simulators is not affected.
- A matrix cell is fail if any of its tests failed, else error if any errored, else needs operator
  if any needed one, else pass if any passed, else not applicable; a device x feature with no
  test at all is not applicable too. Rule coverage in the HTML page ranks the same way.
- `needs_operator` was added to the counts (summary, rules) after schema version 1 was out; a
  report without it (written before issue 14) is still valid and reads as 0 (`load_report`
  fills it in), so `enrollab report diff` compares an old run with a new one.
- `validate_report` checks the schema and then what a schema cannot say: ids are unique, tests
  name listed devices and features, and summary, matrix and rule coverage agree with the tests
  (a CI gate must not trust a summary that lies). Problems name their JSON path (`$.tests[3].outcome`).
- Every way to fail to read a report is a `ReportError` with a stable id (`report-not-found`,
  `report-unreadable`, `report-not-json`, `report-unsupported-version`, `report-invalid`,
  `report-inconsistent`), never a traceback; writing fails with `report-unwritable`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

import fixtures

__all__ = [
    "JSON_NAME",
    "HTML_NAME",
    "SCHEMA_VERSION",
    "RANK",
    "Outcome",
    "ReportError",
    "ReportFiles",
    "aggregate_cell",
    "aggregate_matrix",
    "exit_status",
    "load_report",
    "report_schema",
    "rule_coverage",
    "rule_sort_key",
    "summarize",
    "summary_line",
    "validate_report",
    "with_added_counts",
    "write_report",
    "write_text_atomic",
]

SCHEMA_FILE = "schemas/report.schema.json"
SCHEMA_VERSION = 1
JSON_NAME = "report.json"
HTML_NAME = "report.html"


class Outcome(StrEnum):
    """How a test, a step or a matrix cell ended."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"  # the device or server under test broke a rule
    ERROR = "error"  # the harness or the lab broke
    NEEDS_OPERATOR = "needs_operator"  # a person was needed at the bench and the run was unattended
    NOT_APPLICABLE = "not_applicable"  # the model and firmware lack the feature

    @property
    def label(self) -> str:
        return _LABELS.get(self, self.value)


_LABELS = {Outcome.NOT_APPLICABLE: "n/a", Outcome.NEEDS_OPERATOR: "needs operator"}
# Counts that reports written before the outcome existed do not carry (read as 0).
_ADDED_COUNTS = (Outcome.NEEDS_OPERATOR.value,)


class ReportError(Exception):
    """A report that cannot be read, validated or written: a stable id, a sentence, where."""

    def __init__(self, error: str, detail: str, where: str | None = None) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.where = where


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    json: Path
    html: Path


# -- helpers the plugin calls to fill summary, matrix and rules ----------------------------------


def summarize(tests: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The `summary` object: how many tests ended in each outcome, and the total."""
    counts = _zero_counts()
    for test in tests:
        counts[Outcome(test["outcome"]).value] += 1
    return {**counts, "total": sum(counts.values())}


RANK = (Outcome.FAIL, Outcome.ERROR, Outcome.NEEDS_OPERATOR, Outcome.PASS, Outcome.NOT_APPLICABLE)
"""Which outcome a cell (or a rule's tally) takes when its tests differ: the first one present."""


def aggregate_cell(outcomes: Iterable[Outcome | str]) -> Outcome:
    """One matrix cell from its tests' outcomes: fail > error > needs operator > pass > not
    applicable (also: none)."""
    seen = {Outcome(o) for o in outcomes}
    for outcome in RANK[:-1]:
        if outcome in seen:
            return outcome
    return Outcome.NOT_APPLICABLE


def aggregate_matrix(
    tests: Iterable[Mapping[str, Any]],
    devices: Iterable[Mapping[str, Any] | str],
    features: Iterable[Mapping[str, Any] | str],
) -> dict[str, dict[str, str]]:
    """The `matrix`: every device x every feature (given as the record's objects or as ids).

    Tests without a device or a feature (most of the server suite) are in no cell.
    """
    device_ids = [_id_of(d) for d in devices]
    feature_ids = [_id_of(f) for f in features]
    cells: dict[tuple[str, str], list[str]] = {}
    for test in tests:
        if test.get("device") is not None and test.get("feature") is not None:
            cells.setdefault((test["device"], test["feature"]), []).append(test["outcome"])
    return {
        device: {feature: aggregate_cell(cells.get((device, feature), ())).value for feature in feature_ids}
        for device in device_ids
    }


def rule_coverage(tests: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The `rules` object: per rule id cited by a test, the count of each outcome; rules in SPEC order."""
    coverage: dict[str, dict[str, int]] = {}
    for test in tests:
        outcome = Outcome(test["outcome"]).value
        for rule in test.get("rules", ()):
            coverage.setdefault(rule, _zero_counts())[outcome] += 1
    return {rule: coverage[rule] for rule in sorted(coverage, key=rule_sort_key)}


def rule_sort_key(rule: str) -> tuple[str, int, str]:
    """`ENR-2` before `ENR-10`: the prefix, then the number."""
    match = re.fullmatch(r"([A-Z][A-Z0-9]*)-([0-9]+)(.*)", rule)
    if match is None:
        return (rule, 0, "")
    return (match[1], int(match[2]), match[3])


def exit_status(doc: Mapping[str, Any]) -> int:
    """0 when every test passed or was not applicable (all not-applicable is 0); 1 when any failed,
    errored or needed an operator the run did not have."""
    summary = doc["summary"]
    unfinished = summary["fail"] + summary["error"] + summary.get(Outcome.NEEDS_OPERATOR.value, 0)
    return 0 if unfinished == 0 else 1


def summary_line(counts: Mapping[str, int]) -> str:
    """`3 pass, 1 fail, 0 error, 2 needs operator, 4 not applicable`: a summary (or any counts) in
    words, every outcome named (a count missing from an old report is 0)."""
    words = {Outcome.NOT_APPLICABLE: "not applicable", Outcome.NEEDS_OPERATOR: "needs operator"}
    return ", ".join(f"{counts.get(o.value, 0)} {words.get(o, o.value)}" for o in Outcome)


def with_added_counts(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the counts added after schema version 1 (`needs_operator`) filled in as 0
    where a report written before them lacks them; a new report is returned unchanged."""
    out = dict(doc)
    if all(key in doc["summary"] for key in _ADDED_COUNTS) and all(
        key in counts for counts in doc["rules"].values() for key in _ADDED_COUNTS
    ):
        return out
    out["summary"] = _filled(doc["summary"])
    out["rules"] = {rule: _filled(counts) for rule, counts in doc["rules"].items()}
    return out


# -- validation ---------------------------------------------------------------------------------


@cache
def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = fixtures.load_json(SCHEMA_FILE)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # Resolving a $ref costs more than checking what it names; a run has thousands of them.
    schema = report_schema()
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema["$defs"]))


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """The schema with each `{"$ref": "#/$defs/NAME"}` replaced by NAME's schema (none is recursive)."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(value, defs) for value in node]
    return node


def validate_report(doc: Any) -> None:
    """Raise `ReportError` unless `doc` is a valid, self-consistent report record."""
    if isinstance(doc, Mapping) and "schema_version" in doc and doc["schema_version"] != SCHEMA_VERSION:
        raise ReportError(
            "report-unsupported-version",
            f"schema_version {doc['schema_version']!r} is not one this enrollab reads ({SCHEMA_VERSION})",
            "$.schema_version",
        )
    errors = list(_validator().iter_errors(doc))
    if errors:
        error = best_match(errors)
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' if others != 1 else ''})" if others else ""
        where = _json_path(error)
        raise ReportError("report-invalid", f"{where}: {_message(error)}{more}", where)
    _check_consistency(doc)


def _check_consistency(doc: Mapping[str, Any]) -> None:
    def fail(where: str, detail: str) -> None:
        raise ReportError("report-inconsistent", f"{where}: {detail}", where)

    device_ids = _unique_ids(doc["devices"], "$.devices", fail)
    feature_ids = _unique_ids(doc["features"], "$.features", fail)
    _unique_ids(doc["tests"], "$.tests", fail)
    for i, test in enumerate(doc["tests"]):
        if test["device"] is not None and test["device"] not in device_ids:
            fail(f"$.tests[{i}].device", f"{test['device']!r} is not one of the report's devices")
        if test["feature"] is not None and test["feature"] not in feature_ids:
            fail(f"$.tests[{i}].feature", f"{test['feature']!r} is not one of the report's features")

    expected_summary = summarize(doc["tests"])
    summary = _filled(doc["summary"])
    for key, value in expected_summary.items():
        if summary[key] != value:
            fail(f"$.summary.{key}", f"says {summary[key]} but the tests count {value}")

    expected_matrix = aggregate_matrix(doc["tests"], doc["devices"], doc["features"])
    for device, row in doc["matrix"].items():
        if device not in device_ids:
            fail(f"$.matrix[{json.dumps(device)}]", f"{device!r} is not one of the report's devices")
        for feature, outcome in row.items():
            where = f"$.matrix[{json.dumps(device)}][{json.dumps(feature)}]"
            if feature not in feature_ids:
                fail(where, f"{feature!r} is not one of the report's features")
            if outcome != expected_matrix[device][feature]:
                fail(where, f"says {outcome} but the cell's tests make it {expected_matrix[device][feature]}")

    expected_rules = rule_coverage(doc["tests"])
    for rule in sorted(set(expected_rules) | set(doc["rules"]), key=rule_sort_key):
        if rule not in doc["rules"] or _filled(doc["rules"][rule]) != expected_rules.get(rule):
            fail(
                f"$.rules[{json.dumps(rule)}]",
                f"says {doc['rules'].get(rule)} but the tests citing it count {expected_rules.get(rule)}",
            )


# -- reading and writing ------------------------------------------------------------------------


def load_report(path: Path | str) -> dict[str, Any]:
    """Read and validate a report.json; every problem is a `ReportError`, never a traceback."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportError("report-not-found", f"{path}: no such file", str(path)) from None
    except IsADirectoryError:
        raise ReportError("report-unreadable", f"{path}: is a directory, not a report.json", str(path)) from None
    except OSError as exc:
        raise ReportError("report-unreadable", f"{path}: {exc.strerror or exc}", str(path)) from None
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ReportError("report-not-json", f"{path}: not UTF-8 text (byte {exc.start})", str(path)) from None
    except ValueError as exc:
        raise ReportError("report-not-json", f"{path}: not JSON ({exc})", str(path)) from None
    try:
        validate_report(doc)
    except ReportError as err:
        raise ReportError(err.error, f"{path}: {err.detail}", err.where) from None
    return with_added_counts(doc)


def write_report(doc: Mapping[str, Any], report_dir: Path | str) -> ReportFiles:
    """Validate the record, then write REPORT_DIR/report.json and report.html, each atomically.

    The HTML is rendered before anything is written, so a failure leaves no half a report.
    """
    from harness.report_html import render_html

    validate_report(doc)
    report_dir = Path(report_dir)
    html = render_html(doc)
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError("report-unwritable", f"cannot create {report_dir}: {exc.strerror or exc}") from None
    files = ReportFiles(json=report_dir / JSON_NAME, html=report_dir / HTML_NAME)
    write_text_atomic(files.json, text)
    write_text_atomic(files.html, html)
    return files


def write_text_atomic(path: Path, text: str) -> None:
    """Write `path` through a temporary file in the same directory and a rename."""
    tmp: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as out:
            tmp = out.name
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ReportError("report-unwritable", f"cannot write {path}: {exc.strerror or exc}", str(path)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# -- internals ----------------------------------------------------------------------------------


def _zero_counts() -> dict[str, int]:
    return {outcome.value: 0 for outcome in Outcome}


def _filled(counts: Mapping[str, int]) -> dict[str, int]:
    return {**counts, **{key: counts.get(key, 0) for key in _ADDED_COUNTS}}


def _id_of(item: Mapping[str, Any] | str) -> str:
    return item if isinstance(item, str) else str(item["id"])


def _unique_ids(items: Sequence[Mapping[str, Any]], where: str, fail: Any) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["id"] in seen:
            fail(f"{where}[{i}].id", f"{item['id']!r} is listed twice")
        seen.add(item["id"])
    return seen


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if _plain(part) else f"[{json.dumps(part)}]")
    return path


def _plain(key: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) is not None


def _message(error: ValidationError) -> str:
    # jsonschema quotes the whole offending instance; a whole test object makes an unreadable line.
    if error.validator == "required":
        return error.message.split(" is a required property")[0] + " is required"
    if len(error.message) > 300:
        return error.message[:297] + "..."
    return error.message


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
