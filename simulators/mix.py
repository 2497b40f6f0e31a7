"""What a fleet is made of: the `--mix` of models and firmware, the `--arrange` shares and `--shard`.

`--mix J179@4.1.3.0=50,K175@3.0=20,B199@1.0.3.0=10` (PROTOCOL §4): comma-separated
`MODEL@FIRMWARE=COUNT` groups. Models are the firmware catalog's names or aliases (`HW-3 K175`
→ `K175-HW3`); the firmware is any version (PROTOCOL §1), not only a catalogued release, since a
lab must be able to boot a phone on a version the server has never heard of.

`--mix appendix-a` (or `appendix-a=N`, N phones per version, default 4): every model at the
firmware versions on both sides of each of its Appendix A minimums (the catalog's last release
below a minimum and its first release at or above it), plus its latest — the fleet that shows
the matrix, feature by feature.

`--arrange zero-touch=60,nec=20,pec=10,wrong-code=10`: how the phones are arranged on the
server, as relative weights (they need not add up to 100). Each phone gets one arrangement,
spread evenly over every group of the mix (so every model meets every arrangement), in a
deterministic order from the seed.

`--shard I/N`: this process runs the phones whose fleet index is I modulo N; every shard
derives the same whole fleet from the seed, so shards never overlap and their JSONL results
merge by concatenation.

Errors are `MixError` (a `ValueError`) with a stable id, a sentence and the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import fixtures
from fixtures.features import FeatureMatrix, UnknownModel
from fixtures.versions import VersionError, parse_version

__all__ = [
    "ARRANGEMENTS",
    "MixError",
    "MixGroup",
    "Shard",
    "boundary_mix",
    "parse_arrange",
    "parse_mix",
    "parse_shard",
]

# How a phone meets the server: DEV-6 zero-touch, ENR-3 with the site's NEC, EC-6 with the
# site's PEC, or LCK-2 a user who keeps typing wrong codes.
ARRANGEMENTS = ("zero-touch", "nec", "pec", "wrong-code")
MAX_PHONES = 1_000_000


class MixError(ValueError):
    def __init__(self, error: str, detail: str, value: object = None) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.value = value


@dataclass(frozen=True, slots=True)
class MixGroup:
    model: str
    firmware: str
    count: int


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    total: int

    def holds(self, fleet_index: int) -> bool:
        return fleet_index % self.total == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


_PRESET = re.compile(r"\s*appendix-a\s*(?:=\s*(?P<count>[0-9]+)\s*)?")
_GROUP = re.compile(r"\s*(?P<model>[^@=,]+?)\s*@\s*(?P<firmware>[^@=,]+?)\s*=\s*(?P<count>[0-9]+)\s*")


def parse_mix(text: str, matrix: FeatureMatrix | None = None) -> list[MixGroup]:
    """`J179@4.1.3.0=50,K175@3.0=20` → groups with canonical model names; a model@firmware given
    twice adds up. `appendix-a[=N]`: `boundary_mix(N)`."""
    matrix = matrix or FeatureMatrix.load()
    preset = _PRESET.fullmatch(text) if isinstance(text, str) else None
    if preset is not None:
        per_version = int(preset["count"] or 4)
        if not 1 <= per_version <= 1000:
            raise MixError("invalid-count", f"{text!r}: phones per version must be 1 to 1000.", text)
        return boundary_mix(per_version, matrix)
    if not isinstance(text, str) or not text.strip():
        raise MixError("empty-mix", "The mix names no phones; write MODEL@FIRMWARE=COUNT[,…], e.g. J179@4.1.3.0=50.")
    groups: dict[tuple[str, str], int] = {}
    for part in text.split(","):
        match = _GROUP.fullmatch(part)
        if match is None:
            raise MixError("invalid-mix", f"{part.strip()!r} is not MODEL@FIRMWARE=COUNT (e.g. K175@3.0=20).", part)
        try:
            model = matrix.model(match["model"]).name
        except UnknownModel as exc:
            raise MixError("unknown-model", str(exc), match["model"]) from None
        try:
            firmware = str(parse_version(match["firmware"]))
        except VersionError as exc:
            raise MixError("invalid-version", f"{match['firmware']!r}: {exc.detail}", match["firmware"]) from None
        count = int(match["count"])
        if count < 1:
            raise MixError("invalid-count", f"{part.strip()!r}: the count must be at least 1.", part)
        groups[(model, firmware)] = groups.get((model, firmware), 0) + count
    total = sum(groups.values())
    if total > MAX_PHONES:
        raise MixError("mix-too-large", f"The mix has {total} phones; one fleet holds at most {MAX_PHONES}.", total)
    return [MixGroup(model, firmware, count) for (model, firmware), count in groups.items()]


def boundary_mix(per_version: int, matrix: FeatureMatrix | None = None) -> list[MixGroup]:
    """Every model at the catalog releases on both sides of each Appendix A minimum, and latest."""
    matrix = matrix or FeatureMatrix.load()
    catalog = fixtures.load_json("firmware-catalog.json")["models"]
    groups: list[MixGroup] = []
    for model in matrix.models():
        releases = sorted((parse_version(r) for r in catalog[model]["releases"]), key=lambda v: v)
        chosen = {parse_version(catalog[model]["latest"])}
        for minimum in {m for m in matrix.model(model).minimums.values() if m is not None}:
            below = [r for r in releases if r < minimum]
            at = [r for r in releases if r >= minimum]
            chosen.update(below[-1:] + at[:1])
        groups.extend(MixGroup(model, str(v), per_version) for v in sorted(chosen))
    return groups


def parse_arrange(text: str) -> dict[str, int]:
    """`zero-touch=60,nec=20` → weights per arrangement (the others 0)."""
    weights = dict.fromkeys(ARRANGEMENTS, 0)
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in weights or not value.strip().isdigit():
            raise MixError(
                "invalid-arrange",
                f"{part!r} is not NAME=WEIGHT with NAME one of {', '.join(ARRANGEMENTS)} (e.g. zero-touch=60,nec=40).",
                part,
            )
        weights[name] += int(value)
    if not any(weights.values()):
        raise MixError("invalid-arrange", "Every arrangement weight is 0; give at least one a weight.", text)
    return weights


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N."""
    index, sep, total = text.partition("/")
    if not sep or not index.strip().isdigit() or not total.strip().isdigit():
        raise MixError("invalid-shard", f"{text!r} is not I/N (e.g. 0/4 for the first of four shards).", text)
    shard = Shard(int(index), int(total))
    if shard.total < 1 or not 0 <= shard.index < shard.total:
        raise MixError("invalid-shard", f"{text!r}: the shard index must be 0 to N-1.", text)
    return shard


def spread(weights: dict[str, int], count: int) -> list[str]:
    """`count` arrangements in the proportions of `weights`, largest remainders first (so
    zero-touch=1,nec=1 over 3 phones gives 2 + 1, not 3 + 0)."""
    total = sum(weights.values())
    exact = {name: count * w / total for name, w in weights.items()}
    shares = {name: int(v) for name, v in exact.items()}
    left = count - sum(shares.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - shares[n]), ARRANGEMENTS.index(n)))[:left]:
        shares[name] += 1
    return [name for name in ARRANGEMENTS for _ in range(shares[name])]


def describe(groups: Sequence[MixGroup]) -> str:
    return ",".join(f"{g.model}@{g.firmware}={g.count}" for g in groups)
