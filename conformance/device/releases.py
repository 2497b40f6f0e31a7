"""Which firmware version the device suite tells a device to install (FW-2, FW-6, SIT-3): catalog
releases of the device's model, chosen so the test sees what it is about.

Decisions:
- `latest_or_same`: the catalog's latest release, or the device's own version when it runs the
  latest already (a re-install: the instruction, download and check are the same).
- `keeping(…)`: the newest release, not older than the device's, at which each named feature is
  supported exactly as at the device's own version. A re-trigger test must watch the behaviour
  of the version the lab declares, so the upgrade may not add or drop "Re-trigger after firmware
  upgrade" (whether discovery runs again is decided by the version installed, FW-6).
- `other_than_current`: a release different from the device's (latest, else the one below): a
  device that refuses an image must visibly stay on its version.
- `selected_previous`: the newest release below the latest that is not the device's own (what a
  firmware manager's "any of the previous versions" picks, SIT-3) — never the latest itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import fixtures
from fixtures.features import FeatureMatrix
from fixtures.versions import parse_version

__all__ = ["keeping", "latest_or_same", "other_than_current", "releases", "selected_previous"]


def releases(model: str) -> list[str]:
    """The model's catalog releases, oldest first."""
    raw = fixtures.load_json("firmware-catalog.json")["models"][model]["releases"]
    return sorted(raw, key=parse_version)


def latest_or_same(model: str, firmware: str) -> str:
    latest = releases(model)[-1]
    return latest if parse_version(latest) > parse_version(firmware) else firmware


def keeping(model: str, firmware: str, features: Sequence[str]) -> str:
    matrix = FeatureMatrix.load()
    current = parse_version(firmware)
    wanted = [matrix.supports(model, firmware, f) for f in features]
    for release in reversed(releases(model)):
        if parse_version(release) < current:
            break
        if [matrix.supports(model, release, f) for f in features] == wanted:
            return release
    return firmware


def other_than_current(model: str, firmware: str) -> str:
    others = [r for r in releases(model) if parse_version(r) != parse_version(firmware)]
    return others[-1]


def selected_previous(model: str, firmware: str) -> str:
    below_latest = [r for r in releases(model)[:-1] if parse_version(r) != parse_version(firmware)]
    return below_latest[-1]
