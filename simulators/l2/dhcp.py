"""The simulated phone's DHCP client (RFC 2131) on raw frames, with scapy, as a J100 asks (research §9).

    client = DhcpClient(link.send, mac="A4251B000001", host_name=host_name("A4251B000001"))
    link.open(lambda frame, outgoing, at: outgoing or client.feed(frame, at))
    lease = await client.acquire(timeout=10)     # Lease or None
    lease.option_242, lease.option_43, lease.siaddr

Decisions:
- Option 12 is `AVohhhhhh` (research §9: o from the OUI, hhhhhh the last three octets).
- The parameter request list (55) asks for 1, 3, 6, 15, 42, 51, 43 and 242; option 60 is not
  sent: the research names none for J100 SIP phones [inf].
- An OFFER without option 51 is not accepted (research §9: the lease time is mandatory).
- DISCOVER is retransmitted after 1, 2, 4 … s (capped at 4 s) until `timeout`; a NAK restarts
  from DISCOVER; replies for another xid or MAC, and frames scapy cannot read, are ignored and
  counted in `ignored`.
- With `vlan`, every frame carries an 802.1Q tag with that VLAN id (priority 5, voice) and only
  replies tagged with that VLAN are taken: the phone's voice VLAN (research §10).
- Replies are taken whether broadcast or unicast to the phone's MAC (the raw link sees both).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

ZERO = ".".join("0" * 4)  # the unspecified IPv4 address (ciaddr/siaddr "none")

__all__ = ["PARAMETER_REQUEST_LIST", "DhcpClient", "Lease", "host_name"]

PARAMETER_REQUEST_LIST = (1, 3, 6, 15, 42, 51, 43, 242)
_OUI_LETTERS = {"00040D": "A", "001B4F": "B", "00096E": "E", "00601D": "L", "00073B": "T"}
_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release"}


def host_name(mac: str) -> str:
    """Option 12 of a J100 (research §9): `AV` + OUI letter (X for any other) + last 3 octets."""
    mac = mac.replace(":", "").upper()
    return "AV" + _OUI_LETTERS.get(mac[:6], "X") + mac[6:]


@dataclass(frozen=True)
class Lease:
    address: str
    prefixlen: int
    router: str | None
    dns: tuple[str, ...]
    domain: str | None
    server_id: str | None
    siaddr: str | None
    lease_time: int
    renew_at: float  # seconds after the ACK (T1)
    option_242: str | None
    option_43: bytes | None
    vlan: int | None = None
    options: dict[int, bytes] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {"ip": self.address, "prefixlen": self.prefixlen, "router": self.router, "server": self.server_id,
                "siaddr": self.siaddr, "lease": self.lease_time, "vlan": self.vlan, "option_242": self.option_242,
                "option_43": self.option_43.hex() if self.option_43 is not None else None}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return str(value)


def _raw(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value).packed
        except ValueError:
            return value.encode()
    if isinstance(value, int):
        return value.to_bytes(4, "big")
    if isinstance(value, list | tuple):
        return b"".join(_raw(item) for item in value)
    return str(value).encode()


class DhcpClient:
    """One phone's DHCP exchange (module docstring); it does not own the link."""

    def __init__(self, send: Callable[[bytes], None], *, mac: str, host_name: str, vendor_class: str | None = None,
                 vlan: int | None = None) -> None:
        self._send = send
        self.mac = ":".join(mac.replace(":", "").lower()[i:i + 2] for i in range(0, 12, 2))
        self.host_name = host_name
        self.vendor_class = vendor_class
        self.vlan = vlan
        self.xid = secrets.randbits(32)
        self.ignored = 0
        self.sent: list[str] = []  # message types sent, in order (evidence for tests)
        self._replies: asyncio.Queue[tuple[int, Ether]] = asyncio.Queue()

    # -- frames ------------------------------------------------------------------------------

    def feed(self, frame: bytes, at: float) -> None:
        if len(frame) < 14 + 20 + 8 + 240:
            return
        try:
            packet = Ether(frame)
        except Exception:  # scapy raises many kinds for garbage  # noqa: BLE001
            self.ignored += 1
            return
        if BOOTP not in packet or UDP not in packet or packet[UDP].dport != 68:
            return
        tag = packet[Dot1Q].vlan if Dot1Q in packet else None
        if tag != self.vlan:
            return
        bootp = packet[BOOTP]
        own = bytes.fromhex(self.mac.replace(":", ""))
        if bootp.op != 2 or bootp.xid != self.xid or bytes(bootp.chaddr[:6]) != own:
            self.ignored += 1
            return
        kind = self._type(packet)
        if kind is None:
            self.ignored += 1
            return
        self._replies.put_nowait((kind, packet))

    @staticmethod
    def _type(packet: Ether) -> int | None:
        if DHCP not in packet:
            return None
        for option in packet[DHCP].options:
            if isinstance(option, tuple) and option[0] == "message-type":
                value = option[1]
                return int(value) if isinstance(value, int) else None
        return None

    def _frame(self, kind: str, options: list[tuple[str, object]], ciaddr: str = ZERO) -> bytes:
        ether = Ether(src=self.mac, dst="ff:ff:ff:ff:ff:ff")
        head = ether / Dot1Q(vlan=self.vlan, prio=5) if self.vlan is not None else ether
        dhcp_options: list[object] = [("message-type", kind), ("hostname", self.host_name.encode()),
                                      ("param_req_list", list(PARAMETER_REQUEST_LIST))]
        if self.vendor_class:
            dhcp_options.append(("vendor_class_id", self.vendor_class.encode()))
        dhcp_options += options
        dhcp_options.append("end")
        packet = (head / IP(src=ZERO, dst="255.255.255.255") / UDP(sport=68, dport=67)
                  / BOOTP(op=1, chaddr=bytes.fromhex(self.mac.replace(":", "")) + b"\0" * 10, xid=self.xid,
                          flags=0x8000, ciaddr=ciaddr)
                  / DHCP(options=dhcp_options))
        self.sent.append(kind)
        return bytes(packet)

    # -- the exchange --------------------------------------------------------------------------

    async def _wait(self, kinds: tuple[int, ...], until: float) -> tuple[int, Ether] | None:
        loop = asyncio.get_running_loop()
        while True:
            left = until - loop.time()
            if left <= 0:
                return None
            try:
                kind, packet = await asyncio.wait_for(self._replies.get(), left)
            except TimeoutError:
                return None
            if kind in kinds:
                return kind, packet

    async def acquire(self, timeout: float) -> Lease | None:
        """DISCOVER → OFFER → REQUEST → ACK within `timeout` seconds; None without a lease."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = 1.0
        while loop.time() < deadline:
            self._send(self._frame("discover", []))
            got = await self._wait((2,), min(deadline, loop.time() + backoff))
            backoff = min(backoff * 2, 4.0)
            if got is None:
                continue
            offer = got[1]
            if self._option(offer, "lease_time") is None:
                self.ignored += 1  # research §9: an OFFER without option 51 is not accepted
                continue
            server_id = self._option(offer, "server_id")
            self._send(self._frame("request", [("requested_addr", offer[BOOTP].yiaddr),
                                               ("server_id", server_id)]))
            answer = await self._wait((5, 6), min(deadline, loop.time() + 4.0))
            if answer is None or answer[0] == 6:
                continue
            return self._lease(answer[1])
        return None

    async def renew(self, lease: Lease, timeout: float = 4.0) -> Lease | None:
        """RENEWING at T1: a REQUEST for the leased address (broadcast frame, ciaddr set)."""
        loop = asyncio.get_running_loop()
        self._send(self._frame("request", [], ciaddr=lease.address))
        answer = await self._wait((5, 6), loop.time() + timeout)
        if answer is None or answer[0] == 6:
            return None
        return self._lease(answer[1])

    def release(self, lease: Lease) -> None:
        self._send(self._frame("release", [("server_id", lease.server_id or ZERO)], ciaddr=lease.address))

    @staticmethod
    def _option(packet: Ether, name: str) -> object | None:
        for option in packet[DHCP].options:
            if isinstance(option, tuple) and option[0] == name:
                return option[1] if len(option) == 2 else list(option[1:])
        return None

    def _lease(self, packet: Ether) -> Lease:
        options: dict[int, bytes] = {}
        names = {"subnet_mask": 1, "router": 3, "name_server": 6, "domain": 15, "lease_time": 51,
                 "server_id": 54, "renewal_time": 58}
        for option in packet[DHCP].options:
            if not isinstance(option, tuple):
                continue
            key, values = option[0], option[1:]
            code = key if isinstance(key, int) else names.get(str(key))
            if code is None:
                from scapy.layers.dhcp import DHCPRevOptions

                code = DHCPRevOptions.get(str(key), (None,))[0]
            if isinstance(code, int):
                options[code] = _raw(values[0] if len(values) == 1 else list(values))
        mask = self._option(packet, "subnet_mask")
        prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen if isinstance(mask, str) else 24
        router = self._option(packet, "router")
        dns = self._option(packet, "name_server")
        raw_time = self._option(packet, "lease_time")
        lease_time = raw_time if isinstance(raw_time, int) else 0
        t1 = self._option(packet, "renewal_time")
        siaddr = str(packet[BOOTP].siaddr)
        option_242 = options.get(242)
        return Lease(
            address=str(packet[BOOTP].yiaddr), prefixlen=prefixlen,
            router=str(router[0]) if isinstance(router, list) else (str(router) if router else None),
            dns=tuple(str(d) for d in (dns if isinstance(dns, list) else [dns])) if dns else (),
            domain=_text(self._option(packet, "domain")).rstrip("\0") if self._option(packet, "domain") else None,
            server_id=str(self._option(packet, "server_id") or "") or None,
            siaddr=None if siaddr == ZERO else siaddr,
            lease_time=lease_time, renew_at=float(t1) if isinstance(t1, int) else lease_time / 2,
            option_242=_text(option_242).rstrip("\0") if option_242 is not None else None,
            option_43=options.get(43), vlan=self.vlan, options=options)
