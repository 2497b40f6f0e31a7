"""DHCP option 43 (vendor-specific information) as Avaya phones read it: a sequence of
`code, length, value` triples whose values are ASCII text (research §9, [doc S32, S33]).

    raw = encode_option43({"HTTPSRVR": "10.0.0.5", "HTTPDIR": "/j"})   # code 1 "6889" first
    decode_option43(raw).params                                          # {"HTTPSRVR": ..., "HTTPDIR": ...}

Decisions:
- The phone processes option 43 only when its first code is 1 with the value `6889` (Avaya's
  enterprise number) [doc S32, S33]; otherwise `avaya` is False and no parameter is taken.
- Codes 2-15 map to the parameters of `CODES` [doc S32, S33]; the research list ends with "…",
  so a code above 15 is kept out of `params` and reported (unknown-code), not fatal [inf].
- Code 0 is padding and code 255 ends the option, as in RFC 2132 §8.4 sub-options [inf].
- A repeated code: the later value wins (like option 242, S31) and is reported [inf].
- Values are read as UTF-8, else Latin-1; decoding never raises on garbage: a truncated triple
  ends the walk and is reported (truncated).
- Encoding refuses a value of more than 255 bytes (one triple's length byte) and a name not in
  `CODES`, with errors `option43-too-long` / `option43-unknown-parameter`. A whole option over
  255 bytes is left to the DHCP server to split (RFC 3396).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AVAYA_ENTERPRISE", "CODES", "OPTION43_PROBLEMS", "Option43Result", "decode_option43", "encode_option43"]

AVAYA_ENTERPRISE = "6889"
ENTERPRISE_CODE = 1
PAD, END = 0, 255

CODES: dict[int, str] = {
    1: "ENTERPRISE",
    2: "HTTPSRVR",
    3: "HTTPDIR",
    4: "HTTPPORT",
    5: "TLSSRVR",
    6: "TLSDIR",
    7: "TLSPORT",
    8: "TLSSRVRID",
    9: "L2Q",
    10: "L2QVLAN",
    11: "PHY1STAT",
    12: "PHY2STAT",
    13: "PROCSTAT",
    14: "SIG",
    15: "SIP_CONTROLLER_LIST",
}
_BY_NAME = {name: code for code, name in CODES.items() if code != ENTERPRISE_CODE}

OPTION43_PROBLEMS: dict[str, str] = {
    "not-avaya": "Option 43 is processed only when its first code is 1 with value 6889 (§9).",
    "truncated": "A code/length/value triple runs past the end of the option; the rest is ignored.",
    "unknown-code": "A code that names no known parameter (§9 lists 1-15); it is ignored.",
    "repeated-code": "A code given twice; the later value wins.",
    "empty": "An empty option 43.",
}


@dataclass
class Option43Result:
    params: dict[str, str] = field(default_factory=dict)
    avaya: bool = False
    problems: list[str] = field(default_factory=list)  # "kind: detail", kinds from OPTION43_PROBLEMS


def encode_option43(params: Mapping[str, str]) -> bytes:
    """Code 1 `6889`, then one triple per parameter in the mapping's order (module docstring)."""
    out = bytearray(_triple(ENTERPRISE_CODE, AVAYA_ENTERPRISE, "ENTERPRISE"))
    for name, value in params.items():
        code = _BY_NAME.get(name.upper())
        if code is None:
            known = ", ".join(_BY_NAME)
            raise ValueError(f"option43-unknown-parameter: {name!r} has no option-43 code (known: {known})")
        out += _triple(code, value, name)
    return bytes(out)


def _triple(code: int, value: str, name: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"option43-too-long: {name} is {len(data)} bytes, a triple holds at most 255")
    return bytes((code, len(data))) + data


def decode_option43(raw: bytes) -> Option43Result:
    """The Avaya parameters of one option 43 (module docstring); never raises."""
    result = Option43Result()
    triples = _walk(bytes(raw), result.problems)
    if not triples:
        result.problems.append("empty: no code in the option" if not raw else "not-avaya: no complete triple")
        return result
    first_code, first_value = triples[0]
    if first_code != ENTERPRISE_CODE or _text(first_value) != AVAYA_ENTERPRISE:
        result.problems.append(f"not-avaya: first code {first_code} value {_text(first_value)!r}")
        return result
    result.avaya = True
    for code, value in triples[1:]:
        name = CODES.get(code)
        if name is None or code == ENTERPRISE_CODE:
            result.problems.append(f"unknown-code: {code} = {_text(value)!r}")
            continue
        if name in result.params:
            result.problems.append(f"repeated-code: {code} ({name})")
        result.params[name] = _text(value)
    return result


def _walk(raw: bytes, problems: list[str]) -> list[tuple[int, bytes]]:
    triples: list[tuple[int, bytes]] = []
    at = 0
    while at < len(raw):
        code = raw[at]
        if code == PAD:
            at += 1
            continue
        if code == END:
            break
        if at + 1 >= len(raw) or at + 2 + raw[at + 1] > len(raw):
            problems.append(f"truncated: code {code} at byte {at}")
            break
        length = raw[at + 1]
        triples.append((code, raw[at + 2 : at + 2 + length]))
        at += 2 + length
    return triples


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
