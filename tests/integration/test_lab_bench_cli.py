"""`enrollab lab reboot` and `enrollab lab check` (PROTOCOL §5, issue 14's must-show) as a user
runs them: against net-snmp's snmpd standing in for a PoE switch, SIPp (or a simulated phone's SIP
port) in a namespace, a phone that never answers, and an operator prompt with and without a
terminal. Each failure is one line with a reason and a non-zero exit, never a traceback or a
hang; a check reboots nothing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
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
    # Timer F (64 x 0.05 s) ends it; _run's own timeout fails the test on a hang
    silent = _run("--lab", str(lab), "--netns", lab_box.netns, "desk-1")
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


def test_lab_check_says_which_phones_are_ready_and_reboots_nothing(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Three phones: a SIP stack that answers OPTIONS (a simulated phone's SIP port), a PoE port on
    snmpd, an operator phone without a terminal; then the same bench with a wrong community and a
    phone whose SIP stack is gone."""
    need_tool("snmpget", package="snmp")
    lab_box, phone, ip = bench
    with snmpd(tmp_path, {"1.7": 1}) as (snmp_port, state):
        lab = tmp_path / "bench.toml"
        lab.write_text(
            '[[devices]]\ndriver = "physical"\nname = "desk-1"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
            f'mac = "A4251B00E001"\nip = "{ip}"\nreboot = "sip-notify"\nsip = {{t1 = 0.05}}\n\n'
            '[[devices]]\ndriver = "physical"\nname = "desk-2"\nmodel = "K175"\nfirmware = "3.1"\n'
            'mac = "C81FEA112233"\nip = "10.0.40.22"\nreboot = "poe"\n'
            f'poe = {{switch = "127.0.0.1", port = 7, snmp_port = {snmp_port}, community_env = "BENCH_POE", '
            'timeout = 0.5}\n\n'
            '[[devices]]\ndriver = "physical"\nname = "room"\nmodel = "B199"\nfirmware = "1.0.3.0"\n'
            'mac = "A4251B0C3D60"\nip = "10.0.40.23"\nreboot = "manual"\n'
        )
        reboots: list[int] = []
        with _sip_agent(phone.netns, reboots):
            ready = _run_check("--lab", str(lab), "--netns", lab_box.netns, "--json", env={"BENCH_POE": COMMUNITY})
        not_ready = _run_check("--lab", str(lab), "--netns", lab_box.netns, env={"BENCH_POE": "public"})
        table = json.loads(state.read_text())
    rows = {r["phone"]: r for r in map(json.loads, ready.stdout.splitlines())}
    assert ready.returncode == 1  # the manual phone has no terminal here
    assert rows["desk-1"]["ready"] and rows["desk-1"]["detail"] == "OPTIONS answered 200 OK"
    assert rows["desk-2"]["ready"] and rows["desk-2"]["detail"] == "the port is on"
    assert not rows["room"]["ready"] and "needs operator" in rows["room"]["detail"]
    assert reboots == [] and "sets" not in table  # a check reboots nothing
    assert not_ready.returncode == 1 and "0 of 3 phones ready" in not_ready.stdout
    assert "wrong community" in not_ready.stdout and "no final answer" in not_ready.stdout
    assert "public" not in not_ready.stdout and "Traceback" not in not_ready.stderr


def _run_check(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENROLLAB, "lab", "check", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200", **env}, stdin=subprocess.DEVNULL,
                          start_new_session=True)


@contextlib.contextmanager
def _sip_agent(netns: str, reboots: list[int]) -> Iterator[None]:
    """A simulated phone's SIP port in `netns`, on a thread of its own for the blocking CLI run."""
    import asyncio
    import threading

    from simulators.sip_agent import SipAgent

    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with SipAgent(lambda: reboots.append(1), netns=netns):
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
