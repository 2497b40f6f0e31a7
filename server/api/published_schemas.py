"""Admin API: the published JSON Schemas (DEP-1 batch files, DEV-1 import files), no authentication.

An order system validates its batch files against the same documents the server validates them
with (`fixtures/schemas/`); the names are `server.domain.orders.SCHEMAS`.
"""

from __future__ import annotations

from typing import Any

from server.api.routing import Api, Req
from server.domain import orders
from server.domain.errors import not_found

api = Api()


@api.route(
    "GET",
    "/schemas",
    summary="The names of the published JSON Schemas (no authentication)",
    action=None,
    process="INFO",
    tag="meta",
)
async def list_schemas(req: Req) -> Any:
    names = sorted(orders.SCHEMAS)
    return {"items": [{"name": n, "url": f"/api/v1/schemas/{n}"} for n in names], "total": len(names)}


@api.route(
    "GET",
    "/schemas/{name}",
    summary="One published JSON Schema, e.g. dep-batch, dep-response, dep-envelope (no authentication)",
    action=None,
    process="INFO",
    tag="meta",
)
async def get_schema(req: Req) -> Any:
    name = req.param("name").removesuffix(".schema.json").removesuffix(".json")
    if name not in orders.SCHEMAS:
        raise not_found("schema-not-found", f"no published schema {name[:64]!r}; see GET /api/v1/schemas")
    return orders.schema(name)
