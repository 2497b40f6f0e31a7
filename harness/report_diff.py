"""`enrollab report diff`: what got worse between two conformance runs (the release gate).

Decisions:
- A regression is a test that was pass or not applicable in OLD and is fail, error or needs
  operator in NEW, or a matrix cell that went from pass to fail, error or needs operator. Only
  regressions gate (exit 1).
- Needs operator counts as bad as error for the gate: a test that passed last time and could not
  be run this time (nobody at the bench) has not shown that nothing broke, and a gate must not
  let an unattended physical run stand in for a finished one. Going from needs operator to pass
  is an improvement; between error, fail and needs operator is an "other change".
- Tests only in OLD are "missing" and tests only in NEW are "added": listed, never regressions
  (a renamed test must not hide, nor fake, a regression; the reader decides).
- Other outcome changes are listed too: improvements (fail, error or needs operator -> pass) and the rest
  (fail <-> error, anything <-> not applicable), so nothing moves silently.
- Devices pair up across the runs by id, else by MAC, else by model when each run has exactly
  one unpaired device of it. A new firmware changes a device's id (`J179@4.1.12#MAC`) and every
  test id parametrised by it; pairing by MAC is what lets a firmware release be compared with
  the last one instead of turning into "everything missing, everything added".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.report import Outcome, summary_line

__all__ = ["Change", "DevicePair", "Diff", "diff_reports", "render_diff"]

_GOOD = frozenset({Outcome.PASS.value, Outcome.NOT_APPLICABLE.value})
_BAD = frozenset({Outcome.FAIL.value, Outcome.ERROR.value, Outcome.NEEDS_OPERATOR.value})


@dataclass(frozen=True)
class Change:
    """One test or matrix cell whose outcome differs (or that exists in one run only)."""

    kind: str  # "test" or "cell"
    key: str  # the test id (as in NEW when it is there) or "MODEL FIRMWARE (MAC) · feature label"
    old: str | None  # outcome in OLD; None: not in OLD
    new: str | None  # outcome in NEW; None: not in NEW
    detail: str = ""  # NEW's message or reason (OLD's for a missing test), first line
    old_key: str | None = None  # the test id in OLD when it differs (the device's firmware changed)


@dataclass(frozen=True)
class DevicePair:
    """A device of OLD and its counterpart in NEW; one side is None for a device in one run only."""

    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    matched_by: str | None  # "id", "mac", "model" or None


@dataclass(frozen=True)
class Diff:
    old: Mapping[str, Any]  # provenance and summary of each run, for the header
    new: Mapping[str, Any]
    regressions: tuple[Change, ...] = ()
    improvements: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    missing: tuple[Change, ...] = ()
    added: tuple[Change, ...] = ()
    devices: tuple[DevicePair, ...] = field(default=())
    unchanged: int = 0

    @property
    def has_regressions(self) -> bool:
        return bool(self.regressions)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "has_regressions": self.has_regressions}


def diff_reports(old: Mapping[str, Any], new: Mapping[str, Any]) -> Diff:
    """Compare two (validated) report records, OLD first."""
    pairs = _pair_devices(old["devices"], new["devices"])
    old_slot = {p.old["id"]: i for i, p in enumerate(pairs) if p.old is not None and p.new is not None}
    new_slot = {p.new["id"]: i for i, p in enumerate(pairs) if p.old is not None and p.new is not None}

    old_tests = {_test_key(t, old_slot): t for t in old["tests"]}
    new_tests = {_test_key(t, new_slot): t for t in new["tests"]}

    regressions: list[Change] = []
    improvements: list[Change] = []
    changed: list[Change] = []
    unchanged = 0
    for key, now in new_tests.items():
        before = old_tests.get(key)
        if before is None:
            continue
        if before["outcome"] == now["outcome"]:
            unchanged += 1
            continue
        change = Change(
            "test",
            now["id"],
            before["outcome"],
            now["outcome"],
            _why(now),
            before["id"] if before["id"] != now["id"] else None,
        )
        if before["outcome"] in _GOOD and now["outcome"] in _BAD:
            regressions.append(change)
        elif before["outcome"] in _BAD and now["outcome"] == Outcome.PASS.value:
            improvements.append(change)
        else:
            changed.append(change)

    missing = [Change("test", t["id"], t["outcome"], None, _why(t)) for k, t in old_tests.items() if k not in new_tests]
    added = [Change("test", t["id"], None, t["outcome"], _why(t)) for k, t in new_tests.items() if k not in old_tests]

    cell_regressions, cell_improvements = _cell_changes(old, new, pairs)
    return Diff(
        old=_header(old),
        new=_header(new),
        regressions=tuple(regressions + cell_regressions),
        improvements=tuple(improvements + cell_improvements),
        changed=tuple(changed),
        missing=tuple(missing),
        added=tuple(added),
        devices=tuple(pairs),
        unchanged=unchanged,
    )


def render_diff(diff: Diff) -> str:
    """The diff as text for a terminal or a CI log; regressions first and loudest."""
    lines = ["enrollab report diff", f"  old: {_describe(diff.old)}", f"  new: {_describe(diff.new)}"]

    device_lines = []
    for pair in diff.devices:
        if pair.old is not None and pair.new is not None:
            if pair.old["id"] != pair.new["id"]:
                device_lines.append(f"  {_device_name(pair.new, firmware=False)}: {_device_delta(pair.old, pair.new)}")
        elif pair.old is not None:
            device_lines.append(f"  only in old: {_device_name(pair.old)}")
        elif pair.new is not None:
            device_lines.append(f"  only in new: {_device_name(pair.new)}")
    if device_lines:
        lines += ["", "devices that changed:", *device_lines]

    def section(title: str, changes: Sequence[Change]) -> None:
        if not changes:
            return
        lines.extend(["", f"{title} ({len(changes)}):"])
        for change in changes:
            lines.append(f"  {change.kind:<4}  {_arrow(change):<24}  {change.key}")
            if change.old_key:
                lines.append(f"  {'':<4}  {'':<24}  (old: {change.old_key})")
            if change.detail:
                lines.append(f"  {'':<4}  {'':<24}  {change.detail}")

    section("REGRESSIONS", diff.regressions)
    section("improvements", diff.improvements)
    section("other changes", diff.changed)
    section("missing from new (not regressions)", diff.missing)
    section("added in new (not regressions)", diff.added)

    lines.append("")
    counts = (
        f"{len(diff.improvements)} improvement{_s(len(diff.improvements))}, {len(diff.changed)} other change"
        f"{_s(len(diff.changed))}, {len(diff.missing)} missing, {len(diff.added)} added, {diff.unchanged} unchanged"
    )
    if diff.has_regressions:
        lines.append(f"result: {len(diff.regressions)} regression{_s(len(diff.regressions))}; {counts}")
    else:
        lines.append(f"result: no regressions; {counts}")
    return "\n".join(lines) + "\n"


# -- internals ----------------------------------------------------------------------------------


def _pair_devices(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[DevicePair]:
    left = list(old)
    right = list(new)
    pairs: list[DevicePair] = []

    def match(how: str, key: Any) -> None:
        for a in list(left):
            candidates = [b for b in right if key(b) == key(a)]
            if how == "model" and (len(candidates) != 1 or sum(key(x) == key(a) for x in left) != 1):
                continue
            if candidates:
                b = candidates[0]
                pairs.append(DevicePair(a, b, how))
                left.remove(a)
                right.remove(b)

    match("id", lambda d: d["id"])
    match("mac", lambda d: d["mac"])
    match("model", lambda d: d["model"])
    pairs += [DevicePair(a, None, None) for a in left]
    pairs += [DevicePair(None, b, None) for b in right]
    return pairs


def _test_key(test: Mapping[str, Any], slots: Mapping[str, int]) -> tuple[str, int | None]:
    """A test's identity across runs: its id with the paired device's id taken out."""
    device = test["device"]
    if device is None or device not in slots:
        return (test["id"], None)
    return (test["id"].replace(device, "\x00device\x00"), slots[device])


def _cell_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], pairs: Sequence[DevicePair]
) -> tuple[list[Change], list[Change]]:
    labels = {f["id"]: f["label"] for f in new["features"]}
    old_features = {f["id"] for f in old["features"]}
    regressions: list[Change] = []
    improvements: list[Change] = []
    for pair in pairs:
        if pair.old is None or pair.new is None:
            continue
        before_row = old["matrix"].get(pair.old["id"], {})
        after_row = new["matrix"].get(pair.new["id"], {})
        for feature in new["features"]:
            fid = feature["id"]
            if fid not in old_features or fid not in before_row or fid not in after_row:
                continue
            before, after = before_row[fid], after_row[fid]
            key = f"{_device_name(pair.new)} \u00b7 {labels[fid]}"
            old_key = f"{_device_name(pair.old)} \u00b7 {labels[fid]}" if pair.old["id"] != pair.new["id"] else None
            if before == Outcome.PASS.value and after in _BAD:
                regressions.append(Change("cell", key, before, after, "", old_key))
            elif before in _BAD and after == Outcome.PASS.value:
                improvements.append(Change("cell", key, before, after, "", old_key))
    return regressions, improvements


def _header(doc: Mapping[str, Any]) -> dict[str, Any]:
    provenance = doc["provenance"]
    return {
        "project": provenance["project"],
        "version": provenance["version"],
        "git_sha": provenance["git_sha"],
        "server": {"name": provenance["server"]["name"], "version": provenance["server"]["version"]},
        "started_at": provenance["started_at"],
        "summary": dict(doc["summary"]),
    }


def _describe(header: Mapping[str, Any]) -> str:
    sha = f" (git {header['git_sha'][:10]})" if header["git_sha"] else ""
    s = header["summary"]
    return (
        f"{header['project']} {header['version']}{sha} \u00b7 server {header['server']['name']} "
        f"{header['server']['version']} \u00b7 {header['started_at']} \u00b7 {s['total']} tests: {summary_line(s)}"
    )


def _device_name(device: Mapping[str, Any], firmware: bool = True) -> str:
    if firmware:
        return f"{device['model']} {device['firmware']} ({device['mac']})"
    return f"{device['model']} ({device['mac']})"


def _device_delta(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    names = ("model", "firmware", "mac", "driver")
    parts = [f"{name} {old[name]} \u2192 {new[name]}" for name in names if old[name] != new[name]]
    return ", ".join(parts) or f"id {old['id']} \u2192 {new['id']}"


def _arrow(change: Change) -> str:
    def label(outcome: str | None) -> str:
        return "(none)" if outcome is None else Outcome(outcome).label

    return f"{label(change.old)} \u2192 {label(change.new)}"


def _why(test: Mapping[str, Any]) -> str:
    reasoned = (Outcome.NOT_APPLICABLE.value, Outcome.NEEDS_OPERATOR.value)
    text = test["reason"] if test["outcome"] in reasoned else test["message"]
    if not text or not text.strip():
        return ""
    line: str = text.strip().splitlines()[0]
    return line if len(line) <= 200 else line[:199] + "\u2026"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
