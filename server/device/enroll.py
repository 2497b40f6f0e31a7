"""`POST /device/v1/enroll` (PROTOCOL §2; ENR-1..ENR-7, EC-3, EC-7, LCK-2, LCK-3, FW-2..FW-5).

The handler checks the body, then runs look-up -> `decide_enrollment` -> write
(`server.store.enrollment`: one read, the decision, then a group commit with the attempts
queued meanwhile), and answers the decision's status and body once it is committed.

Decisions:
- Body: a JSON object with `model`, `firmware`, `mac`, `serial` (strings) and `code` (a string or
  null, optional); other fields are ignored, so a newer device can say more. A body that is no
  such object is 400 `invalid-body`; a `mac` that is no MAC is 422 `invalid-mac` (PROTOCOL §1).
  Both are audited (ENR-5) as FAIL with that reason, under no account.
- Lengths are bounded (model and firmware 32, serial 64, code 32 characters) and model,
  firmware and serial are printable ASCII: they end up in columns of those sizes and in the
  audit log. A code that is not 8 or 12 digits is still a wrong code, counted
  (LCK-2), not a bad body: the decision says so.
- A lost race (EC-3, LCK-3) is decided again with fresh facts, at most `MAX_DECISIONS` times;
  each loss means another request won, so real contention ends far sooner. Past the bound
  (or on a PostgreSQL deadlock/serialization failure, retried the same way) the answer is 503
  `busy` with `Retry-After: 1`; nothing was written.
- 423 `locked` carries `Retry-After` with the same seconds as `retry_after`.
- Guessing budgets (issue 13, `server.domain.throttle`): a request carrying a code from an
  address (or, globally, from everyone) whose wrong codes spent the budget is answered 429
  `too-many-attempts` with `Retry-After` before anything is looked up, audited as FAIL; every
  `code_invalid` answer spends one. Requests without a code (zero-touch) are never held back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
from aiohttp import web
from jsonschema.exceptions import best_match
from sqlalchemy.exc import DBAPIError

from fixtures.features import FeatureMatrix
from server.api.platform import guessing_policy, lockout_policy
from server.api.slots_hook import fill_slot_on_report_in
from server.device.request import (
    Peer,
    client_host,
    device_ctx,
    error_response,
    firmware_images,
    peer_of,
)
from server.domain.enrollment.decide import decide_enrollment
from server.domain.enrollment.decision import Decision
from server.domain.enrollment.facts import CertificateFacts, RequestFacts
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac
from server.domain.plain_schema import PlainCheck
from server.store import platform_cache
from server.store.audit import audit_values
from server.store.enrollment import Environment, LostRace, apply_decision, load_catalog, load_facts, log_attempt

log = logging.getLogger(__name__)

PATH = "/device/v1/enroll"
FILES_PATH = "/device/v1/files/"
MAX_DECISIONS = 50
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected

_PRINTABLE = "^[\\x20-\\x7e]+$"  # they reach the audit log and the device row as text
BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "firmware", "mac", "serial"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": _PRINTABLE},
        "firmware": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": _PRINTABLE},
        "mac": {"type": "string", "minLength": 1, "maxLength": 32},
        "serial": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[\\x21-\\x7e]+$"},
        "code": {"type": ["string", "null"], "maxLength": 32},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(BODY_SCHEMA)
# The hot path's check: the same schema read once into plain tests (server.domain.plain_schema).
# Validity costs ~5 µs instead of jsonschema's ~0.1 ms; a refused body is checked again against
# the whole schema, so its error answer is the one it always was (tests/unit/test_enroll_body.py).
body_is_valid = PlainCheck.of(BODY_SCHEMA)


class BadBody(Exception):
    def __init__(self, error: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.error, self.detail, self.status = error, detail, status


def parse_body(raw: bytes) -> dict[str, Any]:
    """The enrollment request body, checked against `BODY_SCHEMA`, its MAC canonical."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
        raise BadBody("invalid-body", "The body must be a JSON object (PROTOCOL §2).", 400) from None
    error = None if body_is_valid(body) else best_match(_VALIDATOR.iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        raise BadBody("invalid-body", f"{where}: {error.message}", 400)
    try:
        body["mac"] = normalize_mac(body["mac"])
    except DomainError as err:
        raise BadBody(err.error, err.detail, 422) from None
    return dict(body)


async def enroll(request: web.Request) -> web.Response:
    """PROTOCOL §2: one enrollment attempt, answered with the decision's status and body."""
    peer = peer_of(request)
    host = client_host(request)
    try:
        body = parse_body(await request.read())
    except BadBody as bad:
        await _audit_bad_body(request, peer, host, bad)
        return error_response(bad.error, bad.detail, bad.status)
    facts_request = RequestFacts(
        model=body["model"],
        firmware=body["firmware"],
        mac=body["mac"],
        serial=body["serial"],
        code=body.get("code"),
        client_host=host,
    )
    certificate = CertificateFacts(cn=peer.cn or "", thumbprint=peer.thumbprint, subject=peer.subject,
                                   manufacturer=peer.manufacturer)
    ctx = device_ctx(request)
    gate = ctx.guessing
    if facts_request.code:
        gate.apply(await platform_cache.cached("guessing", ctx.store, guessing_policy))
        refused = gate.check(host, ctx.clock())
        if refused is not None:
            wait, which = refused
            await _audit_refusal(request, peer, host, "too-many-attempts",
                                 f"{which} enrollment-code failure budget spent; retry in {wait} s")
            return error_response(
                "too-many-attempts",
                f"Too many wrong enrollment codes ({which}); try again in {wait} seconds.",
                429,
                **{"Retry-After": str(wait)},
            )
    await fill_slot_on_report_in(ctx, facts_request, certificate)  # FF-1 two-step: a slot prepared for it
    decision = await decide_and_apply(request, facts_request, certificate)
    if decision is not None and decision.result == "code_invalid":
        gate.failed(host, ctx.clock())
    if decision is None:
        return error_response(
            "busy", "The enrollment could not be completed now; try again.", 503, **{"Retry-After": "1"}
        )
    headers = {}
    if decision.result == "locked":
        headers["Retry-After"] = str(decision.body.get("retry_after", 1))
    return web.json_response(decision.body, status=decision.status, headers=headers or None)


async def decide_and_apply(
    request: web.Request, facts_request: RequestFacts, certificate: CertificateFacts
) -> Decision | None:
    """Look up and decide on a read snapshot, then write with conditional updates, committed in
    a batch with other attempts; again on a lost race (EC-3, LCK-3). Only the batch's short write
    holds SQLite's write lock."""
    ctx = device_ctx(request)
    images = firmware_images(request)
    for _ in range(MAX_DECISIONS):
        try:
            catalog = await platform_cache.cached("catalog", ctx.store, load_catalog)
            env = Environment(
                capabilities=FeatureMatrix.load(),
                catalog=catalog,
                policy=await platform_cache.cached("lockout", ctx.store, lockout_policy),
                est_base_url=ctx.est_url or None,
                firmware_images=images.lookup(catalog),
                des_url=ctx.device_url + FILES_PATH if ctx.device_url else None,
            )
            loaded = await load_facts(ctx.store, facts_request, certificate, env)
            now = ctx.clock()
            decision = decide_enrollment(loaded.facts, now)
            await apply_decision(ctx, loaded, decision, now)
            return decision
        except LostRace:
            continue
        except DBAPIError as exc:
            if _sqlstate(exc) not in _RETRY_SQLSTATES:
                raise
            continue
    log.warning("enrollment of %s gave up after %d lost races", facts_request.mac, MAX_DECISIONS)
    return None


def _sqlstate(exc: DBAPIError) -> str | None:
    orig: Any = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


async def _audit_bad_body(request: web.Request, peer: Peer, host: str | None, bad: BadBody) -> None:
    """ENR-5: a refused body is an enrollment attempt too."""
    await _audit_refusal(request, peer, host, bad.error, bad.detail)


async def _audit_refusal(request: web.Request, peer: Peer, host: str | None, error: str, detail: str) -> None:
    """ENR-5: an attempt refused before any decision (bad body, guessing budget), audited as FAIL."""
    ctx = device_ctx(request)
    audit = audit_values(
        at=ctx.clock(),
        process="ENROLLMENT",
        action="enroll",
        status="FAIL",
        message=f"{peer.cn or '(no CN)'} [{peer.subject}] {error} ({error}): {detail}",
        client_host=host,
    )
    await log_attempt(ctx, audit)
