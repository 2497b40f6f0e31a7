"""Device suite: DES or the network's server, when the network names one (research §11.6) — the
two ways models differ, as `fixtures/phone-models.json` declares them (`des`):

- `network_server_skips_des` (Vantage): at DES_STAT 2, a server from DHCP option 242 means no
  prompt and no DES ("DES is not activated if a server was received from DHCP, LLDP …"); a J100
  shows the prompt, and "Yes" asks only DES.
- `force_overrides_network` (Vantage from 2.1): DES_STAT 3 runs DES even when option 242 named a
  server; a J100 from 4.0.0.0 takes the network's server and asks DES only without one. Where the
  firmware has no DES_STAT 3 (`des.force_from`) 3 acts as 2: `test_discovery.py` covers that.

Evidence on the wire: whether the scripted DES saw an enrollment, and which of two file servers
(the one option 242 names, the one the DES redirect names) the settings were fetched from. The
expectation is read from the data file here, not through `simulators.capabilities` (as
`declared.py` does for `des.force_from`): a phone whose policy logic is broken must not move it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

import fixtures
from conformance.device.declared import can_force_des
from conformance.device.settings_files import SETTINGS_FILE
from fixtures.features import FeatureMatrix
from harness.fileserver import FileServer
from harness.outcomes import not_applicable
from harness.scripted_des import ScriptedDES, redirect
from simulators.network import StaticNetwork
from simulators.phone import User

NEEDS = ("provisioning-urls", "https-provisioning-url")
ACCEPT = "answer Yes at the phone's auto-provisioning prompt, if it shows one"


def des_policy(model: str) -> Mapping[str, Any]:
    """The model's declared `des` block of fixtures/phone-models.json."""
    models = fixtures.load_json("phone-models.json")["models"]
    return models[FeatureMatrix.load().model(model).name]["des"]


def option_242(files: FileServer, extra: str = "") -> str:
    parts = urlsplit(files.https_url)
    text = f"TLSSRVR={parts.hostname},TLSPORT={parts.port},TLSDIR=/"
    return f"{text},{extra}" if extra else text


def fetched(files: FileServer) -> bool:
    return SETTINGS_FILE in files.paths(status=200)


async def arrange(dut: Any, des: ScriptedDES, file_server: Any, step: Any, extra: str) -> tuple[FileServer, FileServer]:
    network: FileServer = await file_server(cert_mode="public")
    redirected: FileServer = await file_server(cert_mode="public")
    offer = option_242(network, extra)
    with step("arrange", evidence={"option_242": offer, "des_redirect": redirected.https_url,
                                   "declared": dict(des_policy(dut.identity.model))}):
        dut.network = StaticNetwork(option_242=offer)
        des.script(dut.identity.mac, redirect(redirected.https_url))
    return network, redirected


async def boot(dut: Any, step: Any, network: FileServer, redirected: FileServer, des: ScriptedDES) -> Any:
    with step("boot") as s:
        outcome = await dut.boot(User(prompt="yes"))
        s.record(outcome=outcome.to_json(), network_server=network.paths(), des_server=redirected.paths(),
                 enrollments=len(des.enrollments(dut.identity.mac)))
    return outcome


def assert_network_server_used(dut: Any, des: ScriptedDES, network: FileServer, redirected: FileServer,
                               why: str) -> None:
    assert des.enrollments(dut.identity.mac) == [], f"{why}, yet the device asked DES"
    assert fetched(network), f"{why}, yet the device did not fetch {SETTINGS_FILE} from it: {network.paths()}"
    assert redirected.requests == []


def assert_des_used(dut: Any, des: ScriptedDES, network: FileServer, redirected: FileServer, why: str) -> None:
    assert des.enrollments(dut.identity.mac), f"{why}, yet the device never asked DES"
    assert fetched(redirected), f"{why}, yet the device did not follow the DES redirect: {redirected.paths()}"
    assert network.requests == [], f"{why}, yet the device went to the network's server: {network.paths()}"


@pytest.mark.needs(*NEEDS)
@pytest.mark.operator(ACCEPT)
@pytest.mark.steps("arrange", "boot", "check")
async def test_des_stat_2_with_a_network_server(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """DES_STAT 2 (the default) and option 242 names a server; the person would answer Yes."""
    skips = bool(des_policy(dut.identity.model)["network_server_skips_des"])
    network, redirected = await arrange(dut, des, file_server, step, "")
    await boot(dut, step, network, redirected, des)
    with step("check", evidence={"network_server_skips_des": skips}):
        if skips:
            assert_network_server_used(dut, des, network, redirected,
                                       "this model runs no DES when the network names a server")
        else:
            assert_des_used(dut, des, network, redirected, "the prompt was answered Yes, which asks only DES")


@pytest.mark.needs(*NEEDS)
@pytest.mark.steps("arrange", "boot", "check")
async def test_des_stat_3_with_a_network_server(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """DES_STAT 3 in option 242, which also names a server: no prompt either way."""
    model, firmware = dut.identity.model, dut.identity.firmware
    if not can_force_des(model, firmware):
        start = des_policy(model)["force_from"]
        since = f"declared from {start}" if start else "declared for no version"
        not_applicable(f"{model} {firmware} has no DES_STAT 3 ({since}); it acts as 2 there (test_discovery.py)")
    overrides = bool(des_policy(model)["force_overrides_network"])
    network, redirected = await arrange(dut, des, file_server, step, "DES_STAT=3")
    await boot(dut, step, network, redirected, des)
    with step("check", evidence={"force_overrides_network": overrides}):
        if overrides:
            assert_des_used(dut, des, network, redirected, "DES_STAT 3 runs DES before the network's server here")
        else:
            assert_network_server_used(dut, des, network, redirected,
                                       "DES_STAT 3 asks DES only without a network server here")
