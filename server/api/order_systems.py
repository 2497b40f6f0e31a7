"""Admin API: order systems (DEP-1) — the upstream order platforms that submit enrolment batches.

Decisions:
- A service provider or reseller registers an order system for its own account or for a
  reseller in its subtree (ACC-7; the platform for any of them); names are unique per account.
- Creating one answers its API token (prefix `eos_`) and, when `encrypted` (the default), its
  Fernet key, each shown once: only the token's SHA-256 is stored; the key is stored, as the
  server needs it to decrypt batches and encrypt responses, and never shown or logged again.
  With a key, every batch must come encrypted and every response goes encrypted.
- `POST /order-systems/{id}/credentials` replaces the token and the key (if it has one) — the
  old token ends at once; batches already processed answer with the new key.
- Deleting an order system ends its token and deletes its batches' records (devices keep what
  the batches did to them; the jobs stay).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select

from server.api.actor import ORDER_TOKEN_PREFIX, token_digest
from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope, subtree_clause
from server.domain import order_envelope
from server.domain.errors import conflict, invalid, not_found
from server.domain.inputs import name_schema
from server.domain.permissions import ORDER_SYSTEM, RESELLER, SP
from server.store.models import Account, OrderBatch, OrderSystem

api = Api()

CREATE = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": name_schema(128, min_length=1),
        "account_id": {"type": "string", "pattern": "^[0-9]{8}$"},
        "encrypted": {"type": "boolean", "description": "give it a Fernet key (default true)"},
    },
}
_SELLERS = frozenset({SP, RESELLER})


def system_json(system: OrderSystem, batches: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": system.id,
        "account_id": system.account_id,
        "name": system.name,
        "encrypted": system.key is not None,
        "key_id": order_envelope.key_id(system.key) if system.key else None,
        "created_by": system.created_by,
        "created_at": system.created_at,
    }
    if batches is not None:
        body["batches"] = batches
    return body


def _credentials(system: OrderSystem, encrypted: bool) -> dict[str, Any]:
    """A new token (and key): set on the row, answered once."""
    token = ORDER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    system.token_digest = token_digest(token)
    system.key = order_envelope.new_key() if encrypted else None
    return {"token": token, "key": system.key}


async def system_in_scope(req: Req, system_id: int) -> OrderSystem:
    """ACC-7: an order system of the actor's subtree (an order system's token: itself only)."""
    if req.actor.role == ORDER_SYSTEM and req.actor.order_system_id != system_id:
        raise not_found("order-system-not-found", f"no order system {system_id} in your hierarchy")
    system = await req.session.scalar(
        select(OrderSystem)
        .join(Account, Account.id == OrderSystem.account_id)
        .where(OrderSystem.id == system_id, subtree_clause(req.actor, Account.path))
    )
    if system is None:
        raise not_found("order-system-not-found", f"no order system {system_id} in your hierarchy")
    return system


@api.route(
    "POST",
    "/order-systems",
    summary="Register an order system (DEP-1): answers its API token and key, once",
    action="orders.systems",
    process="ACCOUNT",
    body=CREATE,
    status=201,
)
async def create_order_system(req: Req) -> Any:
    account_id = req.body.get("account_id", req.actor.acting_id)
    account = await account_in_scope(req.session, req.actor, account_id)
    if account.type not in _SELLERS:
        raise invalid(
            "not-a-seller-account",
            "Order systems belong to service provider or reseller accounts (they sell devices to customers).",
            account_id,
        )
    taken = await req.session.scalar(
        select(OrderSystem.id).where(OrderSystem.account_id == account.id, OrderSystem.name == req.body["name"])
    )
    if taken is not None:
        raise conflict("order-system-name-taken", "this account has an order system of that name", req.body["name"])
    system = OrderSystem(account_id=account.id, name=req.body["name"], created_by=req.actor.login, created_at=req.now)
    secret = _credentials(system, bool(req.body.get("encrypted", True)))
    req.session.add(system)
    await req.session.flush()
    req.audit_account = account.id
    req.audit_message = f"order system {system.id} {system.name!r} registered (encrypted: {system.key is not None})"
    return Reply({**system_json(system), **secret}, 201)


@api.route(
    "GET",
    "/order-systems",
    summary="List the order systems of your hierarchy (DEP-1)",
    action="orders.systems",
    process="ACCOUNT",
)
async def list_order_systems(req: Req) -> Any:
    limit, offset = req.page()
    scope = select(OrderSystem).join(Account, Account.id == OrderSystem.account_id)
    scope = scope.where(subtree_clause(req.actor, Account.path))
    total = await req.session.scalar(select(func.count()).select_from(scope.subquery()))
    rows = await req.session.scalars(scope.order_by(OrderSystem.id).limit(limit).offset(offset))
    return {"items": [system_json(s) for s in rows], "total": total or 0}


@api.route(
    "GET",
    "/order-systems/{id}",
    summary="One order system (DEP-1)",
    action="orders.systems",
    process="ACCOUNT",
)
async def get_order_system(req: Req) -> Any:
    system = await system_in_scope(req, req.int_param("id"))
    count = await req.session.scalar(select(func.count()).where(OrderBatch.order_system_id == system.id))
    return system_json(system, int(count or 0))


@api.route(
    "POST",
    "/order-systems/{id}/credentials",
    summary="Replace an order system's API token (and key): the old ones stop working (DEP-1)",
    action="orders.systems",
    process="ACCOUNT",
)
async def renew_order_system_credentials(req: Req) -> Any:
    system = await system_in_scope(req, req.int_param("id"))
    secret = _credentials(system, system.key is not None)
    req.audit_account = system.account_id
    req.audit_message = f"order system {system.id}: new token{' and key' if system.key else ''}"
    return {**system_json(system), **secret}


@api.route(
    "DELETE",
    "/order-systems/{id}",
    summary="Delete an order system: its token ends, its batch records go (DEP-1)",
    action="orders.systems",
    process="ACCOUNT",
)
async def delete_order_system(req: Req) -> Any:
    system = await system_in_scope(req, req.int_param("id"))
    await req.session.delete(system)
    req.audit_account = system.account_id
    req.audit_message = f"order system {system.id} {system.name!r} deleted"
    return {"deleted": system.id}
