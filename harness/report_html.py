"""`report.html`: the conformance record rendered for people, one self-contained page.

The page loads nothing (inline CSS, no script, a Content-Security-Policy that forbids any fetch),
so it can be mailed, archived as a CI artifact or opened offline. Jinja2 escapes every value.
Sections: provenance, summary, the device x feature matrix (`<table id="matrix">`, cells with
`data-outcome`), rule coverage, each failure and error with its evidence (steps, device events,
HTTP exchanges, and what the lab network capture saw, one line per frame:
`DHCPACK 10.213.0.50 to a4:25:1b:00:00:01, option 242 = "HTTPSRVR=…" (10:31:02.123)`), the tests
that needed an operator with what the person would have done (`<section id="needs-operator">`),
and all tests (a passing test's capture lines folded under its row).

The verdict is `passed` (exit status 0), `failed` (something failed or errored) or `incomplete`
(nothing failed or errored, but tests needed an operator the run did not have).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from harness.lab_network.evidence import summary_line
from harness.report import HTML_NAME, RANK, Outcome, exit_status, rule_sort_key, with_added_counts, write_text_atomic

__all__ = ["render_html", "write_html"]

TEMPLATE = "report.html.j2"
SYMBOLS = {
    Outcome.PASS: "\u2713",
    Outcome.FAIL: "\u2717",
    Outcome.ERROR: "!",
    Outcome.NEEDS_OPERATOR: "?",
    Outcome.NOT_APPLICABLE: "\u2013",
}


def render_html(doc: Mapping[str, Any]) -> str:
    """The HTML page of a (valid) report record."""
    return _environment().get_template(TEMPLATE).render(**_view(doc))


def write_html(doc: Mapping[str, Any], report_dir: Path | str) -> Path:
    """Render and write REPORT_DIR/report.html atomically; the directory must exist."""
    path = Path(report_dir) / HTML_NAME
    write_text_atomic(path, render_html(doc))
    return path


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty
    env.filters["compact"] = _compact
    env.filters["outcome_label"] = lambda o: Outcome(o).label
    env.filters["symbol"] = lambda o: SYMBOLS[Outcome(o)]
    return env


def _view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the template shows, computed here so the template stays markup."""
    doc = with_added_counts(doc)
    tests = list(doc["tests"])
    devices = {d["id"]: d for d in doc["devices"]}
    labels = {f["id"]: f["label"] for f in doc["features"]}
    anchors = {i: f"t{i}" for i in range(len(tests))}

    cell_tests: dict[tuple[str, str], list[int]] = {}
    for i, test in enumerate(tests):
        if test["device"] is not None and test["feature"] is not None:
            cell_tests.setdefault((test["device"], test["feature"]), []).append(i)

    rows = []
    for device in doc["devices"]:
        cells = []
        row = doc["matrix"].get(device["id"], {})
        for feature in doc["features"]:
            outcome = Outcome(row.get(feature["id"], Outcome.NOT_APPLICABLE))
            members = cell_tests.get((device["id"], feature["id"]), [])
            link = next((anchors[i] for i in members if tests[i]["outcome"] == outcome and outcome in _LINKED), None)
            cells.append(
                {
                    "outcome": outcome.value,
                    "symbol": SYMBOLS[outcome],
                    "title": _cell_title(device, feature, outcome, [tests[i] for i in members]),
                    "link": link,
                    "feature": feature["id"],
                }
            )
        rows.append({"device": device, "cells": cells})

    problems = [
        {**_test_view(tests[i], devices, labels), "anchor": anchors[i]}
        for i in range(len(tests))
        if tests[i]["outcome"] in _BAD
    ]
    waiting = [
        {**_test_view(tests[i], devices, labels), "anchor": anchors[i]}
        for i in range(len(tests))
        if tests[i]["outcome"] == Outcome.NEEDS_OPERATOR.value
    ]
    everything = [{**_test_view(t, devices, labels), "anchor": anchors[i]} for i, t in enumerate(tests)]

    provenance = doc["provenance"]
    status = exit_status(doc)
    summary = doc["summary"]
    return {
        "provenance": provenance,
        "run_seconds": _seconds_between(provenance["started_at"], provenance["finished_at"]),
        "verdict": _verdict(summary, status),
        "summary": summary,
        "outcomes": [(o.value, o.label, summary[o.value]) for o in Outcome],
        "features": doc["features"],
        "rows": rows,
        "rules": [
            {"rule": rule, "counts": counts, "outcome": _rule_outcome(counts)}
            for rule, counts in sorted(doc["rules"].items(), key=lambda kv: rule_sort_key(kv[0]))
        ],
        "unobservable": doc["unobservable_rules"],
        "problems": problems,
        "waiting": waiting,
        "linked": _LINKED,
        "tests": everything,
        "schema_version": doc["schema_version"],
    }


_BAD = (Outcome.FAIL.value, Outcome.ERROR.value)
_LINKED = (*_BAD, Outcome.NEEDS_OPERATOR.value)  # tests with a section of their own, linked to
_REASONED = (Outcome.NOT_APPLICABLE.value, Outcome.NEEDS_OPERATOR.value)  # say why in `reason`, not `message`


def _verdict(summary: Mapping[str, int], status: int) -> str:
    if status == 0:
        return "passed"
    return "failed" if summary["fail"] or summary["error"] else "incomplete"


def _test_view(test: Mapping[str, Any], devices: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    ran = {step["name"] for step in test["steps"]}
    events = test["evidence"]["events"]
    first = _parse_time(events[0]["at"]) if events else None
    timeline = [
        {**event, "offset": _offset(first, event["at"])}
        for event in events
    ]
    return {
        "test": test,
        "device": devices.get(test["device"]) if test["device"] is not None else None,
        "feature_label": labels.get(test["feature"]) if test["feature"] is not None else None,
        "not_run": [name for name in test["declared_steps"] if name not in ran],
        "timeline": timeline,
        "network": [{"line": summary_line(entry), "proto": entry.get("proto", "other"),
                     "detail": entry.get("detail") or {}} for entry in test["evidence"].get("network", ())],
        "summary_line": _first_line(test["reason"] if test["outcome"] in _REASONED else test["message"]),
    }


def _cell_title(
    device: Mapping[str, Any], feature: Mapping[str, Any], outcome: Outcome, members: list[Mapping[str, Any]]
) -> str:
    head = f"{device['model']} {device['firmware']} \u00b7 {feature['label']}: {outcome.label}"
    if not members:
        return f"{head}\nno test of this feature ran on this device"
    lines = [head]
    for test in members:
        why = test["reason"] if test["outcome"] in _REASONED else test["message"]
        line = f"{Outcome(test['outcome']).label} \u2014 {test['name']}"
        lines.append(f"{line}: {_first_line(why)}" if why else line)
    return "\n".join(lines)


def _rule_outcome(counts: Mapping[str, int]) -> str:
    """fail > error > needs operator > pass > not applicable, as a matrix cell (`harness.report.RANK`)."""
    return next((o.value for o in RANK if counts.get(o.value, 0)), Outcome.NOT_APPLICABLE.value)


def _first_line(text: str | None, limit: int = 200) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _compact(detail: Mapping[str, Any]) -> str:
    """An event's detail on one line: `ip=10.20.0.41, code=null`."""
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)}"
        for key, value in detail.items()
    )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _elapsed(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return None  # one time without an offset: no honest difference
    return (end - start).total_seconds()


def _offset(first: datetime | None, at: str) -> str:
    seconds = _elapsed(first, _parse_time(at))
    return "" if seconds is None else f"{seconds:+.3f} s"


def _seconds_between(start: str, end: str) -> float | None:
    seconds = _elapsed(_parse_time(start), _parse_time(end))
    return None if seconds is None else round(seconds, 1)
