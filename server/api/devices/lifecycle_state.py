"""Admin API, devices: a device row as the lifecycle rules see it, and back (DEV-3..DEV-9, LCK-2)."""

from __future__ import annotations

from collections.abc import Sequence

from server.domain import devices as rules
from server.domain import lockout
from server.store.models import Device


def state_of(d: Device) -> rules.DeviceState:
    return rules.DeviceState(
        mac=d.mac,
        serial=d.serial,
        model=d.model,
        approved=bool(d.approved),
        owner_id=d.owner_id,
        previous_owner_id=d.previous_owner_id,
        site_id=d.site_id,
        associated=bool(d.associated),
        activated=bool(d.activated),
        order={name: getattr(d, name) for name in rules.ORDER_FIELDS},
    )


def write_back(d: Device, after: rules.DeviceState, actions: Sequence[str]) -> None:
    """Store what a transition decided; side effects of particular actions ride along."""
    d.owner_id = after.owner_id
    d.previous_owner_id = after.previous_owner_id
    d.site_id = after.site_id
    d.associated = after.associated
    d.activated = after.activated
    for name in rules.ORDER_FIELDS:
        setattr(d, name, after.order.get(name))
    if "activate" in actions or "sync" in actions:
        lifted = lockout.after_activation()  # LCK-2: an administrator's activation lifts a lock
        d.failed_attempts, d.locked_until = lifted.failed, lifted.locked_until
    if "sync" in actions:
        d.synced = True  # ACO-1; the push itself is the cloud-office connector's business
    if "release" in actions or "disassociate" in actions:
        d.synced = False

