"""The admin API's route table: one declaration per call gives its path, permission, body schema,
audit process and OpenAPI entry, so validation, ACC-7 checks and LOG-1 entries cannot be forgotten.

Every call runs in one transaction (the handler's work and its SUCCESS audit entry commit
together); a refused mutating call writes its FAIL entry in a transaction of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import jsonschema
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor, authenticate
from server.context import ServerContext
from server.domain import inputs, permissions
from server.domain.errors import DomainError, bad_request, forbidden, invalid
from server.store.audit import write_audit
from server.store.models import User

log = logging.getLogger("enrollab.api")

CTX: web.AppKey[ServerContext] = web.AppKey("ctx", ServerContext)
PREFIX = "/api/v1"
MAX_JSON = 1 << 20


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, bytes | bytearray):
        return o.hex()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps, headers=headers or None)


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200."""

    body: Any
    status: int = 200


@dataclass(frozen=True)
class Call:
    """An admin call made in-process (the portal, server/portal/): the same route, checks and audit
    as over HTTP, with the path values, query, credentials and body given here instead of read
    from the request. The request still gives the client's address (audit) and headers."""

    authorization: str
    match_info: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    data: bytes = b""
    content_type: str = "application/json"


@dataclass
class Answer:
    """What a route answered: a JSON body and status, or a response of its own (exports)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] | None = None
    response: web.StreamResponse | None = None


@dataclass
class Req:
    """What a handler gets: the request, the server, the authenticated actor, the validated body,
    and the transaction it must do all its work in."""

    request: web.Request
    ctx: ServerContext
    session: AsyncSession
    actor: Actor
    body: Any
    raw: bytes | None = None
    audit_message: str = ""
    audit_account: str | None = None
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    call: Call | None = None  # where the path, query and credentials come from (None: the request)

    @property
    def path_params(self) -> Mapping[str, str]:
        return self.call.match_info if self.call is not None else self.request.match_info

    @property
    def args(self) -> Mapping[str, str]:
        """The query string's values."""
        return self.call.query if self.call is not None else self.request.query

    @property
    def authorization(self) -> str:
        return self.call.authorization if self.call is not None else self.request.headers.get("Authorization", "")

    @property
    def content_type(self) -> str:
        """The body's `Content-Type` header value ('' when none was sent)."""
        return self.call.content_type if self.call is not None else self.request.headers.get("Content-Type", "")

    @property
    def bearer(self) -> str:
        """The caller's bearer token (routes that act on their own token: logout, switch)."""
        return self.authorization.partition(" ")[2].strip()

    def param(self, name: str) -> str:
        return self.path_params[name]

    def int_param(self, name: str) -> int:
        value = self.path_params[name]
        number = inputs.ascii_int(value, 0, inputs.ID_MAX)
        if number is None:
            raise DomainError("not-found", f"no such {name.removesuffix('_id')}: {value[:40]!r}", 404, value[:40])
        return number

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.args.get(name, default)

    def page(self, max_limit: int = 1000) -> tuple[int, int]:
        """`limit`/`offset` of a list call (PROTOCOL §3), validated: ASCII digits within bounds."""
        limit = inputs.ascii_int(self.args.get("limit", "100"), 1, max_limit)
        offset = inputs.ascii_int(self.args.get("offset", "0"), 0, inputs.OFFSET_MAX)
        if limit is None or offset is None:
            raise bad_request("invalid-paging", f"limit must be 1..{max_limit} and offset 0..{inputs.OFFSET_MAX}")
        return limit, offset

    @property
    def now(self) -> datetime:
        return self.ctx.clock()

    @property
    def client_host(self) -> str | None:
        return self.request.remote


Handler = Callable[[Req], Awaitable[Any]]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    action: str | None  # permission id; None = public
    process: str  # LOG-1 process name
    body: dict[str, Any] | None = None
    raw_body: tuple[str, ...] = ()  # accepted content types for non-JSON bodies
    max_body: int = MAX_JSON
    audited: bool = False
    tag: str = ""
    status: int = 200
    allow_password_change: bool = False
    query: tuple[tuple[str, str], ...] = ()
    responses: dict[str, Any] = field(default_factory=dict)  # documented answers besides success (OpenAPI)
    secret: bool = False  # the body holds a secret (`writeOnly`): refusals quote none of its values
    answer: dict[str, Any] | None = None  # the success answer's JSON schema (OpenAPI), where documented


class Api:
    """Collects routes from the resource modules; installs them and describes them (OpenAPI)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        action: str | None,
        process: str,
        body: dict[str, Any] | None = None,
        raw_body: tuple[str, ...] = (),
        max_body: int = MAX_JSON,
        audited: bool | None = None,
        tag: str = "",
        status: int = 200,
        allow_password_change: bool = False,
        query: tuple[tuple[str, str], ...] = (),
        responses: dict[str, Any] | None = None,
        answer: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        if action is not None and action not in permissions.ALLOWED:
            raise KeyError(f"route {method} {path}: unknown action {action}")

        def register(fn: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=fn,
                    summary=summary,
                    action=action,
                    process=process,
                    body=None if body is None else inputs.bound_integers(body),
                    raw_body=raw_body,
                    max_body=max_body,
                    audited=method != "GET" if audited is None else audited,
                    tag=tag or path.strip("/").split("/")[0],
                    status=status,
                    allow_password_change=allow_password_change,
                    query=query,
                    responses=dict(responses or {}),
                    secret=inputs.has_secrets(body),
                    answer=answer,
                )
            )
            return fn

        return register

    def install(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, PREFIX + r.path, _wrap(r), name=r.handler.__name__)


async def _read_bytes(request: web.Request, route: Route) -> bytes:
    if request.content_length is not None and request.content_length > route.max_body:
        raise DomainError(
            "body-too-large", f"the request body is over {route.max_body} bytes", 413, request.content_length
        )
    # read() may return what has arrived so far: read to EOF, refusing as soon as the limit is passed.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > route.max_body:
            raise DomainError("body-too-large", f"the request body is over {route.max_body} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_body(data: bytes, route: Route) -> tuple[Any, bytes | None]:
    if route.raw_body:
        return None, data
    if route.body is None:
        return None, None
    if not data:
        raise bad_request("invalid-json", "a JSON body is required")
    body = inputs.load_json(data, quote=not route.secret)
    _validate(body, route.body, quote=not route.secret)
    return body, None


def _check_url_text(match_info: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Path and query values are text the store can hold (`inputs.check_text`), like bodies."""
    for name, value in match_info.items():
        inputs.check_text(value, f"path {name}")
    for name, value in query.items():
        inputs.check_text(name, "query")
        inputs.check_text(value, f"query {name}")


# One integer type for every body: a JSON integer is an int, never 1.0 (which jsonschema would
# take, and the store's integer columns would not).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
_validators: dict[int, jsonschema.protocols.Validator] = {}
_MAX_DETAIL = 300  # a schema message quotes the value: a 1 MiB body is not echoed back


def _validate(body: Any, schema: dict[str, Any], *, quote: bool = True) -> None:
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _Validator(schema)
        _validators[id(schema)] = validator
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        message = error.message if quote else _unquoted(error)
        if len(message) > _MAX_DETAIL:
            message = message[:_MAX_DETAIL] + "…"
        raise invalid("invalid-body", f"{where}: {message}", list(error.absolute_path) or None)


# A schema message quotes the offending value ("'7K3P…' is too long"). In a body holding a secret
# (a label code, a claim's serial) the message says what the rule is instead; these two keywords
# quote property names only, which the schema or the caller's keys give, never a value.
_NAMES_ONLY = ("required", "additionalProperties")


def _unquoted(error: jsonschema.exceptions.ValidationError) -> str:
    rule, bound = error.validator, error.validator_value
    if rule in _NAMES_ONLY:
        return error.message
    sentences = {
        "type": f"must be of type {bound}",
        "maxLength": f"must be at most {bound} characters long",
        "minLength": f"must be at least {bound} characters long",
        "maxItems": f"must have at most {bound} items",
        "minItems": f"must have at least {bound} items",
        "enum": f"must be one of {bound}",
        "const": f"must be {bound!r}",
        "maximum": f"must be at most {bound}",
        "minimum": f"must be at least {bound}",
        "pattern": f"must match the pattern {bound}",
    }
    return sentences.get(str(rule), f"is refused by the schema's {rule!r} rule")


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        answer = await execute(route, request)
        if answer.response is not None:
            return answer.response
        return json_response(answer.body, answer.status, dict(answer.headers or {}))

    handle.__name__ = route.handler.__name__
    return handle


async def execute(route: Route, request: web.Request, call: Call | None = None) -> Answer:
    """Run one admin call: authenticate, check permission (ACC-7), validate, handle, audit, in one
    transaction. Over HTTP everything comes from `request`; in-process (`call`) the path values,
    query, credentials and body come from `call`. Refusals are answers, never exceptions."""
    ctx = request.app[CTX]
    actor: Actor | None = None
    body: Any = None
    try:
        data = await _read_bytes(request, route) if call is None else _given_bytes(call, route)
        async with ctx.store.transaction() as session:
            session.info["clock"] = ctx.clock  # store helpers (outbox) time-stamp with the server's clock
            # Who, then may-they, then what: a refused caller learns nothing about the body rules.
            authorization = request.headers.get("Authorization", "") if call is None else call.authorization
            actor = await authenticate(session, authorization, ctx, public=route.action is None)
            session.info["actor"] = actor  # who made a device change (the timeline, `server.store.timeline`)
            if route.action is not None:
                if actor.password_change_required and not route.allow_password_change:
                    raise forbidden(
                        "password-change-required",
                        "this password was set by someone else: change it with POST /api/v1/auth/password",
                    )
                permissions.check(actor.role, route.action)
            if call is None:
                _check_url_text(request.match_info, request.query)
            else:
                _check_url_text(call.match_info, call.query)
            body, raw = _parse_body(data, route)
            req = Req(request=request, ctx=ctx, session=session, actor=actor, body=body, raw=raw, call=call)
            try:
                result = await route.handler(req)
                await session.flush()
            except IntegrityError as exc:
                raise DomainError("conflict", _integrity_detail(exc), 409) from None
            if route.audited:
                await write_audit(
                    session,
                    ctx,
                    req.actor,
                    process=route.process,
                    action=route.handler.__name__,
                    status="SUCCESS",
                    message=req.audit_message,
                    client_host=request.remote,
                    account_id=req.audit_account,
                )
        for task in req.after_commit:
            await task()
    except DomainError as err:
        if route.audited and err.status not in (401,) or route.process == "LOGIN":
            who = body.get("login") if route.process == "LOGIN" and isinstance(body, dict) else None
            await _audit_failure(ctx, request, route, actor, err, who)
        return Answer(err.status, err.to_json(), err.headers)
    if isinstance(result, web.StreamResponse):
        return Answer(result.status, response=result)
    if isinstance(result, Reply):
        return Answer(result.status, result.body)
    return Answer(route.status, result)


def _given_bytes(call: Call, route: Route) -> bytes:
    if len(call.data) > route.max_body:
        raise DomainError("body-too-large", f"the request body is over {route.max_body} bytes", 413, len(call.data))
    return call.data


async def _audit_failure(
    ctx: ServerContext,
    request: web.Request,
    route: Route,
    actor: Actor | None,
    err: DomainError,
    attempted_login: str | None = None,
) -> None:
    if attempted_login and (actor is None or not actor.login):
        from dataclasses import replace

        from server.api.actor import ANONYMOUS

        actor = replace(actor or ANONYMOUS, login=str(attempted_login)[:254])
    try:
        async with ctx.store.transaction() as session:
            account_id = None
            if attempted_login:
                # A refused login of a known administrator is filed under its account, so that
                # account's administrators see attempts on their own logins (LOG-1).
                account_id = await session.scalar(select(User.account_id).where(User.login == attempted_login))
            await write_audit(
                session,
                ctx,
                actor,
                process=route.process,
                action=route.handler.__name__,
                status="FAIL",
                message=f"{err.error}: {err.detail}",
                client_host=request.remote,
                account_id=account_id,
            )
    except Exception:  # the refusal itself must still reach the client
        log.exception("could not write the audit entry for a refused call")


def _integrity_detail(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    for hint, sentence in (
        ("login", "that login name is taken"),
        ("serial", "a device with that serial number exists"),
        ("bp_link_id", "that BP link ID is taken"),
        ("pin", "another site of this account has that PIN"),
        ("name", "that name is taken in this account"),
        ("mac", "a device with that MAC exists"),
    ):
        if hint in text:
            return sentence
    return "the change conflicts with existing data"


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No traceback ever reaches a client: unknown routes and crashes answer the error format."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith(PREFIX):
            ids = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}
            return json_response({"error": ids.get(exc.status, "http-error"), "detail": exc.reason}, exc.status)
        raise
    except DomainError as err:
        return json_response(err.to_json(), err.status, err.headers)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        if not request.path.startswith(PREFIX):  # a portal page: a page, still no traceback
            return web.Response(status=500, content_type="text/html", text=_FAILED_PAGE)
        return json_response({"error": "internal-error", "detail": "the server failed; see its log"}, 500)


_FAILED_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Server error · enrollab</title></head>'
    "<body><main><h1>Server error</h1><p>The server failed on this page; its log says why. "
    '<a href="/">Back to the dashboard</a></p></main></body></html>'
)
