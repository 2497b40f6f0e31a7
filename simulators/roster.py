"""A fleet's phones, derived from the mix and a seed: who each phone is and how it is arranged.

Identities are deterministic (Faker seeded per fleet): the same mix, arrangement and seed give
the same MACs, serials and arrangements on every machine, so shards agree and a failing phone
can be booted again alone.

- MAC: one of the model's Avaya OUIs (`fixtures/phone-models.json`) followed by three random octets,
  unique within the fleet; canonical form per PROTOCOL §1.
- Serial: the shape printed on real labels (`21WZ51234567`, `18WZ504009XT`): two digits of the
  manufacturing year, the plant letters, six digits and two check characters (digits or
  upper-case letters). Unique within the fleet.
- Arrangement: spread evenly over every mix group in the `--arrange` proportions, then
  shuffled within the group by the seed, so the order of a group does not decide its outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from faker import Faker

from simulators.capabilities import Capabilities
from simulators.mix import MixGroup, Shard, spread

__all__ = ["Member", "roster"]

_CHECK = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_PLANTS = ("WZ", "WN", "JC")


@dataclass(frozen=True, slots=True)
class Member:
    """One phone of the fleet (no certificate yet: that is made when the fleet is arranged)."""

    index: int
    model: str
    firmware: str
    mac: str
    serial: str
    arrangement: str


def roster(
    groups: Sequence[MixGroup],
    weights: dict[str, int],
    seed: int,
    shard: Shard | None = None,
    capabilities: Capabilities | None = None,
) -> Iterator[Member]:
    """Every phone of the fleet in fleet order; with `shard`, only that shard's phones (the
    identities of the others are still drawn, so all shards agree)."""
    capabilities = capabilities or Capabilities.load()
    fake = Faker()
    fake.seed_instance(seed)
    macs: set[str] = set()
    serials: set[str] = set()
    index = 0
    for group in groups:
        arrangements = spread(weights, group.count)
        fake.random.shuffle(arrangements)
        prefixes = capabilities.model(group.model).ouis
        for arrangement in arrangements:
            mac = _unique(macs, _mac, fake, prefixes)
            serial = _unique(serials, _serial, fake)
            if shard is None or shard.holds(index):
                yield Member(index, group.model, group.firmware, mac, serial, arrangement)
            index += 1


def _mac(fake: Faker, prefixes: Sequence[str]) -> str:
    return fake.random.choice(prefixes) + f"{fake.random.getrandbits(24):06X}"


def _serial(fake: Faker) -> str:
    rnd = fake.random
    year = rnd.randint(16, 26)
    check = "".join(rnd.choice(_CHECK) for _ in range(2))
    return f"{year:02d}{rnd.choice(_PLANTS)}{rnd.randrange(10**6):06d}{check}"


def _unique(seen: set[str], draw: Callable[..., str], *args: Any) -> str:
    while True:
        value = draw(*args)
        if value not in seen:
            seen.add(value)
            return value
