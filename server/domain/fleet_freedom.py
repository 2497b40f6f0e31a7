"""FF-1 rules: two-step provisioning (a slot an administrator prepares, filled when the device
reports in) and direct addition of a device by its reporting id (`mergeProvider`).

Decisions (docs/fleet-freedom.md has the contract, docs/decisions.md "FF-1" the reasons):
- The reporting id is the device's MAC (PROTOCOL §1 canonical form): it is what the device
  identifies itself with (its factory certificate's CN, the `mac` of its enrollment request).
- A slot names its device by MAC or by serial number (exactly one) — what the box's label shows;
  with the serial the administrator needs no reporting id at all, as the seed wants.
- A merge without `v` adds; with `v` it updates, only while the stored version is still `v`
  (optimistic concurrency); every update answers the next version, `v + 1`.
- A slot is filled only by the very device it names, of the expected model, held by the slot's
  account, or by an account above it that the slot's creator administers (it moves down, as the
  creator could move it itself: ACC-7), or by nobody — then filling is a claim, and DEV-3's proof
  holds: the slot names the device's serial number (a MAC alone is on every network the phone
  joined), the device has no label code and the slot account's line requires none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.domain.errors import DomainError, conflict
from server.domain.identity import SERIAL_PATTERN, normalize_mac
from server.domain.inputs import NAME_PATTERN

ADD, UPDATE = "added", "updated"
VIA_REST, VIA_WEBSOCKET = "rest", "websocket"

PROVIDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "company"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 32, "description": "reporting id: the MAC"},
        "kind": {"type": "string", "minLength": 1, "maxLength": 16, "pattern": NAME_PATTERN,
                 "description": "the model, as the device-family catalog names it"},
        "company": {"type": "string", "pattern": "^[0-9]{8}$", "description": "the account id"},
        "serial": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SERIAL_PATTERN},
        "site_id": {"type": ["integer", "null"], "minimum": 1},
        "v": {"type": "integer", "minimum": 1, "description": "present: update that version; absent: add"},
    },
}

SLOT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["site_id", "model"],
    "additionalProperties": False,
    "properties": {
        "account_id": {"type": "string", "pattern": "^[0-9]{8}$", "description": "default: the site's account"},
        "site_id": {"type": "integer", "minimum": 1},
        "model": {"type": "string", "minLength": 1, "maxLength": 16, "pattern": NAME_PATTERN},
        "mac": {"type": "string", "minLength": 1, "maxLength": 32},
        "serial": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SERIAL_PATTERN},
    },
}


@dataclass(frozen=True)
class Merge:
    """One validated `mergeProvider` request."""

    mac: str
    kind: str
    company: str
    serial: str | None
    site_id: int | None
    version: int | None

    @property
    def mode(self) -> str:
        """FF-1: without a version it adds, with one it updates (the seed's `v`)."""
        return ADD if self.version is None else UPDATE


def parse_merge(provider: dict[str, Any]) -> Merge:
    """A provider object that passed `PROVIDER_SCHEMA`, its reporting id canonical (422 `invalid-mac`)."""
    return Merge(
        mac=normalize_mac(provider["id"]),
        kind=provider["kind"],
        company=provider["company"],
        serial=provider.get("serial"),
        site_id=provider.get("site_id"),
        version=provider.get("v"),
    )


def check_version(stored: int, given: int) -> int:
    """FF-1 optimistic concurrency: the next version, or 409 `stale-version` naming the stored one."""
    if stored != given:
        raise DomainError(
            "stale-version",
            f"The device changed since version {given}: it is at version {stored}. "
            "Read it again and send the current version.",
            409,
            given,
            {"current_v": stored},
        )
    return stored + 1


def exists_error(mac: str, version: int | None) -> DomainError:
    """An add (no `v`) for a reporting id the server already holds."""
    if version is not None:
        return DomainError(
            "device-exists",
            f"A device with reporting id {mac} was added already (version {version}): "
            "send its version to update it.",
            409,
            mac,
            {"current_v": version},
        )
    return conflict("device-exists", f"A device with MAC {mac} exists; it cannot be added directly.", mac)


def slot_target(mac: str | None, serial: str | None) -> tuple[str | None, str | None]:
    """A slot names its device by MAC or by serial, exactly one (422 `slot-target`)."""
    if (mac is None) == (serial is None):
        raise DomainError("slot-target", "Name the slot's device by exactly one of mac or serial.", 422)
    return (normalize_mac(mac) if mac is not None else None), serial


@dataclass(frozen=True)
class SlotView:
    model: str
    mac: str | None
    serial: str | None
    account_path: str
    account_enabled: bool = True
    site_has_profile: bool = True
    creator_path: str | None = None  # the account of the administrator who prepared it (None: gone)
    label_code_required: bool = False  # the slot account's line claims with label codes only (DEV-3)


@dataclass(frozen=True)
class ReportingDevice:
    """The device that reported in, as the store knows it (its identity already verified)."""

    mac: str
    serial: str
    model: str
    owner_path: str | None
    has_label_code: bool = False


def fill_refusal(slot: SlotView, device: ReportingDevice) -> tuple[str, str] | None:
    """FF-1: why the reporting device cannot fill this slot (reason id, sentence), or None."""
    if slot.mac is not None and slot.mac != device.mac or slot.serial is not None and slot.serial != device.serial:
        return "slot-other-device", "The slot names another device."
    if slot.model != device.model:
        return "slot-model-mismatch", f"The slot expects a {slot.model}; the device is a {device.model}."
    if device.owner_path is None:
        if slot.serial is None:
            return "slot-claim-proof", "The device is held by nobody: a slot claims it by its serial only (DEV-3)."
        if device.has_label_code or slot.label_code_required:
            return "slot-claim-proof", "The device is claimed with its label code only (DEV-3): POST /devices/claim."
    elif not slot.account_path.startswith(device.owner_path):
        return "slot-owner-conflict", "The device is held by an account outside the slot account's line."
    elif device.owner_path != slot.account_path and not (
        slot.creator_path is not None and device.owner_path.startswith(slot.creator_path)
    ):
        return "slot-owner-conflict", "The device is held above the slot's account, outside its creator's reach."
    if not slot.account_enabled:
        return "disabled-account", "The slot's account is disabled (ACC-5)."
    if not slot.site_has_profile:
        return "site-without-profile", "The slot's site has no profile any more (PRF-4)."
    return None
