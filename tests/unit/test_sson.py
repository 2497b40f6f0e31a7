"""DHCP option 242 (SSON) strings, research §9; the real ones are corpus C-24 and issue S41."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.sson import SSON_PROBLEMS, parse_sson

C24 = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "corpus-avaya-settings"
    / ("24_acevallos31_Avaya_Asterisk_choloma_opcion_242_y_176.txt")
)


def kinds(option: str | bytes) -> list[str]:
    return [problem.kind for problem in parse_sson(option).problems]


def test_c24_both_real_strings() -> None:
    first, blank, second = C24.read_text().splitlines()
    assert blank == ""
    assert parse_sson(first).params == {
        "MCIPADD": "cho-pbx01.lamundial.hn",
        "MCPORT": "1719",
        "TFTPSRVR": "cho-pbx01.lamundial.hn",
    }
    assert kinds(first) == []
    result = parse_sson(second)
    assert result.params == {
        "MCIPADD": "cho-pbx01.lamundial.hn",
        "MCPORT": "1719",
        "HTTPSRVR": "10.2.248.2",
        "L2Q": "1",
        "L2QVLAN": "233",
        "VLANTEST": "0",
    }
    assert [(p.kind, p.detail) for p in result.problems] == [("stray-whitespace", " L2QVLAN=233")]


def test_s41_a_quoted_string_from_a_dhcpd_config() -> None:
    option = (
        '"HTTPSRVR=pc.domain.com,HTTPDIR=/app/provision,TLSSRVR=pc.domain.com,HTTPSDIR=/app/provision,'
        'FORCE_HTTP_AUTH_USERNAME=admin,FORCE_HTTP_AUTH_PASSWORD=Passw0rd,DES_STAT=0"'
    )
    result = parse_sson(option)
    assert result.params["HTTPDIR"] == "/app/provision"
    assert result.params["DES_STAT"] == "0"
    assert len(result.params) == 7
    assert result.problems == []


def test_s9_the_doc_example_with_lower_case_names() -> None:
    assert parse_sson("l2q=1,L2QVLAN=1212,HTTPSRVR=192.168.0.100").params == {
        "L2Q": "1",
        "L2QVLAN": "1212",
        "HTTPSRVR": "192.168.0.100",
    }


def test_a_server_list_keeps_its_commas() -> None:
    result = parse_sson("HTTPSRVR=10.0.0.1,10.0.0.2,L2Q=1")
    assert result.params == {"HTTPSRVR": "10.0.0.1,10.0.0.2", "L2Q": "1"}
    assert result.problems == []


def test_a_later_pair_overrides_an_earlier_one() -> None:
    assert parse_sson("L2QVLAN=1,L2QVLAN=2").params == {"L2QVLAN": "2"}


def test_broken_pieces_are_reported_and_skipped() -> None:
    result = parse_sson("junk,SIP-PORT=5060,,L2Q=1\n")
    assert result.params == {"L2Q": "1"}
    assert [(p.kind, p.detail) for p in result.problems] == [
        ("stray-text", "junk"),
        ("invalid-name", "SIP-PORT=5060"),
        ("empty-pair", "junk,SIP-PORT=5060,,L2Q=1"),
    ]


def test_a_string_longer_than_one_dhcp_option() -> None:
    result = parse_sson("HTTPDIR=" + "d" * 250)
    assert kinds("HTTPDIR=" + "d" * 250) == ["too-long"]
    assert result.params["HTTPDIR"] == "d" * 250


def test_bytes_are_accepted() -> None:
    assert parse_sson(b"HTTPSRVR=10.2.248.2\x00").params == {"HTTPSRVR": "10.2.248.2"}
    assert parse_sson(b"NAME=caf\xe9").params == {"NAME": "caf\u00e9"}


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_never_raises(option: str | bytes) -> None:
    result = parse_sson(option)
    assert {p.kind for p in result.problems} <= SSON_PROBLEMS.keys()
    assert all(name == name.upper() for name in result.params)
