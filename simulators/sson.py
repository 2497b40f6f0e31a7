"""DHCP site-specific option strings (SSON, option 242/176): `NAME=value,NAME=value,…` (research §9).

    parse_sson("MCIPADD=pbx.example,MCPORT=1719,HTTPSRVR=10.2.248.2,L2Q=1, L2QVLAN=233")

Decisions (research §9 gives the format and two real strings, C-24 and S41, and no grammar):
- Pairs are separated by commas; the name is before the first `=`, upper-cased. Names are ASCII
  letters, digits and `_`; a pair with another name is ignored and reported (invalid-name).
- A piece without `=` continues the previous value, joined by a comma: server lists are
  comma-separated (S2:L8590-8593), so `HTTPSRVR=10.0.0.1,10.0.0.2,L2Q=1` keeps both servers.
  Before any pair it is ignored and reported (stray-text).
- Blanks around names and values are dropped and reported (stray-whitespace): C-24's
  `L2Q=1, L2QVLAN=233` is from a working site, so the phone evidently reads L2QVLAN.
- Double quotes around the whole string (how ISC dhcpd configs quote it, S41) are removed;
  a trailing newline or NUL is dropped. Empty pieces (`,,`) are ignored and reported.
- A later pair overrides an earlier one, as SSON overrides earlier values (S31).
- More than 255 bytes cannot be one DHCP option; that is reported (too-long), and parsed anyway.
Never raises: bytes are read as UTF-8, else Latin-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["SSON_PROBLEMS", "SsonProblem", "SsonResult", "parse_sson"]

MAX_OPTION_BYTES = 255
_NAME = re.compile(r"[A-Za-z0-9_]+")

SSON_PROBLEMS: dict[str, str] = {
    "invalid-name": "An SSON name is ASCII letters, digits and underscores; the pair is ignored (§9).",
    "stray-text": "Text without NAME= before the first pair is ignored (§9).",
    "stray-whitespace": "Blanks around an SSON name or value are dropped (§9, C-24).",
    "empty-pair": "An empty piece between commas is ignored (§9).",
    "too-long": "A DHCP option holds at most 255 bytes; this string cannot be one option (RFC 2132).",
}


@dataclass(frozen=True, slots=True)
class SsonProblem:
    kind: str
    text: str
    detail: str


@dataclass
class SsonResult:
    params: dict[str, str] = field(default_factory=dict)  # upper-case names, first-seen order
    problems: list[SsonProblem] = field(default_factory=list)


def parse_sson(option: str | bytes) -> SsonResult:
    """Parse one option-242 string into parameters (research §9)."""
    result = SsonResult()

    def report(kind: str, detail: str) -> None:
        result.problems.append(SsonProblem(kind, SSON_PROBLEMS[kind], detail))

    text = _text(option)
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_OPTION_BYTES:
        report("too-long", f"{size} bytes")
    text = text.rstrip("\r\n\x00")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    last: str | None = None
    for raw in text.split(","):
        name_raw, equals, value_raw = raw.partition("=")
        name, value = name_raw.strip(), value_raw.strip()
        if not raw.strip():
            report("empty-pair", text)
            continue
        if (name, value) != (name_raw, value_raw):
            report("stray-whitespace", raw)
        if not equals:
            if last is None:
                report("stray-text", name)
            else:
                result.params[last] += "," + name
            continue
        if not _NAME.fullmatch(name):
            report("invalid-name", raw.strip())
            last = None
            continue
        last = name.upper()
        result.params[last] = value
    return result


def _text(option: str | bytes) -> str:
    if isinstance(option, str):
        return option
    try:
        return option.decode("utf-8")
    except UnicodeDecodeError:
        return option.decode("latin-1")
