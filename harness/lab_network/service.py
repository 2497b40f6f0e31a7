"""The lab network as one service: the DHCP responder, the LLDP advertiser and the packet capture
of a lab file's `[network]` on one interface, started and stopped together (`enrollab lab
network`, the network demo, the device suite's fixtures).

    async with LabNetwork(lab.network, interface="br0", netns="enrollab-t1-lab",
                          capture_path=Path("network.pcap")) as net:
        mark = time.time()
        ...                                    # a phone boots on the LAN
        net.dhcp.leases                        # the DHCP responder (None without [network.dhcp])
        net.lldp.neighbours                    # the LLDP advertiser (None without [network.lldp])
        net.events                             # both services' events, merged, oldest first
        net.evidence(mac="A4251B000001", since=mark)   # evidence entries read back from the pcap
    attach_capture_evidence(request.node, net, mac, since=mark)   # into the test's evidence.network

Every way the lab cannot be served is a `harness.errors.LabError` with a stable id and a
sentence that says what to do, never a traceback: `network-no-interface` (no interface given,
or none of that name; the message lists the interfaces there), `network-no-netns`,
`network-interface-down`, `network-not-permitted` (raw sockets need root or CAP_NET_RAW; a
namespace also CAP_SYS_ADMIN), `network-address-missing` (`dhcp.address` is not an address of
the interface, or the interface has none), `network-bad-config` (a scope the responder refuses),
`network-no-capture` (evidence asked of a service that captures nothing), `network-failed`
(any other socket error at start).

Decisions:
- Start order capture, DHCP, LLDP, stop order the reverse: the capture holds every frame the
  services sent, the last one included, and is flushed and closed last.
- A capture runs when `capture_path` is given, or when the spec says `capture = true`; then
  into `network.pcap` in a fresh temporary directory that is kept after stop (`capture_path`
  says where), so evidence can be read after the services are gone [inf].
- The interface is checked before any socket opens (`ip -j addr show`): it must exist and be
  administratively up, and a scope's `address` must be one of its IPv4 addresses (the phones
  reach the file server there; a server id the host does not own makes renewals go nowhere).
  Without `address` the interface's first IPv4 address is the server id [inf].
- VLAN scopes are answered by the same responder, 802.1Q-tagged on the same interface (no VLAN
  sub-interfaces needed: `dhcp_responder`); `[network.vlans]` without `[network.dhcp]` is
  refused, since the responder always serves the untagged LAN too [inf].
- The LLDP advertiser is imported when the spec has `[network.lldp]`; if it cannot be (a
  checkout without `simulators.l2.lldp`), the service runs without LLDP and says so in an
  `lldp-unavailable` event rather than refusing DHCP [inf].
- `events` tags each event with its `source` ("dhcp", "lldp", "network") on a copy; the
  services' own lists stay as they are. `new_events()` hands each event out once, for one
  follower (the CLI printing them as they happen).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import LabError
from harness.lab_network.capture import Capture
from harness.lab_network.dhcp_responder import DhcpResponder
from harness.lab_network.evidence import read_evidence
from harness.lab_network.spec import DhcpScope, LldpSpec, NetworkSpec

__all__ = ["LabNetwork", "attach_capture_evidence", "describe_event", "describe_serving"]

CAP_NET_RAW, CAP_SYS_ADMIN = 13, 21
CAPTURE_NAME = "network.pcap"
DOT1Q_FRAMING = {1: "tagging", 2: "no tagging", 3: "auto"}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _effective_caps() -> int | None:
    """The process's effective capability set, or None when /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _link_info(interface: str, netns: str | None) -> dict[str, Any] | None:
    """`ip -j addr show dev IF` (in `netns`): flags, MAC and addresses; None when there is no such interface."""
    command = ["ip", *(["-n", netns] if netns else []), "-j", "addr", "show", "dev", interface]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)  # noqa: S603
    if done.returncode != 0:
        return None
    try:
        data = json.loads(done.stdout or "[]")
    except ValueError:
        return None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None


def _interface_names(netns: str | None) -> list[str]:
    command = ["ip", *(["-n", netns] if netns else []), "-j", "link", "show"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)  # noqa: S603
    try:
        data = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    except ValueError:
        return []
    return [str(link["ifname"]) for link in data if isinstance(link, dict) and "ifname" in link]


class LabNetwork:
    """The lab network's services on one interface (module docstring)."""

    def __init__(self, spec: NetworkSpec, *, interface: str | None = None, netns: str | None = None,
                 capture_path: Path | None = None) -> None:
        self.spec = spec
        self.interface = interface or spec.interface
        self.netns = netns
        self.capture_path: Path | None = Path(capture_path) if capture_path is not None else None
        self.dhcp: DhcpResponder | None = None
        self.lldp: Any = None  # harness.lab_network.lldp_advertiser.LldpAdvertiser, imported when needed
        self.capture: Capture | None = None
        self.mac: str | None = None
        self.addresses: list[str] = []
        self.started_at: float | None = None
        self._events: list[dict[str, Any]] = []
        self._marks: dict[str, int] = {}

    def _where(self) -> str:
        return f"{self.interface}" + (f" in namespace {self.netns}" if self.netns else "")

    def _event(self, kind: str, **data: Any) -> None:
        self._events.append({"at": _iso(time.time()), "event": kind, **data})

    # -- checks before any socket ---------------------------------------------------------------

    def check(self) -> None:
        """Raise `LabError` unless the interface can be served (module docstring)."""
        if not self.interface:
            raise LabError("network-no-interface", "no interface to serve: give one (--interface IF) or set "
                           "`interface` in the lab file's [network] table", field="network.interface")
        if self.spec.vlans and self.spec.dhcp is None:
            raise LabError("network-bad-config", "VLAN scopes need the untagged scope too: add a [network.dhcp] "
                           "table (the responder serves the untagged LAN and the voice VLANs together)",
                           field="network.vlans")
        self._check_permissions()
        if self.netns is not None:
            from simulators.l2.netns import exists

            if not exists(self.netns):
                raise LabError("network-no-netns", f"there is no network namespace {self.netns!r} "
                               f"(`ip netns list` shows them; `ip netns add {self.netns}` makes one)", value=self.netns)
        info = _link_info(self.interface, self.netns)
        if info is None:
            names = ", ".join(_interface_names(self.netns)) or "none"
            raise LabError("network-no-interface", f"there is no interface {self.interface!r}"
                           + (f" in namespace {self.netns}" if self.netns else "") + f" (interfaces: {names})",
                           value=self.interface)
        if "UP" not in (info.get("flags") or []):
            raise LabError("network-interface-down", f"{self._where()} is down: `ip link set {self.interface} up`",
                           value=self.interface)
        self.mac = str(info.get("address") or "").lower() or None
        self.addresses = [str(a.get("local")) for a in info.get("addr_info") or []
                          if isinstance(a, dict) and a.get("family") == "inet"]
        scope = self.spec.dhcp
        if scope is not None:
            if scope.address is not None and scope.address not in self.addresses:
                has = ", ".join(self.addresses) or "no IPv4 address"
                raise LabError("network-address-missing", f"{scope.address} is not an address of {self._where()} "
                               f"(it has {has}); the phones reach the server there: "
                               f"`ip addr add {scope.address}/{scope.prefixlen} dev {self.interface}`, or change "
                               "network.dhcp.address", field="network.dhcp.address", value=scope.address)
            if scope.address is None and not self.addresses:
                raise LabError("network-address-missing", f"{self._where()} has no IPv4 address to serve DHCP from: "
                               f"give it one (`ip addr add ADDRESS/{scope.prefixlen} dev {self.interface}`) or set "
                               "network.dhcp.address", field="network.dhcp.address")

    def _check_permissions(self) -> None:
        caps = _effective_caps()
        if caps is None:
            return  # opening the sockets will tell
        if not caps >> CAP_NET_RAW & 1:
            raise LabError("network-not-permitted", f"raw sockets on {self._where()} need root or CAP_NET_RAW "
                           "(run it with sudo, or `setcap cap_net_raw,cap_net_admin+ep` on the Python interpreter)")
        if self.netns is not None and not caps >> CAP_SYS_ADMIN & 1:
            raise LabError("network-not-permitted", f"entering namespace {self.netns} needs root or CAP_SYS_ADMIN "
                           "(or run the command itself with `ip netns exec` and leave --netns out)")

    # -- start and stop -------------------------------------------------------------------------

    async def start(self) -> LabNetwork:
        self.check()
        assert self.interface is not None
        try:
            await self._start_services()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, LabError):
                raise
            if isinstance(exc, PermissionError):
                raise LabError("network-not-permitted", f"raw sockets on {self._where()} need root or CAP_NET_RAW: "
                               f"{exc.strerror or exc}") from None
            if isinstance(exc, ValueError):
                named = re.match(r"([a-z0-9_]+(?:\.[a-z0-9_]+)*): (.*)", str(exc), re.S)
                raise LabError("network-bad-config", named[2] if named else str(exc),
                               field=f"network.{named[1]}" if named else None, value=str(exc)) from None
            if isinstance(exc, OSError):
                raise LabError("network-failed", f"the lab network did not start on {self._where()}: "
                               f"{exc.strerror or exc}") from None
            raise
        self.started_at = time.time()
        self._event("started", interface=self.interface, netns=self.netns, mac=self.mac,
                    dhcp=self.dhcp is not None, lldp=self.lldp is not None,
                    capture=str(self.capture_path) if self.capture is not None else None)
        return self

    async def _start_services(self) -> None:
        assert self.interface is not None
        spec = self.spec
        # the services are made (their configuration checked) before anything opens or is written
        dhcp = lldp = None
        if spec.dhcp is not None:
            server_ip = None if spec.dhcp.address else (self.addresses[0] if self.addresses else None)
            dhcp = DhcpResponder(self.interface, spec.dhcp, netns=self.netns, vlans=spec.vlans,
                                 server_ip=server_ip, mac=self.mac)
        if spec.lldp is not None:
            try:
                from harness.lab_network.lldp_advertiser import LldpAdvertiser
            except ImportError as exc:
                self._event("lldp-unavailable", why=f"no LLDP advertiser in this checkout ({exc})")
            else:
                lldp = LldpAdvertiser(self.interface, spec.lldp, netns=self.netns, mac=self.mac)
        if self.capture_path is None and spec.capture:
            self.capture_path = Path(tempfile.mkdtemp(prefix="enrollab-network-")) / CAPTURE_NAME
        if self.capture_path is not None:
            self.capture = Capture(self.interface, self.capture_path, netns=self.netns)
            await self.capture.start()
        if dhcp is not None:
            self.dhcp = dhcp
            await dhcp.start()
        if lldp is not None:
            self.lldp = lldp
            await lldp.start()

    async def stop(self) -> None:
        """Stop whatever runs (LLDP, DHCP, then the capture: flushed and closed); never raises OSError."""
        for service in (self.lldp, self.dhcp, self.capture):
            if service is not None:
                with contextlib.suppress(OSError):
                    await service.stop()
        if self.started_at is not None:
            self._event("stopped", dhcp_replies=self.dhcp.answered if self.dhcp else 0,
                        lldpdus_sent=self.lldp.sent if self.lldp is not None else 0,
                        packets=self.capture.packets if self.capture else 0,
                        capture=str(self.capture_path) if self.capture is not None else None)
            self.started_at = None
        await asyncio.sleep(0)

    async def __aenter__(self) -> LabNetwork:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what happened --------------------------------------------------------------------------

    def _sources(self) -> list[tuple[str, list[dict[str, Any]]]]:
        sources: list[tuple[str, list[dict[str, Any]]]] = []
        if self.dhcp is not None:
            sources.append(("dhcp", self.dhcp.events))
        if self.lldp is not None:
            sources.append(("lldp", self.lldp.events))
        sources.append(("network", self._events))  # last: in the same millisecond, after the services' own
        return sources

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of the services, each with its `source`, oldest first."""
        merged = [{"source": name, **event} for name, events in self._sources() for event in events]
        return sorted(merged, key=lambda event: str(event["at"]))

    def new_events(self) -> list[dict[str, Any]]:
        """The events not handed out by an earlier call, oldest first (one follower only)."""
        fresh: list[dict[str, Any]] = []
        for name, events in self._sources():
            mark = self._marks.get(name, 0)
            fresh.extend({"source": name, **event} for event in events[mark:])
            self._marks[name] = len(events)
        return sorted(fresh, key=lambda event: str(event["at"]))

    def evidence(self, mac: str | None = None, since: float | None = None, *,
                 include_other: bool = False) -> list[dict[str, Any]]:
        """The capture's evidence entries (`evidence.read_evidence`), readable while it runs."""
        if self.capture_path is None or not self.capture_path.exists():
            raise LabError("network-no-capture", "this lab network captures nothing: pass a capture path or set "
                           "`capture = true` in [network]", field="network.capture")
        return read_evidence(self.capture_path, mac=mac, since=since, include_other=include_other)


def attach_capture_evidence(node: Any, network: LabNetwork | None, mac: str | None = None,
                            since: float | None = None) -> list[dict[str, Any]]:
    """Put what the capture saw of `mac` since `since` into the test's `evidence.network`
    (`node` is `request.node`); the entries. No capture, no network: nothing, no error —
    a device test's verdict never hangs on the evidence."""
    if network is None or network.capture_path is None or not network.capture_path.exists():
        return []
    from harness.pytest_plugin import add_evidence

    entries = network.evidence(mac=mac, since=since)
    add_evidence(node, network=entries)
    return entries


# -- words for people (the CLI) -----------------------------------------------------------------


def describe_event(event: Mapping[str, Any]) -> str:
    """One line: time of day (UTC), source, event, then its fields (`key=value`)."""
    at = str(event.get("at", ""))
    clock = at[11:23] if len(at) >= 23 else at
    skip = {"at", "source", "event", "heard_at"}
    fields = []
    for key, value in event.items():
        if key in skip or value is None or value == [] or value == {}:
            continue
        if key == "xid" and isinstance(value, int):
            value = f"0x{value:08x}"
        elif isinstance(value, Mapping):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        fields.append(f"{key}={value}")
    return " ".join([clock, f"{event.get('source', '-'):<7}", str(event.get("event", "?")), *fields]).rstrip()


def _scope_lines(scope: DhcpScope, label: str, *, vlan: bool = False) -> list[str]:
    pool = f"{scope.pool[0]}-{scope.pool[1]}" if scope.pool else "no pool"
    head = f"{label}: pool {pool}/{scope.prefixlen}, lease {scope.lease_time} s"
    if scope.address:
        head += f", server {scope.address}"
    elif vlan and scope.pool:
        first = ipaddress.IPv4Interface(f"{scope.pool[0]}/{scope.prefixlen}").network.network_address + 1
        head += f", server {first} (the .1 of its subnet)"
    if scope.router:
        head += f", router {scope.router}"
    if scope.dns:
        head += f", DNS {','.join(scope.dns)}"
    if scope.domain:
        head += f", domain {scope.domain}"
    if scope.siaddr:
        head += f", siaddr {scope.siaddr}"
    lines = [head]
    if scope.option_242 is not None:
        lines.append(f'  option 242 = "{scope.option_242}" ({len(scope.option_242.encode())} bytes)')
    else:
        lines.append("  option 242: not sent")
    if scope.option_43:
        lines.append("  option 43 (Avaya 6889) = " + ",".join(f"{k}={v}" for k, v in scope.option_43.items()))
    return lines


def _lldp_lines(spec: LldpSpec) -> list[str]:
    head = f"LLDP: every {spec.interval:g} s, TTL 120, chassis = the interface's MAC, port = the interface"
    if spec.system_name:
        head += f", system name {spec.system_name}"
    lines = [head]
    if spec.file_servers:
        lines.append(f"  Avaya file servers (TLV 00-04-0D/6) = {','.join(spec.file_servers)}")
    if spec.call_servers:
        lines.append(f"  Avaya call servers (TLV 00-04-0D/3) = {','.join(spec.call_servers)}")
    if spec.dot1q_framing is not None:
        framing = DOT1Q_FRAMING.get(spec.dot1q_framing, "?")
        lines.append(f"  Avaya 802.1Q framing (TLV 00-04-0D/7) = {spec.dot1q_framing} ({framing})")
    if spec.med_vlan is not None:
        lines.append(f"  LLDP-MED voice policy: VLAN {spec.med_vlan} {'tagged' if spec.med_tagged else 'untagged'}, "
                     f"priority {spec.med_priority}, DSCP {spec.med_dscp}")
    return lines


def describe_serving(spec: NetworkSpec, *, interface: str | None, netns: str | None = None,
                     capture: Path | None = None, mac: str | None = None,
                     addresses: Iterable[str] = ()) -> list[str]:
    """What a lab network serves, one line per thing (the CLI's banner)."""
    where = f"interface {interface}" + (f" in namespace {netns}" if netns else "")
    if mac:
        where += f" ({mac}"
        where += f", {', '.join(addresses)})" if addresses else ")"
    lines = [where]
    if spec.dhcp is not None:
        lines += _scope_lines(spec.dhcp, "DHCP")
        for vid, scope in sorted(spec.vlans.items()):
            lines += _scope_lines(scope, f"DHCP on VLAN {vid} (802.1Q-tagged)", vlan=True)
    else:
        lines.append("DHCP: off (no [network.dhcp]: another server hands out addresses)")
    lines += _lldp_lines(spec.lldp) if spec.lldp is not None else ["LLDP: off (no [network.lldp])"]
    lines.append(f"capture: {capture}" if capture is not None else "capture: off")
    return lines
