"""Every frame on one interface into a pcap file, the lab network's record of what the phones and
the harness said to each other (read back by `evidence.read_evidence`, or by tcpdump/Wireshark).

    async with Capture("br0", Path("network.pcap"), netns="enrollab-t1-lab") as cap:
        ...
    cap.packets                     # frames written

Decisions:
- The classic pcap format (magic a1b2c3d4, version 2.4, microsecond stamps, LINKTYPE_ETHERNET 1,
  snap length 262144), written by this module: a 24-byte file header, then a 16-byte record
  header per frame. The file is flushed after every frame, so a crashed run still leaves a file
  every reader opens (at worst without the frame being written) [inf].
- Frames in both directions are kept (the harness's own replies are evidence too), with the
  802.1Q tag the kernel had taken out put back (`simulators.l2.rawlink`), as tcpdump shows them.
- The file is created at `start()` (parent directories too) and replaced if it exists.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import IO, Any

__all__ = ["LINKTYPE_ETHERNET", "Capture", "PcapWriter", "read_pcap"]

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """A pcap file written frame by frame, flushed after each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = path.open("wb")
        self._file.write(_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self._file.flush()

    def write(self, frame: bytes, at: float) -> None:
        if self._file is None:
            return
        seconds = int(at)
        micros = min(999_999, int(round((at - seconds) * 1_000_000)))
        data = frame[:SNAPLEN]
        self._file.write(_RECORD.pack(seconds, micros, len(data), len(frame)) + data)
        self._file.flush()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(time, frame) of each record of a classic pcap file (either byte order, µs or ns stamps);
    a truncated last record is left out."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic_le = struct.unpack_from("<I", data)[0]
    order = "<" if magic_le in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    magic = struct.unpack_from(order + "I", data)[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a pcap file (magic {data[:4].hex()})")
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    out: list[tuple[float, bytes]] = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, incl, _orig = struct.unpack_from(order + "IIII", data, offset)
        offset += 16
        if offset + incl > len(data):
            break
        out.append((seconds + fraction * scale, data[offset : offset + incl]))
        offset += incl
    return out


class Capture:
    """A packet capture of `interface` (in `netns`) into `path` (module docstring)."""

    def __init__(self, interface: str, path: Path, *, netns: str | None = None) -> None:
        self.interface = interface
        self.path = Path(path)
        self.netns = netns
        self.packets = 0
        self._writer: PcapWriter | None = None
        self._link: Any = None

    async def start(self) -> Capture:
        from simulators.l2.rawlink import RawLink

        link = RawLink(self.interface, netns=self.netns)
        self._writer = PcapWriter(self.path)
        try:
            link.open(self._on_frame)
        except BaseException:
            self._writer.close()
            raise
        self._link = link
        return self

    def _on_frame(self, frame: bytes, _outgoing: bool, at: float) -> None:
        if self._writer is not None:
            self._writer.write(frame, at)
            self.packets += 1

    async def stop(self) -> None:
        await asyncio.sleep(0.05)  # frames already queued on the socket are read first
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def __aenter__(self) -> Capture:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
