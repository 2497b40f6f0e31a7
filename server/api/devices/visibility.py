"""Admin API, devices: which devices and labels an actor sees (ACC-7), DEV-11 filters and MAC lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, not_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.api.actor import Actor
from server.api.devices.schemas import CHUNK
from server.api.scope import subtree_clause
from server.domain.identity import normalize_mac
from server.domain.permissions import MANUFACTURER, PLATFORM
from server.domain.search import DEVICE_FIELDS, parse_filter
from server.store.models import Account, Device, DeviceLabel, Label
from server.store.search import Target, condition, to_sql


def scope_devices(stmt: Select[Any], actor: Actor) -> Select[Any]:
    """ACC-7: restrict a query on `devices` to what the actor may see (see the module docstring)."""
    if actor.role == PLATFORM:
        return stmt
    if actor.role == MANUFACTURER:
        return stmt.where(Device.imported_by == actor.acting_id)
    return stmt.join(Account, Account.id == Device.owner_id).where(_subtree(actor, Account.path))


def label_scope(actor: Actor, label: Any = Label) -> ColumnElement[bool]:
    """ACC-7: the labels an actor sees — those of accounts in its subtree (the platform: all)."""
    owner = aliased(Account)
    return exists().where(owner.id == label.account_id, _subtree(actor, owner.path))


def _subtree(actor: Actor, path: Any) -> ColumnElement[bool]:
    # subtree_clause is typed for Core columns; mapped attributes are the same thing at run time.
    return subtree_clause(actor, path)


def _label_target(actor: Actor) -> Callable[[str, Any], ColumnElement[bool]]:
    """DEV-8, DEV-11: `label` conditions test the names of the device's visible labels."""

    def build(op: str, value: Any) -> ColumnElement[bool]:
        lab = aliased(Label)
        has = (
            select(DeviceLabel.mac)
            .join(lab, lab.id == DeviceLabel.label_id)
            .where(DeviceLabel.mac == Device.mac, label_scope(actor, lab))
            .correlate(Device)
        )
        if value is None:  # eq null: no label at all; ne null: some label
            return not_(has.exists()) if op == "eq" else has.exists()
        if op == "ne":  # "not labelled X", not "has some label other than X"
            return not_(has.where(lab.name == value).exists())
        name: Any = lab.name
        return has.where(condition(name, op, value)).exists()

    return build


def _enrolled(op: str, value: Any) -> ColumnElement[bool]:
    """`enrolled` eq true: the device has enrolled (its `enrolled_at` is set); ne negates."""
    wanted = bool(value) if op == "eq" else not bool(value)
    return Device.enrolled_at.is_not(None) if wanted else Device.enrolled_at.is_(None)


def device_fields(actor: Actor) -> dict[str, Target]:
    """DEV-11: each searchable field and the column (or condition) it filters."""
    fields: dict[str, Target] = {
        name: getattr(Device, name) for name in DEVICE_FIELDS if name not in ("label", "enrolled")
    }
    fields["label"] = _label_target(actor)
    fields["enrolled"] = _enrolled
    return fields


def device_filter(actor: Actor, q: str | None) -> ColumnElement[bool]:
    """DEV-11: the `q` filter of a device search as SQL."""
    return to_sql(parse_filter(q, DEVICE_FIELDS), device_fields(actor))


async def labels_of(session: AsyncSession, actor: Actor, macs: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The visible labels of the given devices, by MAC."""
    found: dict[str, list[dict[str, Any]]] = {}
    wanted = list(macs)
    for chunk in _chunks(wanted, CHUNK):
        rows = await session.execute(
            select(DeviceLabel.mac, Label.id, Label.name)
            .join(Label, Label.id == DeviceLabel.label_id)
            .where(DeviceLabel.mac.in_(chunk), label_scope(actor))
            .order_by(Label.name)
        )
        for mac, label_id, name in rows:
            found.setdefault(mac, []).append({"id": label_id, "name": name})
    return found


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalize_macs(values: Iterable[Any]) -> list[str]:
    """PROTOCOL §1: every MAC of a request in canonical form, duplicates dropped, order kept.

    One malformed MAC refuses the whole request (422 `invalid-mac`), before anything is done.
    """
    return list(dict.fromkeys(normalize_mac(v) for v in values))


# --- device state <-> row -------------------------------------------------------------------------
