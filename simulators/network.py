"""The network a simulated phone sits on: who offers a provisioning server, and name resolution.

- `NetworkLayer` is the interface a phone asks during discovery ("No" or timeout at the
  auto-provisioning prompt, research §11): does the network name a file server, as DHCP SSON
  option 242 or the Avaya LLDP file-server TLV would? `StaticNetwork` answers from fixed
  values; a layer-2 implementation (real DHCP/LLDP with scapy) can come later behind the same
  interface.
- `HostMapResolver` resolves lab names (`files.enrollab.test`) from a map, so TLS still
  checks the certificate against the name while the socket goes to 127.0.0.1.

Decisions (research §9, §10):
- Option 242 is parsed by `simulators.sson.parse_sson`. A TLS server (`TLSSRVR`, with `TLSDIR`,
  `TLSPORT`) wins over an HTTP one (`HTTPSRVR`, `HTTPDIR`, `HTTPPORT`) — J100s prefer HTTPS when
  both are set [inf]. Only the first server of a list is used. Other names are kept as
  parameters of the hint.
- The LLDP file-server TLV carries an IPv4 address and is used only when option 242 named no
  server ("TLSSRVR and HTTPSRVR will be set to this value if neither of them have already been
  set", [doc S34]); it becomes `http://<address>/` [inf: no scheme travels in the TLV].
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from simulators.sson import parse_sson

__all__ = [
    "HostMapResolver",
    "NetworkLayer",
    "NetworkOffer",
    "NetworkServer",
    "Note",
    "SOURCES",
    "StaticNetwork",
    "is_ip",
    "sson_server",
]

# Where a provisioning server came from (PROTOCOL §5 `source`); `dhcp-siaddr` is the DHCPACK's
# server address field (research §9: HTTPSRVR/TLSSRVR from siaddr when non-zero).
SOURCES = ("dhcp-242", "dhcp-43", "dhcp-siaddr", "lldp", "des", "manual", "none")


def is_ip(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address literal (not a name)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class NetworkServer:
    """A provisioning server the network named: its base URL, where it came from
    (`dhcp-242`, `dhcp-43`, `dhcp-siaddr`, `lldp`: `SOURCES`) and the other parameters that
    came with it."""

    url: str
    source: str
    params: Mapping[str, str] = field(default_factory=dict)


# An event the network layer asks the phone to record: (name, detail), e.g.
# ("dhcp-lease", {"ip": "10.213.0.50", "server": "10.213.0.1", "lease": 3600, "options": {...}}).
Note = tuple[str, Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class NetworkOffer:
    """What the network told the phone when it came up: the file server it named (or None),
    every parameter it set with the source of each (DES_STAT, L2Q, L2QVLAN, MCIPADD, HTTPSRVR…;
    research §9-§10), the phone's own address (a DHCP lease), and notes for the event log."""

    server: NetworkServer | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # parameter -> the source that set it
    address: str | None = None
    notes: tuple[Note, ...] = ()


@runtime_checkable
class NetworkLayer(Protocol):
    async def offer(self) -> NetworkOffer:
        """Bring the phone's network up (DHCP, LLDP) and say what it offered; never raises for
        what the network did or did not answer (no lease is an offer without an address)."""
        ...


def _server_url(scheme: str, host: str, port: str | None, directory: str | None) -> str:
    default = "443" if scheme == "https" else "80"
    hostpart = f"[{host}]" if ":" in host else host
    if port and port != default:
        hostpart += f":{port}"
    path = (directory or "").strip("/")
    return f"{scheme}://{hostpart}/{path + '/' if path else ''}"


def sson_server(params: Mapping[str, str]) -> str | None:
    """The base URL option-242 parameters name (module docstring), or None."""
    for scheme, server, directory, port in (
        ("https", "TLSSRVR", "TLSDIR", "TLSPORT"),
        ("http", "HTTPSRVR", "HTTPDIR", "HTTPPORT"),
    ):
        first = params.get(server, "").split(",")[0].strip()
        if first:
            return _server_url(scheme, first, params.get(port), params.get(directory))
    return None


class StaticNetwork:
    """A network that offers fixed values: an option-242 string and/or an LLDP file server."""

    def __init__(self, option_242: str | None = None, lldp_file_server: str | None = None) -> None:
        self.option_242 = option_242
        self.lldp_file_server = lldp_file_server
        if lldp_file_server is not None:
            ipaddress.IPv4Address(lldp_file_server)  # the TLV carries an IPv4 address

    async def offer(self) -> NetworkOffer:
        params: dict[str, str] = {}
        sources: dict[str, str] = {}
        if self.option_242:
            params = dict(parse_sson(self.option_242).params)
            sources = dict.fromkeys(params, "dhcp-242")
            url = sson_server(params)
            if url is not None:
                return NetworkOffer(NetworkServer(url, "dhcp-242", params), params, sources)
        if self.lldp_file_server:
            return NetworkOffer(NetworkServer(f"http://{self.lldp_file_server}/", "lldp"), params, sources)
        return NetworkOffer(None, params, sources)

    async def provisioning_server(self) -> NetworkServer | None:
        """The file server of `offer()`, or None."""
        return (await self.offer()).server


class HostMapResolver(AbstractResolver):
    """Names from `hosts` (case-insensitive) resolve to their address; anything else through
    the default resolver (IP literals resolve to themselves)."""

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        self.hosts = {name.lower(): address for name, address in (hosts or {}).items()}
        self._fallback: AbstractResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.hosts.get(host.lower().rstrip("."))
        if address is None:
            try:
                ipaddress.ip_address(host)
                address = host
            except ValueError:
                if self._fallback is None:
                    self._fallback = DefaultResolver()
                return await self._fallback.resolve(host, port, family)
        is_v6 = ":" in address
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if is_v6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        if self._fallback is not None:
            await self._fallback.close()
