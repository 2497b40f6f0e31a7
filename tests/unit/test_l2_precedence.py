"""Precedence of what the network tells a phone (research §9, §10): siaddr < option 43 < option
242, LLDP's file server only when none is set, LLDP's call server only for an unset MCIPADD, the
LLDP-MED policy's VLAN over 242's, with the research's own example strings."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.l2.lldp import LldpInfo, MedPolicy
from simulators.l2.option43 import encode_option43
from simulators.l2.precedence import Combined, combine, voice_vlan

C24 = "MCIPADD=10.2.248.10,MCPORT=1719,HTTPSRVR=10.2.248.2,L2Q=1, L2QVLAN=233,VLANTEST=0"  # obs C-24
S41 = ('"HTTPSRVR=pc.domain.com,HTTPDIR=/app/provision,TLSSRVR=pc.domain.com,HTTPSDIR=/app/provision,'
       'FORCE_HTTP_AUTH_USERNAME=admin,FORCE_HTTP_AUTH_PASSWORD=Passw0rd,DES_STAT=0"')  # obs S41
S29 = "L2Q=1,L2QVLAN=1212,HTTPSRVR=192.168.0.100"  # doc S29


def _lldp(**fields: Any) -> LldpInfo:
    base: dict[str, Any] = {"src_mac": "02:00:00:00:00:aa", "chassis_id": "02:00:00:00:00:aa", "chassis_subtype": 4,
                            "port_id": "ge-0/0/1", "port_subtype": 5, "ttl": 120}
    base.update(fields)
    return LldpInfo(**base)


def _voice(vlan: int = 300, **flags: Any) -> MedPolicy:
    values: dict[str, Any] = {"app_type": 1, "unknown": False, "tagged": True, "vlan": vlan, "priority": 6,
                              "dscp": 46}
    values.update(flags)
    return MedPolicy(**values)


def _notes(result: Combined, name: str) -> list[dict[str, Any]]:
    return [detail for note, detail in result.notes if note == name]


def _server(result: Combined) -> tuple[str, str] | None:
    return (result.server.url, result.server.source) if result.server else None


# -- DHCP: siaddr, option 43, option 242 --------------------------------------------------------


def test_nothing_names_nothing() -> None:
    result = combine()
    assert result.server is None and result.params == {} and result.notes == []
    assert voice_vlan(result) is None


def test_siaddr_sets_httpsrvr_and_tlssrvr() -> None:
    result = combine(siaddr="10.0.0.5", server_id="10.0.0.1")
    assert result.params == {"HTTPSRVR": "10.0.0.5", "TLSSRVR": "10.0.0.5"}
    assert set(result.sources.values()) == {"dhcp-siaddr"}
    assert _server(result) == ("https://10.0.0.5/", "dhcp-siaddr")  # TLS preferred (simulators.network)


@pytest.mark.parametrize("siaddr", [None, "", "0.0.0.0"])  # noqa: S104 - an address field, not a bind
def test_a_zero_siaddr_sets_nothing(siaddr: str | None) -> None:
    assert combine(siaddr=siaddr).params == {}


def test_siaddr_equal_to_the_server_identifier_is_set_aside_with_a_note() -> None:
    result = combine(siaddr="10.213.0.1", server_id="10.213.0.1")  # what dnsmasq sends [inf]
    assert result.server is None and result.params == {}
    assert _notes(result, "siaddr-ignored") == [{"siaddr": "10.213.0.1",
                                                 "reason": "equals the DHCP server identifier (option 54)"}]


def test_option_43_supersedes_siaddr_whole() -> None:
    raw = encode_option43({"HTTPSRVR": "10.0.0.7", "HTTPDIR": "/j"})
    result = combine(siaddr="10.0.0.5", option_43=raw)
    assert "TLSSRVR" not in result.params  # siaddr's TLSSRVR would otherwise win over 43's HTTPSRVR
    assert _server(result) == ("http://10.0.0.7/j/", "dhcp-43")
    assert result.sources == {"HTTPSRVR": "dhcp-43", "HTTPDIR": "dhcp-43"}


def test_option_43_without_enterprise_6889_first_sets_nothing() -> None:
    raw = b"\x02\x0810.0.0.7"
    result = combine(option_43=raw, siaddr="10.0.0.5")
    assert _server(result) == ("https://10.0.0.5/", "dhcp-siaddr")
    [note] = _notes(result, "option-43-problems")
    assert note["avaya"] is False and note["problems"][0].startswith("not-avaya")


def test_option_242_supersedes_43_and_siaddr() -> None:
    raw = encode_option43({"HTTPSRVR": "10.0.0.7", "HTTPDIR": "/from43", "L2QVLAN": "100"})
    result = combine(siaddr="10.0.0.5", option_43=raw, option_242="HTTPSRVR=10.0.0.9,HTTPDIR=/j")
    assert _server(result) == ("http://10.0.0.9/j/", "dhcp-242")
    assert result.sources["HTTPSRVR"] == "dhcp-242" and result.sources["L2QVLAN"] == "dhcp-43"
    assert "TLSSRVR" not in result.params
    assert voice_vlan(result) == (100, "dhcp-43")


def test_the_s29_example_names_a_server_and_a_voice_vlan() -> None:
    result = combine(option_242=S29)
    assert _server(result) == ("http://192.168.0.100/", "dhcp-242")
    assert voice_vlan(result) == (1212, "dhcp-242")


def test_the_c24_stray_space_is_tolerated_and_noted() -> None:
    result = combine(option_242=C24)
    assert result.params["L2QVLAN"] == "233" and result.params["MCIPADD"] == "10.2.248.10"
    assert voice_vlan(result) == (233, "dhcp-242")
    [note] = _notes(result, "option-242-problems")
    assert any(problem.startswith("stray-whitespace") for problem in note["problems"])


def test_the_s41_quoted_string_prefers_tls() -> None:
    result = combine(option_242=S41)
    assert _server(result) == ("https://pc.domain.com/", "dhcp-242")  # HTTPSDIR is not TLSDIR (S41)
    assert result.params["DES_STAT"] == "0" and result.params["HTTPDIR"] == "/app/provision"


def test_an_empty_server_in_242_does_not_count_as_set() -> None:
    result = combine(option_242="HTTPSRVR=,DES_STAT=1", lldp=_lldp(file_servers=("10.213.0.1",)))
    assert _server(result) == ("http://10.213.0.1/", "lldp")


# -- LLDP ---------------------------------------------------------------------------------------


def test_lldp_file_server_is_taken_only_when_dhcp_named_none() -> None:
    result = combine(lldp=_lldp(file_servers=("10.213.0.1", "10.213.0.2")))
    assert _server(result) == ("http://10.213.0.1/", "lldp")
    assert result.params["HTTPSRVR"] == "10.213.0.1,10.213.0.2" and "TLSSRVR" not in result.params


@pytest.mark.parametrize(("dhcp", "source"), [
    ({"option_242": "HTTPSRVR=10.0.0.9"}, "dhcp-242"),
    ({"option_43": encode_option43({"TLSSRVR": "10.0.0.9"})}, "dhcp-43"),
    ({"siaddr": "10.0.0.9"}, "dhcp-siaddr"),
])
def test_lldp_never_overrides_a_server_dhcp_set(dhcp: dict[str, Any], source: str) -> None:
    result = combine(lldp=_lldp(file_servers=("10.213.0.1",)), **dhcp)
    assert result.server is not None and result.server.source == source and "10.0.0.9" in result.server.url
    [note] = _notes(result, "lldp-file-server-ignored")
    assert note["file_servers"] == "10.213.0.1"


def test_lldp_call_server_sets_mcipadd_only_when_unset() -> None:
    assert combine(lldp=_lldp(call_servers=("10.213.0.5",))).sources == {"MCIPADD": "lldp"}
    result = combine(option_242=C24, lldp=_lldp(call_servers=("10.213.0.5",)))
    assert (result.params["MCIPADD"], result.sources["MCIPADD"]) == ("10.2.248.10", "dhcp-242")
    assert _notes(result, "lldp-call-server-ignored")


def test_lldp_med_voice_policy_sets_the_vlan_and_242_cannot_override_it() -> None:
    result = combine(option_242="L2Q=1,L2QVLAN=212,HTTPSRVR=10.0.0.9", lldp=_lldp(med_policy=_voice(300)))
    assert voice_vlan(result) == (300, "lldp")
    assert {k: result.params[k] for k in ("L2Q", "L2QVLAN", "L2QAUD", "DSCPAUD")} == {
        "L2Q": "1", "L2QVLAN": "300", "L2QAUD": "6", "DSCPAUD": "46"}
    assert {d["parameter"] for d in _notes(result, "sson-ignored")} == {"L2Q", "L2QVLAN"}
    assert _server(result) == ("http://10.0.0.9/", "dhcp-242")  # the server is still 242's


@pytest.mark.parametrize(("policy", "reason"), [
    (_voice(300, app_type=2), "not voice"),  # voice signaling
    (_voice(300, unknown=True), "U flag set"),
])
def test_lldp_med_policy_ignored_when_not_voice_or_unknown(policy: MedPolicy, reason: str) -> None:
    result = combine(option_242="L2QVLAN=212", lldp=_lldp(med_policy=policy))
    assert voice_vlan(result) == (212, "dhcp-242")
    [note] = _notes(result, "lldp-med-policy-ignored")
    assert note["reason"] == reason


def test_an_untagged_med_policy_turns_l2q_off_and_names_no_voice_vlan() -> None:
    result = combine(lldp=_lldp(med_policy=_voice(0, tagged=False)))
    assert result.params["L2Q"] == "2" and voice_vlan(result) is None


def test_dot1q_framing_is_for_the_next_boot_only() -> None:
    result = combine(option_242="L2QVLAN=212", lldp=_lldp(dot1q_framing=2))
    assert "L2Q" not in result.params and voice_vlan(result) == (212, "dhcp-242")
    assert _notes(result, "lldp-dot1q-framing") == [{"framing": 2, "l2q_next_boot": "2"}]


def test_port_vlan_sets_phy2vlan_over_242_and_vlan_names_need_voice() -> None:
    result = combine(option_242="PHY2VLAN=5", lldp=_lldp(port_vlan=10, vlan_name="Voice-VLAN"))
    assert (result.params["PHY2VLAN"], result.sources["PHY2VLAN"]) == ("10", "lldp")
    assert _notes(result, "lldp-vlan-name") == [{"name": "Voice-VLAN", "accepted": True}]
    assert _notes(combine(lldp=_lldp(vlan_name="data")), "lldp-vlan-name")[0]["accepted"] is False


@pytest.mark.parametrize(("params", "expected"), [
    ({"L2QVLAN": "212"}, (212, "dhcp-242")),
    ({"L2QVLAN": "212", "L2Q": "0"}, (212, "dhcp-242")),  # auto
    ({"L2QVLAN": "212", "L2Q": "2"}, None),  # off
    ({"L2QVLAN": "0"}, None),
    ({"L2QVLAN": "4095"}, None),
    ({"L2QVLAN": "voice"}, None),
])
def test_voice_vlan_needs_a_vlan_id_and_l2q_not_off(params: dict[str, str], expected: object) -> None:
    text = ",".join(f"{name}={value}" for name, value in params.items())
    assert voice_vlan(combine(option_242=text)) == expected


def test_the_server_carries_every_parameter_set() -> None:
    result = combine(option_242="TLSSRVR=10.0.0.9,TLSPORT=8443,TLSDIR=/p,DES_STAT=0")
    assert result.server is not None and result.server.url == "https://10.0.0.9:8443/p/"
    assert result.server.params["DES_STAT"] == "0"
