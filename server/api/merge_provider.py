"""Admin API: the `mergeProvider` WebSocket (FF-1) — direct additions and updates as JSON messages.

`GET /api/v1/merge-provider` upgrades to a WebSocket on the admin port; the upgrade request
carries the administrator's `Authorization: Bearer <token>` (no token in the URL, where logs
would keep it) and needs the `fleet.direct_add` permission, checked by the route table before the
upgrade like every call's. Each text message is one JSON object; each gets one answer, in order.

Decisions (docs/fleet-freedom.md has the message schema):
- A message is `{"type": "mergeProvider", "ref"?: string|integer, "provider": {id, kind,
  company, serial?, site_id?, v?}}`; without `v` it adds, with `v` it updates (`direct_add.merge`,
  the same operation as `POST /direct-devices`). The answer echoes `ref`:
  `{"type": "mergeProvider", "ref", "ok": true, "action": "added"|"updated", "provider": {…, "v"}}`.
- Every message is validated at the boundary (the admin API's JSON rules, `inputs.load_json`, and
  the route table's schema validator). A refused message — bad JSON, an unknown type, a schema
  error, a stale version, any rule — answers `{"type": "error", "ref", "ok": false, "error",
  "detail", "status", …}` (a stale `v` adds `current_v`), writes nothing (its transaction rolls
  back) and leaves the socket open. Refusals after authentication are audited FAIL (LOG-1).
- Each message authenticates again (the token may have expired, been logged out, or its account
  disabled since the upgrade): such a message answers the error, and the server closes the socket
  with code 4401. Binary messages are refused (`text-only`); a message over `MAX_MESSAGE` bytes
  ends the socket (WebSocket close 1009), as aiohttp enforces it.
- One message in flight per socket: the next is read only once the answer to the last was sent.
  What a client pipelines waits in aiohttp's read buffer, which stops reading from the TCP
  connection beyond 128 KiB, so a client cannot make the server hold more than that and one
  message per socket.
- The socket runs after the upgrade call's transaction has ended (`after_commit`), so an open
  socket holds no database connection or lock between messages.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WSMsgType, web

from server.api.actor import Actor, authenticate
from server.api.direct_add import merge
from server.api.routing import CTX, Api, Req, _validate, dumps
from server.context import ServerContext
from server.domain import fleet_freedom, inputs, permissions
from server.domain.errors import DomainError, bad_request, forbidden
from server.store.audit import write_audit

log = logging.getLogger("enrollab.api")
api = Api()

ACTION = "fleet.direct_add"
MAX_MESSAGE = 64 << 10
MAX_REF = 64
CLOSE_UNAUTHENTICATED = 4401
MESSAGE_TYPES = ("mergeProvider",)
MESSAGE_SCHEMA: dict[str, Any] = inputs.bound_integers(
    {
        "type": "object",
        "required": ["type", "provider"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": list(MESSAGE_TYPES)},
            "ref": {"type": ["string", "integer"], "maxLength": MAX_REF},
            "provider": fleet_freedom.PROVIDER_SCHEMA,
        },
    }
)
_END_SESSION = frozenset({"auth-required", "invalid-token", "account-disabled", "password-change-required"})


@api.route(
    "GET",
    "/merge-provider",
    summary="WebSocket (upgrade): mergeProvider messages add or update directly added devices (FF-1; "
    "message schema in docs/fleet-freedom.md)",
    action=ACTION,
    process="DEVICE",
    responses={"400": {"description": "websocket-required: the request asked for no WebSocket upgrade"}},
)
async def merge_provider_socket(req: Req) -> Any:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30.0)
    if not ws.can_prepare(req.request).ok:
        raise bad_request("websocket-required", "This call opens a WebSocket: send an HTTP/1.1 upgrade request.")
    request = req.request

    async def run() -> None:
        await serve(ws, request)

    req.after_commit.append(run)
    return ws


async def serve(ws: web.WebSocketResponse, request: web.Request) -> None:
    """The socket's life: one answer per text message, until either side closes."""
    await ws.prepare(request)
    ctx = request.app[CTX]
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                answer = await answer_message(ctx, request, msg.data)
            elif msg.type == WSMsgType.BINARY:
                answer = _error(None, DomainError("text-only", "Messages are JSON text frames.", 400))
            else:
                continue
            await ws.send_str(dumps(answer))
            if answer.get("error") in _END_SESSION:
                await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"authentication ended")
                break
    except Exception:  # a broken connection ends this socket only
        log.exception("mergeProvider socket failed")
        if not ws.closed:
            await ws.close(code=1011, message=b"internal error")


def _ref(message: Any) -> Any:
    """The message's `ref` when it is a valid one (a string of at most 64 characters or an integer
    within 32 bits, as `MESSAGE_SCHEMA` says), else None: never a part of one."""
    ref = message.get("ref") if isinstance(message, dict) else None
    if isinstance(ref, str) and len(ref) <= MAX_REF:
        return ref
    if isinstance(ref, int) and not isinstance(ref, bool) and -(2**31) <= ref < 2**31:
        return ref
    return None


def _error(ref: Any, err: DomainError) -> dict[str, Any]:
    return {"type": "error", "ref": ref, "ok": False, "status": err.status, **err.to_json()}


async def answer_message(ctx: ServerContext, request: web.Request, text: str) -> dict[str, Any]:
    """One message in, one answer out; a refusal writes nothing but its FAIL audit entry."""
    ref: Any = None
    actor: Actor | None = None
    try:
        message = inputs.load_json(text, "message")
        ref = _ref(message)
        async with ctx.store.transaction() as session:
            session.info["clock"] = ctx.clock
            actor = await authenticate(session, request.headers.get("Authorization", ""), ctx, public=False)
            if actor.password_change_required:
                raise forbidden("password-change-required", "change this password first: POST /api/v1/auth/password")
            permissions.check(actor.role, ACTION)
            _validate(message, MESSAGE_SCHEMA)
            answer, _company = await merge(
                session, ctx, actor, message["provider"], via=fleet_freedom.VIA_WEBSOCKET,
                client_host=request.remote,
            )
    except DomainError as err:
        if actor is not None:
            await _audit_refusal(ctx, request, actor, err)
        return _error(ref, err)
    except Exception:
        log.exception("mergeProvider message failed")
        return _error(ref, DomainError("internal-error", "the server failed; see its log", 500))
    return {"type": "mergeProvider", "ref": ref, "ok": True, **answer}


async def _audit_refusal(ctx: ServerContext, request: web.Request, actor: Actor, err: DomainError) -> None:
    try:
        async with ctx.store.transaction() as session:
            await write_audit(
                session, ctx, actor, process="DEVICE", action="mergeProvider", status="FAIL",
                message=f"{err.error}: {err.detail}", client_host=request.remote,
            )
    except Exception:  # the refusal itself must still reach the client
        log.exception("could not write the audit entry for a refused mergeProvider message")
