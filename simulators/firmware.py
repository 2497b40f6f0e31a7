"""Firmware on a simulated phone (FW-2, FW-4, FW-6): check the instruction, download the image,
verify its SHA-256, and how long the reboot takes.

Decisions:
- An image is installed only where the firmware running now supports "Firmware upgrade"
  (Appendix A); otherwise a `firmware` object is ignored (in a redirect) or the upgrade fails
  with `firmware-upgrade-not-supported` (an `upgrade` answer the server should not have sent).
- The image comes from the URL the answer names, over the same mutual TLS as enrollment. Its
  SHA-256 (lower-case hex, compared ignoring case) must match, else `firmware-checksum-mismatch`
  and the phone keeps its version. A download that fails is `firmware-download-failed`.
- The reboot takes `REBOOT_SECONDS` on the phone's clock. Whether discovery runs again
  afterwards is "Re-trigger after firmware upgrade" at the NEW version (FW-6).
- At most `MAX_UPGRADES` upgrades per boot; a server that keeps sending one ends in
  `upgrade-failed` / `upgrade-loop`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_UPGRADES", "REBOOT_SECONDS", "FirmwareInstruction", "corrupt", "verify"]

REBOOT_SECONDS = 90.0
MAX_UPGRADES = 3


@dataclass(frozen=True, slots=True)
class FirmwareInstruction:
    """PROTOCOL §2's `firmware` object: {`version`, `url`, `sha256`}."""

    version: str
    url: str
    sha256: str

    @classmethod
    def parse(cls, value: Any) -> FirmwareInstruction | None:
        if not isinstance(value, Mapping):
            return None
        version, url, sha256 = value.get("version"), value.get("url"), value.get("sha256")
        if not all(isinstance(v, str) and v for v in (version, url, sha256)):
            return None
        return cls(str(version), str(url), str(sha256))


def verify(image: bytes, sha256: str) -> bool:
    return hashlib.sha256(image).hexdigest() == sha256.strip().lower()


def corrupt(image: bytes) -> bytes:
    """The fault knob `corrupt_firmware`: one flipped bit, as a bad transfer would leave it."""
    if not image:
        return b"\x00"
    return bytes([image[0] ^ 0x01]) + image[1:]
