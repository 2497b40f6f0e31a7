"""Customer sites: PIN, name, chosen profile entry, firmware setting per model (SIT-1, SIT-3).

Decisions:
- A PIN is a string of exactly 4 ASCII digits (as an integer, 0042 would lose its zeros);
  null means "no PIN" (the site then has no PEC).
- Firmware setting (SIT-3): `same-as-account` (default), `latest`, `off`, or a version that is
  among the model's last N releases (N per model, default 5) and not below the model's
  minimum (a release that cannot enroll is never worth choosing). The account-level setting
  (the guide's Firmware Management tab) has the same choices except `same-as-account`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from server.domain import confusables
from server.domain.errors import DomainError, invalid
from server.domain.identity import Version, parse_version

if TYPE_CHECKING:  # firmware.py imports this module; the catalog is only a type here
    from server.domain.firmware import Catalog


def validate_pin(pin: object) -> str | None:
    """SIT-1: an optional PIN is exactly 4 digits, 0000-9999; None means no PIN (`invalid-pin`)."""
    if pin is None:
        return None
    if not isinstance(pin, str) or not re.fullmatch(r"[0-9]{4}", pin):
        raise invalid(
            "invalid-pin",
            "A PIN is exactly 4 digits from 0000 to 9999, written as a string; use null for no PIN (SIT-1).",
            value=pin,
        )
    return pin


_NAME_MAX = 128


def validate_site_name(name: object) -> str:
    """SIT-1: a site name is 1-128 characters after trimming, without control characters."""
    if not isinstance(name, str) or not name.strip():
        raise invalid("invalid-site-name", "The site name must be a non-empty string.", value=name)
    trimmed = name.strip()
    if len(trimmed) > _NAME_MAX:
        raise invalid(
            "invalid-site-name",
            f"The site name is {len(trimmed)} characters long; the limit is {_NAME_MAX}.",
            value=name,
        )
    if re.search(r"[\x00-\x1f\x7f]", trimmed):
        raise invalid("invalid-site-name", "The site name contains a control character.", value=name)
    return confusables.check_name(trimmed, "site")


def validate_entry_index(index: object, entry_count: int) -> int:
    """SIT-1: the site uses one entry of its profile, by index (default 0)."""
    if index is None:
        index = 0
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < entry_count:
        raise invalid(
            "invalid-profile-entry",
            f"The profile has {entry_count} entries; choose an index from 0 to {entry_count - 1}.",
            value=index,
        )
    return index


class FirmwareChoice(StrEnum):
    SAME_AS_ACCOUNT = "same-as-account"
    LATEST = "latest"
    OFF = "off"
    VERSION = "version"


@dataclass(frozen=True)
class FirmwareSetting:
    """SIT-3: a site's (or account's) firmware choice for one model."""

    choice: FirmwareChoice
    version: Version | None = None

    def __str__(self) -> str:
        return str(self.version) if self.choice is FirmwareChoice.VERSION else self.choice.value


DEFAULT_FIRMWARE_SETTING = FirmwareSetting(FirmwareChoice.SAME_AS_ACCOUNT)


def parse_firmware_setting(setting: object) -> FirmwareSetting:
    """SIT-3: the syntax of a setting: `same-as-account` (also None), `latest`, `off` or a version."""
    if setting is None:
        return DEFAULT_FIRMWARE_SETTING
    if isinstance(setting, FirmwareSetting):
        return setting
    if isinstance(setting, str) and setting in {c.value for c in FirmwareChoice} - {"version"}:
        return FirmwareSetting(FirmwareChoice(setting))
    try:
        return FirmwareSetting(FirmwareChoice.VERSION, parse_version(setting))
    except DomainError:
        raise invalid(
            "invalid-firmware-setting",
            "The firmware setting must be same-as-account, latest, off or a release version (SIT-3).",
            value=setting,
        ) from None


def validate_firmware_setting(
    setting: object, model: str, catalog: Catalog, *, account_level: bool = False
) -> FirmwareSetting:
    """SIT-3: a setting for `model`; a specific version must be among the model's last N
    releases (`firmware-not-offered`) and not below its minimum (`firmware-below-minimum`).
    At account level `same-as-account` does not exist."""
    parsed = parse_firmware_setting(setting)
    if account_level and parsed.choice is FirmwareChoice.SAME_AS_ACCOUNT:
        raise invalid(
            "invalid-firmware-setting",
            "An account-level firmware setting is latest, off or a release version (SIT-3).",
            value=setting,
        )
    info = catalog.model(model)
    if parsed.version is None:
        return parsed
    offered = catalog.last_n_releases(model)
    if parsed.version not in offered:
        raise invalid(
            "firmware-not-offered",
            f"{parsed.version} is not among the last {info.last_n} releases of {info.name} ("
            + ", ".join(str(v) for v in offered)
            + ") (SIT-3).",
            value=str(parsed.version),
        )
    if parsed.version < info.minimum:
        raise invalid(
            "firmware-below-minimum",
            f"{parsed.version} is below {info.minimum}, the minimum version {info.name} needs to enroll (FW-1).",
            value=str(parsed.version),
        )
    # The catalog's spelling ("4.0.6.0", not "4.0.6") is what the firmware store knows.
    return FirmwareSetting(FirmwareChoice.VERSION, offered[offered.index(parsed.version)])
