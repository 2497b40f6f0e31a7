"""Admin API: the audit log viewer and its export (LOG-1, ENR-5).

Decisions:
- Visibility (LOG-1, ACC-7): an account sees the entries of its subtree, by the account the
  operation was done in (after an ACC-9 switch: the reseller acted as). The platform sees
  everything, including entries that belong to no account (failed logins, unknown devices).
- `from` is inclusive and `to` exclusive; times are ISO 8601, a time without zone is UTC.
- Messages are redacted when written and again when shown, so an entry written by any other
  path (a device endpoint, an older server) never shows a URL password either.
- CSV export neutralises cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`
  first): log messages carry names typed by other accounts.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web
from sqlalchemy import ColumnElement, Select, func, select

from server.api.routing import Api, Req, dumps
from server.api.scope import subtree_clause
from server.domain.audit import redact
from server.domain.errors import bad_request
from server.domain.permissions import PLATFORM
from server.domain.search import LOG_FIELDS, parse_filter
from server.store.models import AuditLog
from server.store.search import to_sql

api = Api()

COLUMNS: dict[str, Any] = {
    "account_id": AuditLog.account_id,
    "login": AuditLog.login,
    "process": AuditLog.process,
    "client_host": AuditLog.client_host,
    "action": AuditLog.action,
    "status": AuditLog.status,
    "message": AuditLog.message,
}
FIELDS = ("id", "at", "account_id", "login", "acting_as", "process", "client_host", "action", "status", "message")
EXPORT_MAX = 100_000
QUERY = (
    ("q", 'LOG-1 filter as JSON: {"all"|"any": [{"field", "op", "value"}]}; fields: ' + ", ".join(LOG_FIELDS)),
    ("from", "ISO 8601 time, inclusive"),
    ("to", "ISO 8601 time, exclusive"),
)


def _time(req: Req, name: str) -> datetime | None:
    text = req.query(name)
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise bad_request("invalid-time", f"{name} must be an ISO 8601 time, e.g. 2026-11-23T09:00:00Z", text) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _conditions(req: Req) -> list[ColumnElement[bool]]:
    cond = [to_sql(parse_filter(req.query("q"), LOG_FIELDS), COLUMNS)]
    if req.actor.role != PLATFORM:
        # NULL paths (entries of no account) never match.
        cond.append(subtree_clause(req.actor, cast(ColumnElement[str], AuditLog.account_path)))
    if (start := _time(req, "from")) is not None:
        cond.append(AuditLog.at >= start)
    if (end := _time(req, "to")) is not None:
        cond.append(AuditLog.at < end)
    return cond


def _newest_first(cond: list[ColumnElement[bool]]) -> Select[Any]:
    return select(AuditLog).where(*cond).order_by(AuditLog.at.desc(), AuditLog.id.desc())


def entry_json(e: AuditLog) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "account_id": e.account_id,
        "login": e.login,
        "acting_as": e.acting_as,
        "process": e.process,
        "client_host": e.client_host,
        "action": e.action,
        "status": e.status,
        "message": redact(e.message or ""),
    }


@api.route(
    "GET",
    "/logs",
    summary="Search the audit log of your subtree, newest first (LOG-1, ENR-5)",
    action="logs.read",
    process="LOG",
    query=QUERY,
)
async def list_logs(req: Req) -> Any:
    limit, offset = req.page()
    cond = _conditions(req)
    total = await req.session.scalar(select(func.count()).select_from(AuditLog).where(*cond))
    rows = await req.session.scalars(_newest_first(cond).limit(limit).offset(offset))
    return {"items": [entry_json(e) for e in rows], "total": total}


def _cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@api.route(
    "GET",
    "/logs/export",
    summary="Export the audit log search as JSON or CSV (LOG-1)",
    action="logs.read",
    process="LOG",
    query=(*QUERY, ("format", "json (default) or csv")),
)
async def export_logs(req: Req) -> Any:
    fmt = (req.query("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise bad_request("invalid-format", "format must be json or csv", fmt)
    limit, offset = req.page(EXPORT_MAX) if "limit" in req.args else (EXPORT_MAX, 0)
    found = await req.session.scalars(_newest_first(_conditions(req)).limit(limit).offset(offset))
    rows = [entry_json(e) for e in found]
    stamp = req.now.strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="audit-log-{stamp}.{fmt}"'}
    if fmt == "json":
        return web.Response(
            text=dumps({"items": rows, "total": len(rows)}), content_type="application/json", headers=headers
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_cell(row[f]) for f in FIELDS])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8", headers=headers)
