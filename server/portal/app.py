"""Mounting the portal on the admin application: pages at `/`, files at `/static/`, and the
security headers every page carries (a strict Content-Security-Policy: this origin's scripts and
styles only, no inline code, no framing)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

# Page modules, each exposing `routes: web.RouteTableDef`.
PAGE_MODULES = (
    "server.portal.auth_pages",
    "server.portal.dashboard_page",
    "server.portal.imports_pages",  # before devices_pages: /devices/import, not /devices/{mac}
    "server.portal.devices_pages",
    "server.portal.jobs_pages",
    "server.portal.sites_pages",
    "server.portal.profiles_pages",
    "server.portal.accounts_pages",
    "server.portal.users_pages",
    "server.portal.logs_pages",
    "server.portal.notifications_pages",
    "server.portal.webhooks_pages",
    "server.portal.fleet_pages",
)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes a browser send `Origin: null` on its own forms
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not request.path.startswith("/api/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")  # pages show what only this session may see
        if request.secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def install(app: web.Application) -> None:
    for name in PAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a page not written yet
                continue
            raise
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", STATIC, append_version=True)
