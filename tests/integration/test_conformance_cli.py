"""`enrollab conformance run` (PROTOCOL §4) in a subprocess: the three files, and the exit status
for pass (0), fail (1), all not applicable (0), needs operator (1) and bad input (2)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from harness.report import load_report


def enrollab(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def lab_file(where: Path, devices: str) -> Path:
    path = where / "lab.toml"
    path.write_text("[server]\nembedded = true\n\n[options]\nseed = 5\n\n" + devices)
    return path


def test_the_server_suite_on_the_embedded_server_passes_and_writes_three_files(tmp_path: Path) -> None:
    done = enrollab(tmp_path, "conformance", "run", "--target", "sim", "--suite", "server", "-k", "test_info",
                    "--report-dir", "reports")
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "reports"
    assert {p.name for p in out.iterdir()} >= {"junit.xml", "report.json", "report.html"}
    doc = load_report(out / "report.json")
    assert doc["summary"]["pass"] == doc["summary"]["total"] >= 2
    assert doc["provenance"]["suites"] == ["server"] and doc["provenance"]["server"]["name"] == "enrollab"
    assert {t["suite"] for t in doc["tests"]} == {"server"}
    assert any("PROTOCOL-3" in t["rules"] for t in doc["tests"]) and "ACC-2" in doc["rules"]
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")  # noqa: S314
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert f"report: {Path('reports') / 'report.html'}" in done.stdout
    assert "0 fail, 0 error" in done.stdout


async def test_a_third_party_server_that_breaks_a_rule_fails_the_run(tmp_path: Path) -> None:
    """--server: a server whose /api/v1/info names an http device URL (PROTOCOL §2 wants mutual TLS)."""

    async def info(request: web.Request) -> web.Response:
        return web.json_response({"name": "acme-des", "version": "9.9", "device_url": "http://acme.example:8443"})

    async def login(request: web.Request) -> web.Response:
        return web.json_response({"token": "t0k3n", "password_change_required": False})

    app = web.Application()
    app.router.add_get("/api/v1/info", info)
    app.router.add_post("/api/v1/auth/login", login)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness.cli", "conformance", "run", "--target", "sim", "--suite", "server",
            "--server", f"http://127.0.0.1:{port}", "-k", "test_info_names", "--report-dir", "reports",
            cwd=tmp_path, env={**os.environ, "ENROLLAB_ADMIN_PASSWORD": "x"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await runner.cleanup()
    assert proc.returncode == 1, (out + err).decode()
    doc = load_report(tmp_path / "reports" / "report.json")
    (test,) = doc["tests"]
    assert test["outcome"] == "fail" and "is not an https URL" in test["message"]
    assert [s["outcome"] for s in test["steps"]] == ["pass", "fail"]
    server = doc["provenance"]["server"]
    assert (server["name"], server["version"], server["embedded"]) == ("acme-des", "9.9", False)
    assert server["url"] == f"http://127.0.0.1:{port}"
    assert b"1 fail" in out


def test_a_run_that_is_all_not_applicable_exits_0(tmp_path: Path) -> None:
    lab = lab_file(tmp_path, '[[devices]]\ndriver = "simulated"\nmodel = "K165"\nfirmware = "1.1"\n')
    done = enrollab(tmp_path, "conformance", "run", "--target", "sim", "--lab", str(lab), "--suite", "device",
                    "-k", "test_http_provisioning_url", "--report-dir", "reports")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert doc["summary"] == {"pass": 0, "fail": 0, "error": 0, "needs_operator": 0, "not_applicable": 1,
                            "total": 1}
    assert doc["tests"][0]["reason"] == "K165 1.1: HTTP provisioning URL needs 1.1SP1"
    assert "1 not applicable" in done.stdout


def test_unattended_the_suites_code_and_prompt_tests_need_an_operator_on_a_physical_phone(tmp_path: Path) -> None:
    """The device suite's own `operator` markers (typing codes, answering the prompt): on a physical
    phone with nobody at the bench they end needs operator, the run exits 1 and says why; the same
    tests on a simulated phone run (one passes, one is n/a by its feature)."""
    lab = lab_file(tmp_path, '[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
                   'mac = "A4251B0C3D5E"\nip = "192.0.2.21"\nreboot = "manual"\n\n'
                   '[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n')
    selected = "test_8_digit_code_is_sent or test_8_digit_code_not_sent or test_des_is_asked_when_nothing"
    done = enrollab(tmp_path, "conformance", "run", "--target", "lab", "--lab", str(lab), "--suite", "device",
                    "--unattended", "-k", selected, "--report-dir", "lab")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = load_report(tmp_path / "lab" / "report.json")
    outcomes = {t["name"]: (t["outcome"], t["reason"]) for t in doc["tests"]}
    assert outcomes["test_8_digit_code_is_sent"] == (
        "needs_operator", "type the enrollment codes the phone asks for on its keypad")
    assert outcomes["test_des_is_asked_when_nothing_named_a_server"] == (
        "needs_operator", "answer Yes at the phone's auto-provisioning prompt")
    na, why = outcomes["test_8_digit_code_not_sent_without_the_feature"]  # n/a wins: the J179 has 8-digit codes
    assert na == "not_applicable" and why.startswith("a negative check for devices without")
    assert "0 fail, 0 error, 2 needs operator, 1 not applicable of 3" in done.stdout
    assert "need a person at the bench: run again attended" in done.stdout

    done = enrollab(tmp_path, "conformance", "run", "--target", "sim", "--lab", str(lab), "--suite", "device",
                    "--unattended", "-k", selected, "--report-dir", "sim")
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_report(tmp_path / "sim" / "report.json")["summary"]["needs_operator"] == 0


def test_help_states_the_exit_status_rule() -> None:
    from harness.cli import main

    done = CliRunner().invoke(main, ["conformance", "run", "--help"])
    assert done.exit_code == 0
    text = " ".join(done.output.split())
    assert "0 every test passed or was not applicable" in text
    assert "1 a test failed, errored, or needs an operator" in text
    assert "--unattended" in text


def test_bad_input_exits_2_naming_line_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    lab = lab_file(tmp_path, '[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.x"\n')
    runner = CliRunner()
    done = runner.invoke(main, ["conformance", "run", "--target", "sim", "--lab", str(lab)])
    assert done.exit_code == 2, done.output
    assert f"{lab}:10: devices[0].firmware: '4.x' is not a firmware version" in " ".join(done.stderr.split())
    assert not (tmp_path / "conformance-report" / "report.json").exists()

    monkeypatch.delenv("ENROLLAB_ADMIN_PASSWORD", raising=False)
    done = runner.invoke(main, ["conformance", "run", "--target", "sim", "--server", "http://127.0.0.1:9"])
    assert done.exit_code == 2 and "ENROLLAB_ADMIN_PASSWORD" in done.stderr
    done = runner.invoke(main, ["conformance", "run", "--target", "sim", "--server", "ftp://x"])
    assert done.exit_code == 2 and "not an http(s) URL" in done.stderr
    remote = tmp_path / "remote.toml"
    remote.write_text('[server]\nurl = "https://des.example"\nadmin_password_env = "DES_PASSWORD"\n')
    done = runner.invoke(main, ["conformance", "run", "--target", "lab", "--lab", str(remote)])
    assert done.exit_code == 2 and "DES_PASSWORD" in done.stderr
    done = runner.invoke(main, ["conformance", "run", "--target", "robot"])
    assert done.exit_code == 2


THREE = "".join(f'[[devices]]\ndriver = "simulated"\nmodel = "{m}"\nfirmware = "{v}"\n\n'
                for m, v in (("J179", "4.1.11.0.9"), ("K175", "3.0"), ("J139", "4.0.6.0")))
PICK = "enrollment_request_identifies_the_device or conformance_statement or test_info"


def test_jobs_runs_device_shards_in_parallel_into_one_report_equal_to_the_sequential_one(tmp_path: Path) -> None:
    """`--jobs 3`: the server suite once and the three devices in two shards, merged into one
    report.json/html and junit.xml with the same tests and outcomes as a run without --jobs."""
    lab = lab_file(tmp_path, THREE)
    one = enrollab(tmp_path, "conformance", "run", "--target", "sim", "--lab", str(lab), "-k", PICK,
                   "--report-dir", "one")
    many = enrollab(tmp_path, "conformance", "run", "--target", "sim", "--lab", str(lab), "-k", PICK,
                    "--report-dir", "many", "--jobs", "3")
    assert one.returncode == 0 and many.returncode == 0, many.stdout + many.stderr
    assert "3 shards: server suite, 2 device(s), 1 device(s)" in many.stdout
    sequential, parallel = load_report(tmp_path / "one" / "report.json"), load_report(tmp_path / "many" / "report.json")

    def seen(doc: dict[str, object]) -> set[tuple[object, ...]]:
        return {(t["suite"], t["name"], t["device"], t["outcome"]) for t in doc["tests"]}  # type: ignore[attr-defined]

    assert seen(parallel) == seen(sequential) and len(seen(parallel)) >= 6
    assert sorted(d["id"] for d in parallel["devices"]) == sorted(d["id"] for d in sequential["devices"])
    assert parallel["summary"] == sequential["summary"] and parallel["matrix"] == sequential["matrix"]
    assert parallel["provenance"]["suites"] == ["server", "device"]
    cases = ET.parse(tmp_path / "many" / "junit.xml").getroot().iter("testcase")  # noqa: S314
    assert len(list(cases)) == sequential["summary"]["total"]
    assert (tmp_path / "many" / "report.html").stat().st_size > 0
