"""Thousands of simulated phones in one process (`enrollab fleet run`, PROTOCOL §4).

A run: draw the roster from the mix and seed (`simulators.roster`), give every phone a factory
certificate from the manufacturer CA the server trusts (`simulators.factory`), arrange them on
the server through the admin API (`simulators.arrange`), boot them `concurrency` at a time, and
compare each phone's outcome with the one Appendix A predicts (`simulators.expect`). Results
are one JSON line per phone (identity, arrangement, outcome, prediction, event timeline), so
shards merge by concatenation; the summary groups them by model, firmware and outcome.

Nothing here knows the server's code: the server is a URL (admin API + device URL from
`GET /api/v1/info`) and a manufacturer CA; a provisioning file server is a URL too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from simulators.admin_client import AdminClient
from simulators.arrange import Arranged, PhoneRow, arrange
from simulators.capabilities import Capabilities
from simulators.clock import RealClock
from simulators.expect import Expected, predict
from simulators.factory import FactoryCredentials, ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.mix import MixGroup, Shard
from simulators.phone import Faults, Phone, PhoneEnvironment, User
from simulators.roster import Member, roster

# Fault knobs a whole fleet can be given (simulators.phone.Faults), to prove that a fleet run
# notices phones that break the rules.
FAULTS = ("ignore-group", "ignore-http-refusal", "corrupt-firmware")

__all__ = ["FAULTS", "FleetResult", "FleetSpec", "FleetTarget", "PhoneResult", "run_fleet"]


@dataclass(frozen=True)
class FleetSpec:
    groups: Sequence[MixGroup]
    weights: dict[str, int]
    seed: int = 1
    shard: Shard | None = None
    concurrency: int = 64
    group: int = 0  # the phone group the profile sends (Device group ID)
    faults: tuple[str, ...] = ()  # non-conforming behaviours every phone shows (FAULTS)


@dataclass(frozen=True)
class FleetTarget:
    """Where the fleet runs: the server's admin API and credentials, the manufacturer CA it
    trusts, the CAs the phones carry as built-in public roots, the provisioning URL the
    profile names, and how the phones resolve host names (a lab's DNS)."""

    admin_url: str
    admin_login: str
    admin_password: str
    manufacturer_key_pem: bytes
    manufacturer_cert_pem: bytes
    public_roots: Sequence[bytes]
    provisioning_url: str
    hosts: dict[str, str] = field(default_factory=dict)
    root_ca_pem: str | None = None


@dataclass(slots=True)
class PhoneResult:
    member: Member
    result: str
    reason: str | None
    firmware: str | None
    group: int | None
    expected: Expected
    seconds: float
    events: list[dict[str, Any]]

    @property
    def as_expected(self) -> bool:
        return self.expected.matches(self.result, self.reason, self.group)

    def json(self) -> dict[str, Any]:
        m = self.member
        return {
            "index": m.index,
            "mac": m.mac,
            "serial": m.serial,
            "model": m.model,
            "firmware": m.firmware,
            "arrangement": m.arrangement,
            "result": self.result,
            "reason": self.reason,
            "final_firmware": self.firmware,
            "group": self.group,
            "expected": self.expected.result,
            "expected_reason": self.expected.reason,
            "expected_group": self.expected.group,
            "why": self.expected.why,
            "as_expected": self.as_expected,
            "seconds": round(self.seconds, 4),
            "events": self.events,
        }


@dataclass
class FleetResult:
    spec: FleetSpec
    arranged: Arranged | None
    phones: list[PhoneResult]
    wall_seconds: float
    boot_seconds: float
    device_url: str = ""

    @property
    def unexpected(self) -> list[PhoneResult]:
        return [p for p in self.phones if not p.as_expected]

    def by_group(self) -> list[tuple[tuple[str, str, str, str], int, int]]:
        """(model, firmware, outcome, expected) → count, unexpected count; in mix order."""
        counts: Counter[tuple[str, str, str, str]] = Counter()
        bad: Counter[tuple[str, str, str, str]] = Counter()
        for p in self.phones:
            key = (
                p.member.model,
                p.member.firmware,
                _label(p.result, p.reason),
                _label(p.expected.result, p.expected.reason),
            )
            counts[key] += 1
            bad[key] += 0 if p.as_expected else 1
        return [(key, n, bad[key]) for key, n in counts.items()]


class SkipWaits(RealClock):
    """Wall-clock time whose waits (reboots, retry back-off) take no time: a fleet measures the
    server, not the phones' idle seconds. Events keep real timestamps."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def _label(result: str, reason: str | None) -> str:
    return f"{result} ({reason})" if reason else result


Progress = Callable[[str, int, int], None]  # (phase, done, total)


async def run_fleet(
    spec: FleetSpec,
    target: FleetTarget,
    *,
    progress: Progress | None = None,
    jsonl: IO[str] | None = None,
    capabilities: Capabilities | None = None,
    label: str | None = None,
    before_boot: Callable[[], Awaitable[None]] | None = None,
) -> FleetResult:
    """Roster, certificates, arrangement, then the boot (module docstring). `before_boot` is
    awaited between arrangement and boot: shards in several processes or machines arrange
    each on their own, then start booting together (`bench/boot_storm.py`)."""
    caps = capabilities or Capabilities.load()
    started = time.perf_counter()
    members = list(roster(spec.groups, spec.weights, spec.seed, spec.shard, caps))
    report = progress or (lambda phase, done, total: None)

    issuer = ManufacturerCA(target.manufacturer_key_pem, target.manufacturer_cert_pem)
    certs: list[FactoryCredentials] = []
    for i, m in enumerate(members):
        certs.append(issuer.issue(m.mac, m.serial, m.model))
        if i % 500 == 0 or i == len(members) - 1:
            report("certificates", i + 1, len(members))

    async with aiohttp.ClientSession() as http:
        admin = await AdminClient(target.admin_url, http).login(target.admin_login, target.admin_password)
        info = await admin.call("GET", "/info")
        report("arranging", 0, 1)
        arranged = await arrange(
            admin,
            [
                PhoneRow(m.mac, m.serial, m.model, c.thumbprint, m.arrangement)
                for m, c in zip(members, certs, strict=True)
            ],
            provisioning_url=target.provisioning_url,
            label=label or f"s{spec.seed}-{spec.shard or 'all'}-{secrets.token_hex(2)}".replace("/", "of"),
            group=spec.group,
            root_ca_pem=target.root_ca_pem,
        )
        report("arranging", 1, 1)

    env = PhoneEnvironment(
        enrollment_url=str(info["device_url"]),
        public_roots=list(target.public_roots),
        hosts=dict(target.hosts),
        network=None,
        clock=SkipWaits(),
    )
    faults = Faults(
        ignore_group="ignore-group" in spec.faults,
        ignore_http_refusal="ignore-http-refusal" in spec.faults,
        corrupt_firmware="corrupt-firmware" in spec.faults,
    )
    if before_boot is not None:
        await before_boot()
    boot_started = time.perf_counter()
    async with env:  # one HTTP session for the whole fleet
        results = await _boot_all(members, certs, arranged, env, spec, caps, report, jsonl, faults)
    now = time.perf_counter()
    return FleetResult(spec, arranged, results, now - started, now - boot_started, str(info["device_url"]))


def user_for(member: Member, arranged: Arranged) -> User:
    """The person at the phone: presses Yes, then types what the arrangement gave them."""
    if member.arrangement == "nec" and arranged.nec:
        return User(prompt="yes", codes=[arranged.nec])
    if member.arrangement == "pec":
        return User(prompt="yes", codes=[arranged.pec])
    if member.arrangement == "wrong-code":
        return User(prompt="yes", codes=wrong_codes(member, arranged))
    return User(prompt="yes", codes=[])


def wrong_codes(member: Member, arranged: Arranged) -> list[str]:
    """As many 8-digit codes as the lockout limit, none of them the site's NEC."""
    codes = []
    for i in range(arranged.lockout_attempts):
        code = f"{(int(member.mac[-6:], 16) * 7919 + i * 104729) % 10**8:08d}"
        codes.append(code if code != arranged.nec else f"{(int(code) + 1) % 10**8:08d}")
    return codes


async def _boot_all(
    members: Sequence[Member],
    certs: Sequence[FactoryCredentials],
    arranged: Arranged,
    env: PhoneEnvironment,
    spec: FleetSpec,
    caps: Capabilities,
    report: Progress,
    jsonl: IO[str] | None,
    faults: Faults,
) -> list[PhoneResult]:
    results: list[PhoneResult | None] = [None] * len(members)
    done = 0
    queue: Iterable[int] = iter(range(len(members)))

    async def worker() -> None:
        nonlocal done
        for i in queue:
            member = members[i]
            identity = PhoneIdentity(member.model, member.firmware, member.mac, member.serial)
            phone = Phone(
                identity, certs[i].key_pem, certs[i].cert_pem, env, user=user_for(member, arranged), faults=faults
            )
            t0 = time.perf_counter()
            outcome = await phone.boot()
            result = PhoneResult(
                member,
                str(outcome.result),
                outcome.reason,
                outcome.firmware,
                outcome.group,
                predict(member, arranged, caps, spec.group),
                time.perf_counter() - t0,
                [e.to_json() for e in phone.events],
            )
            results[i] = result
            if jsonl is not None:
                jsonl.write(json.dumps(result.json(), separators=(",", ":")) + "\n")
            done += 1
            report("booting", done, len(members))

    report("booting", 0, len(members))
    await asyncio.gather(*(worker() for _ in range(max(1, min(spec.concurrency, len(members))))))
    return [r for r in results if r is not None]
