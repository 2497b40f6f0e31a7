"""What a fleet phone should end up doing, predicted from Appendix A and the firmware catalog
alone — so that "unexpected" in a fleet summary means a server, a phone or a config broke a rule.

The prediction follows the SPEC rules with the reference policy a fleet arranges (FW-3's
account switch off, a profile with an HTTPS provisioning URL by host name, no root CA, no
identity certificates, a file server certificate from a public root, a user who presses Yes):

1. FW-4: below the catalog minimum, a version below `manual_upgrade_below` is refused
   (`manual-upgrade-required`); otherwise an unclaimed phone whose version has "Firmware
   upgrade" is sent latest (FW-2), a claimed one is refused (`firmware-too-old`, FW-3 off), and
   one without the feature is refused (`firmware-too-old`).
2. FW-2: an unclaimed phone at or above the minimum, below latest, with "Firmware upgrade", is
   sent latest first. After an upgrade the phone enrolls again only with "Re-trigger after
   firmware upgrade" at the new version (FW-6), else it ends `upgraded-no-retrigger`.
3. Zero-touch (DEV-6): redirect. With a code (ENR-3): no code format at all → refused
   `codes-not-supported`; the phone refuses locally a code its firmware cannot take and, out of
   codes, waits at manual entry; a 12-digit PEC on a version with only the 12-digit NEC reaches
   the server, which counts it as a wrong code (`code-invalid`); L wrong codes → `locked` (LCK-2).
4. ENR-4: the redirect needs "Provisioning URLs" and "HTTPS provisioning URL"; otherwise
   `rejected (unsupported-url)`. The phone applies the profile's group only with "Device group
   ID" (the server sends 0 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import fixtures
from fixtures.versions import Version, parse_version
from simulators.arrange import Arranged
from simulators.capabilities import Capabilities
from simulators.roster import Member

__all__ = ["Expected", "predict"]


@dataclass(frozen=True, slots=True)
class Expected:
    result: str
    reason: str | None
    why: str
    firmware: str
    group: int | None = None

    def matches(self, result: str, reason: str | None, group: int | None = None) -> bool:
        if result != self.result or (self.reason is not None and reason != self.reason):
            return False
        return self.group is None or group is None or group == self.group


@dataclass(frozen=True, slots=True)
class _Release:
    minimum: Version
    latest: str
    manual_below: Version | None


@cache
def _release(model: str) -> _Release:
    raw = fixtures.load_json("firmware-catalog.json")["models"][model]
    manual = raw.get("manual_upgrade_below")
    return _Release(parse_version(raw["minimum"]), raw["latest"], parse_version(manual) if manual else None)


def predict(member: Member, arranged: Arranged, caps: Capabilities, group: int = 0) -> Expected:
    model, version = caps.model(member.model).name, member.firmware
    release = _release(model)
    claimed = member.arrangement == "zero-touch"

    def has(feature: str, at: str | None = None) -> bool:
        return caps.supports(model, at or version, feature)

    def explain(feature: str, at: str | None = None) -> str:
        return caps.explain(model, at or version, feature)

    notes: list[str] = []
    current = parse_version(version)
    if current < release.minimum:
        if release.manual_below is not None and current < release.manual_below:
            return Expected("rejected", "manual-upgrade-required", f"below {release.manual_below} (FW-4)", version)
        if not has("firmware-upgrade"):
            why = f"below the minimum {release.minimum} and {explain('firmware-upgrade')} (FW-4)"
            return Expected("rejected", "firmware-too-old", why, version)
        if claimed:
            why = f"below the minimum {release.minimum}; firmware upgrade is off for claimed devices (FW-3, FW-4)"
            return Expected("rejected", "firmware-too-old", why, version)
        notes.append(f"upgraded {version} → {release.latest} (FW-4, FW-2)")
    elif not claimed and has("firmware-upgrade") and current < parse_version(release.latest):
        notes.append(f"upgraded {version} → {release.latest} (FW-2)")
    if notes:
        version = release.latest
        if not has("re-trigger-after-firmware-upgrade"):
            why = "; ".join([*notes, explain("re-trigger-after-firmware-upgrade") + " (FW-6)"])
            return Expected("upgraded-no-retrigger", "re-trigger-not-supported", why, version)

    if not claimed:
        refusal = _code_path(member, arranged, caps, model, version, notes)
        if refusal is not None:
            return refusal
    for feature in ("provisioning-urls", "https-provisioning-url"):
        if not has(feature):
            return Expected("rejected", "unsupported-url", "; ".join([*notes, explain(feature) + " (ENR-4)"]), version)
    applied = group if has("device-group-id") else 0
    notes.append(f"group {applied}" + ("" if applied == group else f" ({explain('device-group-id')})"))
    notes.insert(0, "zero-touch (DEV-6)" if claimed else f"{member.arrangement} code accepted (EC-7)")
    return Expected("provisioned", None, "; ".join(notes), version, applied)


def _code_path(
    member: Member, arranged: Arranged, caps: Capabilities, model: str, version: str, notes: list[str]
) -> Expected | None:
    formats = caps.code_formats(model, version)
    if not formats:
        why = f"{caps.explain(model, version, '8-digit-numeric-enrollment-code')} and no other code (ENR-3)"
        return Expected("rejected", "codes-not-supported", "; ".join([*notes, why]), version)
    if member.arrangement == "wrong-code":
        if "nec8" not in formats:
            return _manual(notes, version, "the phone refuses 8-digit codes")
        why = f"{arranged.lockout_attempts} wrong codes in a row (LCK-2)"
        return Expected("locked", None, "; ".join([*notes, why]), version)
    if member.arrangement == "nec":
        if "nec8" not in formats:
            return _manual(notes, version, caps.explain(model, version, "8-digit-numeric-enrollment-code"))
        return None
    if member.arrangement == "pec":
        if "pec12" in formats:
            return None
        feature = caps.explain(model, version, "provisioning-enrollment-code")
        if "nec12" in formats:
            why = f"{feature}: the server counts the 12-digit PEC as a wrong code (ENR-3, LCK-2)"
            return Expected("code-invalid", None, "; ".join([*notes, why]), version)
        return _manual(notes, version, feature)
    return None


def _manual(notes: list[str], version: str, why: str) -> Expected:
    return Expected("manual-entry", "code-entry-cancelled", "; ".join([*notes, why + ": the user cancels"]), version)
