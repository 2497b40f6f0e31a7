"""The simulated phone's DHCP client (RFC 2131) on raw frames, with scapy, as a J100 asks (research §9).

    client = DhcpClient(link.send, mac="A4251B000001", host_name=host_name("A4251B000001"))
    link.open(lambda frame, outgoing, at: outgoing or client.feed(frame, at))
    lease = await client.acquire(timeout=10)     # Lease or None
    lease.option_242, lease.option_43, lease.siaddr
    await client.renew()                         # at T1: REQUEST to the server; the new Lease or None
    client.release()

Decisions:
- Option 12 is `AVohhhhhh` (research §9: o from the OUI, hhhhhh the last three octets, upper
  case as in the J129 example `AVX9B6500`).
- The parameter request list (55) asks for 1, 3, 6, 15, 42, 51, 43 and 242 (research §9: the
  phone requests the SSON; 6/15/42 are the DNSSRVR/DOMAIN/SNTPSRVR it takes from the ACK).
  Option 60 is sent only when `vendor_class` is given: the research names none for J100 SIP
  phones [inf].
- An OFFER without option 51 is not accepted (research §9: the lease time is mandatory), nor one
  without a server identifier (54) or an address; each counts in `malformed` with a line in
  `problems`.
- DISCOVER is retransmitted after 1, 2, 4, 4 … s until `timeout` [inf: RFC 2131 §4.1 says 4, 8,
  16 … s, too slow for a lab test]; `secs` counts from the first DISCOVER. A REQUEST is sent
  twice, 2 s apart, before starting over; a NAK starts over from DISCOVER at once. Each
  acquisition uses a fresh `xid`.
- Options are read from the frame's bytes, not scapy's option list: an option split into several
  (RFC 3396, a 242 of more than 255 bytes) is joined, and unknown codes keep their bytes.
  A reply that scapy or the option walk cannot read, for the phone's MAC and xid, is counted in
  `malformed`; other traffic to port 68 (other clients, other xids) in `ignored`. `feed` never
  raises.
- With `vlan`, every frame carries an 802.1Q tag with that VLAN id (priority 5, voice [inf]) and
  only replies tagged with that VLAN are taken: the phone's voice VLAN (research §10). A
  priority tag (VID 0) counts as untagged (802.1Q).
- Replies are taken whether broadcast or unicast to the phone's MAC (the raw link sees both).
  DISCOVER/REQUEST set the broadcast flag, as a client without an IP stack address [inf].
- `renew()` is RENEWING (RFC 2131 §4.4.5): unicast to the server's MAC and identifier from the
  phone's address; `renew(rebinding=True)` is REBINDING, broadcast. A NAK drops the lease.
  `release()` unicasts a RELEASE (§4.4.6) and forgets the lease.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

__all__ = ["PARAMETER_REQUEST_LIST", "DhcpClient", "Lease", "host_name", "read_options"]

ZERO = str(ipaddress.IPv4Address(0))  # the unspecified IPv4 address (ciaddr/siaddr "none")
BROADCAST = "255.255.255.255"
PARAMETER_REQUEST_LIST = (1, 3, 6, 15, 42, 51, 43, 242)
VOICE_PRIORITY = 5
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE = 1, 2, 3, 4, 5, 6, 7
_NAMES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release"}
_OUI_LETTERS = {"00040D": "A", "001B4F": "B", "00096E": "E", "00601D": "L", "00073B": "T"}
_MAGIC = b"\x63\x82\x53\x63"
_BOOTP_FIXED = 236


def host_name(mac: str) -> str:
    """Option 12 of a J100 (research §9): `AV` + OUI letter (X for any other) + last 3 octets."""
    digits = "".join(c for c in mac if c.isalnum()).upper()
    return "AV" + _OUI_LETTERS.get(digits[:6], "X") + digits[6:]


@dataclass(frozen=True)
class Lease:
    """One DHCPACK as the phone keeps it; times are seconds after the ACK."""

    address: str
    prefixlen: int
    router: str | None
    dns: tuple[str, ...]
    domain: str | None
    server_id: str | None
    siaddr: str | None
    lease_time: int
    renew_at: float  # T1 (option 58, else half the lease)
    option_242: str | None
    option_43: bytes | None
    vlan: int | None = None
    options: dict[int, bytes] = field(default_factory=dict)
    rebind_at: float = 0.0  # T2 (option 59, else 7/8 of the lease)
    server_mac: str | None = None  # the ACK's Ethernet source, for unicast renewal
    sntp: tuple[str, ...] = ()
    bound_at: float = 0.0  # time.monotonic() when the ACK came: T1, T2 and the lease count from here

    def summary(self) -> dict[str, object]:
        """The lease for an event note (PROTOCOL §5 `dhcp-lease`)."""
        return {"ip": self.address, "prefixlen": self.prefixlen, "router": self.router, "server": self.server_id,
                "siaddr": self.siaddr, "lease": self.lease_time, "vlan": self.vlan, "dns": list(self.dns),
                "domain": self.domain, "option_242": self.option_242,
                "option_43": self.option_43.hex() if self.option_43 is not None else None}


class MalformedReply(ValueError):
    """A DHCP reply the phone cannot read."""


def read_options(raw: bytes) -> dict[int, bytes]:
    """DHCP options by code from the bytes after the magic cookie; a repeated code is joined
    (RFC 3396). MalformedReply when an option runs past the end; a missing end option is
    tolerated (some servers pad badly) [inf]."""
    options: dict[int, bytes] = {}
    at = 0
    while at < len(raw):
        code = raw[at]
        if code == 0:
            at += 1
            continue
        if code == 255:
            break
        if at + 1 >= len(raw) or at + 2 + raw[at + 1] > len(raw):
            raise MalformedReply(f"option {code} runs past the end of the message")
        length = raw[at + 1]
        options[code] = options.get(code, b"") + raw[at + 2 : at + 2 + length]
        at += 2 + length
    return options


def _text(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return text.rstrip("\0")


def _ip(value: bytes | None) -> str | None:
    return str(ipaddress.IPv4Address(value[:4])) if value is not None and len(value) >= 4 else None


def _ips(value: bytes | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(str(ipaddress.IPv4Address(value[i : i + 4])) for i in range(0, len(value) - 3, 4))


def _seconds(value: bytes | None) -> int | None:
    return struct.unpack("!I", value[:4])[0] if value is not None and len(value) >= 4 else None


@dataclass
class _Reply:
    kind: int
    yiaddr: str
    siaddr: str
    options: dict[int, bytes]
    src_mac: str


class DhcpClient:
    """One phone's DHCP exchange (module docstring); it does not own the link."""

    def __init__(self, send: Callable[[bytes], None], *, mac: str, host_name: str, vendor_class: str | None = None,
                 vlan: int | None = None) -> None:
        digits = "".join(c for c in mac if c.isalnum()).lower()
        if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError(f"{mac!r} is not a MAC address")
        if vlan is not None and not 1 <= vlan <= 4094:
            raise ValueError(f"VLAN {vlan}: not a VLAN id (1-4094)")
        self._send = send
        self._chaddr = bytes.fromhex(digits)
        self.mac = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
        self.host_name = host_name
        self.vendor_class = vendor_class
        self.vlan = vlan
        self.xid = secrets.randbits(32)
        self.lease: Lease | None = None
        self.ignored = 0  # replies to port 68 not for this exchange
        self.malformed = 0  # replies for it that could not be read or were not acceptable
        self.naks = 0
        self.problems: list[str] = []
        self.sent: list[str] = []  # message types sent, in order (evidence for tests)
        self._replies: asyncio.Queue[_Reply] = asyncio.Queue()
        self._started: float | None = None

    # -- frames ------------------------------------------------------------------------------

    def _bad(self, why: str) -> None:
        self.malformed += 1
        if len(self.problems) < 50:
            self.problems.append(why)

    def feed(self, frame: bytes, at: float) -> None:
        """Take one received frame; anything but a readable reply for this exchange is dropped."""
        payload_at = _client_port_payload(frame)
        if payload_at is None:
            return
        try:
            packet = Ether(frame)
        except Exception:  # noqa: BLE001 - scapy raises many kinds for garbage
            self.ignored += 1
            return
        if UDP not in packet:
            return
        tag = packet[Dot1Q].vlan if Dot1Q in packet else None
        if (tag or None) != self.vlan:
            return
        if BOOTP not in packet:
            self._bad("a frame to port 68 without a BOOTP message")
            return
        bootp = packet[BOOTP]
        if bootp.op != 2 or bootp.xid != self.xid or bytes(bootp.chaddr[:6]) != self._chaddr:
            self.ignored += 1
            return
        try:
            reply = self._read(packet, frame[payload_at:])
        except (MalformedReply, ValueError, struct.error) as exc:
            self._bad(f"unreadable reply: {exc}")
            return
        self._replies.put_nowait(reply)

    @staticmethod
    def _read(packet: Ether, body: bytes) -> _Reply:
        """The reply; options from the frame's own bytes (module docstring)."""
        if len(body) < _BOOTP_FIXED + 4 or body[_BOOTP_FIXED : _BOOTP_FIXED + 4] != _MAGIC:
            raise MalformedReply(f"BOOTP message of {len(body)} bytes without the DHCP magic cookie")
        options = read_options(body[_BOOTP_FIXED + 4 :])
        kind = options.get(53)
        if not kind or kind[0] not in _NAMES:
            raise MalformedReply(f"message type {kind!r}")
        return _Reply(kind[0], str(packet[BOOTP].yiaddr), str(packet[BOOTP].siaddr), options, str(packet.src))

    def _frame(self, kind: int, options: list[tuple[str, object]], *, ciaddr: str = ZERO,
               unicast_to: tuple[str, str] | None = None) -> bytes:
        """A client message; `unicast_to` = (server MAC, server IP) for RENEWING and RELEASE."""
        dst_mac, dst_ip = unicast_to or ("ff:ff:ff:ff:ff:ff", BROADCAST)
        ether = Ether(src=self.mac, dst=dst_mac)
        head = ether / Dot1Q(vlan=self.vlan, prio=VOICE_PRIORITY) if self.vlan is not None else ether
        dhcp_options: list[object] = [("message-type", kind)]
        dhcp_options += options
        if kind in (DISCOVER, REQUEST):
            dhcp_options += [("hostname", self.host_name.encode()), ("param_req_list", list(PARAMETER_REQUEST_LIST))]
            if self.vendor_class:
                dhcp_options.append(("vendor_class_id", self.vendor_class.encode()))
        dhcp_options.append("end")
        secs = 0 if self._started is None else min(int(time.monotonic() - self._started), 0xFFFF)
        packet = (head / IP(src=ciaddr, dst=dst_ip) / UDP(sport=68, dport=67)
                  / BOOTP(op=1, chaddr=self._chaddr + b"\0" * 10, xid=self.xid, secs=secs,
                          flags=0 if ciaddr != ZERO else 0x8000, ciaddr=ciaddr)
                  / DHCP(options=dhcp_options))
        self.sent.append(_NAMES[kind])
        return bytes(packet)

    def _transmit(self, frame: bytes) -> None:
        try:
            self._send(frame)
        except OSError as exc:  # the link went away: as if the frame were lost
            self.problems.append(f"send failed: {exc}")

    # -- the exchange --------------------------------------------------------------------------

    async def _wait(self, kinds: tuple[int, ...], until: float) -> _Reply | None:
        loop = asyncio.get_running_loop()
        while True:
            left = until - loop.time()
            if left <= 0:
                return None
            try:
                reply = await asyncio.wait_for(self._replies.get(), left)
            except TimeoutError:
                return None
            if reply.kind in kinds:
                return reply

    def _acceptable(self, offer: _Reply) -> bool:
        why = None
        if 51 not in offer.options:
            why = "OFFER without option 51 (lease time): not accepted (research §9)"
        elif _ip(offer.options.get(54)) is None:
            why = "OFFER without a server identifier (option 54)"
        elif offer.yiaddr == ZERO:
            why = "OFFER without an address (yiaddr 0.0.0.0)"
        if why is not None:
            self._bad(why)
        return why is None

    async def acquire(self, timeout: float) -> Lease | None:
        """DISCOVER → OFFER → REQUEST → ACK within `timeout` seconds; None without a lease."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._started = time.monotonic()
        self.xid = secrets.randbits(32)
        self._drain()
        backoff = 1.0
        while loop.time() < deadline:
            self._transmit(self._frame(DISCOVER, []))
            offer = await self._wait((OFFER,), min(deadline, loop.time() + backoff))
            backoff = min(backoff * 2, 4.0)
            if offer is None or not self._acceptable(offer):
                continue
            server = offer.options[54]
            request = self._frame(REQUEST, [("requested_addr", offer.yiaddr), ("server_id", _ip(server))])
            answer = None
            for _attempt in range(2):
                self._transmit(request)
                answer = await self._wait((ACK, NAK), min(deadline, loop.time() + 2.0))
                if answer is not None:
                    break
            if answer is None:
                continue
            if answer.kind == NAK:
                self.naks += 1
                self.xid = secrets.randbits(32)
                continue
            self.lease = self._lease(answer, offer)
            return self.lease
        return None

    def _drain(self) -> None:
        while not self._replies.empty():
            self._replies.get_nowait()

    async def renew(self, timeout: float = 4.0, *, rebinding: bool = False) -> Lease | None:
        """RENEWING (unicast to the server) or REBINDING (broadcast) for the current lease; the
        new lease, or None (no answer: the lease is kept; NAK: it is dropped)."""
        lease = self.lease
        if lease is None:
            return None
        loop = asyncio.get_running_loop()
        self._drain()
        unicast = None if rebinding or not (lease.server_mac and lease.server_id) else (lease.server_mac,
                                                                                         lease.server_id)
        self._transmit(self._frame(REQUEST, [], ciaddr=lease.address, unicast_to=unicast))
        answer = await self._wait((ACK, NAK), loop.time() + timeout)
        if answer is None:
            return None
        if answer.kind == NAK:
            self.naks += 1
            self.lease = None
            return None
        self.lease = self._lease(answer, None)
        return self.lease

    def release(self) -> None:
        """DHCPRELEASE to the server (RFC 2131 §4.4.6); the lease is forgotten."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        unicast = (lease.server_mac, lease.server_id) if lease.server_mac and lease.server_id else None
        self._transmit(self._frame(RELEASE, [("server_id", lease.server_id or ZERO)], ciaddr=lease.address,
                                   unicast_to=unicast))

    def _lease(self, ack: _Reply, offer: _Reply | None) -> Lease:
        options = dict(ack.options)
        if 51 not in options and offer is not None and 51 in offer.options:
            options[51] = offer.options[51]  # an ACK that leaves it out: the offer's lease time
        lease_time = _seconds(options.get(51)) or 0
        t1, t2 = _seconds(options.get(58)), _seconds(options.get(59))
        mask = options.get(1)
        try:
            prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{_ip(mask)}").prefixlen if mask and len(mask) == 4 else 24
        except ValueError:
            self._bad(f"subnet mask {mask!r} is not a netmask; /24 assumed")
            prefixlen = 24
        routers = _ips(options.get(3))
        domain = options.get(15)
        option_242 = options.get(242)
        return Lease(
            address=ack.yiaddr if ack.yiaddr != ZERO else (self.lease.address if self.lease else ZERO),
            prefixlen=prefixlen, router=routers[0] if routers else None, dns=_ips(options.get(6)),
            domain=_text(domain) if domain else None, server_id=_ip(options.get(54)),
            siaddr=None if ack.siaddr == ZERO else ack.siaddr, lease_time=lease_time,
            renew_at=float(t1) if t1 is not None else lease_time / 2,
            rebind_at=float(t2) if t2 is not None else lease_time * 7 / 8,
            option_242=_text(option_242) if option_242 is not None else None, option_43=options.get(43),
            vlan=self.vlan, options=options, server_mac=ack.src_mac, sntp=_ips(options.get(42)),
            bound_at=time.monotonic())


def _client_port_payload(frame: bytes) -> int | None:
    """Where the UDP payload starts in an IPv4 UDP frame to port 68, tagged or not; None for any
    other frame (a cheap look before scapy)."""
    at = 12
    while len(frame) >= at + 4 and frame[at : at + 2] in (b"\x81\x00", b"\x88\xa8"):
        at += 4
    if len(frame) < at + 2 + 20 or frame[at : at + 2] != b"\x08\x00":
        return None
    ip = at + 2
    if frame[ip + 9] != 17:
        return None
    udp = ip + (frame[ip] & 0x0F) * 4
    if len(frame) < udp + 8 or frame[udp + 2 : udp + 4] != b"\x00\x44":
        return None
    return udp + 8  # Ethernet padding after the datagram reads as pad options
