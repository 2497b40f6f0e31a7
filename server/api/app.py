"""The admin application: every resource module's routes, the OpenAPI document, error handling."""

from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

from server.api import meta
from server.api.routing import CTX, PREFIX, Api, Route, errors_middleware, json_response
from server.context import ServerContext

# Resource modules, each exposing `api: Api`. Order is the OpenAPI document's order.
MODULES = (
    "server.api.meta",
    "server.api.auth",
    "server.api.certificate_login",  # USR-3 (issue 16)
    "server.api.accounts",
    "server.api.login_ca",  # USR-3: an account's client root CA
    "server.api.users",
    "server.api.profiles",
    "server.api.sites",
    "server.api.codes",
    "server.api.devices",
    "server.api.timeline",  # issue 16: device timeline, fleet status
    "server.api.jobs",
    "server.api.labels",
    "server.api.platform",
    "server.api.login_throttle",
    "server.api.notifications",
    "server.api.logs",
    "server.api.dashboard",
    "server.api.links",
    "server.api.trust",
    "server.api.order_systems",  # DEP-1
    "server.api.orders",
    "server.api.pnp",  # PNP-1
    "server.api.slots",  # FF-1
    "server.api.direct_add",
    "server.api.merge_provider",
    "server.api.billing",
    "server.api.published_schemas",
    "server.api.webhooks",  # issue 16
)


def all_routes() -> list[Route]:
    routes: list[Route] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a resource not written yet; the rest of the API still serves
                continue
            raise
        api: Api = module.api
        routes.extend(api.routes)
    return routes


def create_admin_app(ctx: ServerContext) -> web.Application:
    from server.portal.app import install as install_portal
    from server.portal.app import security_headers

    app = web.Application(middlewares=[security_headers, errors_middleware], client_max_size=64 << 20)
    app[CTX] = ctx
    routes = all_routes()
    registry = Api()
    registry.routes = routes
    registry.install(app)
    document = meta.openapi_document(routes)

    async def openapi(_request: web.Request) -> web.StreamResponse:
        return json_response(document)

    app.router.add_get(PREFIX + "/openapi.json", openapi)
    install_portal(app)  # the portal's pages at / (issue 16)

    async def drain(_app: web.Application) -> None:
        await ctx.stop_background()

    app.on_shutdown.append(drain)
    return app


def route_table() -> list[dict[str, Any]]:
    """(method, path, action) of every admin call — the permission-matrix test walks it."""
    return [{"method": r.method, "path": PREFIX + r.path, "action": r.action} for r in all_routes()]
