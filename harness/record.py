"""The record of a conformance run — the `report.json` document (`fixtures/schemas/report.schema.json`)
— built from what the pytest plugin collected, and its marks on pytest's own junit.xml.

`build_report` fills provenance (project version, git SHA, lab file and digest, seed, target,
suites, times, Python, command, server identity), the devices, the features the tests named,
every test, and — through `harness.report` — summary, matrix and rule coverage.

`annotate_junit` makes junit.xml (written by pytest's junitxml) tell the five outcomes apart
the way JUnit can: pass as a plain testcase, fail as `<failure>`, error as `<error>` (a test
whose body raised a harness error is a pytest failure until this renames it), needs operator as
`<skipped message="needs operator: …">` (what the person would have done) and not applicable as
`<skipped message="not applicable: …">`; each testcase gets `enrollab.outcome`, one
`enrollab.network` per entry of its lab network evidence (`summary (HH:MM:SS.mmm)`, as the HTML
report shows it), and the suite the provenance as properties (labgrid style), and the suite's
counters are recounted.
"""

from __future__ import annotations

import base64
import contextlib
import platform
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.lab_network.evidence import summary_line
from harness.report import Outcome, aggregate_matrix, rule_coverage, summarize

__all__ = ["SUITES", "annotate_junit", "build_report", "command_line", "git_sha", "iso_now", "jsonable",
           "project_version"]

SUITES = ("server", "device")
NODEID_PROPERTY = "enrollab.nodeid"
OUTCOME_PROPERTY = "enrollab.outcome"
NETWORK_PROPERTY = "enrollab.network"


def iso_now() -> str:
    return iso(datetime.now(UTC))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def project_version() -> str:
    try:
        return metadata.version("enrollab")
    except metadata.PackageNotFoundError:
        from server import __version__

        return str(__version__)


def git_sha() -> str | None:
    """The checkout's commit (`-dirty` with uncommitted changes to tracked files), or None when the
    project does not run from its own git checkout (an installed wheel, even inside somebody
    else's repository) or git is missing."""
    here = Path(__file__).resolve()

    def git(*args: str) -> str:
        # fixed arguments, no shell: git from PATH is what a developer's checkout uses
        command = ["git", *args]
        return subprocess.run(  # noqa: S603
            command, cwd=here.parent, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        if (top / "harness" / here.name).resolve() != here:
            return None
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        return None
    return sha + ("-dirty" if dirty else "")


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


def jsonable(value: Any) -> Any:
    """Evidence as JSON: mappings and sequences kept, bytes as text (or base64), the rest str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        with contextlib.suppress(Exception):
            return jsonable(to_json())
    return str(value)


def build_report(
    *,
    tests: list[dict[str, Any]],
    devices: Iterable[Mapping[str, Any]],
    features: Mapping[str, str],
    unobservable: Mapping[str, str],
    target: str,
    seed: int,
    lab_file: str | None,
    lab_digest: str | None,
    server: Mapping[str, Any],
    started_at: datetime,
    command: str,
) -> dict[str, Any]:
    device_list = [dict(d) for d in devices]
    feature_list = [{"id": fid, "label": label} for fid, label in features.items()]
    suites = [s for s in SUITES if any(t["suite"] == s for t in tests)] or list(SUITES)
    tests = [jsonable(t) for t in tests]
    return {
        "schema_version": 1,
        "provenance": {
            "project": "enrollab",
            "version": project_version(),
            "git_sha": git_sha(),
            "lab_file": lab_file,
            "lab_digest": lab_digest,
            "seed": seed,
            "target": target,
            "suites": suites,
            "started_at": iso(started_at),
            "finished_at": iso_now(),
            "python": platform.python_version(),
            "command": command,
            "server": jsonable(dict(server)),
        },
        "devices": device_list,
        "features": feature_list,
        "summary": summarize(tests),
        "tests": tests,
        "matrix": aggregate_matrix(tests, device_list, feature_list),
        "rules": rule_coverage(tests),
        "unobservable_rules": [{"rule": rule, "why": why} for rule, why in unobservable.items()],
    }


def annotate_junit(path: Path, doc: Mapping[str, Any]) -> None:
    """Mark junit.xml with the record's outcomes and provenance (module docstring)."""
    from harness.outcomes import OPERATOR_PREFIX  # imports pytest: only when there is a junit.xml

    try:
        tree = ET.parse(path)  # noqa: S314 - the file pytest just wrote
    except (OSError, ET.ParseError):
        return
    outcomes = {t["id"]: t["outcome"] for t in doc["tests"]}
    reasons = {t["id"]: t["reason"] for t in doc["tests"]}
    network = {t["id"]: t["evidence"].get("network", ()) for t in doc["tests"]}
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        for case in suite.findall("testcase"):
            props = case.find("properties")
            nodeid = None
            if props is not None:
                for prop in props.findall("property"):
                    if prop.get("name") == NODEID_PROPERTY:
                        nodeid = prop.get("value")
            outcome = outcomes.get(nodeid or "")
            if outcome is None:
                continue
            if outcome == Outcome.ERROR:
                for failure in case.findall("failure"):
                    failure.tag = "error"
            if outcome == Outcome.NEEDS_OPERATOR:
                _needs_operator(case, OPERATOR_PREFIX + (reasons.get(nodeid or "") or ""))
            assert props is not None
            ET.SubElement(props, "property", name=OUTCOME_PROPERTY, value=str(outcome))
            for entry in network.get(nodeid or "", ()):
                ET.SubElement(props, "property", name=NETWORK_PROPERTY, value=summary_line(entry))
        cases = suite.findall("testcase")
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None and c.find("error") is None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        _suite_properties(suite, doc)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _needs_operator(case: ET.Element, message: str) -> None:
    """A skip saying what the person would have done (the plugin reports it as one already; a
    `<failure>`/`<error>` pytest wrote for it first would make CI count it as broken)."""
    for bad in case.findall("failure") + case.findall("error"):
        case.remove(bad)
    skipped = case.find("skipped")
    if skipped is None:
        skipped = ET.SubElement(case, "skipped", type="enrollab.needs_operator")
        skipped.text = message
    skipped.set("message", message)


def _suite_properties(suite: ET.Element, doc: Mapping[str, Any]) -> None:
    props = suite.find("properties")
    if props is None:
        props = ET.Element("properties")
        suite.insert(0, props)
    prov = doc["provenance"]
    server = prov.get("server") or {}
    values = {
        "enrollab.version": prov.get("version"),
        "enrollab.git_sha": prov.get("git_sha"),
        "enrollab.lab_file": prov.get("lab_file"),
        "enrollab.lab_digest": prov.get("lab_digest"),
        "enrollab.seed": prov.get("seed"),
        "enrollab.target": prov.get("target"),
        "enrollab.server": f"{server.get('name')} {server.get('version')} at {server.get('url')}".strip(),
    }
    for device in doc.get("devices", ()):
        values[f"enrollab.device.{device['id']}"] = f"{device['model']} {device['firmware']} {device['mac']} " \
                                                    f"({device['driver']})"
    summary = doc["summary"]
    values["enrollab.summary"] = ", ".join(f"{summary.get(o.value, 0)} {o.value}" for o in Outcome)
    for name, value in values.items():
        if value is not None:
            ET.SubElement(props, "property", name=name, value=str(value))
