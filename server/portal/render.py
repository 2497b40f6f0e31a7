"""Drawing pages: the Jinja2 environment (autoescaping on), the signed-in administrator, the
navigation its permissions allow, and the `@page` / `@action` wrappers every portal handler uses."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from server.portal import session
from server.portal.calls import Result, call

TEMPLATES = Path(__file__).parent / "templates"
ME: web.RequestKey[dict[str, Any]] = web.RequestKey("portal-me", dict)

# (label, path, the action that shows it) — links an administrator may not follow are not drawn.
NAV: tuple[tuple[str, str, str], ...] = (
    ("Dashboard", "/", "dashboard.read"),
    ("Fleet", "/fleet", "devices.read"),
    ("Devices", "/devices", "devices.read"),
    ("Jobs", "/jobs", "jobs.read"),
    ("Sites & codes", "/sites", "sites.read"),
    ("Profiles", "/profiles", "profiles.read"),
    ("Accounts", "/accounts", "accounts.read"),
    ("Links", "/links", "links.read"),
    ("Administrators", "/users", "users.read"),
    ("Audit log", "/logs", "logs.read"),
    ("Notifications", "/notifications", "notifications.read"),
    ("Webhooks", "/webhooks", "webhooks.read"),
)


def _when(value: Any) -> str:
    """A time as people read it: `2026-12-07 16:43:02 UTC`; text as it is; nothing as '—'."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    env.filters["when"] = _when
    env.globals["urlencode"] = urlencode
    env.globals["static"] = lambda name: f"/static/{name}"
    return env


ENV = _environment()


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def html(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    me = request.get(ME)
    tok = session.token(request)
    actions = set(me["actions"]) if me else set()
    nav = [(label, path) for label, path, action in NAV if action in actions]
    body = ENV.get_template(template).render(
        me=me,
        nav=nav,
        path=request.path,
        csrf=session.csrf_for(tok) if tok else "",
        may=lambda action: action in actions,
        **values,
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _login_redirect(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else "/"
    response = see_other("/login?" + urlencode({"next": target}))
    session.clear_session(response)
    return response


async def signed_in(request: web.Request) -> web.Response | None:
    """Load the administrator behind the session into request[ME]; a response when there is none."""
    if not session.token(request):
        return _login_redirect(request)
    me = await call(request, "GET", "/auth/me")
    if me.status == 401:
        return _login_redirect(request)
    if not me.ok:
        return error_page(request, me)
    request[ME] = me.body
    if me.body["password_change_required"] and request.path != "/password":
        return see_other("/password")
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _signed_in_run(fn: Handler, request: web.Request) -> web.StreamResponse:
    """Run a handler for the signed-in administrator; its Redirect and Refused become answers."""
    refused = await signed_in(request)
    if refused is not None:
        return refused
    try:
        return await fn(request)
    except Redirect as r:
        return see_other(r.location)
    except Refused as r:
        return error_page(request, r.result)


def page(fn: Handler) -> Handler:
    """A page for a signed-in administrator (GET)."""

    @functools.wraps(fn)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await _signed_in_run(fn, request)

    return wrapped


def action(fn: Handler) -> Handler:
    """A state change (POST form) of a signed-in administrator: the CSRF token first."""

    @functools.wraps(fn)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not session.csrf_ok(request, form):
            return html(request, "error.html", 403, title="Refused", error="csrf-invalid",
                        detail="This form is stale or did not come from this portal: reload the page and try again.")
        return await _signed_in_run(fn, request)

    return wrapped


def error_page(request: web.Request, result: Result) -> web.Response:
    """An API refusal as a page: its status, stable id and sentence."""
    if result.status == 401:
        return _login_redirect(request)
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Too large", 429: "Slow down"}
    return html(request, "error.html", result.status, title=titles.get(result.status, "Refused"),
                error=result.error, detail=result.detail)


class Refused(Exception):
    """Raised by `need` when an API call was refused: the wrappers answer the refusal page."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


def need(result: Result) -> Any:
    """The body of a successful call; a refusal becomes the error page (its status and id)."""
    if not result.ok:
        raise Refused(result)
    return result.body
