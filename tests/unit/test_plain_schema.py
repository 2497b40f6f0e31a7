"""`server.domain.plain_schema`: the plain tests must answer what jsonschema answers for the
device-import row schema (every keyword of it is one they know), and must defer to jsonschema —
never pass a value — where a schema has a keyword they do not know."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from server.domain.imports import FIELDS, _row_is_valid, _row_validator, normalise_row
from server.domain.plain_schema import PlainCheck

GOOD = {"mac": "A4251B0C3D5E", "serial": "21WZ51234567", "model": "J179", "thumbprint": "AB" * 32,
        "manufactured_at": "2026-01-02T03:04:05", "product_id": "700513569"}
_texts = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="0123456789ABCDEFabcdef:-", min_size=10, max_size=70),
    st.sampled_from(["", "x", "J179", "A4251B0C3D5E", "a4251b0c3d5e", "-lead", "x" * 128, "x" * 129, "\x00",
                     "2026-01-02", "2026-13-02", "2026-01-02T03:04:05+02:00", "not a date", "\ud800", "AB" * 32]),
)
_values = st.one_of(_texts, st.none(), st.integers(), st.booleans(), st.lists(st.none(), max_size=1))
_keys = st.sampled_from([*FIELDS, "colour"])
_rows = st.one_of(
    st.dictionaries(_keys, _values, max_size=8),
    st.builds(lambda changes: {**GOOD, **changes}, st.dictionaries(_keys, _values, max_size=2)),
    st.builds(lambda drop: {k: v for k, v in GOOD.items() if k != drop}, _keys),
    _values,
)


@settings(max_examples=1500)
@given(_rows)
def test_plain_tests_agree_with_jsonschema_on_import_rows(row: Any) -> None:
    for values in (row, normalise_row(row)):  # as written and as the import normalises it
        assert _row_is_valid()(values) == _row_validator().is_valid(values), values


def test_a_good_row_passes_and_each_kind_of_fault_does_not() -> None:
    valid = _row_is_valid()
    assert valid(GOOD)
    no_model = {k: v for k, v in GOOD.items() if k != "model"}
    for bad in ({**GOOD, "mac": "a4251b0c3d5e"}, {**GOOD, "colour": "red"}, no_model, {**GOOD, "order_id": "x" * 129},
                {**GOOD, "manufactured_at": "2026-13-02"}, {**GOOD, "serial": 7}):
        assert not valid(bad) and not _row_validator().is_valid(bad), bad


def test_a_keyword_it_does_not_know_is_left_to_the_validator() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "not": {"const": "x"}}, "b": {"type": "string"}}}
    check = PlainCheck.of(schema)
    assert check({"b": "fine"})  # the field with the unknown keyword is absent
    assert not check({"a": "y"})  # valid, but only the validator can say so
    assert Draft202012Validator(schema).is_valid({"a": "y"})
    with pytest.raises(ValueError):
        PlainCheck.of({"type": "object", "allOf": [{"required": ["a"]}]})
