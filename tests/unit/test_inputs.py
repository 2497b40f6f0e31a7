"""The admin API's boundary rules (server/domain/inputs.py): JSON depth, integers, text, ids."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain import inputs
from server.domain.errors import DomainError
from server.domain.inputs import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    NAME_PATTERN,
    ascii_int,
    bound_integers,
    check_text,
    load_json,
    name_schema,
    storable,
    text_problem,
)


def refusal(data: bytes | str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        load_json(data)
    return caught.value


# --- depth ----------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nests_up_to_max_depth() -> None:
    assert load_json(nested(MAX_DEPTH)) is not None
    assert load_json('{"a": ' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1)) is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 5000, 100_000])
def test_deeper_json_is_json_too_deep(depth: int) -> None:
    err = refusal(nested(depth))
    assert (err.error, err.status) == ("json-too-deep", 400)


def test_an_unterminated_deep_array_never_escapes_as_recursion_error() -> None:
    for depth in (10, 1000, 100_000):
        assert refusal("[" * depth).error in ("json-too-deep", "invalid-json")


# --- integers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, -1, INT_MAX, INT_MIN, 2**31 - 1])
def test_integers_in_range_are_read(value: int) -> None:
    assert load_json(json.dumps({"n": value})) == {"n": value}


@pytest.mark.parametrize("text", [str(INT_MAX + 1), str(INT_MIN - 1), str(2**63), "9" * 4301, "-" + "9" * 100_000])
def test_integers_out_of_range_are_422_and_not_echoed_whole(text: str) -> None:
    err = refusal(f'{{"n": {text}}}')
    assert (err.error, err.status) == ("integer-out-of-range", 422)
    assert len(err.detail) < 200 and len(str(err.value)) < 60


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_not_json(text: str) -> None:
    assert refusal(f"[{text}]").error == "invalid-json"


def test_floats_with_many_digits_are_fine_and_overflowing_ones_are_not() -> None:
    assert load_json("[1.5, 1e300, 0." + "1" * 5000 + "]")[0] == 1.5
    assert refusal("[" + "1" * 400 + ".0]").error == "invalid-json"  # beyond a double: infinity


# --- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ('{"login": "\\ud800"}', ["login"]),
        ('{"a": ["ok", "x\\udfffy"]}', ["a", "1"]),
        ('{"\\ud83d": 1}', ["\\ud83d"]),
        ('{"name": "a\\u0000b"}', ["name"]),
        ('["\\u0000"]', ["0"]),
    ],
)
def test_lone_surrogates_and_nul_are_invalid_text(document: str, path: list[str]) -> None:
    err = refusal(document)
    assert (err.error, err.status, err.value) == ("invalid-text", 422, path)
    json.dumps(err.to_json()).encode("utf-8")  # the refusal itself is storable text


def test_paired_surrogates_and_other_controls_are_text() -> None:
    assert load_json('{"x": "\\ud83d\\ude00 tab\\t nl\\n"}') == {"x": "😀 tab\t nl\n"}


def test_bytes_that_are_not_utf8_are_invalid_json() -> None:
    assert refusal(b'{"x": "\xff"}').error == "invalid-json"


@given(st.text())
def test_text_problem_agrees_with_the_utf8_encoder(value: str) -> None:
    try:
        value.encode("utf-8")
        encodable = "\x00" not in value
    except UnicodeEncodeError:
        encodable = False
    assert (text_problem(value) is None) == encodable
    if encodable:
        assert check_text(value) == value
    assert text_problem(storable(value)) is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_documents_within_the_rules_read_back_unchanged(document: Any) -> None:
    try:
        assert load_json(json.dumps(document)) == document
    except DomainError as err:  # only a key with NUL, which st.text() may draw
        assert err.error == "invalid-text"


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_read_or_refused_with_an_error_id(data: bytes) -> None:
    try:
        load_json(data)
    except DomainError as err:
        assert err.error in ("invalid-json", "json-too-deep", "integer-out-of-range", "invalid-text")
        assert err.status in (400, 422)


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Zoë", "山田 太郎", "O'Brien-Smith", "", "x" * 10])
def test_names_without_controls_match(name: str) -> None:
    assert re.search(NAME_PATTERN, name)


@pytest.mark.parametrize("name", ["a\x00", "a\tb", "a\nb", "\x1b[31m", "del\x7f", "c1\x85", "\x9f"])
def test_names_with_controls_do_not(name: str) -> None:
    assert not re.search(NAME_PATTERN, name)


def test_name_schema() -> None:
    assert name_schema(64, min_length=1) == {"type": "string", "maxLength": 64, "pattern": NAME_PATTERN, "minLength": 1}


# --- integer schemas ------------------------------------------------------------------------------


def test_bound_integers_fills_in_the_range_without_touching_the_original() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": ["integer", "null"], "minimum": 1},
            "c": {"type": "array", "items": {"oneOf": [{"type": "integer", "maximum": 9}, {"type": "string"}]}},
            "d": {"enum": [{"type": "integer"}]},
        },
    }
    bounded = bound_integers(schema)
    props = bounded["properties"]
    assert props["a"] == {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX}
    assert props["b"]["minimum"] == 1 and props["b"]["maximum"] == INT_MAX
    assert props["c"]["items"]["oneOf"][0] == {"type": "integer", "maximum": 9, "minimum": INT_MIN}
    assert props["d"] == {"enum": [{"type": "integer"}]}  # data, not schema
    assert schema["properties"]["a"] == {"type": "integer"}


# --- ids and paging -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("7", 7), ("0042", 42), (str(INT_MAX), INT_MAX), (str(INT_MAX + 1), None), ("9" * 5000, None),
     ("¹", None), ("٣", None), ("𝟙", None), ("-1", None), ("+1", None), (" 1", None), ("1_000", None), ("", None),
     ("1e3", None)],
)
def test_ascii_int(text: str, expected: int | None) -> None:
    assert ascii_int(text, 0, INT_MAX) == expected


@given(st.text(max_size=12))
def test_ascii_int_takes_exactly_ascii_digit_strings_in_range(text: str) -> None:
    value = ascii_int(text, 1, inputs.ID_MAX)
    if value is not None:
        assert re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= inputs.ID_MAX
    elif re.fullmatch(r"[0-9]{1,10}", text):
        assert not 1 <= int(text) <= inputs.ID_MAX
