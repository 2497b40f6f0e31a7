"""PROTOCOL §2: the enrollment request body. `body_is_valid` (the fast check of the hot path) must
answer exactly what the whole `BODY_SCHEMA` answers, and a refused body keeps its error text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from server.device.enroll import _VALIDATOR, BadBody, body_is_valid, parse_body

GOOD = {"model": "J179", "firmware": "4.1.11.0.9", "mac": "a4:25:1b:0c:3d:5e", "serial": "21WZ51234567", "code": None}

# Values near every bound of the schema: lengths 0/1/32/33/64/65, the printable ranges' edges,
# and the JSON types a device could send by mistake.
_texts = st.one_of(
    st.text(max_size=70),
    st.text(alphabet=st.characters(min_codepoint=0x1F, max_codepoint=0x7F), max_size=70),
    st.sampled_from(["", "x", " ", "a b", "x" * 32, "x" * 33, "x" * 64, "x" * 65, "\x7e", "\x7f", "\x20", "\x21"]),
)
_values = st.one_of(_texts, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(st.none()))
_keys = st.sampled_from(["model", "firmware", "mac", "serial", "code", "extra"])
_bodies = st.one_of(
    st.dictionaries(_keys, _values, max_size=6),
    st.builds(lambda changes: {**GOOD, **changes}, st.dictionaries(_keys, _values, max_size=2)),
    st.builds(lambda drop: {k: v for k, v in GOOD.items() if k != drop}, _keys),
    _values,
)


@settings(max_examples=600)
@given(_bodies)
def test_fast_check_agrees_with_the_whole_schema(body: Any) -> None:
    assert body_is_valid(body) == _VALIDATOR.is_valid(body)


def test_a_good_body_is_parsed_and_its_mac_made_canonical() -> None:
    assert parse_body(json.dumps(GOOD).encode())["mac"] == "A4251B0C3D5E"


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "model": ""},
        {**GOOD, "serial": "has space", "firmware": "x" * 33},
        {k: v for k, v in GOOD.items() if k != "serial"},
        {**GOOD, "code": 12345678},
        ["not", "an", "object"],
    ],
)
def test_a_refused_body_names_the_schema_error(body: Any) -> None:
    """The error text is the whole schema's best match, as before the fast check existed."""
    error = best_match(_VALIDATOR.iter_errors(body))
    assert error is not None
    where = ".".join(str(p) for p in error.absolute_path) or "body"
    with pytest.raises(BadBody) as refused:
        parse_body(json.dumps(body).encode())
    assert (refused.value.error, refused.value.status) == ("invalid-body", 400)
    assert refused.value.detail == f"{where}: {error.message}"
