"""Admin API: device labels (DEV-8) — create, list, delete, attach to and detach from devices.

Decisions:
- A label belongs to the account that created it (names are unique per account); you see and
  manage the labels of your hierarchy (ACC-7).
- Attaching and detaching answer one result per MAC, like the lifecycle calls; attaching a
  label a device already carries (or detaching one it lacks) succeeds, as the end state is the
  one asked for. A device outside your hierarchy fails as `device-not-found`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from server.api.devices import CHUNK, MACS, all_failed, label_scope, normalize_macs, result, scope_devices
from server.api.routing import Api, Reply, Req
from server.domain.errors import conflict, invalid, not_found
from server.domain.inputs import name_schema
from server.store.models import Device, DeviceLabel, Label

api = Api()

CREATE = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": name_schema(64, min_length=1),
        "description": name_schema(256),
    },
}


def label_json(label: Label, devices: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": label.id,
        "account_id": label.account_id,
        "name": label.name,
        "description": label.description,
    }
    if devices is not None:
        body["devices"] = devices
    return body


async def _label_in_scope(req: Req) -> Label:
    label_id = req.int_param("id")
    label = await req.session.scalar(select(Label).where(Label.id == label_id, label_scope(req.actor)))
    if label is None:
        raise not_found("label-not-found", f"no label {label_id} in your hierarchy")
    return label


@api.route(
    "POST",
    "/labels",
    summary="Create a label for your account (DEV-8)",
    action="labels.write",
    process="LABEL",
    body=CREATE,
    status=201,
)
async def create_label(req: Req) -> Any:
    name = req.body["name"].strip()
    if not name:
        raise invalid("invalid-label-name", "A label name must not be blank.", req.body["name"])
    taken = await req.session.scalar(
        select(Label.id).where(Label.account_id == req.actor.acting_id, Label.name == name)
    )
    if taken is not None:
        raise conflict("label-exists", f"your account already has a label named {name!r}", name)
    label = Label(account_id=req.actor.acting_id, name=name, description=req.body.get("description", ""))
    req.session.add(label)
    await req.session.flush()
    req.audit_message = f"created label {label.id} '{name}'"
    return Reply(label_json(label, 0), 201)


@api.route(
    "GET",
    "/labels",
    summary="Labels of your hierarchy, with their device counts (DEV-8)",
    action="labels.read",
    process="LABEL",
    query=(("name", "contains"),),
)
async def list_labels(req: Req) -> Any:
    limit, offset = req.page()
    cond = [label_scope(req.actor)]
    if name := req.query("name"):
        cond.append(Label.name.contains(name, autoescape=True))
    total = await req.session.scalar(select(func.count()).select_from(Label).where(*cond))
    counts = select(DeviceLabel.label_id, func.count().label("n")).group_by(DeviceLabel.label_id).subquery()
    rows = await req.session.execute(
        select(Label, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.label_id == Label.id)
        .where(*cond)
        .order_by(Label.name, Label.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [label_json(label, n) for label, n in rows], "total": total}


@api.route(
    "DELETE",
    "/labels/{id}",
    summary="Delete a label; devices lose it (DEV-8)",
    action="labels.write",
    process="LABEL",
)
async def delete_label(req: Req) -> Any:
    label = await _label_in_scope(req)
    await req.session.execute(delete(DeviceLabel).where(DeviceLabel.label_id == label.id))
    await req.session.delete(label)
    req.audit_message = f"deleted label {label.id} '{label.name}'"
    return {"deleted": label.id}


async def _visible(req: Req, macs: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(macs), CHUNK):
        chunk = macs[start : start + CHUNK]
        found.update(
            await req.session.scalars(scope_devices(select(Device.mac), req.actor).where(Device.mac.in_(chunk)))
        )
    return found


async def _change(req: Req, attach: bool) -> Any:
    label = await _label_in_scope(req)
    macs = normalize_macs(req.body["macs"])
    visible = await _visible(req, macs)
    present: set[str] = set()
    for start in range(0, len(macs), CHUNK):
        chunk = macs[start : start + CHUNK]
        present.update(
            await req.session.scalars(
                select(DeviceLabel.mac).where(DeviceLabel.label_id == label.id, DeviceLabel.mac.in_(chunk))
            )
        )
    results = []
    failures = []
    for mac in macs:
        if mac not in visible:
            failures.append(not_found("device-not-found", f"no device {mac} in your hierarchy"))
            results.append(result(mac, failures[-1]))
            continue
        results.append(result(mac))
        if attach and mac not in present:
            req.session.add(DeviceLabel(mac=mac, label_id=label.id))
    gone = [mac for mac in macs if mac in visible and mac in present]
    if not attach:
        for start in range(0, len(gone), CHUNK):
            await req.session.execute(
                delete(DeviceLabel).where(
                    DeviceLabel.label_id == label.id, DeviceLabel.mac.in_(gone[start : start + CHUNK])
                )
            )
    succeeded = sum(r["status"] == "SUCCESS" for r in results)
    if succeeded == 0:
        raise all_failed(failures, results)
    req.audit_message = (
        f"label {label.id} '{label.name}' {'attached to' if attach else 'detached from'} {succeeded} devices"
    )
    return {"results": results, "summary": {"succeeded": succeeded, "failed": len(results) - succeeded}}


@api.route(
    "POST",
    "/labels/{id}/devices",
    summary="Attach a label to devices (DEV-8)",
    action="labels.write",
    process="LABEL",
    body=MACS,
)
async def attach_label(req: Req) -> Any:
    return await _change(req, attach=True)


@api.route(
    "POST",
    "/labels/{id}/devices/remove",
    summary="Detach a label from devices (DEV-8)",
    action="labels.write",
    process="LABEL",
    body=MACS,
)
async def detach_label(req: Req) -> Any:
    return await _change(req, attach=False)
