"""Properties of the settings-script interpreter over generated input (hypothesis).

Research §3 (forward-only GOTO, GET as a tail call), §14.4 and D-18 (the chain limits), and the
issue's "never crash on any input".
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.script import Options, ScriptResult, Variables, interpret, interpret_async
from simulators.script_problems import PROBLEMS

FAST = settings(max_examples=100, deadline=None)

PHONE = Variables.for_phone("J179", model="J179D02A", mac="C8:1F:EA:9B:65:00", serial="18WZ504009XT", SIG=2)
FILES = [f"f{n}.txt" for n in range(6)]
LABELS = ["A", "B", "C", "end", "J179"]
NAMES = ["APPNAME", "HTTPDIR", "GROUP", "SIG", "MYCERTCN", "X", "TRUSTCERTS", "model4"]
VALUES = ["1", "2", "J179", '""', '"a b"', "$MACADDR", "$MODEL4dir", "a b c", "x ## c", '"unterminated', "=1", ""]

names = st.sampled_from(NAMES)
values = st.sampled_from(VALUES)
labels = st.sampled_from(LABELS)
gets = st.sampled_from([*FILES, "$MACADDR.txt", "missing.txt", "/f1.txt"])
blank = st.sampled_from([" ", "  ", "\t", " \t "])

statement = st.one_of(
    st.builds(lambda n, b, v: f"SET{b}{n}{b}{v}", names, blank, values),
    st.builds(
        lambda n, v, t: f"IF ${n} SEQ {v} GOTO {t}",
        st.sampled_from(["MODEL4", "SIG", "GROUP", "NOPE", "X"]),
        values,
        labels,
    ),
    st.builds(lambda t: f"goto {t}", labels),
    st.builds(lambda t: f"# {t}", labels),
    st.builds(lambda f: f"GET {f}", gets),
    st.sampled_from(["##", "#SET X 9", "#", "X 1", "SET X=1", "  SET X 2", '"orphan"', "IF", "GOTO", "\x93\xff"]),
    st.text(max_size=20),
)
newline = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def scripts(draw: st.DrawFn, max_lines: int = 25) -> bytes:
    lines = draw(st.lists(statement, max_size=max_lines))
    return draw(newline).join(lines).encode("utf-8", "surrogateescape")


@st.composite
def servers(draw: st.DrawFn) -> dict[str, bytes]:
    """Some of FILES, each a script that may GET any other (cycles included), plus the MAC file."""
    present = draw(st.lists(st.sampled_from(FILES), unique=True, min_size=1))
    if "f0.txt" not in present:
        present.append("f0.txt")
    # Each file ends with a few GETs, so that chains, cycles and the limits are reached often.
    tails = st.lists(gets.map(lambda name: f"GET {name}"), min_size=1, max_size=3).map("\n".join)
    server = {name: draw(scripts(max_lines=12)) + b"\n" + draw(tails).encode() for name in present}
    if draw(st.booleans()):
        server["c81fea9b6500.txt"] = draw(scripts(max_lines=5))
    return server


def check_invariants(result: ScriptResult, options: Options) -> None:
    assert len(result.files) <= options.max_files
    assert len(result.trace) <= options.max_fetches
    assert len(result.files) == len(set(result.files))  # no file interpreted twice (D-18)
    assert result.files == [r.path for r in result.trace if r.found]
    assert {p.kind for p in result.problems} <= PROBLEMS.keys()
    assert all(p.text == PROBLEMS[p.kind] for p in result.problems)
    assert result.params == {s.name: s.value for s in result.sets}
    assert "GROUP" not in result.params
    assert all(s.file in result.files for s in result.sets)


@FAST
@given(st.binary(max_size=2000))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    result = interpret("f0.txt", {"f0.txt": data}.get, PHONE)
    check_invariants(result, Options())


@FAST
@given(scripts(max_lines=60), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_never_raises_on_statement_soup_with_any_variables(script: bytes, variables: dict[str, str]) -> None:
    result = interpret("f0.txt", {"f0.txt": script}.get, Variables(variables))
    check_invariants(result, Options())


@FAST
@given(servers(), st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=8))
def test_arbitrary_file_servers_respect_the_chain_limits(
    server: dict[str, bytes], max_files: int, max_fetches: int
) -> None:
    options = Options(max_files=max_files, max_fetches=max_fetches)
    result = interpret("f0.txt", server.get, PHONE, options)
    check_invariants(result, options)


@FAST
@given(servers())
def test_execution_only_moves_forward_within_a_file(server: dict[str, bytes]) -> None:
    """§3 / D-15: GOTO never goes back, so each file's applied SETs and GETs come in line order."""
    result = interpret("f0.txt", server.get, PHONE)
    order = {name: position for position, name in enumerate(result.files)}
    sets = [(order[s.file], s.line) for s in result.sets]
    gets = [(order[r.file], r.line or 0) for r in result.trace if r.file is not None]
    assert sets == sorted(sets) and len(set(sets)) == len(sets)
    assert gets == sorted(gets)


@FAST
@given(
    st.lists(st.integers(min_value=0, max_value=99), max_size=5),
    st.lists(st.integers(min_value=100, max_value=199), min_size=1, max_size=5),
    st.lists(st.integers(min_value=200, max_value=299), max_size=5),
    st.sampled_from(["GOTO L", "IF $MODEL4 SEQ j179 GOTO L", "IF $SIG SEQ 2 goto l"]),
)
def test_a_jump_skips_exactly_the_lines_between(
    before: list[int], skipped: list[int], after: list[int], jump: str
) -> None:
    """§3: SETs above the jump and below the label are applied; those in between never are."""
    script = "\n".join(
        [
            *(f"SET P{n} {n}" for n in before),
            jump,
            *(f"SET P{n} {n}" for n in skipped),
            "# L",
            *(f"SET P{n} {n}" for n in after),
        ]
    )
    result = interpret("f0.txt", {"f0.txt": script.encode()}.get, PHONE)
    assert set(result.params) == {f"P{n}" for n in before + after}
    assert result.problems == []


@FAST
@given(servers())
def test_the_result_is_deterministic_and_the_same_sync_and_async(server: dict[str, bytes]) -> None:
    async def afetch(path: str) -> bytes | None:
        return server.get(path)

    first = interpret("f0.txt", server.get, PHONE)
    assert interpret("f0.txt", server.get, PHONE) == first
    assert asyncio.run(interpret_async("f0.txt", afetch, PHONE)) == first


@FAST
@given(
    st.lists(
        st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=50), st.integers()), min_size=1, max_size=12
    )
)
def test_any_fetch_reply_is_survived(replies: list[object]) -> None:
    """D-22: whatever the fetch answers, in whatever order, the pass ends with a result."""
    queue = iter(replies)

    def fetch(path: str) -> Any:
        return next(queue, None)

    result = interpret("f0.txt", fetch, PHONE)
    check_invariants(result, Options())
