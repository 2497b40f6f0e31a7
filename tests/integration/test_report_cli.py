"""`enrollab report diff|render` as a CI job runs them: exit 0 / 1 (regression) / 2 (unreadable input).

Each exit status once through a real process; the variations in-process (CliRunner), to stay fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from harness.cli import main
from tests.unit.test_report import J179, SAMPLE, find, refresh, sample


def enrollab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(map(str, args)))
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_diff_exits_0_without_and_1_with_a_regression(tmp_path: Path) -> None:
    same = enrollab("report", "diff", SAMPLE, SAMPLE)
    assert same.returncode == 0, same.stderr
    assert "result: no regressions" in same.stdout

    worse = sample()
    test = find(worse, "test_redirects_to_the_profile_url", J179)
    test.update(outcome="fail", message="ENR-2: the phone got no redirect")
    new = write(tmp_path / "new.json", refresh(worse))

    regressed = enrollab("report", "diff", SAMPLE, new)
    assert regressed.returncode == 1, regressed.stderr
    assert "REGRESSIONS (2):" in regressed.stdout and "ENR-2: the phone got no redirect" in regressed.stdout

    code, out, _ = invoke("report", "diff", new, SAMPLE, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["has_regressions"] is False and len(data["improvements"]) == 2


def test_diff_exits_2_on_unreadable_input_without_a_traceback(tmp_path: Path) -> None:
    not_json = tmp_path / "garbage.json"
    not_json.write_text("<html>", encoding="utf-8")
    broken = sample()
    broken["tests"][0]["outcome"] = "skipped"
    invalid = write(tmp_path / "invalid.json", broken)
    result = enrollab("report", "diff", tmp_path / "absent.json", SAMPLE)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error report-not-found: ") and str(tmp_path / "absent.json") in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for old, new, error in [(SAMPLE, not_json, "report-not-json"), (invalid, SAMPLE, "report-invalid")]:
        code, out, err = invoke("report", "diff", old, new)
        assert code == 2, (error, out, err)
        assert err.startswith(f"error {error}: ") and out == ""
    assert "$.tests[0].outcome" in err


def test_render_rewrites_report_html_from_report_json(tmp_path: Path) -> None:
    source = write(tmp_path / "report.json", sample())
    here = enrollab("report", "render", source)
    assert here.returncode == 0, here.stderr
    assert here.stdout.strip() == str(tmp_path / "report.html")
    assert '<table id="matrix">' in (tmp_path / "report.html").read_text(encoding="utf-8")

    code, out, err = invoke("report", "render", source, "--out", tmp_path / "site" / "run-1")
    assert code == 0, err
    assert (tmp_path / "site" / "run-1" / "report.html").is_file()

    code, _, err = invoke("report", "render", tmp_path / "nope.json")
    assert code == 2 and err.startswith("error report-not-found: ")


def test_report_commands_are_in_the_help() -> None:
    code, out, _ = invoke("report", "--help")
    assert code == 0 and "diff" in out and "render" in out
