"""PROTOCOL §1 identities: MAC normalisation, firmware versions, serial numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.identity import Version, normalize_mac, parse_version, validate_serial


@pytest.mark.parametrize(
    "raw",
    [
        "A4251B0C3D5E",
        "a4251b0c3d5e",
        "A4:25:1B:0C:3D:5E",
        "a4:25:1b:0c:3d:5e",
        "A4-25-1B-0C-3D-5E",
        "a4.25.1b.0c.3d.5e",
        "a425.1b0c.3d5e",
        "A425.1B0C.3D5E",
    ],
)
def test_protocol1_mac_accepted_forms_normalise_to_canonical(raw: str) -> None:
    assert normalize_mac(raw) == "A4251B0C3D5E"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "A4251B0C3D5",
        "A4251B0C3D5E0",
        "G4251B0C3D5E",
        "A4:25-1B:0C:3D:5E",
        "A4:25:1B:0C:3D:5E:",
        "A425:1B0C:3D5E",
        "A4 25 1B 0C 3D 5E",
        " A4251B0C3D5E",
        "A4251B0C3D5E\n",
        "A4::25:1B:0C:3D:5E",
        "ＡＡ251B0C3D5E",
        None,
        0xA4251B0C3D5E,
    ],
)
def test_protocol1_mac_other_forms_refused_with_value(raw: object) -> None:
    with pytest.raises(DomainError) as caught:
        normalize_mac(raw)
    assert caught.value.error == "invalid-mac"
    assert caught.value.status == 422
    assert caught.value.value == raw


@given(
    mac=st.binary(min_size=6, max_size=6),
    sep=st.sampled_from(["", ":", "-", "."]),
    lower=st.booleans(),
)
def test_protocol1_mac_round_trip_any_separator_and_case(mac: bytes, sep: str, lower: bool) -> None:
    text = sep.join(f"{b:02X}" for b in mac)
    if lower:
        text = text.lower()
    canonical = normalize_mac(text)
    assert canonical == mac.hex().upper()
    assert normalize_mac(canonical) == canonical


@given(mac=st.binary(min_size=6, max_size=6))
def test_protocol1_mac_cisco_dotted_quads_round_trip(mac: bytes) -> None:
    hexed = mac.hex()
    assert normalize_mac(f"{hexed[0:4]}.{hexed[4:8]}.{hexed[8:12]}") == hexed.upper()


def test_protocol1_version_numeric_not_lexical_order() -> None:
    assert parse_version("4.0.10") > parse_version("4.0.6.1.9")
    assert parse_version("11.3.0.40") > parse_version("4.0.6.1.9")
    assert parse_version("1.0.1") < parse_version("1.0.1.0.9") < parse_version("1.0.3.0")


def test_protocol1_service_pack_sorts_after_release_before_next_component() -> None:
    assert parse_version("1.1") < parse_version("1.1SP1") < parse_version("1.1.1")
    assert parse_version("1.1SP1") < parse_version("1.1SP2") < parse_version("1.2")


def test_protocol1_trailing_zero_components_compare_equal() -> None:
    assert parse_version("4.0.6") == parse_version("4.0.6.0")
    assert hash(parse_version("4.0.6")) == hash(parse_version("4.0.6.0"))
    assert parse_version("2.0") == parse_version("2.0.0")
    assert parse_version("4.0.6") < parse_version("4.0.6.0.1")


def test_protocol1_guide_versions_sort_as_expected() -> None:
    guide = ["4.0.6.1.9", "2.0", "1.1SP1", "4.0.10", "1.1", "3.0", "2.0.5", "4.0.6.0", "2.1", "1.5"]
    ordered = [str(v) for v in sorted(parse_version(s) for s in guide)]
    assert ordered == ["1.1", "1.1SP1", "1.5", "2.0", "2.0.5", "2.1", "3.0", "4.0.6.0", "4.0.6.1.9", "4.0.10"]


@pytest.mark.parametrize("text", ["4.0.10", "4.0.6.1.9", "1.1SP1", "11.3.0.40", "0.9", "4.0.6.0", "2.2SP12"])
def test_protocol1_version_str_round_trip(text: str) -> None:
    assert str(parse_version(text)) == text
    assert Version.parse(text) == parse_version(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("R1.1", "1.1"),
        ("r4.0.3", "4.0.3"),
        ("1.1 (Service pack 1)", "1.1SP1"),
        ("1.1 SP1", "1.1SP1"),
        ("1.1sp2", "1.1SP2"),
    ],
)
def test_protocol1_guide_spellings_tolerated_and_normalised(text: str, canonical: str) -> None:
    assert str(parse_version(text)) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "N/A",
        "",
        "4",
        "4.01",
        "4..0",
        "4.0.",
        ".4.0",
        "1.1SP0",
        "v4.0",
        " 4.0",
        "4.0 beta",
        "1.2.3.4.5.6.7.8.9",
        None,
        4.0,
    ],
)
def test_protocol1_invalid_version_refused(text: object) -> None:
    with pytest.raises(DomainError) as caught:
        parse_version(text)
    assert caught.value.error == "invalid-version"
    assert caught.value.value == text


versions = st.builds(
    Version,
    st.lists(st.integers(min_value=0, max_value=30), min_size=2, max_size=6).map(tuple),
    st.integers(min_value=0, max_value=3),
)


def _oracle_key(v: Version, width: int = 8) -> tuple[tuple[int, ...], int]:
    # Independent model of PROTOCOL §1: pad with zeros, compare components, then the service pack.
    return (v.parts + (0,) * (width - len(v.parts)), v.service_pack)


@given(a=versions, b=versions)
def test_protocol1_version_order_matches_zero_padded_model(a: Version, b: Version) -> None:
    assert (a < b) == (_oracle_key(a) < _oracle_key(b))
    assert (a == b) == (_oracle_key(a) == _oracle_key(b))
    assert sum([a < b, a == b, a > b]) == 1  # trichotomy: a total order


@given(a=versions, b=versions, c=versions)
def test_protocol1_version_order_transitive(a: Version, b: Version, c: Version) -> None:
    if a <= b and b <= c:
        assert a <= c


@given(v=versions)
def test_protocol1_version_str_parse_round_trip(v: Version) -> None:
    again = parse_version(str(v))
    assert again == v
    assert str(again) == str(v)


@pytest.mark.parametrize("serial", ["21WZ51234567", "A", "x" * 64, "18WZ504009XT", "SN-01-02", "sim1b000001"])
def test_dev1_serial_accepted_unchanged(serial: str) -> None:
    assert validate_serial(serial) == serial


@pytest.mark.parametrize(
    "serial",
    ["", " ", "21WZ 5123", "x" * 65, "Séria1", "abc\t", None, 1234, "SN-01/02", "@#aa!ac@bc", "-21WZ", "a_b", "a.b",
     "٣٣", "a%2F", "a?b", "a#b"],
)
def test_dev1_serial_refused(serial: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_serial(serial)
    assert caught.value.error == "invalid-serial"
    assert caught.value.value == serial
