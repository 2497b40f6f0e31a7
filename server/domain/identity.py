"""Device identities and firmware versions (PROTOCOL §1).

Decisions (the guide and PROTOCOL.md leave these open):
- MAC: one separator kind per address, in the usual groupings only (`AA:BB:..` / `AA-BB-..` in
  pairs, `AABB.CCDD.EEFF` in fours, or none); surrounding white space is refused like any other
  character here (API input); import files are the exception: `imports.normalise_row` trims
  cells first, because spreadsheets pad them.
- Version: lives in `fixtures.versions` (its decisions are documented there), because the
  simulators need it too and fixtures is the base both build on; re-exported here so server
  code keeps importing it from `server.domain.identity`. `parse_version` here raises the
  server's `invalid-version` `DomainError`; `Version.parse` is the fixtures one and raises
  `fixtures.versions.VersionError` (a `ValueError` with the same id).
- Serial: 1-64 ASCII letters, digits and `-`, starting with a letter or digit; kept as given.
  Real serials are letters and digits (`21WZ51234567`); the set is what is safe everywhere a
  serial goes: the `$SERIALNO` of a provisioning URL path (PRF-2: no `/`, `?`, `#`, `%`), the
  factory certificate's `serialNumber` (a PrintableString), CSV cells and file names.
"""

from __future__ import annotations

import re

from fixtures.versions import Version, VersionError
from fixtures.versions import parse_version as _parse_version
from server.domain.errors import invalid

__all__ = ["Version", "normalize_mac", "parse_version", "validate_serial"]

_MAC_FORMS = (
    re.compile(r"[0-9A-Fa-f]{12}"),
    re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}"),
    re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}"),
    re.compile(r"[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2}){5}"),
    re.compile(r"[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}"),
)

_CANONICAL = re.compile(r"[0-9A-F]{12}")


def normalize_mac(s: object) -> str:
    """PROTOCOL §1: return the canonical MAC (12 upper-case hex digits, no separators).

    Accepts `:`, `-` or `.` separators and lower case; anything else is `invalid-mac`.
    """
    if isinstance(s, str) and _CANONICAL.fullmatch(s):
        return s  # already canonical (the hot path normalises the same MAC several times)
    if not isinstance(s, str) or not any(form.fullmatch(s) for form in _MAC_FORMS):
        raise invalid(
            "invalid-mac",
            "A MAC address is 12 hex digits, optionally separated by ':', '-' or '.' (e.g. A4:25:1B:0C:3D:5E).",
            value=s,
        )
    return re.sub(r"[:.\-]", "", s).upper()


SERIAL_PATTERN = "^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"  # also in fixtures/schemas/device-import.schema.json
_SERIAL = re.compile(SERIAL_PATTERN.strip("^$"))


def validate_serial(s: object) -> str:
    """DEV-1: a device serial number is 1-64 ASCII letters, digits and '-', not starting with '-'."""
    if not isinstance(s, str) or not _SERIAL.fullmatch(s):
        raise invalid(
            "invalid-serial",
            "A serial number is 1 to 64 ASCII letters, digits and '-', starting with a letter or digit.",
            value=s,
        )
    return s


def parse_version(s: object) -> Version:
    """PROTOCOL §1: parse a firmware version such as `4.0.10`, `4.0.6.1.9` or `1.1SP1`.

    The parsing lives in `fixtures.versions` (shared with the simulators); here its
    `VersionError` becomes the `invalid-version` `DomainError` the API answers with 422.
    """
    try:
        return _parse_version(s)
    except VersionError as exc:
        raise invalid(exc.error, exc.detail, value=exc.value) from exc
