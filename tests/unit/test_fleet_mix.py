"""The fleet's inputs (PROTOCOL §4 `fleet run`): the mix, the arrangement shares, shards, and the
deterministic roster drawn from a seed."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from simulators.mix import MixError, MixGroup, Shard, parse_arrange, parse_mix, parse_shard, spread
from simulators.roster import roster

AVAYA_OUIS = {"00040D", "001B4F", "00096E", "00601D", "00073B", "C81FEA", "A4251B"}


def test_mix_parses_the_protocol_example_with_canonical_names() -> None:
    groups = parse_mix("J179@4.1.3.0=50,K175@3.0=20,B199@1.0.3.0=10")
    assert groups == [MixGroup("J179", "4.1.3.0", 50), MixGroup("K175", "3.0", 20), MixGroup("B199", "1.0.3.0", 10)]


def test_mix_resolves_catalog_aliases_and_normalises_versions() -> None:
    groups = parse_mix(" HW-3 K175 @ R3.0 = 2 , K175-HW3@3.0=3, K165@1.1 SP1=1")
    assert groups == [MixGroup("K175-HW3", "3.0", 5), MixGroup("K165", "1.1SP1", 1)]


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("", "empty-mix", "MODEL@FIRMWARE=COUNT"),
        ("J179=50", "invalid-mix", "'J179=50'"),
        ("J179@4.1=x", "invalid-mix", "MODEL@FIRMWARE=COUNT"),
        ("J999@4.1=1", "unknown-model", "J179"),
        ("J179@four=1", "invalid-version", "'four'"),
        ("J179@4.1=0", "invalid-count", "at least 1"),
        ("J179@4.1=2000000", "mix-too-large", "at most"),
    ],
)
def test_mix_errors_name_the_offending_part(text: str, error: str, says: str) -> None:
    with pytest.raises(MixError) as caught:
        parse_mix(text)
    assert caught.value.error == error
    assert says in caught.value.detail


def test_arrange_weights_and_errors() -> None:
    assert parse_arrange("zero-touch=60, nec=20,pec=10,wrong-code=10") == {
        "zero-touch": 60,
        "nec": 20,
        "pec": 10,
        "wrong-code": 10,
    }
    assert parse_arrange("nec=1")["zero-touch"] == 0
    for bad in ("nec", "zero-touch=-1", "sideways=3", "nec=0"):
        with pytest.raises(MixError) as caught:
            parse_arrange(bad)
        assert caught.value.error == "invalid-arrange"


def test_spread_keeps_proportions_and_the_total() -> None:
    assert Counter(spread({"zero-touch": 60, "nec": 20, "pec": 10, "wrong-code": 10}, 10)) == {
        "zero-touch": 6,
        "nec": 2,
        "pec": 1,
        "wrong-code": 1,
    }
    assert Counter(spread({"zero-touch": 1, "nec": 1, "pec": 0, "wrong-code": 0}, 3)) == {"zero-touch": 2, "nec": 1}
    assert len(spread({"zero-touch": 3, "nec": 7, "pec": 0, "wrong-code": 0}, 1)) == 1


def test_shard_parsing() -> None:
    assert parse_shard("1/4") == Shard(1, 4)
    for bad in ("4/4", "1", "a/b", "0/0", "-1/3"):
        with pytest.raises(MixError) as caught:
            parse_shard(bad)
        assert caught.value.error == "invalid-shard"


MIX = [MixGroup("J179", "4.1.3.0", 40), MixGroup("K175", "3.0", 25), MixGroup("B199", "1.0.3.0", 35)]
WEIGHTS = {"zero-touch": 50, "nec": 25, "pec": 15, "wrong-code": 10}


def test_roster_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    first, again, other = (list(roster(MIX, WEIGHTS, seed)) for seed in (7, 7, 8))
    assert first == again
    assert [m.mac for m in first] != [m.mac for m in other]


def test_roster_identities_are_unique_well_formed_and_under_avaya_ouis() -> None:
    members = list(roster(MIX, WEIGHTS, seed=1))
    assert len(members) == 100
    assert len({m.mac for m in members}) == 100 and len({m.serial for m in members}) == 100
    for m in members:
        assert re.fullmatch(r"[0-9A-F]{12}", m.mac) and m.mac[:6] in AVAYA_OUIS
        assert re.fullmatch(r"\d\d(WZ|WN|JC)\d{6}[0-9A-Z]{2}", m.serial)
    # Every group meets every arrangement in proportion.
    by_group = Counter((m.model, m.arrangement) for m in members)
    assert by_group[("J179", "zero-touch")] == 20 and by_group[("B199", "wrong-code")] in (3, 4)
    assert [m.index for m in members] == list(range(100))


def test_shards_partition_the_fleet_and_agree_on_identities() -> None:
    whole = list(roster(MIX, WEIGHTS, seed=3))
    shards = [list(roster(MIX, WEIGHTS, seed=3, shard=Shard(i, 3))) for i in range(3)]
    merged = sorted((m for shard in shards for m in shard), key=lambda m: m.index)
    assert merged == whole
    assert all(shards)
