"""PNP-1: plug-and-play onboarding, QR onboarding, reprovisioning and replacement — the rules,
without I/O. Everything lands on the existing device states (DEV-3..DEV-6), so the device
endpoint's rules (ENR-1, ENR-2) need no change: a device placed here is approved, claimed,
associated with a site and activated, and its first contact answers `redirect`.

Decisions (docs/pnp.md has the whole contract; docs/decisions.md "PNP-1"):
- Placing a device (pre-registration, QR scan): an unclaimed device is claimed by the acting
  account (DEV-3), associated with the target account's site (DEV-4: the target is the acting
  account or one of its subtree, ACC-7; the site needs a profile, PRF-4) and activated (DEV-6),
  in one step like EC-7. A device another account holds is `held-elsewhere`; a device already
  at that site and activated is `already-placed`.
- Pre-registration of a device not imported (or not approved) yet is kept `pending` and placed
  as soon as a later apply finds it imported and approved (DEV-1, DEV-2 still hold: nobody but
  the manufacturer imports and the platform approves).
- A registration that claims a device proves possession as a claim does (DEV-3, issue 13): the
  serial and, where the device has one or the registrant's policy requires one, the label code
  (`proves_possession`). A wrong proof is `not-proven`, one outcome whichever part was wrong.
- Reprovisioning keeps the identity (MAC = device id, serial, thumbprint, identity certificate):
  only owner, site and activation change; the order fields stay (DEV-5's erasing is for giving a
  device back, not for moving it). The device is activated at its new site, so its next contact
  gets the new site's profile (ENR-7: the answer reflects the current state).
- Replacement: the new device inherits owner, site, association, activation, order fields,
  approval and labels; the old one is released to nobody (unclaimed, no site, not activated) and
  its factory certificate goes on the deny-list with the reason `replaced by <new MAC>`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from server.domain import devices as rules
from server.domain.errors import DomainError

REGISTRATION_OUTCOMES = (
    "ready",
    "already-placed",
    "pending",
    "held-elsewhere",
    "not-proven",
    "registered-elsewhere",
    "invalid",
)
PLACED = frozenset({"ready", "already-placed"})
EVENT_KINDS = ("preregistered", "qr-onboarded", "reprovisioned", "replaced")


@dataclass(frozen=True)
class Target:
    """Where a device goes, as the caller looked it up (DEV-4 facts)."""

    actor_account_id: str
    account_id: str
    account_is_child: bool  # in the actor's subtree, not the actor itself
    site_id: int
    site_has_profile: bool


def _refused(error: str, detail: str, mac: str, status: int = 409) -> DomainError:
    return DomainError(error, detail, status, mac)


def at_target(state: rules.DeviceState, target: Target) -> bool:
    return (
        state.owner_id == target.account_id and state.site_id == target.site_id and state.associated and state.activated
    )


def place(state: rules.DeviceState, target: Target) -> rules.DeviceState:
    """PNP-1 (pre-registration, QR scan): claim if unclaimed, associate with the site, activate.

    Raises the DEV rule's refusal (`not-approved`, `held-elsewhere`, `no-profile`, …)."""
    rules.require_approved(state)
    if at_target(state, target):
        return state
    if state.owner_id not in (None, target.actor_account_id, target.account_id):
        raise _refused("held-elsewhere", "Another account holds this device.", state.mac)
    claimed = rules.claim(state, target.actor_account_id) if state.owner_id is None else state
    placed = rules.associate(
        claimed,
        target.actor_account_id,
        target.account_id,
        target.account_is_child,
        None,
        target.site_id,
        target.site_has_profile,
    )
    return rules.activate(placed, target.actor_account_id)


@dataclass(frozen=True)
class Proof:
    """What a registration shows for its device (DEV-3): the serial printed on the box, the label
    code's hash (`claim_proof.label_code_hash`, None: none given) and whether the registrant's
    policy requires label codes."""

    serial: str
    label_code_hash: str | None = None
    code_required: bool = False


_NO_CODE = "0" * 64  # compared when a side has no label code: same work, never equal


def proves_possession(state: rules.DeviceState, proof: Proof, device_code_hash: str | None) -> bool:
    """DEV-3, as `claim_proof.matches` on stored hashes: the serial is the device's; a claim (the
    device is unclaimed) also needs the device's label code where it has one, and is refused for
    a device without one when the registrant's policy requires label codes."""
    same_code = hmac.compare_digest(proof.label_code_hash or _NO_CODE, device_code_hash or _NO_CODE)
    if not hmac.compare_digest(state.serial.encode(), proof.serial.encode()):
        return False
    if state.owner_id is not None:  # no claim: holding the device is the proof
        return True
    if device_code_hash is None:
        return not proof.code_required
    return same_code


NOT_PROVEN = (
    "the MAC, serial number and label code (where the device has one or your account requires one) "
    "do not prove possession of the imported device (DEV-3)"
)


def register_outcome(
    state: rules.DeviceState | None, proof: Proof, device_code_hash: str | None, target: Target
) -> tuple[str, str | None]:
    """PNP-1 pre-registration: what happens to one registered device now (outcome, detail)."""
    if state is None:
        return "pending", "no device with this MAC is imported yet: it is placed once it is imported and approved"
    if not proves_possession(state, proof, device_code_hash):
        return "not-proven", NOT_PROVEN
    if not state.approved:
        return "pending", "the device is not approved by a platform administrator yet (DEV-2)"
    if at_target(state, target):
        return "already-placed", None
    if state.owner_id not in (None, target.actor_account_id, target.account_id):
        return "held-elsewhere", "another account holds this device"
    return "ready", None


def reprovision(state: rules.DeviceState, target: Target, owner_in_scope: bool) -> rules.DeviceState:
    """PNP-1 reprovisioning: move a claimed device (held in the actor's subtree) to another
    account's site and activate it there; identity and order fields unchanged."""
    rules.require_approved(state)
    rules.require_claimed(state)
    if not owner_in_scope:
        raise _refused("not-owner", "The device is held outside your hierarchy.", state.mac, 403)
    rules.check_association_target(
        state, target.actor_account_id, target.account_id, target.account_is_child, None, target.site_id
    )
    rules.check_site_profile(state, target.site_id, target.site_has_profile)
    if at_target(state, target):
        raise _refused(
            "already-placed",
            f"The device is already at site {target.site_id} of account {target.account_id}, activated.",
            state.mac,
        )
    moved = state.owner_id != target.account_id
    return replace(
        state,
        owner_id=target.account_id,
        previous_owner_id=state.owner_id if moved else state.previous_owner_id,
        site_id=target.site_id,
        associated=True,
        activated=True,
    )


@dataclass(frozen=True)
class Replacement:
    old: rules.DeviceState
    new: rules.DeviceState


def replace_device(
    old: rules.DeviceState, new_mac: str, new_serial: str, new_model: str | None, owner_in_scope: bool
) -> Replacement:
    """PNP-1 replacement: the new device takes the old one's place; the old one is released."""
    rules.require_approved(old)
    rules.require_claimed(old)
    if not owner_in_scope:
        raise _refused("not-owner", "The device is held outside your hierarchy.", old.mac, 403)
    if new_mac == old.mac:
        raise _refused("same-device", "A replacement needs a new MAC address.", new_mac, 422)
    new = replace(old, mac=new_mac, serial=new_serial, model=new_model or old.model)
    released = replace(
        old,
        owner_id=None,
        previous_owner_id=old.owner_id,
        site_id=None,
        associated=False,
        activated=False,
        order={**old.order, **{name: None for name in rules.ERASED_ORDER_FIELDS}},
    )
    return Replacement(old=released, new=new)


def replaced_reason(new_mac: str) -> str:
    """The deny-list reason of a replaced device's factory certificate."""
    return f"replaced by {new_mac}"


def place_words(account_id: str | None, site_id: int | None) -> str:
    """`account A site S` for audit messages (LOG-1: from -> to)."""
    if account_id is None:
        return "nobody"
    return f"account {account_id} site {site_id}" if site_id is not None else f"account {account_id} (no site)"
