"""Admin API, devices: import from JSON, CSV or ZIP (DEV-1) and approval (DEV-2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, any_, bindparam, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.devices.lifecycle import _load, all_failed
from server.api.devices.presentation import job_json, result
from server.api.devices.schemas import CHUNK, DEVICE_COLUMNS, IMPORT_TYPES, INLINE_ERRORS, MACS
from server.api.devices.visibility import _chunks, normalize_macs
from server.api.routing import Api, Reply, Req
from server.domain import imports
from server.domain.errors import not_found
from server.store.models import Device, Job, JobResult

api = Api()


_LENGTHS = {
    name: length
    for name in DEVICE_COLUMNS
    if (length := getattr(Device.__table__.columns[name].type, "length", None)) is not None
}


def _too_long(rows: list[imports.DeviceRow]) -> tuple[list[imports.DeviceRow], list[imports.RowError]]:
    """DEV-1: a value longer than the store keeps is a row error, not a database failure.

    The import schema allows up to 128 characters for free text (32 for a model); the store's
    columns are narrower, and PostgreSQL would refuse the whole insert.
    """
    kept: list[imports.DeviceRow] = []
    errors: list[imports.RowError] = []
    for row in rows:
        bad = [
            imports.RowError(
                row.file,
                row.row,
                name,
                "too-long",
                f"The field {name!r} is longer than {limit} characters.",
                value[:80],
            )
            for name, limit in _LENGTHS.items()
            if isinstance(value := getattr(row, name), str) and len(value) > limit
        ]
        if bad:
            errors.extend(bad)
        else:
            kept.append(row)
    return kept, errors


async def _existing(session: AsyncSession, rows: list[imports.DeviceRow]) -> tuple[set[str], set[str]]:
    """The MACs and serial numbers of the file that the store already holds (only those)."""
    found: tuple[set[str], set[str]] = (set(), set())
    postgres = session.get_bind().dialect.name == "postgresql"
    for column, values, into in ((Device.mac, [r.mac for r in rows], found[0]),
                                 (Device.serial, [r.serial for r in rows], found[1])):
        # PostgreSQL: one array parameter per 10,000 values (`= ANY`), where an IN list compiles
        # a bind parameter per value (a third of a second per 50,000 rows in SQLAlchemy alone).
        for chunk in _chunks(values, 10_000 if postgres else CHUNK):
            where = (column == any_(bindparam("values", chunk, type_=ARRAY(String))) if postgres
                     else column.in_(chunk))
            into.update(await session.scalars(select(column).where(where)))
    return found


def _error_order(parsed: imports.ImportParse) -> Callable[[imports.RowError], tuple[int, int]]:
    files: dict[str | None, int] = {}
    for where in [r.file for r in parsed.rows] + [e.file for e in parsed.errors]:
        files.setdefault(where, len(files))
    return lambda e: (files.get(e.file, len(files)), e.row)


def _subject(e: imports.RowError) -> str:
    where = f"{e.file}:{e.row}" if e.file else f"row {e.row}"
    return where if len(where) <= 64 else "…" + where[-63:]


async def _whole_body(req: Req) -> bytes:
    """The whole upload, even when the framework's single `read(n)` returned only its first part.

    `StreamReader.read(n)` answers what has arrived, up to n bytes; a large upload arrives in
    several chunks, so the rest is read here, within the same size limit.
    """
    parts = [req.raw or b""]
    if req.call is not None:  # an in-process call (the portal) gives the whole body
        return parts[0]
    size = len(parts[0])
    while chunk := await req.request.content.read(64 * 1024):
        size += len(chunk)
        imports.check_size(size, imports.MAX_BYTES)
        parts.append(chunk)
    return b"".join(parts)


@api.route(
    "POST",
    "/devices/import",
    summary="Import devices from JSON, CSV or a ZIP of those (DEV-1); answers the import job",
    action="devices.import",
    process="DEVICE",
    raw_body=IMPORT_TYPES,
    max_body=imports.MAX_BYTES,
    status=201,
    query=(("filename", "the file's name (a hint for the format)"), ("name", "job name")),
)
async def import_devices(req: Req) -> Any:
    data = await _whole_body(req)
    filename = req.query("filename")
    # Parsing a 10 MiB file takes a while: off the event loop, so other requests are served meanwhile.
    parsed = await asyncio.to_thread(
        imports.parse_import, data, filename=filename, content_type=req.content_type or None
    )
    rows, long_errors = _too_long(parsed.rows)
    macs, serials = await _existing(req.session, rows)
    rows, duplicate_errors = imports.mark_existing(rows, macs, serials)
    errors = sorted([*parsed.errors, *long_errors, *duplicate_errors], key=_error_order(parsed))
    now = req.now
    for chunk in _chunks(rows, 10_000):
        await req.ctx.store.insert_many(req.session, Device.__table__, [  # type: ignore[arg-type]
            {
                **{name: getattr(r, name) for name in DEVICE_COLUMNS},
                "approved": False,
                "imported_by": req.actor.acting_id,
                "created_at": now,
            }
            for r in chunk
        ])
    rejected_rows = len({(e.file, e.row) for e in errors})
    job = Job(
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        name=(req.query("name") or f"import {filename or parsed.format}")[:128],
        kind="import",
        actions=["import"],
        params={"filename": filename, "format": parsed.format},
        status="FAIL" if errors else "COMPLETE",
        summary={"imported": len(rows), "rejected": rejected_rows, "errors": len(errors)},
        created_at=now,
        finished_at=now,
    )
    req.session.add(job)
    await req.session.flush()
    for chunk in _chunks(errors, 1000):
        await req.session.execute(
            insert(JobResult),
            [
                {
                    "job_id": job.id,
                    "subject": _subject(e),
                    "file": e.file[:256] if e.file else None,
                    "row": e.row,
                    "field": e.field,
                    "status": "FAIL",
                    "reason": e.reason[:64],
                    "detail": e.detail + (f" Value: {e.value}" if e.value is not None else ""),
                }
                for e in chunk
            ],
        )
    req.audit_message = f"import job {job.id}: {len(rows)} devices imported, {rejected_rows} rows rejected"
    body = job_json(job)
    body["errors"] = [e.to_json() for e in errors[:INLINE_ERRORS]]
    body["errors_complete"] = len(errors) <= INLINE_ERRORS
    if len(rows) >= 1000:
        req.after_commit.append(lambda: req.ctx.store.refresh_statistics("devices", added=len(rows)))
    return Reply(body, 201)


@api.route(
    "POST",
    "/devices/approve",
    summary="Approve imported devices (DEV-2; platform only)",
    action="devices.approve",
    process="DEVICE",
    body=MACS,
)
async def approve_devices(req: Req) -> Any:
    macs = normalize_macs(req.body["macs"])
    rows = await _load(req.session, None, macs)
    results = []
    for mac in macs:
        row = rows.get(mac)
        if row is None:
            results.append(result(mac, not_found("device-not-found", f"no imported device {mac}")))
            continue
        row.approved = True  # approving twice is harmless: the device is approved either way
        results.append(result(mac))
    failed = sum(r["status"] == "FAIL" for r in results)
    if failed == len(results):
        raise all_failed([not_found("device-not-found", "no such imported device")] * failed, results)
    from server.api.pnp_registrations import place_pending  # PNP-1 (imports this package)
    from server.domain.pnp import PLACED

    placed = await place_pending(req, [r["mac"] for r in results if r["status"] == "SUCCESS"], scoped=False)
    preregistered = sum(r["outcome"] in PLACED for r in placed)
    req.audit_message = f"approved {len(results) - failed} devices" + (
        f"; {preregistered} pre-registered devices placed at their sites (PNP-1)" if preregistered else ""
    )
    return {"results": results, "summary": {"succeeded": len(results) - failed, "failed": failed}}


# --- routes: search, export, read -----------------------------------------------------------------

