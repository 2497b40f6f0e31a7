"""DES_STAT, the network first and which source won (research §11.6, §11.2-§11.5): per model
family (a J179 at 4.1 and below 4.0.0.0, a K175 at 3.1 and below 2.1, a B199), against a fake
network layer, an enrollment address nobody listens on (DES contacted = `unreachable`), and a
scripted DES on loopback where DES must answer."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from harness.scripted_des import ScriptedDES, redirect
from simulators.capabilities import Capabilities, DesPolicy
from simulators.clock import DEFAULT_START, VirtualClock
from simulators.discovery import DesStat, Route, des_stat, route
from simulators.factory import ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.network import NetworkOffer, NetworkServer
from simulators.phone import Memory, Phone, PhoneEnvironment, User

CA = ManufacturerCA.generate("DES_STAT Unit Manufacturer CA", "enrollab Simulated Manufacturer")
NOBODY = "https://127.0.0.1:9"  # an enrollment server that refuses connections
FILES = "http://127.0.0.1:9/J179/"  # a file server that does too: provisioning fails, the source stays
HOSTS = {"des.enrollab.test": "127.0.0.1", "files.enrollab.test": "127.0.0.1"}
_macs = itertools.count(0xD00001)

J_NEW, J_OLD, K_NEW, K_OLD, B199 = ("J179", "4.1.11.0.9"), ("J179", "3.0.1"), ("K175", "3.1"), ("K175", "2.0.5"), \
    ("B199", "1.0.4.0")


class FakeNetwork:
    """A network layer that offers what it is told, and counts how often it was asked."""

    def __init__(self, server: str | None = None, source: str = "dhcp-242", **params: str) -> None:
        notes = (("dhcp-lease", {"ip": "10.213.0.50", "lease": 3600}),)
        found = NetworkServer(server, source) if server is not None else None
        self._offer = NetworkOffer(found, dict(params), dict.fromkeys(params, source), "10.213.0.50", notes)
        self.asked = 0

    async def offer(self) -> NetworkOffer:
        self.asked += 1
        return self._offer


def phone(model_firmware: tuple[str, str], network: FakeNetwork | None = None, prompt: str = "timeout",
          enrollment: str = NOBODY, roots: tuple[bytes, ...] = (), **user: Any) -> Phone:
    model, firmware = model_firmware
    env = PhoneEnvironment(enrollment, roots, HOSTS, network=network, clock=VirtualClock())
    identity = PhoneIdentity(model, firmware, f"A4251B{next(_macs):06X}", f"SN{next(_macs)}")
    creds = CA.issue(identity.mac, identity.serial, model)
    return Phone(identity, creds.key_pem, creds.cert_pem, env, user=User(prompt=prompt, **user))


def names(p: Phone) -> list[str]:
    return [e.name for e in p.events]


def event(p: Phone, name: str) -> dict[str, Any]:
    return next(e.detail for e in p.events if e.name == name)


def source(p: Phone) -> dict[str, Any]:
    return event(p, "provisioning-source")


# --- the pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "settings", "expected"),
    [
        ({}, {}, DesStat(2, "default")),
        ({"DES_STAT": "0"}, {"DES_STAT": "3"}, DesStat(0, "network")),
        ({}, {"DES_STAT": " 1 "}, DesStat(1, "settings")),
        ({"DES_STAT": "7"}, {"DES_STAT": "3"}, DesStat(3, "settings", (("7", "network"),))),
        ({"DES_STAT": ""}, {"DES_STAT": "x"}, DesStat(2, "default", (("", "network"), ("x", "settings")))),
    ],
)
def test_des_stat_network_over_settings_over_default(network: Mapping[str, str], settings: Mapping[str, str],
                                                     expected: DesStat) -> None:
    assert des_stat(network, settings) == expected


def test_the_route_per_value_and_model_data() -> None:
    caps = Capabilities.load()
    j100, vantage, b199 = caps.des_policy("J179"), caps.des_policy("K175"), caps.des_policy("B199")
    assert vantage == DesPolicy(vantage.force_from, True, True) and str(vantage.force_from) == "2.1"
    assert [caps.can_force_des(*mf) for mf in (J_NEW, J_OLD, K_NEW, K_OLD, B199, ("CU360", "11.4.0.20"))] == [
        True, False, True, False, False, False]
    table = {
        (stat, name, server): route(stat, policy, server)
        for stat in (0, 1, 2, 3) for name, policy in (("j", j100), ("k", vantage), ("b", b199))
        for server in (False, True)
    }
    assert {key for key, way in table.items() if way is Route.DES_DISABLED} == {
        (stat, name, server) for stat in (0, 1) for name in "jkb" for server in (False, True)}
    assert table[(2, "j", True)] is table[(2, "b", True)] is table[(2, "k", False)] is Route.PROMPT
    assert table[(2, "k", True)] is Route.NETWORK_SERVER
    assert table[(3, "j", True)] is table[(3, "j", False)] is Route.NETWORK_FIRST
    assert table[(3, "k", True)] is table[(3, "k", False)] is Route.DES_FIRST


# --- the network first --------------------------------------------------------------------------------


async def test_the_network_comes_up_first_once_per_boot_and_a_configured_server_stays() -> None:
    network = FakeNetwork(FILES, L2Q="1")
    j179 = phone(J_NEW, network, prompt="no")

    first = await j179.boot()
    second = await j179.boot()
    await j179.reprovision()  # the network is up: not asked again

    assert network.asked == 2
    assert names(j179)[:4] == ["power-on", "dhcp-lease", "network-up", "des-stat"]
    assert event(j179, "dhcp-lease") == {"ip": "10.213.0.50", "lease": 3600}
    assert event(j179, "network-up") == {"address": "10.213.0.50", "server": FILES, "source": "dhcp-242"}
    assert (first.result, first.reason, first.source) == ("provisioning-failed", "connection-refused", "dhcp-242")
    assert first.to_json()["source"] == "dhcp-242"
    second_boot = names(j179)[names(j179).index("outcome") + 1:]
    assert second_boot[:6] == ["power-on", "dhcp-lease", "network-up", "configured-server", "provisioning-source",
                               "provisioning"]
    assert "des-stat" not in second_boot and second.source == "dhcp-242"
    configured = [e.detail for e in j179.events if e.name == "provisioning-source"][1]
    assert configured["source"] == "dhcp-242" and "earlier boot" in configured["why"]
    assert "reprovision-requested" in names(j179) and names(j179).count("network-up") == 2


async def test_without_a_network_layer_nothing_is_offered_and_des_stat_is_the_default() -> None:
    j179 = phone(J_NEW, prompt="no")
    outcome = await j179.boot()
    assert "network-up" not in names(j179) and event(j179, "des-stat") == {"value": 2, "source": "default"}
    assert source(j179) == {"source": "none", "url": None,
                            "why": "the run ended (manual-entry: no-provisioning-server) without a provisioning server"}
    assert outcome.source == "none"


# --- J179 at 4.1 (DES_STAT 3 from 4.0.0.0, the network first) ------------------------------------------


@pytest.mark.parametrize("stat", ["0", "1"])
async def test_j179_des_disabled_uses_the_network_server_without_prompt_or_des(stat: str) -> None:
    j179 = phone(J_NEW, FakeNetwork(FILES, DES_STAT=stat), prompt="yes")
    outcome = await j179.boot()
    assert event(j179, "des-stat") == {"value": int(stat), "source": "network"}
    assert event(j179, "prompt-skipped") == {"reason": "des-disabled", "des_stat": int(stat)}
    assert "prompt-shown" not in names(j179) and "des-discovery" not in names(j179)
    assert source(j179)["source"] == "dhcp-242" and source(j179)["url"] == FILES
    assert source(j179)["why"] == (f"option 242 named {FILES}; DES_STAT {stat} disables DES, so the network's "
                                   "server is used")
    assert outcome.source == "dhcp-242"


async def test_j179_des_disabled_without_a_network_server_asks_for_manual_entry() -> None:
    j179 = phone(J_NEW, FakeNetwork(None, DES_STAT="1"), cancel_to_manual=FILES)
    outcome = await j179.boot()
    assert event(j179, "manual-entry") == {"reason": "des-disabled"}
    assert source(j179) == {"source": "manual", "url": FILES,
                            "why": f"the user typed {FILES} at manual server entry (des-disabled)"}
    assert outcome.source == "manual" and "des-discovery" not in names(j179)


async def test_j179_des_stat_2_yes_ignores_the_network_and_asks_des_only() -> None:
    j179 = phone(J_NEW, FakeNetwork(FILES), prompt="yes")
    outcome = await j179.boot()
    assert event(j179, "network-server-ignored") == {"url": FILES, "source": "dhcp-242", "reason": "prompt-yes"}
    assert "network-discovery" not in names(j179) and "des-discovery" in names(j179)
    assert (outcome.result, outcome.source) == ("unreachable", "none")
    assert source(j179)["source"] == "none"


async def test_j179_des_stat_2_no_and_timeout() -> None:
    answered_no = phone(J_NEW, FakeNetwork(FILES), prompt="no")
    no_server = phone(J_NEW, FakeNetwork(None), prompt="no")
    waited = phone(J_NEW, FakeNetwork(FILES, source="lldp"))
    waited_alone = phone(J_NEW, FakeNetwork(None))

    outcomes = [await p.boot() for p in (answered_no, no_server, waited, waited_alone)]

    assert [o.source for o in outcomes] == ["dhcp-242", "none", "lldp", "none"]
    assert source(answered_no)["why"].endswith("the prompt was answered No, so the network's server is used")
    assert outcomes[1].reason == "no-provisioning-server"
    assert source(waited)["why"] == f"LLDP named {FILES}; the DES_STAT 2 prompt timed out, so the network's server wins"
    timeout = next(e for e in waited.events if e.name == "prompt-timeout")
    assert timeout.at == DEFAULT_START + 60 and "des-discovery" not in names(waited)
    assert outcomes[3].result == "unreachable" and "des-discovery" in names(waited_alone)


async def test_j179_des_stat_3_takes_the_network_server_else_des_without_waiting() -> None:
    with_server = phone(J_NEW, FakeNetwork(FILES, DES_STAT="3"))
    alone = phone(J_NEW, FakeNetwork(None, DES_STAT="3"))

    first, second = await with_server.boot(), await alone.boot()

    for p in (with_server, alone):
        assert event(p, "prompt-skipped") == {"reason": "des-forced", "des_stat": 3}
        assert "prompt-shown" not in names(p) and "des-stat-unsupported" not in names(p)
    assert first.source == "dhcp-242" and "des-discovery" not in names(with_server)
    assert source(with_server)["why"].endswith("DES_STAT 3 asks DES only without a network server, so the "
                                               "network's server is used")
    des = next(e for e in alone.events if e.name == "des-discovery")
    assert des.at == DEFAULT_START and second.result == "unreachable"  # no 60 s prompt first


async def test_j179_an_invalid_value_is_ignored_and_settings_count_below_the_network() -> None:
    invalid = phone(J_NEW, FakeNetwork(None, DES_STAT="9"), prompt="no")
    from_settings = phone(J_NEW, FakeNetwork(None), prompt="no")
    overridden = phone(J_NEW, FakeNetwork(None, DES_STAT="2"), prompt="no")
    for p in (from_settings, overridden):
        # What a settings file applied at an earlier boot left (its server since forgotten).
        p._memory = Memory(p.identity.firmware)
        p._memory.params = {"DES_STAT": "1"}

    await invalid.boot(), await from_settings.boot(), await overridden.boot()

    assert event(invalid, "des-stat-invalid") == {"value": "9", "source": "network"}
    assert event(invalid, "des-stat") == {"value": 2, "source": "default"} and "prompt-shown" in names(invalid)
    assert event(from_settings, "des-stat") == {"value": 1, "source": "settings"}
    assert event(from_settings, "prompt-skipped")["reason"] == "des-disabled"
    assert event(overridden, "des-stat") == {"value": 2, "source": "network"} and "prompt-shown" in names(overridden)


# --- J179 below 4.0.0.0, B199: no value 3 ------------------------------------------------------------------


@pytest.mark.parametrize("model_firmware", [J_OLD, B199])
async def test_without_value_3_it_acts_as_2(model_firmware: tuple[str, str]) -> None:
    p = phone(model_firmware, FakeNetwork(FILES, DES_STAT="3"))
    outcome = await p.boot()
    assert event(p, "des-stat") == {"value": 3, "source": "network"}
    assert event(p, "des-stat-unsupported") == {"value": 3, "firmware": model_firmware[1]}
    assert "prompt-skipped" not in names(p) and "prompt-timeout" in names(p)
    assert outcome.source == "dhcp-242" and "DES_STAT 2 prompt timed out" in source(p)["why"]


async def test_b199_follows_the_j100_flow_at_0_and_2() -> None:
    disabled = phone(B199, FakeNetwork(None, DES_STAT="0"))
    yes = phone(B199, FakeNetwork(FILES), prompt="yes")
    await disabled.boot(), await yes.boot()
    assert event(disabled, "manual-entry") == {"reason": "des-disabled"}
    assert event(yes, "network-server-ignored")["reason"] == "prompt-yes" and "des-discovery" in names(yes)


# --- K175 (Vantage): a network server skips DES; DES_STAT 3 from 2.1 runs DES first ----------------------


@pytest.mark.parametrize("model_firmware", [K_NEW, K_OLD])
async def test_vantage_des_stat_2_with_a_network_server_has_no_prompt_and_no_des(
        model_firmware: tuple[str, str]) -> None:
    k175 = phone(model_firmware, FakeNetwork(FILES), prompt="yes")
    outcome = await k175.boot()
    assert event(k175, "prompt-skipped") == {"reason": "network-server", "des_stat": 2}
    assert "prompt-shown" not in names(k175) and "des-discovery" not in names(k175)
    assert names(k175)[names(k175).index("prompt-skipped") + 1:][:3] == [
        "network-discovery", "network-server", "provisioning-source"]
    assert outcome.source == "dhcp-242" and "does not run DES when the network names a server" in source(k175)["why"]


async def test_vantage_des_stat_2_without_a_network_server_prompts() -> None:
    k175 = phone(K_NEW, FakeNetwork(None), prompt="no")
    outcome = await k175.boot()
    assert "prompt-shown" in names(k175) and outcome.reason == "no-provisioning-server"


async def test_vantage_below_2_1_takes_3_as_2() -> None:
    with_server = phone(K_OLD, FakeNetwork(FILES, DES_STAT="3"))
    alone = phone(K_OLD, FakeNetwork(None, DES_STAT="3"), prompt="no")
    await with_server.boot(), await alone.boot()
    assert event(with_server, "des-stat-unsupported") == {"value": 3, "firmware": "2.0.5"}
    assert event(with_server, "prompt-skipped")["reason"] == "network-server"
    assert "prompt-shown" in names(alone) and event(alone, "des-stat-unsupported")["value"] == 3


async def test_vantage_des_disabled() -> None:
    k175 = phone(K_NEW, FakeNetwork(FILES, DES_STAT="0"))
    outcome = await k175.boot()
    assert event(k175, "prompt-skipped")["reason"] == "des-disabled" and outcome.source == "dhcp-242"


@pytest.fixture
async def des() -> AsyncIterator[ScriptedDES]:
    async with ScriptedDES(CA.cert_pem) as server:
        yield server


async def test_vantage_des_stat_3_runs_des_even_with_a_network_server_and_des_wins(des: ScriptedDES) -> None:
    k175 = phone(K_NEW, FakeNetwork(FILES, DES_STAT="3"), enrollment=des.url, roots=(des.ca_pem,))
    url = "https://files.enrollab.test:9/K175/"
    des.script(k175.mac, redirect(url))

    outcome = await k175.boot()
    await k175.env.close()

    assert event(k175, "prompt-skipped") == {"reason": "des-forced", "des_stat": 3}
    assert event(k175, "network-server-ignored") == {"url": FILES, "source": "dhcp-242", "reason": "des-redirect"}
    assert source(k175) == {"source": "des", "url": url, "why": f"DES redirected to {url}; DES_STAT 3 runs DES "
                            f"before the network's server (option 242 named {FILES})"}
    assert outcome.source == "des" and outcome.server == url and "network-discovery" not in names(k175)


async def test_vantage_des_stat_3_falls_back_to_the_network_server_without_a_redirect(des: ScriptedDES) -> None:
    k175 = phone(K_NEW, FakeNetwork(FILES, DES_STAT="3"), enrollment=des.url, roots=(des.ca_pem,))

    outcome = await k175.boot()  # never imported: unknown_device
    await k175.env.close()

    after = names(k175)[names(k175).index("enroll-answer"):]
    assert after[:5] == ["enroll-answer", "des-no-redirect", "network-discovery", "network-server",
                         "provisioning-source"]
    assert event(k175, "des-no-redirect") == {"result": "unknown-device", "reason": None}
    assert "outcome" not in after[:-1] and names(k175).count("outcome") == 1
    assert outcome.source == "dhcp-242" and "left the phone without a server (unknown-device)" in source(k175)["why"]


async def test_vantage_des_stat_3_without_a_network_server_runs_des() -> None:
    k175 = phone(K_NEW, FakeNetwork(None, DES_STAT="3"))
    outcome = await k175.boot()
    assert event(k175, "prompt-skipped")["reason"] == "des-forced" and outcome.result == "unreachable"
    assert source(k175) == {"source": "none", "url": None,
                            "why": "the run ended (unreachable: connection-refused) without a provisioning server"}


async def test_a_throttled_phone_waits_its_retry_after_and_asks_again(des: ScriptedDES) -> None:
    """A 429 (a guessing budget spent, issue 13) is retried after Retry-After, as a 503 is."""
    j179 = phone(J_NEW, prompt="yes", enrollment=des.url, roots=(des.ca_pem,))
    des.script(j179.mac, (429, {"error": "too-many-attempts", "detail": "wait"}),
               redirect("https://files.enrollab.test:9/J179/"))

    outcome = await j179.boot()
    await j179.env.close()

    retries = [e.detail for e in j179.events if e.name == "retry"]
    assert retries == [{"attempt": 1, "after": 1.0, "reason": "throttled"}]
    assert len(des.enrollments(j179.mac)) == 2 and outcome.source == "des"
