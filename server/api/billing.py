"""Admin API: the billing report (FF-1) — an account's direct additions in one month.

`GET /billing?account=ID&month=YYYY-MM[&format=json|csv]` reads the billing ledger, which keeps
one entry per direct addition whatever became of the device (`server.domain.billing`).

Decisions:
- Who sees which account's billing (ACC-7, through `billing.read` and the subtree rule): the
  platform every account's; an administrator its own account's and its descendants'. Out of
  scope answers 404 `account-not-found`, exactly like an account that never existed.
- The ledger outlives the account too: the report of a deleted account is found by the account
  path its entries recorded, so the platform (or an ancestor) can still bill it.
- `present` tells whether that addition's device still exists (the same addition, not a later one).
- CSV (`format=csv`): header `account_id,month,mac,kind,via,added_by,added_at,present`, one row per
  addition, oldest first, CRLF line ends; `text/csv` as an attachment `billing-<account>-<month>.csv`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.api.routing import Api, Req
from server.api.scope import in_subtree
from server.domain import billing
from server.domain.errors import bad_request, invalid, not_found
from server.store.models import Account, BillingEntry, DirectDevice

api = Api()

FORMATS = ("json", "csv")
REPORT_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "account_id": {"type": "string"},
        "month": {"type": "string"},
        "direct_additions": {"type": "integer"},
        "devices": {"type": "integer"},
        "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
        "items": {"type": "array", "items": {"type": "object"}},
    },
}


async def _account_in_scope(req: Req, account_id: str) -> None:
    """ACC-7 for billing: a live account of the subtree, or a deleted one its ledger places there."""
    account = await req.session.get(Account, account_id)
    path = account.path if account is not None else await req.session.scalar(
        select(BillingEntry.account_path).where(BillingEntry.account_id == account_id).limit(1)
    )
    if path is None or not in_subtree(req.actor, path):
        raise not_found("account-not-found", f"no account {account_id} in your hierarchy")


@api.route(
    "GET",
    "/billing",
    summary="Billing report of an account and month: its direct additions, even of devices deleted since (FF-1)",
    action="billing.read",
    process="ACCOUNT",
    query=(("account", "the account id (8 digits), required"), ("month", "YYYY-MM (UTC), required"),
           ("format", "json (default) or csv")),
    answer=REPORT_ANSWER,
    responses={
        "200": {
            "description": "the report: JSON, or CSV with format=csv",
            "content": {"application/json": {"schema": REPORT_ANSWER}, "text/csv": {"schema": {"type": "string"}}},
        },
        "400": {"description": "invalid-format"},
        "404": {"description": "account-not-found: none in your hierarchy"},
        "422": {"description": "account-required, invalid-month"},
    },
)
async def billing_report(req: Req) -> Any:
    account_id = req.query("account") or ""
    if not billing.ACCOUNT_ID.fullmatch(account_id):
        raise invalid("account-required", "name the account: ?account= its 8-digit id", account_id[:20] or None)
    month = req.query("month")
    billing.parse_month(month)
    assert month is not None
    fmt = req.query("format", "json") or "json"
    if fmt not in FORMATS:
        raise bad_request("invalid-format", "format must be json or csv", fmt[:20])
    await _account_in_scope(req, account_id)
    rows = await req.session.execute(
        select(BillingEntry, DirectDevice.added_at.label("live_at"))
        .outerjoin(DirectDevice, DirectDevice.mac == BillingEntry.mac)
        .where(BillingEntry.account_id == account_id, BillingEntry.month == month)
        .order_by(BillingEntry.added_at, BillingEntry.id)
    )
    additions = [
        billing.Addition(
            account_id=e.account_id, month=e.month, mac=e.mac, kind=e.kind, via=e.via, added_by=e.added_by,
            added_at=e.added_at, present=live_at is not None and live_at == e.added_at,
        )
        for e, live_at in rows.all()
    ]
    report = billing.report(account_id, month, additions)
    if fmt == "csv":
        return web.Response(
            text=billing.report_csv(report),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="billing-{account_id}-{month}.csv"'},
        )
    return billing.report_json(report)
