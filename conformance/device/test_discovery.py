"""Device suite: discovery — where a device takes its provisioning server from (research §9-§11).

What the network offers (DHCP option 242, the LLDP file-server TLV) is set on the device
under test (`dut.network`, a `simulators.network.NetworkLayer`); the harness plays the
enrollment server (`des`, scripted: a zero-touch redirect to the harness's file server) and the
file server whose access log is the evidence. Checked for every device of the lab:
- the network's server is used when the person at the phone declines auto-provisioning
  ("No", research §11.3), and DES is not asked;
- option 242 over LLDP: the LLDP file server is taken only when DHCP named none (§10, [doc S34]);
- DES only when nothing named a server, or when the person asked for it ("Yes");
- DES_STAT (§11.6): 0/1 disable DES and the prompt; 3 forces DES without the prompt where the
  firmware has it (J100 from 4.0.0.0, Vantage from 2.1 per `fixtures/phone-models.json`), else
  it acts as 2 (the prompt).
Each outcome names the source that won (`provisioning-source` event, `Outcome.source`).

On a physical phone the network's offer goes out on the bench's DHCP to that phone only
(`harness.physical.device`: option 242 per MAC); what it shows on its screen (the prompt, a
DES_STAT it does not know) is not observable from outside, so those checks are recorded as
not observed in the step's evidence and the wire checks (DES asked or not, where it went) stand.

Over a real lab network (`enrollab lab network`, `enrollab phone boot`, the lab in a box) the
same decisions are checked with packets as evidence in `tests/integration/test_lab_in_a_box.py`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.device.settings_files import SETTINGS_FILE
from harness.dut import OutcomeResult
from harness.scripted_des import ScriptedDES, redirect
from simulators.network import NetworkOffer, NetworkServer, StaticNetwork, sson_server
from simulators.phone import User

NEEDS = ("provisioning-urls", "https-provisioning-url")
# A physical phone's auto-provisioning prompt is answered by a person (the `operator` marker:
# unattended, these tests end "needs operator" on physical phones).
DECLINE = "answer No at the phone's auto-provisioning prompt"
ACCEPT = "answer Yes at the phone's auto-provisioning prompt"


class FixedNetwork:
    """A network whose DHCP answer carried exactly `params` (option 242 already parsed)."""

    def __init__(self, params: dict[str, str], source: str = "dhcp-242") -> None:
        self.params = params
        self.source = source

    async def offer(self) -> NetworkOffer:
        url = sson_server(self.params)
        server = NetworkServer(url, self.source, self.params) if url else None
        return NetworkOffer(server, dict(self.params), dict.fromkeys(self.params, self.source))


def _sson(files: Any, extra: str = "") -> str:
    parts = urlsplit(files.https_url)
    text = f"TLSSRVR={parts.hostname},TLSPORT={parts.port},TLSDIR=/"
    return f"{text},{extra}" if extra else text


async def _files(file_server: Any) -> Any:
    return await file_server(cert_mode="public")


_MARK = "_discovery_mark"


def _events(dut: Any, name: str) -> list[dict[str, Any]]:
    """The device's `name` events since this test's boot (the device's log spans the session)."""
    return [e for e in dut.events[getattr(dut, _MARK, 0):] if e["event"] == name]


UNSEEN = "not observable from outside a physical phone (its screen); the wire checks stand"


def _screen(dut: Any, name: str, s: Any) -> list[dict[str, Any]] | None:
    """The phone's `name` events (what it showed), or None (recorded in the step) where the
    driver cannot see them."""
    if getattr(dut, "driver", "simulated") == "physical":
        s.record(**{name: UNSEEN})
        return None
    return _events(dut, name)


def _sources(dut: Any) -> list[str]:
    return [e["detail"]["source"] for e in _events(dut, "provisioning-source")]


async def _boot(dut: Any, step: Any, answer: str) -> Any:
    setattr(dut, _MARK, len(dut.events))
    with step("boot") as s:
        outcome = await dut.boot(User(prompt=answer))
        s.record(outcome=outcome.to_json(), sources=_sources(dut))
    return outcome


@pytest.mark.needs(*NEEDS)
@pytest.mark.operator(DECLINE)
@pytest.mark.steps("arrange", "boot", "check")
async def test_option_242_server_is_used_when_auto_provisioning_is_declined(
        dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    files = await _files(file_server)
    with step("arrange", evidence={"option_242": _sson(files)}):
        dut.network = StaticNetwork(option_242=_sson(files))
    outcome = await _boot(dut, step, "no")
    with step("check"):
        assert outcome.source == "dhcp-242", f"the server came from {outcome.source}, not option 242"
        assert SETTINGS_FILE in files.paths(status=200), f"no {SETTINGS_FILE} fetched: {files.requests}"
        assert des.enrollments(dut.identity.mac) == [], "the device asked DES although the network named a server"


@pytest.mark.needs(*NEEDS)
@pytest.mark.operator(DECLINE)
@pytest.mark.steps("arrange", "boot", "check")
async def test_lldp_file_server_is_used_only_when_dhcp_named_none(dut: Any, des: ScriptedDES, step: Any) -> None:
    # The TLV carries an address only: http://127.0.0.1/ (port 80, nothing listens in a test run);
    # the source and the server the device went to are the evidence here, the fetch is shown over
    # a real network (tests/integration/test_lab_in_a_box.py).
    with step("arrange", evidence={"lldp_file_server": "127.0.0.1"}):
        dut.network = StaticNetwork(lldp_file_server="127.0.0.1")
    outcome = await _boot(dut, step, "no")
    with step("check"):
        assert outcome.source == "lldp", f"the server came from {outcome.source}, not LLDP"
        assert outcome.server == "http://127.0.0.1/", outcome.server
        assert des.enrollments(dut.identity.mac) == []


@pytest.mark.needs(*NEEDS)
@pytest.mark.operator(DECLINE)
@pytest.mark.steps("arrange", "boot", "check")
async def test_lldp_does_not_override_the_server_option_242_set(
        dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    files = await _files(file_server)
    with step("arrange", evidence={"option_242": _sson(files), "lldp_file_server": "192.0.2.9"}):
        dut.network = StaticNetwork(option_242=_sson(files), lldp_file_server="192.0.2.9")
    outcome = await _boot(dut, step, "no")
    with step("check"):
        assert outcome.source == "dhcp-242", f"LLDP overrode option 242: the server came from {outcome.source}"
        assert "192.0.2.9" not in str(outcome.server)
        assert SETTINGS_FILE in files.paths(status=200)


@pytest.mark.needs(*NEEDS)
@pytest.mark.operator(ACCEPT)
@pytest.mark.steps("arrange", "boot", "check")
async def test_des_is_asked_when_nothing_named_a_server(
        dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    files = await _files(file_server)
    with step("arrange"):
        dut.network = StaticNetwork()
        des.script(dut.identity.mac, redirect(files.https_url))
    outcome = await _boot(dut, step, "yes")
    with step("check"):
        assert des.enrollments(dut.identity.mac), "the device never asked DES although nothing named a server"
        assert outcome.source == "des", f"the server came from {outcome.source}, not the DES redirect"
        assert outcome.result is OutcomeResult.PROVISIONED, f"ended {outcome.result} ({outcome.reason})"


@pytest.mark.steps("arrange", "boot", "check")
@pytest.mark.parametrize("value", ["0", "1"])
async def test_des_stat_0_and_1_disable_des_and_the_prompt(
        value: str, dut: Any, des: ScriptedDES, step: Any) -> None:
    with step("arrange", evidence={"option_242": f"DES_STAT={value}"}):
        dut.network = FixedNetwork({"DES_STAT": value})
    outcome = await _boot(dut, step, "yes")
    with step("check") as s:
        assert des.enrollments(dut.identity.mac) == [], f"DES_STAT={value} and the device still asked DES"
        assert _screen(dut, "prompt-shown", s) in ([], None), f"DES_STAT={value} and the device still showed the prompt"
        assert outcome.result is not OutcomeResult.PROVISIONED


@pytest.mark.needs(*NEEDS)
@pytest.mark.steps("arrange", "boot", "check")
async def test_des_stat_3_forces_des_where_the_firmware_has_it(
        dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    from conformance.device.declared import can_force_des

    files = await _files(file_server)
    forced = can_force_des(dut.identity.model, dut.identity.firmware)
    with step("arrange", evidence={"option_242": "DES_STAT=3", "firmware_can_force": forced}):
        dut.network = FixedNetwork({"DES_STAT": "3"})
        des.script(dut.identity.mac, redirect(files.https_url))
    outcome = await _boot(dut, step, "no")
    with step("check") as s:
        if forced:
            assert _screen(dut, "prompt-shown", s) in ([], None), "DES_STAT=3 and the prompt was still shown"
            assert des.enrollments(dut.identity.mac), "DES_STAT=3 and the device never asked DES"
            assert outcome.source == "des"
        else:
            assert _screen(dut, "des-stat-unsupported", s) != [], "3 on a firmware without it must act as 2, and say so"
            assert _screen(dut, "prompt-shown", s) != [], "DES_STAT=3 acts as 2 here: the prompt is shown"
            assert des.enrollments(dut.identity.mac) == [], "the prompt was answered No: DES is not asked"
