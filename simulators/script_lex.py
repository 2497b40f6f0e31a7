"""Reading settings-script lines: bytes to lines, and one line to a statement or a comment.

Pure functions, no state: the interpreter (`simulators/script.py`) calls them for the lines it
reaches, and `label_tag` once per label line to index a file's labels. The decisions (D-n) they
implement are listed in that module's docstring; the spec is research §2 and §3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Finding",
    "GetStmt",
    "GotoStmt",
    "IfStmt",
    "LabelStmt",
    "Operand",
    "SetStmt",
    "Statement",
    "decode_line",
    "is_label_line",
    "label_tag",
    "parse_line",
    "skip_fast",
    "split_lines",
]

_BOM = b"\xef\xbb\xbf"
_BLANKS = " \t"
# §2.2 and D-1: a keyword (any case) then a space or TAB, or "#" then a space or TAB.
_STATEMENT = re.compile(r"(SET|IF|GOTO|GET)[ \t]|#[ \t]", re.IGNORECASE)
_INDENTED = re.compile(r"[ \t]+(?:(?:SET|IF|GOTO|GET)[ \t]|#[ \t])", re.IGNORECASE)
# `NAME VALUE`, `NAME=VALUE`, `NAME: VALUE` without SET (C-19, C-22, C-24).
_BARE_PARAMETER = re.compile(r"[A-Z][A-Z0-9_]+(?:[ \t]*[=:][ \t]*|[ \t]+)\S")
_NAME = re.compile(r"[A-Za-z0-9_]+")
# D-6: an inline comment is `##` after a space or TAB.
_INLINE_COMMENT = re.compile(r"[ \t]##")
_SEPARATORS = re.compile(r"[ \t]+")
_SMART_QUOTES = ("\u201c", "\u201d")


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem seen on one line: its kind (see `script_problems.PROBLEMS`) and the offending text."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class Operand:
    """One side of an IF: `$NAME` (variable is the upper-case name) or a literal string."""

    variable: str | None
    literal: str


@dataclass(frozen=True, slots=True)
class SetStmt:
    name: str  # as written; the interpreter upper-cases it
    value: str


@dataclass(frozen=True, slots=True)
class IfStmt:
    left: Operand
    right: Operand
    target: str  # upper case


@dataclass(frozen=True, slots=True)
class GotoStmt:
    target: str  # upper case


@dataclass(frozen=True, slots=True)
class GetStmt:
    name: str  # as written, macros not expanded


@dataclass(frozen=True, slots=True)
class LabelStmt:
    tag: str  # upper case


Statement = SetStmt | IfStmt | GotoStmt | GetStmt | LabelStmt
Parsed = tuple[Statement | None, list[Finding]]


def split_lines(data: bytes) -> list[bytes]:
    """§2.9, D-3: CRLF, LF and lone CR all end a line; the last line needs no newline; a UTF-8 BOM goes."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    return data.splitlines()


def skip_fast(raw: bytes) -> bool:
    """True for lines that are comments whatever their bytes: blank, `##…`, `#SET…`, a lone `#`.

    The 1 MB Avaya template is 98 % such lines; they are never decoded (§2.8).
    """
    if not raw.strip():
        return True
    return raw[:1] == b"#" and raw[1:2] not in (b" ", b"\t")


def is_label_line(raw: bytes) -> bool:
    return raw[:1] == b"#" and raw[1:2] in (b" ", b"\t")


def decode_line(raw: bytes) -> tuple[str, bool]:
    """D-2: UTF-8 if it is; otherwise Windows-1252 (Avaya's own template), or Latin-1 as a last resort.

    Returns the text and whether it was UTF-8.
    """
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), False


def label_tag(rest: str) -> tuple[str | None, str]:
    """§3, D-16: the tag is the first word after `# `; returns (tag or None, the ignored rest).

    A line with no word, or whose first word starts with `##` (C-14's spacer lines), is a comment.
    """
    parts = _SEPARATORS.split(rest.strip(_BLANKS), maxsplit=1)
    tag = parts[0]
    if not tag or tag.startswith("##"):
        return None, ""
    return tag.upper(), parts[1] if len(parts) > 1 else ""


def parse_line(text: str) -> Parsed:
    """Classify one decoded line (§2.2): a statement, or a comment with the findings worth reporting."""
    match = _STATEMENT.match(text)
    if match is None:
        return None, _comment_findings(text)
    rest = text[match.end() :]
    keyword = match.group(1)
    if keyword is None:
        return _parse_label(rest)
    return _PARSERS[keyword.upper()](rest)


def _comment_findings(text: str) -> list[Finding]:
    """D-1: a comment line that does not start with `#` is reported by what it most looks like."""
    detail = text.strip(_BLANKS)
    if _INDENTED.match(text):
        return [Finding("indented-statement", detail)]
    if not detail or detail.startswith("#"):
        return []
    if _BARE_PARAMETER.match(text):
        return [Finding("bare-parameter", detail)]
    if detail.startswith('"'):
        return [Finding("orphan-value", detail)]
    return [Finding("stray-text", detail)]


def _tokens(rest: str) -> tuple[list[tuple[str, bool]], list[Finding]]:
    """Words separated by runs of spaces/TABs (D-5); `"…"` is one word (quoted); a word starting `##` ends the line."""
    words: list[tuple[str, bool]] = []
    i, end = 0, len(rest)
    while True:
        while i < end and rest[i] in _BLANKS:
            i += 1
        if i >= end or rest.startswith("##", i):
            return words, []
        if rest[i] == '"':
            close = rest.find('"', i + 1)
            if close < 0:
                return words, [Finding("unterminated-quote", rest[i:])]
            words.append((rest[i + 1 : close], True))
            i = close + 1
        else:
            start = i
            while i < end and rest[i] not in _BLANKS:
                i += 1
            words.append((rest[start:i], False))


def _trailing(words: list[tuple[str, bool]], used: int) -> list[Finding]:
    extra = words[used:]
    if not extra:
        return []
    return [Finding("trailing-text", " ".join(word for word, _ in extra))]


def _parse_set(rest: str) -> Parsed:
    """§3 `SET name value`, with the value rules of §2.6 (D-6 … D-10)."""
    body = rest.lstrip(_BLANKS)
    name_end = 0
    while name_end < len(body) and body[name_end] not in _BLANKS:
        name_end += 1
    name, tail = body[:name_end], body[name_end:]
    if not name or name.startswith("##"):
        return None, [Finding("malformed-set", rest.strip(_BLANKS))]
    if "=" in name:
        return None, [Finding("set-equals-form", body.strip(_BLANKS))]
    if ":" in name:
        return None, [Finding("set-colon-form", body.strip(_BLANKS))]
    if not _NAME.fullmatch(name):
        return None, [Finding("invalid-name", name)]
    value_text = tail.lstrip(_BLANKS)
    findings: list[Finding] = []
    if value_text.startswith('"'):
        close = value_text.find('"', 1)
        if close < 0:
            return None, [Finding("unterminated-quote", value_text)]
        value = value_text[1:close]
        after = value_text[close + 1 :].strip(_BLANKS)
        if after and not after.startswith("#"):
            findings.append(Finding("text-after-quoted-value", after))
    else:
        cut = _INLINE_COMMENT.search(tail)
        value = (tail[: cut.start()] if cut else tail).strip(_BLANKS)
        if not value:
            return None, [Finding("set-without-value", name)]
        if value[0] in "=:":
            kind = "set-equals-form" if value[0] == "=" else "set-colon-form"
            return None, [Finding(kind, body.strip(_BLANKS))]
        if any(blank in value for blank in _BLANKS):
            findings.append(Finding("unquoted-value-with-spaces", value))
    if any(mark in value for mark in _SMART_QUOTES):
        findings.append(Finding("smart-quotes", value))
    return SetStmt(name, value), findings


def _operand(word: str, quoted: bool) -> Operand:
    if word.startswith("$") and not quoted:
        return Operand(word[1:].upper(), word)
    return Operand(None, word)


def _parse_if(rest: str) -> Parsed:
    """§3 `IF a SEQ b GOTO tag`; either side may be `$NAME` (D-13)."""
    words, findings = _tokens(rest)
    if findings:
        return None, findings
    if len(words) < 5 or words[3][0].upper() != "GOTO" or words[3][1]:
        return None, [Finding("malformed-if", rest.strip(_BLANKS))]
    if words[1][0].upper() != "SEQ":
        return None, [Finding("unknown-operator", words[1][0])]
    statement = IfStmt(_operand(*words[0]), _operand(*words[2]), words[4][0].upper())
    return statement, _trailing(words, 5)


def _parse_goto(rest: str) -> Parsed:
    words, findings = _tokens(rest)
    if findings:
        return None, findings
    if not words or not words[0][0]:
        return None, [Finding("malformed-goto", rest.strip(_BLANKS))]
    return GotoStmt(words[0][0].upper()), _trailing(words, 1)


def _parse_get(rest: str) -> Parsed:
    words, findings = _tokens(rest)
    if findings:
        return None, findings
    if not words or not words[0][0]:
        return None, [Finding("malformed-get", rest.strip(_BLANKS))]
    return GetStmt(words[0][0]), _trailing(words, 1)


def _parse_label(rest: str) -> Parsed:
    tag, ignored = label_tag(rest)
    if tag is None:
        return None, []
    ignored = ignored.strip(_BLANKS)
    findings = [Finding("label-with-spaces", ignored)] if ignored and not ignored.startswith("##") else []
    return LabelStmt(tag), findings


_PARSERS = {"SET": _parse_set, "IF": _parse_if, "GOTO": _parse_goto, "GET": _parse_get}
