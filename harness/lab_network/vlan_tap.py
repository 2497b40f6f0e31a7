"""An 802.1Q sub-interface in userspace, for kernels built without 802.1Q (CONFIG_VLAN_8021Q): a TAP
device `TRUNK.VID` and a relay thread between it and the trunk, so that a daemon we did not write
(dnsmasq) can bind to a VLAN as it would to a kernel VLAN interface.

    with SoftwareVlan("br0", 212, netns="enrollab-t1-lab") as vlan:   # br0.212, up, MAC of br0
        ...                                   # ip addr add 10.213.212.1/24 dev br0.212; dnsmasq on it
    vlan.to_tap, vlan.to_trunk, vlan.dropped  # frames relayed each way, frames the trunk refused

Decisions:
- Trunk → TAP: frames with VID `vid` on the trunk (AF_PACKET, ETH_P_ALL) lose their tag and are
  written to the TAP. The kernel usually takes a received tag out of the frame into the packet's
  metadata (VLAN offload, also on veth and bridges), so the tag is read from PACKET_AUXDATA, as
  `simulators.l2.rawlink` does; a tag still in the frame is taken out of it. Only TPID 0x8100 is
  802.1Q (0x88a8 is 802.1ad, for which a kernel 802.1Q interface does not answer either); an inner
  tag stays in the frame. Other frames, untagged ones included, are left to the kernel, and frames
  the host sends on the trunk itself (PACKET_OUTGOING, our own relayed ones among them) are skipped.
- TAP → trunk: every frame the kernel sends on the TAP gets the tag (PCP `priority`, default 0 as a
  kernel VLAN interface without an egress map) and is sent on the trunk. AF_PACKET lets a tagged
  frame be 4 bytes over the trunk's MTU, so the TAP takes the trunk's MTU. A frame the trunk
  cannot take now (socket buffer full) is dropped and counted, as a full queue would drop it.
- The TAP takes the trunk's MAC, as a kernel VLAN interface does, and the trunk socket adds it to
  the trunk's unicast filter (PACKET_MR_UNICAST), so frames to it keep arriving if the trunk's own
  address changes later (a bridge's does when ports come and go); a bridge has no unicast filter
  and goes promiscuous for it, as it would for a kernel VLAN interface with another MAC.
- The TAP is made with TUNSETIFF on /dev/net/tun opened inside the namespace, not persistent: it
  goes when the relay closes its descriptor. The descriptor holds its namespace: `ip netns del`
  while it is open only takes the name away, so `LabTopology.close` closes the relay first. The
  descriptors carry their namespace, so the relay thread itself never enters one; one thread,
  poll(2) on the trunk, the TAP and a wake-up pipe.
- Limits: every frame crosses to userspace and back, of the order of 10^4 frames a second
  (20,000 1 kB frames in 0.7 s without loss on the machine it was written on; a burst past the
  trunk socket's 1 MiB buffer is lost, uncounted, as on a busy link): enough for DHCP, ARP and a
  provisioning download, not for a throughput test. Only the VIDs made here exist; no QinQ, no
  egress priority map, no offloads.

Needs root (CAP_NET_ADMIN) and /dev/net/tun; `software_vlan_support(netns)` says why not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import threading
from pathlib import Path

from simulators.l2.netns import entered, socket_in

__all__ = ["SoftwareVlan", "software_vlan_support", "strip_tag", "tap_name"]

TUN_DEVICE = Path("/dev/net/tun")
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_UP = 0x0001
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCGIFMTU, SIOCSIFMTU = 0x8921, 0x8922
SIOCGIFINDEX = 0x8933
SIOCSIFHWADDR, SIOCGIFHWADDR = 0x8924, 0x8927
ARPHRD_ETHER = 1
IFNAMSIZ = 16  # with the terminating NUL: 15 characters

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_UNICAST = 3
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_MREQ = struct.Struct("iHH8s")  # struct packet_mreq
_IFREQ = 40  # sizeof(struct ifreq)
MAX_FRAME = 65536
BURST = 64  # frames read from one side before the other is looked at again
RCVBUF = 1 << 20  # for bursts while the thread waits its turn
SO_RCVBUFFORCE = 33


def tap_name(trunk: str, vid: int) -> str:
    """`TRUNK.VID`, the trunk's name shortened to fit IFNAMSIZ (15 characters) when it must."""
    suffix = f".{vid}"
    return trunk[: IFNAMSIZ - 1 - len(suffix)] + suffix


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ:
        raise ValueError(f"{name!r} is not an interface name (1-15 characters)")
    return (raw.ljust(IFNAMSIZ, b"\0") + payload).ljust(_IFREQ, b"\0")


def _open_tap(name: str, netns: str | None) -> int:
    """A non-persistent TAP `name` in `netns`, without packet information; its descriptor."""
    with entered(netns):
        fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, struct.pack("H", IFF_TAP | IFF_NO_PI)))
        except BaseException:
            os.close(fd)
            raise
    return fd


def software_vlan_support(netns: str | None) -> str | None:
    """None when a software 802.1Q interface can be made in `netns` (a TAP there), else why not."""
    if not TUN_DEVICE.exists():
        return f"no {TUN_DEVICE} for a software 802.1Q interface (CONFIG_TUN; modprobe tun)"
    try:
        os.close(_open_tap("vlantapprobe", netns))
    except OSError as exc:
        return f"no TAP device can be made in {netns or 'this namespace'} for a software 802.1Q interface ({exc})"
    return None


def strip_tag(data: bytes, ancdata: list[tuple[int, int, bytes]], vid: int) -> bytes | None:
    """The frame without its tag when its (outer) tag is 802.1Q with VLAN id `vid`, else None: the
    tag from PACKET_AUXDATA in `ancdata` (the kernel took it out), else the one in the frame."""
    for level, kind, payload in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= _AUX.size:
            status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(payload)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else ETH_P_8021Q
                return data if tpid == ETH_P_8021Q and tci & 0x0FFF == vid else None
    if len(data) >= 18 and data[12:14] == b"\x81\x00":
        tci = struct.unpack_from("!H", data, 14)[0]
        return data[:12] + data[16:] if tci & 0x0FFF == vid else None
    return None


class SoftwareVlan:
    """An 802.1Q sub-interface `name` of `trunk` in `netns`, kept by a relay thread (module
    docstring). `open()` makes it (up, no address); `close()` stops the relay and removes it."""

    def __init__(self, trunk: str, vid: int, *, netns: str | None = None, name: str | None = None,
                 priority: int = 0) -> None:
        if not 1 <= vid <= 4094:
            raise ValueError(f"VLAN id {vid} is not 1-4094")
        if not 0 <= priority <= 7:
            raise ValueError(f"802.1p priority {priority} is not 0-7")
        self.trunk = trunk
        self.vid = vid
        self.netns = netns
        self.name = name or tap_name(trunk, vid)
        self.priority = priority
        self.mac = ""
        self.to_tap = 0
        self.to_trunk = 0
        self.dropped = 0
        self.error: OSError | None = None  # what stopped the relay early, if anything
        self._tag = struct.pack("!HH", ETH_P_8021Q, priority << 13 | vid)
        self._tap: int | None = None
        self._sock: socket.socket | None = None
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> SoftwareVlan:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already open")
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        control = socket_in(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            hwaddr = fcntl.ioctl(control, SIOCGIFHWADDR, _ifreq(self.trunk))
            mac = hwaddr[IFNAMSIZ + 2 : IFNAMSIZ + 8]
            mtu = struct.unpack_from("i", fcntl.ioctl(control, SIOCGIFMTU, _ifreq(self.trunk)), IFNAMSIZ)[0]
            index = struct.unpack_from("i", fcntl.ioctl(control, SIOCGIFINDEX, _ifreq(self.trunk)), IFNAMSIZ)[0]
            self._sock = self._trunk_socket(index, mac)
            self._tap = _open_tap(self.name, self.netns)
            fcntl.ioctl(self._tap, SIOCSIFHWADDR, _ifreq(self.name, struct.pack("H", ARPHRD_ETHER) + mac))
            fcntl.ioctl(control, SIOCSIFMTU, _ifreq(self.name, struct.pack("i", mtu)))
            flags = struct.unpack_from("H", fcntl.ioctl(control, SIOCGIFFLAGS, _ifreq(self.name)), IFNAMSIZ)[0]
            fcntl.ioctl(control, SIOCSIFFLAGS, _ifreq(self.name, struct.pack("H", flags | IFF_UP)))
        finally:
            control.close()
        self.mac = ":".join(f"{b:02x}" for b in mac)
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._relay, name=f"vlan-tap-{self.name}", daemon=True)
        self._thread.start()

    def _trunk_socket(self, index: int, mac: bytes) -> socket.socket:
        sock = socket_in(self.netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:  # root may exceed net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((self.trunk, ETH_P_ALL))
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(index, PACKET_MR_UNICAST, 6, mac))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _relay(self) -> None:
        sock, tap, wake = self._sock, self._tap, self._wake
        assert sock is not None and tap is not None and wake is not None
        poller = select.poll()
        for fd in (sock.fileno(), tap, wake[0]):
            poller.register(fd, select.POLLIN)
        try:
            while True:
                for fd, _events in poller.poll():
                    if fd == wake[0]:
                        return
                    if fd == tap:
                        self._from_tap(sock, tap)
                    else:
                        self._from_trunk(sock, tap)
        except OSError as exc:
            self.error = exc

    def _from_trunk(self, sock: socket.socket, tap: int) -> None:
        for _ in range(BURST):
            try:
                data, ancdata, _flags, address = sock.recvmsg(MAX_FRAME, socket.CMSG_SPACE(_AUX.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:  # the trunk went down; frames come again when it is up
                    return
                raise
            if len(address) > 2 and address[2] == PACKET_OUTGOING:
                continue
            frame = strip_tag(data, ancdata, self.vid)
            if frame is not None:
                try:
                    os.write(tap, frame)
                except (BlockingIOError, InterruptedError):
                    self.dropped += 1
                    continue
                self.to_tap += 1

    def _from_tap(self, sock: socket.socket, tap: int) -> None:
        for _ in range(BURST):
            try:
                frame = os.read(tap, MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            if len(frame) < 14:
                continue
            try:
                sock.send(frame[:12] + self._tag + frame[12:])
            except (BlockingIOError, InterruptedError):
                self.dropped += 1
                continue
            except OSError as exc:
                if exc.errno not in (errno.ENETDOWN, errno.ENOBUFS, errno.EMSGSIZE):
                    raise
                self.dropped += 1
                continue
            self.to_trunk += 1

    def close(self) -> None:
        """Stop the relay and remove the TAP (its descriptor closed); never raises, may be repeated."""
        thread, self._thread = self._thread, None
        wake, self._wake = self._wake, None
        if thread is not None and wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake[1], b"x")
            thread.join(timeout=5)
        if wake is not None:
            for fd in wake:
                with contextlib.suppress(OSError):
                    os.close(fd)
        tap, self._tap = self._tap, None
        if tap is not None:
            with contextlib.suppress(OSError):
                os.close(tap)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> SoftwareVlan:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

