"""Admin API, devices: how a device, a per-device result and a job read in an answer or an export (DEV-10)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from server.api.devices.lifecycle_state import state_of
from server.api.devices.schemas import DEVICE_COLUMNS, STATE_COLUMNS
from server.domain import devices as rules
from server.domain.errors import DomainError
from server.store.models import Device, Job


def device_json(d: Device, labels: Sequence[dict[str, Any]] = (), now: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {name: getattr(d, name) for name in (*DEVICE_COLUMNS, *STATE_COLUMNS)}
    body["locked"] = bool(d.locked_until and now and d.locked_until > now)
    body["zero_touch_ready"] = rules.zero_touch_ready(state_of(d))
    body["labels"] = list(labels)
    return body


def result(mac: str, error: DomainError | None = None) -> dict[str, Any]:
    """One device's outcome of a lifecycle call or job (DEV-10)."""
    if error is None:
        return {"mac": mac, "status": "SUCCESS"}
    out = {"mac": mac, "status": "FAIL", "reason": error.error, "detail": error.detail}
    if "action" in error.extra:
        out["action"] = error.extra["action"]
    return out


# --- ACC-7 scope ----------------------------------------------------------------------------------



def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "kind": job.kind,
        "actions": job.actions,
        "status": job.status,
        "summary": job.summary,
        "account_id": job.account_id,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }



def to_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A CSV document (stdlib csv) with a header row; datetimes in ISO 8601, None as empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def export_response(text: str, filename: str, content_type: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

