"""Admin API, devices: search (DEV-11), export (DEV-10) and reading one device, within ACC-7."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select

from server.api.devices.lifecycle import _missing
from server.api.devices.presentation import _cell, device_json, export_response
from server.api.devices.schemas import CHUNK, DEVICE_COLUMNS, EXPORT_FORMATS, STATE_COLUMNS
from server.api.devices.visibility import device_filter, labels_of, scope_devices
from server.api.routing import Api, Req, dumps
from server.domain.errors import bad_request
from server.domain.identity import normalize_mac
from server.store.models import Device

api = Api()

# `sort` (issue 16, the portal's device list): these columns, MAC second so pages are stable.
SORTS = ("mac", "serial", "model", "firmware", "site_id", "owner_id", "created_at", "enrolled_at", "last_contact")


# Issue 17 (P5): a filter that selects few devices (a MAC prefix, a serial) is paged by sorting
# its matches, not by walking the primary key in MAC order and filtering every row before them —
# PostgreSQL takes that plan for `ORDER BY mac LIMIT n` and it grows with the table (EXPLAIN:
# 74,496 rows filtered for 100 at 200,000 devices). Ordering by `mac || ''` (the same order) takes
# the primary key out of the choice, so the filter's own index finds the matches.
SORT_MATCHES_BELOW = 20_000


def _sort(sort: str | None) -> tuple[str, bool]:
    """`sort` as (column name, descending); a bad one is refused (before any query)."""
    if not sort:
        return "mac", False
    name = sort.removeprefix("-")
    if name not in SORTS:
        raise bad_request("invalid-sort", f"sort is one of {', '.join(SORTS)}, with a leading - for descending")
    return name, sort.startswith("-")


def _order(sort: tuple[str, bool], total: int) -> list[Any]:
    name, descending = sort
    mac: Any = Device.mac.concat("") if total < SORT_MATCHES_BELOW else Device.mac
    if name == "mac":  # never NULL: no NULLS LAST, so PostgreSQL can walk its index either way
        return [mac.desc() if descending else mac]
    column = getattr(Device, name)
    return [column.desc().nulls_last() if descending else column.asc().nulls_last(), mac]


@api.route(
    "GET",
    "/devices",
    summary="Search devices (DEV-11 filter in q); your hierarchy's only (ACC-7)",
    action="devices.read",
    process="DEVICE",
    query=(
        ("q", 'filter JSON: {"all"|"any": [{"field","op","value"}]}'),
        ("sort", "order by " + ", ".join(SORTS) + "; a leading - for descending (default mac)"),
    ),
)
async def list_devices(req: Req) -> Any:
    limit, offset = req.page()
    where = device_filter(req.actor, req.query("q"))
    sort = _sort(req.query("sort"))
    total = await req.session.scalar(scope_devices(select(func.count()).select_from(Device), req.actor).where(where))
    order = _order(sort, total or 0)
    rows = list(
        await req.session.scalars(
            scope_devices(select(Device), req.actor).where(where).order_by(*order).limit(limit).offset(offset)
        )
    )
    labels = await labels_of(req.session, req.actor, [d.mac for d in rows])
    return {"items": [device_json(d, labels.get(d.mac, []), req.now) for d in rows], "total": total}


EXPORT_FIELDS = (*DEVICE_COLUMNS, *STATE_COLUMNS, "labels")


@api.route(
    "GET",
    "/devices/export",
    summary="Export the devices a filter selects as JSON or CSV (DEV-10, DEV-11)",
    action="devices.read",
    process="DEVICE",
    query=(("format", "json (default) or csv"), ("q", "filter JSON, as for GET /devices")),
)
async def export_devices(req: Req) -> Any:
    fmt = _export_format(req)
    where = device_filter(req.actor, req.query("q"))
    # Written page by page as text: a 100 000-device export never holds every row as objects.
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_FIELDS), extrasaction="ignore", lineterminator="\n")
    if fmt == "json":
        out.write('{"devices": [')
    else:
        writer.writeheader()
    after, first = "", True
    while True:  # keyset pages: each query stays small however large the fleet
        page = list(
            await req.session.scalars(
                scope_devices(select(Device), req.actor)
                .where(where, Device.mac > after)
                .order_by(Device.mac)
                .limit(CHUNK)
            )
        )
        if not page:
            break
        labels = await labels_of(req.session, req.actor, [d.mac for d in page])
        for d in page:
            item = device_json(d, labels.get(d.mac, []), req.now)
            if fmt == "json":
                out.write(("" if first else ",") + dumps(item))
            else:
                item["labels"] = ";".join(label["name"] for label in item["labels"])
                writer.writerow({k: _cell(item.get(k)) for k in EXPORT_FIELDS})
            first = False
        after = page[-1].mac
    if fmt == "json":
        out.write("]}")
        return export_response(out.getvalue(), "devices.json", "application/json")
    return export_response(out.getvalue(), "devices.csv", "text/csv")


def _export_format(req: Req) -> str:
    fmt = (req.query("format") or "json").lower()
    if fmt not in EXPORT_FORMATS:
        raise bad_request("invalid-format", "format must be json or csv", fmt)
    return fmt




@api.route(
    "GET",
    "/devices/{mac}",
    summary="Read one device (MAC in any PROTOCOL §1 form)",
    action="devices.read",
    process="DEVICE",
)
async def get_device(req: Req) -> Any:
    mac = normalize_mac(req.param("mac"))
    d = await req.session.scalar(scope_devices(select(Device), req.actor).where(Device.mac == mac))
    if d is None:
        raise _missing(mac)
    labels = await labels_of(req.session, req.actor, [mac])
    return device_json(d, labels.get(mac, []), req.now)


# --- routes: lifecycle ----------------------------------------------------------------------------

