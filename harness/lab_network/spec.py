"""The lab file's `[network]` table as data (structure: `fixtures/schemas/lab.schema.json`,
`$defs.network`; this module checks what a schema cannot say and builds frozen specs).

    [network]
    interface = "eth1"                     # the harness's interface on the phones' LAN
    capture = true                         # network.pcap beside each report
    [network.dhcp]                         # the harness's DHCP responder (omit: another server does DHCP)
    address = "10.213.0.1"                 # its own address: server id, file server (default: the interface's)
    prefixlen = 24
    pool = ["10.213.0.100", "10.213.0.199"]
    router = "10.213.0.1"
    lease_time = 3600
    option_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/j,DES_STAT=2"
    [network.dhcp.option_43]               # Avaya option 43 (enterprise 6889)
    TLSSRVR = "10.213.0.1"
    [network.vlans.212]                    # a voice VLAN's scope, answered 802.1Q-tagged
    pool = ["10.213.212.100", "10.213.212.199"]
    [network.lldp]                         # the LLDP advertiser (a voice switch's part)
    interval = 30
    file_servers = ["10.213.0.1"]          # Avaya TLV subtype 6
    med_policy = { vlan = 212, priority = 5, dscp = 46 }

Checks (each a problem with its field, through the lab checker's `problem` callback): addresses
are IPv4; the pool lies inside the scope's subnet (when the address is given) and runs upwards;
the router too; option 242 fits one DHCP option (255 bytes) and parses as SSON without invalid
names; option 43 names are Avaya's codes; VLAN ids are 1-4094.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DhcpScope", "LldpSpec", "NetworkSpec", "parse_network"]

Problem = Callable[[Sequence[str | int], str, Any], None]


@dataclass(frozen=True)
class DhcpScope:
    address: str | None = None
    prefixlen: int = 24
    pool: tuple[str, str] | None = None
    router: str | None = None
    dns: tuple[str, ...] = ()
    domain: str | None = None
    lease_time: int = 3600
    option_242: str | None = None
    option_43: Mapping[str, str] = field(default_factory=dict)
    siaddr: str | None = None


@dataclass(frozen=True)
class LldpSpec:
    interval: float = 30.0
    system_name: str | None = None
    file_servers: tuple[str, ...] = ()
    call_servers: tuple[str, ...] = ()
    dot1q_framing: int | None = None
    med_vlan: int | None = None
    med_priority: int = 5
    med_dscp: int = 46
    med_tagged: bool = True


@dataclass(frozen=True)
class NetworkSpec:
    interface: str | None = None
    dhcp: DhcpScope | None = None
    vlans: Mapping[int, DhcpScope] = field(default_factory=dict)
    lldp: LldpSpec | None = None
    capture: bool = True


def parse_network(raw: Mapping[str, Any], problem: Problem) -> NetworkSpec | None:
    """The `[network]` table (already schema-checked) as a spec; None when there is none."""
    if not raw:
        return None
    interface = raw.get("interface") if isinstance(raw.get("interface"), str) else None
    dhcp = _scope(raw["dhcp"], ["network", "dhcp"], problem) if isinstance(raw.get("dhcp"), Mapping) else None
    vlans: dict[int, DhcpScope] = {}
    for key, table in (raw.get("vlans") or {}).items():
        where: list[str | int] = ["network", "vlans", key]
        vid = int(key) if str(key).isascii() and str(key).isdigit() else 0
        if not 1 <= vid <= 4094:
            problem(where, f"{key!r} is not a VLAN id (1-4094)", key)
            continue
        if isinstance(table, Mapping):
            vlans[vid] = _scope(table, where, problem)
    lldp_raw = raw.get("lldp")
    lldp = None
    if isinstance(lldp_raw, Mapping) and lldp_raw.get("enabled", True) is not False:
        med_raw = lldp_raw.get("med_policy")
        med: Mapping[str, Any] = med_raw if isinstance(med_raw, Mapping) else {}
        lldp = LldpSpec(
            interval=float(lldp_raw.get("interval", 30)),
            system_name=lldp_raw.get("system_name"),
            file_servers=tuple(lldp_raw.get("file_servers", ())),
            call_servers=tuple(lldp_raw.get("call_servers", ())),
            dot1q_framing=lldp_raw.get("dot1q_framing"),
            med_vlan=med.get("vlan"),
            med_priority=med.get("priority", 5),
            med_dscp=med.get("dscp", 46),
            med_tagged=med.get("tagged", True),
        )
    return NetworkSpec(interface, dhcp, MappingProxyType(vlans), lldp, bool(raw.get("capture", True)))


def _scope(raw: Mapping[str, Any], where: list[str | int], problem: Problem) -> DhcpScope:
    from simulators.sson import parse_sson

    prefixlen = raw.get("prefixlen", 24)
    address = raw.get("address")
    pool = raw.get("pool")
    pool_pair = (pool[0], pool[1]) if isinstance(pool, list) and len(pool) == 2 else None
    own = _ipv4(address)
    if own is not None and isinstance(prefixlen, int):
        subnet = ipaddress.IPv4Interface(f"{own}/{prefixlen}").network
        ends = list(pool_pair or ())
        for name, value in [*(("pool", end) for end in ends), ("router", raw.get("router"))]:
            found = _ipv4(value)
            if found is not None and found not in subnet:
                problem([*where, name], f"{value} is outside the scope's subnet {subnet}", value)
    first, last = (_ipv4(pool_pair[0]), _ipv4(pool_pair[1])) if pool_pair else (None, None)
    if first is not None and last is not None and first > last:
        problem([*where, "pool"], f"the pool runs backwards ({first} > {last})", list(pool_pair or ()))
    option_242 = raw.get("option_242")
    if isinstance(option_242, str):
        size = len(option_242.encode("utf-8"))
        if size > 255:
            problem([*where, "option_242"], f"{size} bytes: one DHCP option holds at most 255", option_242)
        bad = [p.detail for p in parse_sson(option_242).problems if p.kind in ("invalid-name", "stray-text")]
        if bad:
            problem([*where, "option_242"], f"not NAME=value pairs: {', '.join(bad)}", option_242)
    option_43 = dict(raw.get("option_43") or {})
    if option_43:
        known = _option43_names()
        for name in option_43:
            if known and name.upper() not in known:
                problem([*where, "option_43", name], f"not an Avaya option-43 parameter ({', '.join(sorted(known))})",
                        name)
    return DhcpScope(
        address=address,
        prefixlen=prefixlen,
        pool=pool_pair,
        router=raw.get("router"),
        dns=tuple(raw.get("dns", ())),
        domain=raw.get("domain"),
        lease_time=raw.get("lease_time", 3600),
        option_242=option_242,
        option_43=MappingProxyType({k.upper(): v for k, v in option_43.items()}),
        siaddr=raw.get("siaddr"),
    )


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    """An IPv4 address, or None (the schema already reported anything else)."""
    try:
        return ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _option43_names() -> frozenset[str]:
    try:
        from simulators.l2.option43 import CODES
    except ImportError:
        return frozenset()
    return frozenset(name for code, name in CODES.items() if code != 1)
