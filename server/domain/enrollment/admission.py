"""Who may enroll at all, before any firmware, redirect or code rule: ENR-1 identity and the
deny-list, DEV-2 approval, ACC-5 accounts and their manufacturer-CA allow-lists, FW-1 model and
version known.

Decisions:
- ENR-1: no device with the body's MAC -> 404 `unknown_device`. The certificate CN differs from
  the body's MAC -> 403 `certificate-mismatch` (the device exists, the caller is not it). The
  certificate thumbprint differs from the imported one, or none was imported -> 404
  `unknown_device`. MACs compare in canonical form, thumbprints as upper-case hex without `:`.
- Issue 13: a certificate on the platform's deny-list -> 403 `certificate-denied` (after the
  identity checks: an unknown device stays 404). An account with a manufacturer-CA allow-list
  (its owner, its site's account, the account of a right code and of that code's site) refuses
  a factory certificate of another CA -> 403 `manufacturer-not-allowed`; never a wrong code.
  (The code's accounts are checked in `code_entry.enroll_with_code`.)
- FW-1: an imported model missing from the catalog -> 403 `unknown-model`; a body firmware that
  is no version -> 403 `invalid-firmware`.
- ACC-5: a disabled owner account, or a disabled account of the device's site -> 403
  `disabled-account` (the code's site: `code_entry`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from server.domain.enrollment.facts import DeviceRecord, EnrollmentFacts
from server.domain.enrollment.rule import Outcome, canonical_mac, parse_version, rejected
from server.domain.errors import DomainError
from server.domain.firmware import ModelFirmware
from server.domain.identity import Version


def check_identity(facts: EnrollmentFacts) -> Outcome | None:
    """ENR-1: the caller must be an imported device: its MAC, its certificate, its thumbprint."""
    device = facts.device
    if device is None:
        return Outcome(404, "unknown_device", {}, "unknown-device", "no imported device has this MAC")
    if canonical_mac(facts.certificate.cn) != canonical_mac(facts.request.mac):
        return rejected(
            "certificate-mismatch",
            "The client certificate was issued to another device: its CN differs from the MAC in the request.",
        )
    if not device.thumbprint or _thumbprint(device.thumbprint) != _thumbprint(facts.certificate.thumbprint):
        reason = "thumbprint-mismatch" if device.thumbprint else "no-thumbprint"
        return Outcome(
            404, "unknown_device", {}, reason, "the certificate is not the imported factory certificate of this MAC"
        )
    if facts.denied is not None:
        return rejected("certificate-denied", f"This factory certificate is on the deny-list: {facts.denied}")
    return None


def check_approved(device: DeviceRecord) -> Outcome | None:
    """DEV-2: imported devices enroll only once a platform administrator approved them."""
    if device.approved:
        return None
    return rejected("not-approved", "The device is not approved by a platform administrator yet.")


def check_accounts_enabled(facts: EnrollmentFacts) -> Outcome | None:
    """ACC-5: a disabled account's devices do not enroll (its owner's or its site's account)."""
    device = facts.device
    assert device is not None
    if device.owner_id is not None and facts.owner is not None and not facts.owner.enabled:
        return rejected("disabled-account", f"The account {device.owner_id} that holds the device is disabled.")
    site = facts.site
    if device.site_id is not None and site is not None and site.id == device.site_id and not site.account_enabled:
        return rejected("disabled-account", f"The account {site.account_id} of the device's site is disabled.")
    return None


def check_manufacturer(facts: EnrollmentFacts) -> Outcome | None:
    """The allow-lists of the accounts that hold the device (its owner, its site's account)."""
    device = facts.device
    assert device is not None
    lists: list[tuple[str, tuple[str, ...] | None]] = []
    if device.owner_id is not None and facts.owner is not None:
        lists.append((device.owner_id, facts.owner.manufacturers))
    if facts.site is not None and facts.site.id == device.site_id:
        lists.append((facts.site.account_id, facts.site.account_manufacturers))
    return manufacturer_refusal(facts.certificate.manufacturer, lists)


def manufacturer_refusal(manufacturer: str | None, lists: Iterable[tuple[str, tuple[str, ...] | None]],
                         **extra: Any) -> Outcome | None:
    """403 `manufacturer-not-allowed` when an account's allow-list leaves out the manufacturer CA
    that issued the certificate (an account without a list allows every CA the platform trusts)."""
    for account_id, allowed in lists:
        if allowed is not None and manufacturer not in allowed:
            return rejected(
                "manufacturer-not-allowed",
                f"Account {account_id} accepts factory certificates of {', '.join(allowed) or 'no manufacturer'} only; "
                f"this one was issued by {manufacturer or 'an unlisted CA'}.",
                **extra,
            )
    return None


def check_model_and_firmware(facts: EnrollmentFacts) -> tuple[ModelFirmware, Version] | Outcome:
    """FW-1: the imported model must be in the catalog and the reported firmware a version."""
    device = facts.device
    assert device is not None
    try:
        info = facts.catalog.model(device.model)
    except DomainError:
        return rejected("unknown-model", f"The model {device.model!r} is not in the device-family catalog.")
    try:
        version = parse_version(facts.request.firmware)
    except DomainError:
        return rejected("invalid-firmware", f"{facts.request.firmware!r} is not a firmware version.")
    return info, version


def _thumbprint(text: str) -> str:
    return re.sub(r"[\s:]", "", text).upper() if isinstance(text, str) else ""
