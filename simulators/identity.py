"""Who a simulated phone is: model, firmware, MAC, serial (PROTOCOL §1) — nothing else.

Kept tiny (`__slots__`, no validation beyond the MAC's canonical form) because a fleet holds
100,000 of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PhoneIdentity", "canonical_mac"]

_SEPARATORS = re.compile(r"[:.\-]")
_MAC = re.compile(r"[0-9A-F]{12}")


def canonical_mac(mac: str) -> str:
    """PROTOCOL §1: 12 upper-case hex digits; `:`, `-`, `.` and lower case are normalised.

    Raises ValueError for anything else.
    """
    text = _SEPARATORS.sub("", mac).upper()
    if not _MAC.fullmatch(text):
        raise ValueError(f"not a MAC address: {mac!r} (PROTOCOL §1: 12 hex digits)")
    return text


@dataclass(frozen=True, slots=True)
class PhoneIdentity:
    """A phone's identity as it leaves the factory. `model` is the firmware catalog's name
    (`J179`, `K175-HW3`, `CU360`); `firmware` the version it runs when first booted; `mac`
    canonical (12 upper-case hex); `hwvers` overrides the model's default `$HWVERS`."""

    model: str
    firmware: str
    mac: str
    serial: str
    hwvers: str | None = None

    def __post_init__(self) -> None:
        if not _MAC.fullmatch(self.mac):
            object.__setattr__(self, "mac", canonical_mac(self.mac))
