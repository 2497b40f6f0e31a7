"""The settings-script interpreter: what a phone does with J100Supgrade.txt, 46xxsettings.txt and the files they GET.

The language is research §1-§6 and §13-§14 (`/work/shared/research/avaya-settings-spec.md`):
`SET name value`, `IF $VAR SEQ value GOTO tag`, `GOTO tag`, `# tag`, `GET file`, and comments.
One pass starts at the file the phone asks for first and follows GETs. The result is the ordered
parameters, every applied SET, a trace of what was fetched, and the problems met on the way.

    result = interpret("J100Supgrade.txt", fetch, Variables.for_phone("J179", mac=..., serial=...))
    result = await interpret_async("J100Supgrade.txt", afetch, variables)

`fetch(path)` returns the file's bytes, or None when the server has no such file. The core is
sans-I/O (`steps`, a generator that yields paths and is sent replies), so both drivers share it.
Nothing in here raises on any input bytes or reply; an exception raised by `fetch` itself
propagates to the caller unchanged (the pass is then abandoned).

Decisions where the spec is silent or marked [inf] (also in docs/decisions.md):
- D-1 (§2.2) A statement is a line starting with `SET`, `IF`, `GOTO` or `GET` (any case) followed by
  a space or TAB, or with `#` followed by a space or TAB (a label). Every other line is a comment
  (`#SET`, `#PBX`, a lone `#`, `##…`, `NAME VALUE`). Non-blank comment lines that do not start
  with `#` are reported: indented-statement, bare-parameter, orphan-value, stray-text.
- D-2 (§2.8) Bytes: a line is read as UTF-8, else Windows-1252, else Latin-1. Blank lines and
  `#` comments are never decoded at all; a statement that is not UTF-8 is applied and reported
  (not-utf8).
- D-3 (§2.9) CRLF, LF and lone CR end lines; the last line needs no newline; a UTF-8 BOM is dropped.
- D-4 (§2.4) Keywords, labels, parameter and variable names are case-insensitive; SEQ compares
  case-insensitively (casefold). Parameter names are stored upper case.
- D-5 (§2.5) Words are separated by runs of spaces/TABs; leading/trailing blanks of values go.
- D-6 (§2.10, §14.3) `##` after a space or TAB starts an inline comment in SET values, IF, GOTO,
  GET and labels. After a closing quote, text starting with `#` is a comment; other text there is
  ignored and reported (text-after-quoted-value).
- D-7 (§2.6, §14.2) An unquoted value with spaces is the rest of the line (the phone's own export
  writes values so, C-21), applied and reported (unquoted-value-with-spaces). `""` is empty.
- D-8 `SET NAME` with no value (or only a comment) is ignored and reported (set-without-value).
- D-9 (§13) `SET NAME=VALUE`, `SET NAME = VALUE` and `SET NAME: VALUE` are ignored and reported:
  a phone reads `NAME=VALUE` as an unknown parameter name.
- D-10 (§2.4) A parameter name is ASCII letters, digits and `_` (so `SIP-Transport` is refused);
  unknown but well-formed names are kept: the parameter catalog is the phone model's business.
- D-11 (§2.7) A value longer than 255 characters (measured as written, without the quotes) and a
  name longer than 64 characters are ignored and reported. The spec's 30-character name limit
  (S21) is the 96x1 H.323 one: Avaya's 2022 template documents 82 parameters with longer names
  (up to 46, CENTRALIZED_PERSONAL_CONTACTS_REFRESH_INTERVAL) and IP Office writes
  AUDIO_DEVICE_CALL_CONTROL_ENABLED (33, C-09), so 30 would drop real settings. `Options` sets
  both limits; `Options.h323_96x1()` restores 30, `Options.vantage()` allows TRUSTCERTS 1024
  characters (S2:L4460).
- D-12 (§6) `SET GROUP` is ignored and reported (read-only-parameter), and so is a SET of any
  other variable the phone reports about itself (`script_vars.READ_ONLY`: MODEL4, MACADDR,
  SERIALNO, HWVERS, APPNAME_IN_USE, BOOTNAME, …). SIG, APPNAME and HTTPDIR are settable. An IF
  reads a parameter SET earlier in this pass first, then the phone's variable (C-08 tests
  `$APPNAME` right after setting it).
- D-13 (§3) IF is `IF a SEQ b GOTO tag`; either side is `$NAME` or a literal (quoted literals may
  hold spaces). An undefined variable makes the whole IF ignored and reported; other operators,
  a missing GOTO and an unterminated quote make it ignored and reported. Words after the tag of
  IF/GOTO/GET are ignored and reported (trailing-text); the statement still runs.
- D-14 (§14.1) `$MACADDR` in IF is the 12 hex digits without separators; as SEQ ignores case,
  `c81fea9b6500` and `C81FEA9B6500` both match, `c8:1f:ea:9b:65:00` never does.
- D-15 (§3) GOTO searches forward only, from the GOTO line, for the first label with that tag.
  If there is none the rest of the file is skipped, and as GET never returns, the pass ends;
  the problem is backward-goto when the label exists only above, else label-not-found.
- D-16 (§3) A label's tag is the first word after `# ` (C-14: `# SETTINGS3631   ##`). Other text
  after it is reported (label-with-spaces, C-10's `# SET TRUSTCERTS …`) unless it starts `##`.
  `# ` followed by nothing or by `##` is a comment.
- D-17 (§1, §3) GET is a tail call: when the file is found, the rest of the current file is
  abandoned; when it is not, the next line runs. The requested path is the current HTTPDIR (the
  phone's variable HTTPDIR at the start, e.g. from DHCP, then the last SET HTTPDIR) joined to the
  name with `/`, without leading slash: `SET HTTPDIR J100` + `GET 46xxsettings.txt` asks for
  `J100/46xxsettings.txt`. The first file is requested the same way. `Options.directory_parameter`
  may name TLSDIR for a phone using HTTPS.
- D-18 (§14.4) At most `max_files` files (10) are interpreted and `max_fetches` requests (100)
  made per pass. A GET of a file already interpreted in this pass is refused (already-fetched):
  that is what stops cycles. A missing file may be asked for again (C-19 GETs $MACADDR.txt
  twice on one path): each GET is a request, and the trace stands for the server's access log.
  A refused GET is reported, is not in the trace, and the next line runs.
- D-19 (§5) Macros are expanded only in MYCERTCN, SCEPPASSWORD, PKCS12URL, NVVPNUSER ($MACADDR
  lower case, $MACADDR_UPPER, $SERIALNO), HTTPDIR, TLSDIR, FILE_SERVER_URL ($MACADDR upper case,
  $MODEL4, $SERIALNO) and GET names ($MACADDR lower case), at the moment the SET or GET runs.
  A macro the phone has no value for, or a `$NAME` that is not a macro there, is kept as written
  and reported.
- D-20 `params` keeps the position of a parameter's first SET and the value of its last.
- D-21 Problems are reported for the lines the interpreter reaches; skipped lines are not read.
- D-22 A reply may be bytes, bytearray, memoryview or str (encoded as UTF-8); anything else
  counts as not found and is reported (invalid-fetch-result).
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field

from simulators.script_lex import (
    Finding,
    GetStmt,
    GotoStmt,
    IfStmt,
    Operand,
    SetStmt,
    decode_line,
    is_label_line,
    label_tag,
    parse_line,
    skip_fast,
    split_lines,
)
from simulators.script_problems import PROBLEMS
from simulators.script_vars import GET_MACROS, READ_ONLY, VALUE_MACROS, Variables, bare_mac, expand, macro_forms

__all__ = [
    "FetchRecord",
    "Options",
    "Problem",
    "ScriptResult",
    "SetRecord",
    "Variables",
    "interpret",
    "interpret_async",
    "steps",
]

Fetch = Callable[[str], bytes | None]
AsyncFetch = Callable[[str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Options:
    """Limits of one pass (D-11, D-18) and the parameter that holds the GET directory (D-17)."""

    max_files: int = 10
    max_fetches: int = 100
    max_name_length: int = 64
    max_value_length: int = 255
    value_lengths: Mapping[str, int] = field(default_factory=dict)  # per parameter, e.g. {"TRUSTCERTS": 1024}
    directory_parameter: str = "HTTPDIR"

    @classmethod
    def h323_96x1(cls) -> Options:
        """96x1 H.323: names of at most 30 characters (S21 §2.1.50)."""
        return cls(max_name_length=30)

    @classmethod
    def vantage(cls) -> Options:
        """Vantage K1xx: TRUSTCERTS may be 1024 characters (S2:L4460)."""
        return cls(value_lengths={"TRUSTCERTS": 1024})


@dataclass(frozen=True, slots=True)
class SetRecord:
    """One applied SET: where it was, and the parameter (upper case) and value (macros expanded)."""

    file: str
    line: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One request to the file server: the name as written, the path asked for, and who asked.

    `file`/`line` are None for the first file of the pass.
    """

    name: str
    path: str
    found: bool
    file: str | None
    line: int | None


@dataclass(frozen=True, slots=True)
class Problem:
    """Something reported, not fatal: a stable kind, a sentence for a person, the offending value."""

    file: str | None
    line: int | None
    kind: str
    text: str
    detail: str


@dataclass
class ScriptResult:
    params: dict[str, str] = field(default_factory=dict)
    sets: list[SetRecord] = field(default_factory=list)
    trace: list[FetchRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


_Steps = Generator[str, object, ScriptResult]


def steps(first: str, variables: Mapping[str, str], options: Options | None = None) -> _Steps:
    """The sans-I/O pass: yields each path to fetch, takes the reply by `send`, returns the result."""
    return _Pass(first, variables, options or Options()).run()


def interpret(first: str, fetch: Fetch, variables: Mapping[str, str], options: Options | None = None) -> ScriptResult:
    """Run one pass from `first`, fetching with `fetch(path) -> bytes | None`."""
    machine = steps(first, variables, options)
    try:
        path = next(machine)
        while True:
            path = machine.send(fetch(path))
    except StopIteration as done:
        result: ScriptResult = done.value
        return result


async def interpret_async(
    first: str, fetch: AsyncFetch, variables: Mapping[str, str], options: Options | None = None
) -> ScriptResult:
    """`interpret` with an async `fetch`."""
    machine = steps(first, variables, options)
    try:
        path = next(machine)
        while True:
            path = machine.send(await fetch(path))
    except StopIteration as done:
        result: ScriptResult = done.value
        return result


def _as_bytes(reply: object) -> tuple[bytes | None, bool]:
    """D-22: the reply as bytes (None when not found), and whether the reply was a valid one."""
    if reply is None:
        return None, True
    if isinstance(reply, bytes | bytearray | memoryview):
        return bytes(reply), True
    if isinstance(reply, str):
        return reply.encode("utf-8", "surrogatepass"), True
    return None, False


class _Labels:
    """Where each tag is defined in one file (0-based line indexes, ascending), for forward search."""

    def __init__(self, lines: list[bytes]) -> None:
        self._at: dict[str, list[int]] = {}
        for index, raw in enumerate(lines):
            if is_label_line(raw):
                tag, _ = label_tag(decode_line(raw)[0][2:])
                if tag is not None:
                    self._at.setdefault(tag, []).append(index)

    def after(self, tag: str, index: int) -> int | None:
        """D-15: the first line defining `tag` below `index`, or None."""
        places = self._at.get(tag, [])
        found = bisect.bisect_right(places, index)
        return places[found] if found < len(places) else None

    def defined(self, tag: str) -> bool:
        return tag in self._at


class _Pass:
    """State of one pass over the file chain."""

    def __init__(self, first: str, variables: Mapping[str, str], options: Options) -> None:
        self.first = first
        self.options = options
        self.result = ScriptResult()
        self.phone = _phone_variables(variables)
        self.forms = macro_forms(self.phone)
        self.directory_name = options.directory_parameter.upper()
        initial = self.phone.get(self.directory_name, "")
        self.directory = self._expand(initial, VALUE_MACROS.get(self.directory_name, {}), None, None)
        self.value_lengths = {name.upper(): limit for name, limit in options.value_lengths.items()}
        self.interpreted: set[str] = set()
        self.fetches = 0

    def run(self) -> _Steps:
        current = yield from self._fetch(self.first, None, None)
        while current is not None:
            current = yield from self._file(*current)
        return self.result

    def _file(self, path: str, data: bytes) -> Generator[str, object, tuple[str, bytes] | None]:
        """Interpret one file; returns the file a successful GET moved to, or None when the pass ends."""
        lines = split_lines(data)
        labels: _Labels | None = None
        index = 0
        while index < len(lines):
            raw = lines[index]
            line = index + 1
            index += 1
            if skip_fast(raw):
                continue
            text, utf8 = decode_line(raw)
            statement, findings = parse_line(text)
            if statement is not None and not utf8:
                findings.append(Finding("not-utf8", text.strip()))
            for finding in findings:
                self._report(path, line, finding.kind, finding.detail)
            if isinstance(statement, SetStmt):
                self._set(path, line, statement)
                continue
            target: str | None = None
            if isinstance(statement, IfStmt):
                target = self._if(path, line, statement)
            elif isinstance(statement, GotoStmt):
                target = statement.target
            elif isinstance(statement, GetStmt):
                fetched = yield from self._fetch(statement.name, path, line)
                if fetched is not None:
                    return fetched
            if target is None:
                continue
            if labels is None:
                labels = _Labels(lines)
            landing = labels.after(target, index - 1)
            if landing is None:
                kind = "backward-goto" if labels.defined(target) else "label-not-found"
                self._report(path, line, kind, target)
                return None
            index = landing + 1
        return None

    def _set(self, path: str, line: int, statement: SetStmt) -> None:
        name, value = statement.name.upper(), statement.value
        limit = self.value_lengths.get(name, self.options.max_value_length)
        if len(name) > self.options.max_name_length:
            self._report(path, line, "name-too-long", name)
        elif name in READ_ONLY:
            self._report(path, line, "read-only-parameter", f"{name} {value}")
        elif len(value) > limit:
            self._report(path, line, "value-too-long", f"{name}: {len(value)} characters, limit {limit}")
        else:
            if name in VALUE_MACROS:
                value = self._expand(value, VALUE_MACROS[name], path, line)
            self.result.params[name] = value
            self.result.sets.append(SetRecord(path, line, name, value))
            if name == self.directory_name:
                self.directory = value

    def _if(self, path: str, line: int, statement: IfStmt) -> str | None:
        """D-13: the GOTO target when the IF holds, None when it does not or is ignored."""
        left, right = self._operand(statement.left), self._operand(statement.right)
        if left is None or right is None:
            missing = statement.left if left is None else statement.right
            self._report(path, line, "undefined-variable", missing.literal)
            return None
        return statement.target if left.casefold() == right.casefold() else None

    def _operand(self, operand: Operand) -> str | None:
        """D-12: a parameter SET earlier in this pass wins over the phone's own variable."""
        if operand.variable is None:
            return operand.literal
        if operand.variable in self.result.params:
            return self.result.params[operand.variable]
        return self.phone.get(operand.variable)

    def _fetch(self, name: str, path: str | None, line: int | None) -> Generator[str, object, tuple[str, bytes] | None]:
        """D-17, D-18: request one file; returns (path, bytes) when it is to be interpreted."""
        expanded = self._expand(name, GET_MACROS, path, line)
        wanted = _join(self.directory, expanded)
        refusal = self._refusal(wanted)
        if refusal is not None:
            self._report(path, line, refusal, wanted)
            return None
        self.fetches += 1
        body, valid = _as_bytes((yield wanted))
        self.result.trace.append(FetchRecord(name, wanted, body is not None, path, line))
        if body is None:
            missing = "first-file-not-found" if path is None else "file-not-found"
            self._report(path, line, missing if valid else "invalid-fetch-result", wanted)
            return None
        self.interpreted.add(wanted)
        self.result.files.append(wanted)
        return wanted, body

    def _refusal(self, wanted: str) -> str | None:
        """D-18: why a GET of `wanted` is not made, or None."""
        if wanted in self.interpreted:
            return "already-fetched"
        if len(self.result.files) >= self.options.max_files:
            return "file-limit"
        if self.fetches >= self.options.max_fetches:
            return "fetch-limit"
        return None

    def _expand(self, text: str, macros: Mapping[str, str], path: str | None, line: int | None) -> str:
        expanded, left = expand(text, macros, self.forms)
        for kind, detail in left:
            self._report(path, line, kind, detail)
        return expanded

    def _report(self, path: str | None, line: int | None, kind: str, detail: str) -> None:
        self.result.problems.append(Problem(path, line, kind, PROBLEMS[kind], detail))


def _phone_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """The variables as IF sees them (D-14): upper-case names, MACADDR as 12 hex digits."""
    phone = dict(Variables(variables))
    if "MACADDR" in phone:
        phone["MACADDR"] = bare_mac(phone["MACADDR"])
        phone.setdefault("MACADDR_UPPER", phone["MACADDR"].upper())
    if "SERIALNO" in phone:
        phone.setdefault("SERIALNO_UPPER", phone["SERIALNO"].upper())
    return phone


def _join(directory: str, name: str) -> str:
    """D-17: HTTPDIR `J100` or `/J100/` and `46xxsettings.txt` give `J100/46xxsettings.txt`."""
    directory, name = directory.strip("/"), name.lstrip("/")
    return f"{directory}/{name}" if directory else name
