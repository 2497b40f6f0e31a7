"""Whole Ethernet frames on one interface (AF_PACKET, ETH_P_ALL), for a simulated phone's DHCP
client and LLDP agent and the lab network's responder, advertiser and capture, optionally
inside a named network namespace.

    link = RawLink("br0", netns="enrollab-t1-lab")
    link.open(on_frame)              # on_frame(frame: bytes, outgoing: bool, at: float), from the event loop
    link.send(frame)
    link.close()

Decisions:
- The kernel takes a received 802.1Q tag out of the frame into the packet's metadata (VLAN
  offload, also on veth and bridges), so a plain `recv` loses it. The link asks for
  PACKET_AUXDATA and puts the tag back into the frame (TPID from the metadata, else 0x8100),
  as libpcap does: callers always see the frame as it was on the wire [inf].
- Frames this host sends on the interface come back as PACKET_OUTGOING; `outgoing` says so
  (the capture keeps them, the responder and advertiser skip them).
- Shared by the simulated phones (`simulators.l2`) and the harness's lab network services;
  asyncio through `loop.add_reader` (3.11's loop has no `sock_recvmsg`).
- `interface_mac` / `interface_ipv4` read `ip -j` output inside the namespace.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any

from simulators.l2.netns import socket_in

__all__ = ["ETH_P_ALL", "RawLink", "interface_ipv4", "interface_mac"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata

FrameHandler = Callable[[bytes, bool, float], None]


def _ip_json(*args: str, netns: str | None) -> list[dict[str, Any]]:
    command = ["ip", *(["-n", netns] if netns else []), "-j", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise OSError(f"{' '.join(command)}: {done.stderr.strip()}")
    data = json.loads(done.stdout or "[]")
    return data if isinstance(data, list) else []


def interface_mac(interface: str, netns: str | None = None) -> str:
    """The interface's MAC, lower case with colons."""
    for link in _ip_json("link", "show", interface, netns=netns):
        address = link.get("address")
        if isinstance(address, str):
            return address.lower()
    raise OSError(f"interface {interface!r} has no MAC address")


def interface_ipv4(interface: str, netns: str | None = None) -> str | None:
    """The interface's first IPv4 address, or None."""
    for link in _ip_json("addr", "show", interface, netns=netns):
        for info in link.get("addr_info") or []:
            if isinstance(info, dict) and info.get("family") == "inet":
                return str(info.get("local"))
    return None


class RawLink:
    """One AF_PACKET socket bound to `interface` (in `netns`), read from the event loop."""

    def __init__(self, interface: str, *, netns: str | None = None) -> None:
        self.interface = interface
        self.netns = netns
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, on_frame: FrameHandler | None = None) -> None:
        sock = socket_in(self.netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.bind((self.interface, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        if on_frame is not None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(sock.fileno(), self._drain, on_frame)

    def _drain(self, on_frame: FrameHandler) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):
            try:
                data, ancdata, _flags, address = sock.recvmsg(65535, socket.CMSG_SPACE(_AUX.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            outgoing = len(address) > 2 and address[2] == PACKET_OUTGOING
            on_frame(_with_tag(data, ancdata), outgoing, time.time())

    def send(self, frame: bytes) -> None:
        if self._sock is None:
            raise OSError("the link is not open")
        self._sock.send(frame)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._loop = None


def _with_tag(data: bytes, ancdata: list[tuple[int, int, bytes]]) -> bytes:
    """The frame with the 802.1Q tag the kernel took out put back after the MAC addresses."""
    for level, kind, payload in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= _AUX.size:
            status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(payload)
            if status & TP_STATUS_VLAN_VALID and len(data) >= 12:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data
