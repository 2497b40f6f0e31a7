"""Rebooting physical phones (issue 14), proven against peers we did not write: net-snmp's snmpd
with a `pass` handler standing in for a PoE switch's PSE port table, and SIPp as the phone's SIP
stack in a network namespace of its own (answering 200 or 481), plus a phone that never answers.
The harness's side sends from the lab namespace, as on a bench."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.lab import DeviceSpec
from harness.physical.poe import PoePort, power_cycle
from harness.physical.reboot import reboot
from harness.physical.sip_notify import SipTimers, check_sync
from simulators.l2.netns import socket_in
from tests.integration.physical_peers import COMMUNITY, DATA, snmpd
from tests.integration.physical_peers import sipp as sipp_in
from tests.lab_tiers import need_tool

FAST = SipTimers(t1=0.05, t2=0.4)  # Timer F = 3.2 s


def _port(snmp_port: int, port: int = 12, env: str = "TEST_POE_COMMUNITY") -> PoePort:
    return PoePort("127.0.0.1", port, env, snmp_port=snmp_port, off_seconds=0.3, timeout=0.5, retries=0)


async def test_poe_power_cycle_sets_the_port_off_then_on_insnmpd(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    need_tool("snmpget", package="snmp")
    monkeypatch.setenv("TEST_POE_COMMUNITY", COMMUNITY)
    with snmpd(tmp_path, {"1.12": 1, "1.13": 1}) as (snmp_port, state):
        said: list[str] = []
        await power_cycle(_port(snmp_port), progress=said.append)
        table = json.loads(state.read_text())
    sets = table["sets"]
    assert [(s["port"], s["value"]) for s in sets] == [("1.12", 2), ("1.12", 1)]  # false(2), then true(1)
    assert sets[1]["at"] - sets[0]["at"] >= 0.3  # held off for off_seconds
    assert table["ports"] == {"1.12": 1, "1.13": 1}  # back on; the neighbour untouched
    assert said == ["port 12 on 127.0.0.1: power off", "port 12 on 127.0.0.1: power on"]


async def test_poe_wrong_community_read_only_community_and_missing_port_are_one_line_reasons(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    need_tool("snmpget", package="snmp")
    with snmpd(tmp_path, {"1.12": 1}) as (snmp_port, state):
        monkeypatch.setenv("TEST_POE_COMMUNITY", "guessed-wrong")
        with pytest.raises(HarnessError) as wrong:
            await power_cycle(_port(snmp_port))
        monkeypatch.setenv("TEST_POE_COMMUNITY", "lab-read")
        with pytest.raises(HarnessError) as read_only:
            await power_cycle(_port(snmp_port))
        monkeypatch.setenv("TEST_POE_COMMUNITY", COMMUNITY)
        with pytest.raises(HarnessError) as missing:
            await power_cycle(_port(snmp_port, port=99))
        monkeypatch.delenv("TEST_POE_COMMUNITY")
        with pytest.raises(HarnessError) as unset:
            await power_cycle(_port(snmp_port))
        table = json.loads(state.read_text())
    assert wrong.value.error == "poe-no-answer" and "wrong community" in wrong.value.detail
    assert read_only.value.error == "poe-refused" and "noAccess" in read_only.value.detail
    assert missing.value.error == "poe-refused" and "1.99" in missing.value.detail
    assert unset.value.error == "poe-community-missing" and "TEST_POE_COMMUNITY" in unset.value.detail
    for exc in (wrong, read_only, missing, unset):
        assert "\n" not in str(exc.value)
        assert "guessed-wrong" not in str(exc.value) and COMMUNITY not in str(exc.value)  # never said
    assert "sets" not in table and table["ports"] == {"1.12": 1}  # nothing was switched off


@pytest.mark.parametrize(("scenario", "status"), [("notify-200.xml", 200), ("notify-481.xml", 481)])
async def test_notify_check_sync_gets_sipps_final_answer(bench, tmp_path: Path, scenario: str, status: int) -> None:  # type: ignore[no-untyped-def]
    lab, phone, ip = bench
    with sipp_in(phone.netns, ip, scenario, tmp_path) as sipp:
        answer = await check_sync(ip, timers=FAST, netns=lab.netns)
        sipp.wait(20)
    # SIPp's scenario checks the Event header is check-sync: a call it failed would exit non-zero.
    assert sipp.returncode == 0, (sipp.stderr.read() if sipp.stderr else b"").decode()[-2000:]
    assert (answer.status, answer.transmissions) == (status, 1)
    assert answer.accepted is (status == 200)


async def test_reboot_by_sip_notify_says_how_or_why_not(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab, phone, ip = bench
    spec = DeviceSpec(driver="physical", model="J179", firmware="4.1.11.0.9", mac="A4251B00E001", serial=None,
                      name="desk-1", ip=ip, reboot="sip-notify")
    with sipp_in(phone.netns, ip, "notify-481.xml", tmp_path), pytest.raises(HarnessError) as refused:
        await reboot(spec, sip_timers=FAST, netns=lab.netns)
    assert refused.value.error == "sip-refused"
    assert str(refused.value) == f"sip-refused: desk-1 ({ip}:5060) answered NOTIFY check-sync with 481 " \
                                 "Call/Transaction Does Not Exist"
    with sipp_in(phone.netns, ip, "notify-200.xml", tmp_path):
        done = await reboot(spec, sip_timers=FAST, netns=lab.netns)
    assert done.method == "sip-notify" and done.detail.startswith(f"NOTIFY check-sync to {ip}:5060: 200 OK")


async def test_a_phone_that_never_answers_is_retransmitted_to_per_timer_e_then_given_up(bench) -> None:  # type: ignore[no-untyped-def]
    lab, phone, ip = bench
    heard = socket_in(phone.netns, socket.AF_INET, socket.SOCK_DGRAM)
    heard.bind((ip, 5060))
    heard.settimeout(0.0)
    try:
        started = time.monotonic()
        with pytest.raises(HarnessError) as silent:
            await check_sync(ip, timers=FAST, netns=lab.netns)
        took = time.monotonic() - started
        datagrams = []
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(heard.recv(65535))
    finally:
        heard.close()
    assert silent.value.error == "sip-no-answer"
    sent = int(silent.value.detail.split(" after ")[1].split(" ")[0])
    # Timer E: 0, T1, 3T1, 7T1 ... then every T2 until Timer F (64 T1): 11 sends with these timers.
    assert len(datagrams) == sent and sent >= 8
    assert len(set(datagrams)) == 1 and datagrams[0].startswith(b"NOTIFY sip:")  # the same request again
    assert b"\r\nEvent: check-sync\r\n" in datagrams[0]
    assert took >= FAST.f
    # Nothing listening at all: the ICMP port-unreachable is named in the reason.
    with pytest.raises(HarnessError) as closed:
        await check_sync(ip, 5061, timers=SipTimers(t1=0.02, t2=0.1), netns=lab.netns)
    assert "port unreachable" in closed.value.detail and "\n" not in str(closed.value)


def test_pse_pass_handler_speaks_the_snmpd_pass_protocol(tmp_path: Path) -> None:
    """The stand-in switch itself: get, getnext and set as snmpd.conf(5) specifies."""
    state = tmp_path / "s.json"
    state.write_text(json.dumps({"ports": {"1.2": 1, "1.10": 1}}))
    base = ".1.3.6.1.2.1.105.1.1.1.3"

    def run(*args: str) -> str:
        return subprocess.run(["/usr/bin/python3", str(DATA / "pse_pass.py"), str(state), *args],
                              capture_output=True, text=True, check=True, env={**os.environ}).stdout

    assert run("-g", f"{base}.1.2") == f"{base}.1.2\ninteger\n1\n"
    assert run("-n", f"{base}.1.2") == f"{base}.1.10\ninteger\n1\n"
    assert run("-s", f"{base}.1.10", "integer", "2") == ""
    assert run("-s", f"{base}.1.11", "integer", "2") == "not-writable\n"
    assert json.loads(state.read_text())["ports"] == {"1.2": 1, "1.10": 2}
