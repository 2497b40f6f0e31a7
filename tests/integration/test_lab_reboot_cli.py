"""`enrollab lab reboot` (PROTOCOL §5, issue 14's must-show) as a user runs it: against net-snmp's
snmpd standing in for a PoE switch, SIPp as a phone's SIP stack in a namespace, a phone that never
answers, and an operator prompt with and without a terminal. Each failure is one line with a
reason and a non-zero exit, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.physical_peers import COMMUNITY, sipp, snmpd
from tests.lab_tiers import need_tool

ENROLLAB = str(Path(sys.executable).with_name("enrollab"))


def _lab(tmp: Path, device: str) -> Path:
    lab = tmp / "bench.toml"
    lab.write_text(
        '[server]\nurl = "https://des.lab.example:8080"\nadmin_password_env = "ENROLLAB_ADMIN_PASSWORD"\n\n'
        '[[devices]]\ndriver = "physical"\nname = "desk-1"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
        f'mac = "A4:25:1B:00:E0:01"\n{device}'
    )
    return lab


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENROLLAB, "lab", "reboot", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, start_new_session=True)


def _one_line_failure(done: subprocess.CompletedProcess[str], error: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error {error}: "), done.stderr
    assert "Traceback" not in done.stderr


def test_poe_reboot_against_snmpd_and_a_wrong_community(tmp_path: Path) -> None:
    need_tool("snmpget", package="snmp")
    with snmpd(tmp_path, {"1.7": 1}) as (snmp_port, state):
        lab = _lab(tmp_path, f'ip = "10.0.40.21"\nreboot = "poe"\npoe = {{switch = "127.0.0.1", port = 7, '
                             f'snmp_port = {snmp_port}, community_env = "BENCH_POE", off_seconds = 0.2, '
                             'timeout = 0.5}\n')
        done = _run("--lab", str(lab), "desk-1", env={"BENCH_POE": COMMUNITY})
        wrong = _run("--lab", str(lab), "A4251B00E001", env={"BENCH_POE": "public"})
        as_json = _run("--lab", str(lab), "--json", "a4:25:1b:00:e0:01", env={"BENCH_POE": "public"})
        sets = json.loads(state.read_text())["sets"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rebooted desk-1 (poe): PoE port 1.7 on 127.0.0.1 off 0.2 s, then on")
    assert [(s["port"], s["value"]) for s in sets] == [("1.7", 2), ("1.7", 1)]  # only the good run switched
    _one_line_failure(wrong, "poe-no-answer")
    assert "wrong community" in wrong.stderr and "public" not in wrong.stderr
    assert as_json.returncode == 1
    event = json.loads(as_json.stdout)
    assert (event["event"], event["error"], event["phone"]) == ("error", "poe-no-answer", "desk-1")


def test_sip_notify_reboot_answered_by_sipp_and_a_silent_phone(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab_box, phone, ip = bench
    lab = _lab(tmp_path, f'ip = "{ip}"\nreboot = "sip-notify"\nsip = {{t1 = 0.05}}\n')
    with sipp(phone.netns, ip, "notify-200.xml", tmp_path) as phone_sip:
        done = _run("--lab", str(lab), "--netns", lab_box.netns, "desk-1")
        phone_sip.wait(20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"rebooted desk-1 (sip-notify): NOTIFY check-sync to {ip}:5060: 200 OK")
    assert phone_sip.returncode == 0
    started = time.monotonic()
    silent = _run("--lab", str(lab), "--netns", lab_box.netns, "desk-1")
    assert time.monotonic() - started < 30  # Timer F of 64 x 0.05 s, not a hang
    _one_line_failure(silent, "sip-no-answer")


def test_manual_reboot_without_a_terminal_fails_at_once(tmp_path: Path) -> None:
    lab = _lab(tmp_path, 'ip = "10.0.40.21"\nreboot = "manual"\n')
    done = _run("--lab", str(lab), "desk-1", timeout=20)
    _one_line_failure(done, "needs-operator")
    assert "power-cycle the phone desk-1" in done.stderr


def test_manual_reboot_asks_the_operator_on_the_terminal(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    lab = _lab(tmp_path, 'ip = "10.0.40.21"\nreboot = "manual"\n')
    did = pexpect.spawn(ENROLLAB, ["lab", "reboot", "--lab", str(lab), "desk-1"], encoding="utf-8", timeout=20)
    did.expect(r"operator: power-cycle the phone desk-1 \(MAC A4251B00E001, 10\.0\.40\.21\)")
    did.expect("press Enter when done")
    did.sendline("")
    did.expect("rebooted desk-1 \\(manual\\): the operator power-cycled it")
    did.expect(pexpect.EOF)
    did.close()
    assert did.exitstatus == 0
    skipped = pexpect.spawn(ENROLLAB, ["lab", "reboot", "--lab", str(lab), "desk-1"], encoding="utf-8", timeout=20)
    skipped.expect("press Enter when done")
    skipped.sendline("skip")
    skipped.expect("operator-skipped")
    skipped.expect(pexpect.EOF)
    skipped.close()
    assert skipped.exitstatus == 1


def test_bad_arguments_exit_2_with_the_reason(tmp_path: Path) -> None:
    lab = _lab(tmp_path, 'ip = "10.0.40.21"\nreboot = "poe"\n')
    no_poe = _run("--lab", str(lab), "desk-1")
    assert no_poe.returncode == 2 and 'reboot = "poe" needs a poe table' in no_poe.stderr
    lab = _lab(tmp_path, 'ip = "10.0.40.21"\nreboot = "manual"\n')
    unknown = _run("--lab", str(lab), "desk-9")
    assert unknown.returncode == 2 and "no-such-phone" in unknown.stderr and "desk-1" in unknown.stderr
    missing = _run("--lab", str(tmp_path / "none.toml"), "desk-1")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
