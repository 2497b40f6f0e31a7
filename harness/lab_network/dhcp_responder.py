"""The harness's DHCP responder: a DHCPv4 server for the lab LAN on raw frames, which hands out
the lab file's scope with Avaya's options (research §9): option 242 (SSON) byte-exact, option 43
(Avaya enterprise 6889, `simulators.l2.option43`), siaddr when given.

    async with DhcpResponder("br0", scope, netns="enrollab-t1-lab", vlans={212: voice}) as dhcp:
        ...
    dhcp.leases            # {(vlan, mac): Lease}
    dhcp.events            # what it did, oldest first (evidence)
    dhcp.answer(frame)     # the pure part: the reply frame to one received frame, or None

Decisions:
- Raw frames, not a UDP socket on port 67: a client without an address broadcasts and expects a
  reply at its MAC, and 802.1Q-tagged requests must be answered tagged; the kernel here has no
  VLAN sub-interfaces, so VLANs are handled in the frame (`simulators.l2.rawlink` restores stripped tags).
- RFC 2131 §4.3.1 DISCOVER: the client's existing lease, else its requested address (50) when
  free and in the pool, else the lowest free pool address; none free: silence and a
  `pool-exhausted` event. The offer is held for the client (leases are keyed by VLAN and MAC,
  so a renewal gets the same address).
- §4.3.2 REQUEST: SELECTING (option 54 present) — another server's id means the client chose
  someone else: our offer is dropped, no answer; ours: ACK when 50 is the address held, else
  NAK. INIT-REBOOT (50, no 54): NAK when the address is outside the subnet or held by another
  client, ACK when it is the client's or free in the pool; an address in the subnet outside the
  pool with no record also gets NAK (the lab's responder is authoritative for its LAN) [inf].
  RENEWING/REBINDING (ciaddr, no 50): ACK when the lease matches, else NAK.
- RELEASE frees the lease (§4.3.4), DECLINE marks the address unusable (§4.3.3), INFORM gets an
  ACK without yiaddr or lease times (§4.3.5).
- Every ACK/OFFER carries 53, 54, 51, 58 (T1 = 1/2 lease) and 59 (T2 = 7/8 lease) (§4.4.5), 1,
  3, 6, 15 when set, 242 and 43 whether or not option 55 asked for them (an Avaya phone asks;
  a generic client may still want to see them) [inf]. Option 51 is mandatory for Avaya phones
  (§9). Values over 255 bytes are split into consecutive options (RFC 3396).
- Replies go to the client's MAC; the IP destination is 255.255.255.255 unless the client has
  an address (ciaddr, renewal) — broadcast is what every client accepts (§4.1) [inf]. Relayed
  requests (giaddr) are not served: the lab LAN has no relay [inf].
- Tagged requests on a VID of `vlans` are answered with the same tag from that VLAN's scope; its
  server id is its `address`, else the `.1` of its subnet; other VIDs are ignored (event
  `unknown-vlan`). Priority-tagged frames (VID 0) belong to the untagged scope.
- A malformed frame (truncated BOOTP, bad cookie, options running past the end, no 53) is
  counted in `malformed` and recorded, never raised.
- Per client, option 242 can be replaced while serving (`offer_242(mac, text)`; None: send no
  242 to it; `clear_242(mac)` goes back to the scope's): the device suite sets what the network
  offers one physical phone for one test (`harness.physical.device`), the rest of the LAN keeps
  the lab file's scope.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.lab_network.spec import DhcpScope

__all__ = [
    "MESSAGE_TYPES",
    "DhcpMessage",
    "DhcpResponder",
    "Lease",
    "build_dhcp_frame",
    "parse_dhcp_frame",
]

MAGIC = b"\x63\x82\x53\x63"
SERVER_PORT, CLIENT_PORT = 67, 68
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MESSAGE_TYPES = {1: "DHCPDISCOVER", 2: "DHCPOFFER", 3: "DHCPREQUEST", 4: "DHCPDECLINE", 5: "DHCPACK",
                 6: "DHCPNAK", 7: "DHCPRELEASE", 8: "DHCPINFORM"}
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO = str(ipaddress.IPv4Address(0))  # an unset BOOTP address field
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes before the cookie


class MalformedDhcp(ValueError):
    """A DHCP frame that cannot be read (what is wrong)."""


def mac_text(raw: bytes | str) -> str:
    """A MAC in lower case with colons, from six bytes or any common notation."""
    if isinstance(raw, bytes):
        return ":".join(f"{b:02x}" for b in raw[:6])
    digits = "".join(c for c in raw if c.isalnum()).lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{raw!r} is not a MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _now_iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DhcpMessage:
    """One DHCP message as read from (or written into) a frame."""

    op: int
    xid: int
    chaddr: str
    message_type: int | None = None
    ciaddr: str = ZERO
    yiaddr: str = ZERO
    siaddr: str = ZERO
    giaddr: str = ZERO
    flags: int = 0
    secs: int = 0
    options: dict[int, bytes] = field(default_factory=dict)
    src_mac: str = ""
    dst_mac: str = ""
    src_ip: str = ""
    dst_ip: str = ""
    vlan: int | None = None
    priority: int = 0

    @property
    def type_name(self) -> str:
        return MESSAGE_TYPES.get(self.message_type or 0, f"DHCP type {self.message_type}")

    def option_ip(self, code: int) -> str | None:
        value = self.options.get(code)
        return str(ipaddress.IPv4Address(value[:4])) if value and len(value) >= 4 else None


def _split_ethernet(frame: bytes) -> tuple[int, int | None, int, int]:
    """(ethertype, vlan or None, priority, payload offset); 802.1Q/802.1ad tags are read."""
    if len(frame) < 14:
        raise MalformedDhcp("frame shorter than an Ethernet header")
    offset, vlan, priority = 12, None, 0
    ethertype = struct.unpack_from("!H", frame, offset)[0]
    while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 6:
        tci = struct.unpack_from("!H", frame, offset + 2)[0]
        vlan, priority = tci & 0x0FFF, tci >> 13
        offset += 4
        ethertype = struct.unpack_from("!H", frame, offset)[0]
    return ethertype, vlan, priority, offset + 2


def is_dhcp_frame(frame: bytes) -> bool:
    """An IPv4 UDP frame between ports 67 and 68 (either way), tagged or not."""
    try:
        ethertype, _vlan, _prio, at = _split_ethernet(frame)
    except MalformedDhcp:
        return False
    if ethertype != 0x0800 or len(frame) < at + 28 or frame[at + 9] != 17:
        return False
    ihl = (frame[at] & 0x0F) * 4
    if len(frame) < at + ihl + 8:
        return False
    sport, dport = struct.unpack_from("!HH", frame, at + ihl)
    return {sport, dport} <= {SERVER_PORT, CLIENT_PORT}


def parse_dhcp_frame(frame: bytes) -> DhcpMessage:
    """The DHCP message in an Ethernet frame; MalformedDhcp when it is not a readable one."""
    ethertype, vlan, priority, at = _split_ethernet(frame)
    if ethertype != 0x0800:
        raise MalformedDhcp("not IPv4")
    if len(frame) < at + 20:
        raise MalformedDhcp("truncated IPv4 header")
    ihl = (frame[at] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, at + 2)[0]
    if frame[at + 9] != 17 or ihl < 20:
        raise MalformedDhcp("not UDP")
    src_ip = str(ipaddress.IPv4Address(frame[at + 12 : at + 16]))
    dst_ip = str(ipaddress.IPv4Address(frame[at + 16 : at + 20]))
    udp = at + ihl
    if len(frame) < udp + 8:
        raise MalformedDhcp("truncated UDP header")
    ulen = struct.unpack_from("!H", frame, udp + 4)[0]
    end = min(len(frame), at + total if total else len(frame), udp + ulen if ulen >= 8 else len(frame))
    body = frame[udp + 8 : end]
    if len(body) < _BOOTP.size + 4:
        raise MalformedDhcp(f"BOOTP message of {len(body)} bytes (at least {_BOOTP.size + 4})")
    (op, htype, hlen, _hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _sname,
     _file) = _BOOTP.unpack_from(body)
    if body[_BOOTP.size : _BOOTP.size + 4] != MAGIC:
        raise MalformedDhcp("no DHCP magic cookie")
    if htype != 1 or hlen != 6:
        raise MalformedDhcp(f"hardware type {htype} / length {hlen} (Ethernet is 1 / 6)")
    options = _read_options(body[_BOOTP.size + 4 :])
    kind = options.get(53)
    message = DhcpMessage(
        op=op, xid=xid, chaddr=mac_text(chaddr), message_type=kind[0] if kind else None,
        ciaddr=str(ipaddress.IPv4Address(ciaddr)), yiaddr=str(ipaddress.IPv4Address(yiaddr)),
        siaddr=str(ipaddress.IPv4Address(siaddr)), giaddr=str(ipaddress.IPv4Address(giaddr)),
        flags=flags, secs=secs, options=options, src_mac=mac_text(frame[6:12]), dst_mac=mac_text(frame[0:6]),
        src_ip=src_ip, dst_ip=dst_ip, vlan=vlan, priority=priority,
    )
    if message.message_type is None:
        raise MalformedDhcp("no option 53 (message type)")
    return message


def _read_options(raw: bytes) -> dict[int, bytes]:
    """Options by code; repeated codes are concatenated (RFC 3396); running past the end raises."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        code = raw[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            return options
        if i + 1 >= len(raw) or i + 2 + raw[i + 1] > len(raw):
            raise MalformedDhcp(f"option {code} runs past the end of the message")
        length = raw[i + 1]
        options[code] = options.get(code, b"") + raw[i + 2 : i + 2 + length]
        i += 2 + length
    raise MalformedDhcp("options without an end option (255)")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _encode_options(options: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for code, value in options:
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]
        for chunk in chunks:
            out += bytes([code, len(chunk)]) + chunk
    out.append(255)
    return bytes(out)


def build_dhcp_frame(message: DhcpMessage, option_list: list[tuple[int, bytes]] | None = None) -> bytes:
    """An Ethernet frame (802.1Q-tagged when `message.vlan` is set) carrying `message`: IPv4 with
    its checksum, UDP with its checksum, BOOTP padded to 300 bytes (RFC 1542 §2.1)."""
    options = option_list if option_list is not None else sorted(message.options.items())
    if message.message_type is not None and all(code != 53 for code, _ in options):
        options = [(53, bytes([message.message_type])), *options]
    chaddr = bytes.fromhex(message.chaddr.replace(":", "")).ljust(16, b"\0")
    body = _BOOTP.pack(message.op, 1, 6, 0, message.xid, message.secs, message.flags,
                       ipaddress.IPv4Address(message.ciaddr).packed, ipaddress.IPv4Address(message.yiaddr).packed,
                       ipaddress.IPv4Address(message.siaddr).packed, ipaddress.IPv4Address(message.giaddr).packed,
                       chaddr, b"", b"") + MAGIC + _encode_options(options)
    body = body.ljust(300, b"\0")
    sport, dport = (SERVER_PORT, CLIENT_PORT) if message.op == 2 else (CLIENT_PORT, SERVER_PORT)
    src, dst = ipaddress.IPv4Address(message.src_ip).packed, ipaddress.IPv4Address(message.dst_ip).packed
    udp_len = 8 + len(body)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = _checksum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + body) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, udp_sum) + body
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10 if message.op == 2 else 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    ether = bytes.fromhex(message.dst_mac.replace(":", "")) + bytes.fromhex(message.src_mac.replace(":", ""))
    if message.vlan is not None:
        ether += struct.pack("!HH", 0x8100, (message.priority << 13) | message.vlan)
    return ether + b"\x08\x00" + header + udp


@dataclass
class Lease:
    mac: str
    ip: str
    vlan: int | None
    state: str  # "offered" | "bound"
    expires: float
    host_name: str | None = None


@dataclass
class _Scope:
    """A scope made ready: its subnet, pool range and server id."""

    spec: DhcpScope
    server_ip: str
    network: ipaddress.IPv4Network
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    options: list[tuple[int, bytes]]
    declined: set[str] = field(default_factory=set)


def _prepare(scope: DhcpScope, where: str, server_ip: str | None, *, default_first: bool) -> _Scope:
    if scope.pool is None:
        raise ValueError(f"{where}.pool: a DHCP scope needs a pool (first and last address)")
    try:
        first, last = (ipaddress.IPv4Address(scope.pool[0]), ipaddress.IPv4Address(scope.pool[1]))
    except ValueError as exc:
        raise ValueError(f"{where}.pool: {exc}") from None
    if first > last:
        raise ValueError(f"{where}.pool: runs backwards ({first} > {last})")
    if not 0 < scope.prefixlen <= 30:
        raise ValueError(f"{where}.prefixlen: {scope.prefixlen} is not 1-30")
    own = server_ip or scope.address
    if own is None and default_first:
        own = str(ipaddress.IPv4Interface(f"{first}/{scope.prefixlen}").network.network_address + 1)
    if own is None:
        raise ValueError(f"{where}.address: the responder's own address (server id) is unknown")
    try:
        network = ipaddress.IPv4Interface(f"{own}/{scope.prefixlen}").network
    except ValueError as exc:
        raise ValueError(f"{where}.address: {exc}") from None
    for name, value in (("pool", first), ("pool", last)):
        if value not in network:
            raise ValueError(f"{where}.{name}: {value} is outside the scope's subnet {network}")
    if scope.lease_time <= 0:
        raise ValueError(f"{where}.lease_time: {scope.lease_time} is not a positive number of seconds")
    options: list[tuple[int, bytes]] = [(1, network.netmask.packed)]
    if scope.router:
        options.append((3, ipaddress.IPv4Address(scope.router).packed))
    if scope.dns:
        options.append((6, b"".join(ipaddress.IPv4Address(d).packed for d in scope.dns)))
    if scope.domain:
        options.append((15, scope.domain.encode("utf-8")))
    if scope.option_43:
        from simulators.l2.option43 import encode_option43

        try:
            options.append((43, encode_option43(scope.option_43)))
        except ValueError as exc:
            raise ValueError(f"{where}.option_43: {exc}") from None
    if scope.option_242 is not None:
        options.append((242, scope.option_242.encode("utf-8")))
    return _Scope(scope, str(own), network, first, last, options)


class DhcpResponder:
    """A DHCP server for one interface (module docstring)."""

    def __init__(self, interface: str, scope: DhcpScope, *, netns: str | None = None,
                 vlans: Mapping[int, DhcpScope] | None = None, server_ip: str | None = None,
                 mac: str | None = None) -> None:
        self.interface = interface
        self.netns = netns
        self.scope = scope
        self.mac = mac_text(mac) if mac else None
        self._server_ip = server_ip
        # check the configuration now; an unknown own address is looked up at start()
        self._main: _Scope | None = None
        if server_ip or scope.address:
            self._main = _prepare(scope, "dhcp", server_ip, default_first=False)
        elif scope.pool is None:
            raise ValueError("dhcp.pool: a DHCP scope needs a pool (first and last address)")
        self._vlans: dict[int, _Scope] = {}
        for vid, vscope in (vlans or {}).items():
            if not 1 <= int(vid) <= 4094:
                raise ValueError(f"vlans.{vid}: not a VLAN id (1-4094)")
            self._vlans[int(vid)] = _prepare(vscope, f"vlans.{vid}", None, default_first=True)
        self.leases: dict[tuple[int | None, str], Lease] = {}
        self.events: list[dict[str, Any]] = []
        self.malformed = 0
        self.answered = 0
        self._link: Any = None
        self.clock = time.time
        self._option_242: dict[str, str | None] = {}  # per client MAC (module docstring)

    def offer_242(self, mac: str, text: str | None) -> None:
        """Give `mac` option 242 `text` from now on (None: none at all)."""
        if text is not None and not 0 < len(text.encode("utf-8")) <= 255 * 4:
            raise ValueError("option_242: 1 to 1020 bytes")
        self._option_242[mac_text(mac)] = text
        self._event("option-242-set", mac=mac_text(mac), value=text)

    def clear_242(self, mac: str) -> None:
        """`mac` gets the scope's option 242 again."""
        if self._option_242.pop(mac_text(mac), "unset") != "unset":
            self._event("option-242-cleared", mac=mac_text(mac))

    @property
    def server_ip(self) -> str | None:
        return self._main.server_ip if self._main else None

    # -- the pure part -------------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> None:
        self.events.append({"at": _now_iso(self.clock()), "event": kind, **data})

    def answer(self, frame: bytes) -> bytes | None:
        """The reply frame to one received frame, or None (not for us, or silence by RFC 2131)."""
        if not is_dhcp_frame(frame):
            return None
        try:
            message = parse_dhcp_frame(frame)
        except (MalformedDhcp, ValueError, struct.error) as exc:
            self.malformed += 1
            self._event("malformed", why=str(exc), src_mac=mac_text(frame[6:12]))
            return None
        if message.op != 1:
            return None  # a server's reply (ours or another's)
        if self._main is None:
            raise ValueError("dhcp.address: the responder's own address (server id) is unknown; start() it")
        vlan = message.vlan or None
        if vlan is None:
            scope = self._main
        elif vlan in self._vlans:
            scope = self._vlans[vlan]
        else:
            self._event("unknown-vlan", mac=message.chaddr, vlan=vlan)
            return None
        if message.giaddr != ZERO:
            self._event("ignored", mac=message.chaddr, vlan=vlan, why="relayed request (giaddr)")
            return None
        try:
            return self._handle(message, scope, vlan)
        except (ValueError, IndexError) as exc:  # e.g. a short option 50
            self.malformed += 1
            self._event("malformed", why=str(exc), mac=message.chaddr, vlan=vlan)
            return None

    def _handle(self, message: DhcpMessage, scope: _Scope, vlan: int | None) -> bytes | None:
        now = self.clock()
        key = (vlan, message.chaddr)
        lease = self.leases.get(key)
        if lease is not None and lease.expires < now:
            del self.leases[key]
            lease = None
        kind = message.message_type
        requested = message.option_ip(50)
        server_id = message.option_ip(54)
        host_name = message.options.get(12, b"").decode("utf-8", "replace") or None
        if kind == DISCOVER:
            ip = self._choose(scope, vlan, message.chaddr, lease, requested, now)
            if ip is None:
                self._event("pool-exhausted", mac=message.chaddr, vlan=vlan, xid=message.xid)
                return None
            self.leases[key] = Lease(message.chaddr, ip, vlan, lease.state if lease and lease.ip == ip else "offered",
                                     now + 60 if not lease else max(lease.expires, now + 60), host_name)
            return self._reply(message, scope, OFFER, ip, "offer")
        if kind == REQUEST:
            return self._request(message, scope, vlan, lease, requested, server_id, host_name, now)
        if kind == RELEASE:
            if server_id not in (None, scope.server_ip):
                return None
            if lease is not None and (message.ciaddr in (lease.ip, ZERO)):
                del self.leases[key]
                self._event("release", mac=message.chaddr, vlan=vlan, ip=lease.ip)
            return None
        if kind == DECLINE:
            if server_id not in (None, scope.server_ip):
                return None
            if requested:
                scope.declined.add(requested)
            self.leases.pop(key, None)
            self._event("decline", mac=message.chaddr, vlan=vlan, ip=requested)
            return None
        if kind == INFORM:
            return self._reply(message, scope, ACK, ZERO, "inform-ack", inform=True)
        self._event("ignored", mac=message.chaddr, vlan=vlan, why=f"message type {kind}")
        return None

    def _request(self, message: DhcpMessage, scope: _Scope, vlan: int | None, lease: Lease | None,
                 requested: str | None, server_id: str | None, host_name: str | None, now: float) -> bytes | None:
        key = (vlan, message.chaddr)
        if server_id is not None:  # SELECTING
            if server_id != scope.server_ip:
                if lease is not None and lease.state == "offered":
                    del self.leases[key]
                self._event("ignored", mac=message.chaddr, vlan=vlan, why=f"client chose server {server_id}")
                return None
            wanted = requested or (message.ciaddr if message.ciaddr != ZERO else None)
            if lease is not None and wanted == lease.ip:
                return self._bind(message, scope, lease, host_name, now)
            return self._nak(message, scope, f"requested {wanted}, offered {lease.ip if lease else 'nothing'}")
        if requested is not None:  # INIT-REBOOT
            address = ipaddress.IPv4Address(requested)
            if address not in scope.network:
                return self._nak(message, scope, f"{requested} is not on this network ({scope.network})")
            if lease is not None and lease.ip == requested:
                return self._bind(message, scope, lease, host_name, now)
            if self._holder(vlan, requested, message.chaddr, now) is not None:
                return self._nak(message, scope, f"{requested} is leased to another client")
            if scope.first <= address <= scope.last and requested not in scope.declined:
                new = Lease(message.chaddr, requested, vlan, "offered", now, host_name)
                self.leases[key] = new
                return self._bind(message, scope, new, host_name, now)
            return self._nak(message, scope, f"{requested} is outside the pool and not leased to the client")
        if message.ciaddr != ZERO:  # RENEWING / REBINDING
            if lease is not None and lease.ip == message.ciaddr:
                return self._bind(message, scope, lease, host_name, now)
            return self._nak(message, scope, f"no lease of {message.ciaddr} for the client")
        self.malformed += 1
        self._event("malformed", mac=message.chaddr, vlan=vlan, why="DHCPREQUEST without 50, 54 or ciaddr")
        return None

    def _holder(self, vlan: int | None, ip: str, mac: str, now: float) -> Lease | None:
        for (lvlan, lmac), lease in self.leases.items():
            if lvlan == vlan and lease.ip == ip and lmac != mac and lease.expires >= now:
                return lease
        return None

    def _choose(self, scope: _Scope, vlan: int | None, mac: str, lease: Lease | None, requested: str | None,
                now: float) -> str | None:
        if lease is not None:
            return lease.ip
        taken = {lease.ip for (lvlan, _), lease in self.leases.items() if lvlan == vlan and lease.expires >= now}
        taken |= scope.declined
        taken.add(scope.server_ip)
        if requested is not None:
            address = ipaddress.IPv4Address(requested)
            if scope.first <= address <= scope.last and requested not in taken:
                return requested
        address = scope.first
        while address <= scope.last:
            if str(address) not in taken:
                return str(address)
            address += 1
        return None

    def _bind(self, message: DhcpMessage, scope: _Scope, lease: Lease, host_name: str | None, now: float) -> bytes:
        lease.state = "bound"
        lease.expires = now + scope.spec.lease_time
        lease.host_name = host_name or lease.host_name
        self.leases[(lease.vlan, lease.mac)] = lease
        return self._reply(message, scope, ACK, lease.ip, "ack")

    def _nak(self, message: DhcpMessage, scope: _Scope, why: str) -> bytes:
        return self._reply(message, scope, NAK, ZERO, "nak", why=why)

    def _reply(self, message: DhcpMessage, scope: _Scope, kind: int, yiaddr: str, event: str, *,
               inform: bool = False, why: str | None = None) -> bytes:
        spec = scope.spec
        options: list[tuple[int, bytes]] = [(53, bytes([kind])), (54, ipaddress.IPv4Address(scope.server_ip).packed)]
        if kind != NAK:
            if not inform:
                lease = spec.lease_time
                options += [(51, struct.pack("!I", lease)), (58, struct.pack("!I", lease // 2)),
                            (59, struct.pack("!I", lease * 7 // 8))]
            client = mac_text(message.chaddr)
            if client in self._option_242:
                own = self._option_242[client]
                options += [o for o in scope.options if o[0] != 242]
                if own is not None:
                    options.append((242, own.encode("utf-8")))
            else:
                options += scope.options
        else:
            options.append((56, why.encode("utf-8")[:255] if why else b"NAK"))
        unicast = message.ciaddr != ZERO and kind != NAK
        reply = DhcpMessage(
            op=2, xid=message.xid, chaddr=message.chaddr, message_type=kind, ciaddr=message.ciaddr if kind == ACK
            else ZERO, yiaddr=yiaddr, siaddr=(spec.siaddr or ZERO) if kind != NAK else ZERO,
            flags=message.flags, src_mac=self.mac or "02:00:00:00:00:01", dst_mac=message.src_mac if unicast
            else (BROADCAST_MAC if message.flags & 0x8000 else message.chaddr),
            src_ip=scope.server_ip, dst_ip=message.ciaddr if unicast else "255.255.255.255",
            vlan=message.vlan or None, priority=message.priority,
        )
        self.answered += 1
        detail: dict[str, Any] = {"mac": message.chaddr, "vlan": reply.vlan, "xid": message.xid, "ip": yiaddr}
        if why:
            detail["why"] = why
        self._event(event, **detail)
        return build_dhcp_frame(reply, options)

    # -- the socket part -----------------------------------------------------------------------

    async def start(self) -> DhcpResponder:
        from simulators.l2.rawlink import RawLink, interface_ipv4, interface_mac

        if self.mac is None:
            self.mac = interface_mac(self.interface, self.netns)
        if self._main is None:
            own = interface_ipv4(self.interface, self.netns)
            if own is None:
                raise ValueError(f"dhcp.address: not given and {self.interface} has no IPv4 address")
            self._main = _prepare(self.scope, "dhcp", own, default_first=False)
        link = RawLink(self.interface, netns=self.netns)
        link.open(self._on_frame)
        self._link = link
        self._event("started", interface=self.interface, server_ip=self._main.server_ip, mac=self.mac)
        return self

    def _on_frame(self, frame: bytes, outgoing: bool, _at: float) -> None:
        if outgoing or self._link is None:
            return
        reply = self.answer(frame)
        if reply is not None:
            try:
                self._link.send(reply)
            except OSError as exc:
                self._event("send-failed", why=str(exc))

    async def stop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
            self._event("stopped")
        await asyncio.sleep(0)

    async def __aenter__(self) -> DhcpResponder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
