"""Admin API: server identity (`/info`) and the OpenAPI 3 document built from the route table."""

from __future__ import annotations

from typing import Any

from server import __version__
from server.api.routing import MAX_JSON, PREFIX, Api, Req, Route
from server.domain import inputs

api = Api()

ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


@api.route(
    "GET",
    "/info",
    summary="Server name, version and device URLs (no authentication)",
    action=None,
    process="INFO",
    tag="meta",
)
async def info(req: Req) -> Any:
    return {"name": req.ctx.name, "version": __version__, "device_url": req.ctx.device_url, "est_url": req.ctx.est_url}


INPUT_RULES = (
    f"Every call's input: a body of at most {MAX_JSON} bytes unless its request body states another"
    " limit (413 `body-too-large`); JSON nesting at most"
    f" {inputs.MAX_DEPTH} levels (400 `json-too-deep`), without NaN or Infinity (400 `invalid-json`);"
    f" every integer in a body within {inputs.INT_MIN}..{inputs.INT_MAX} (422 `integer-out-of-range`);"
    " every string in a body, path or query Unicode text without NUL or lone surrogates"
    " (422 `invalid-text`); names without control characters; ids in paths ASCII digits."
)


def openapi_document(routes: list[Route]) -> dict[str, Any]:
    """OpenAPI 3.1 from the same declarations that validate requests: they cannot drift apart."""
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "operationId": r.handler.__name__,
            "summary": r.summary,
            "tags": [r.tag],
            "responses": {
                str(r.status): {
                    "description": "success",
                    "content": {"application/json": {"schema": r.answer or {}}},
                },
                "default": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
                **{
                    status: {"content": {"application/json": {"schema": ERROR}}, **answer}
                    for status, answer in r.responses.items()
                },
            },
        }
        if r.action is None:
            op["security"] = []
        else:
            op["x-permission"] = r.action
        params = [
            {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
            for p in r.path.split("/")
            if p.startswith("{")
        ]
        if r.method == "GET" and r.path.endswith("s") or r.method == "GET" and r.query:
            params += [
                {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
                for n, d in r.query
            ]
        if r.method == "GET" and not r.path.endswith("}"):
            params += [
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "offset",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "maximum": inputs.OFFSET_MAX},
                },
            ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "description": f"at most {r.max_body} bytes",
                "content": {"application/json": {"schema": r.body}},
            }
        elif r.raw_body:
            op["requestBody"] = {
                "required": True,
                "description": f"at most {r.max_body} bytes",
                "content": {ct: {"schema": {"type": "string", "format": "binary"}} for ct in r.raw_body},
            }
        paths.setdefault(PREFIX + r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "enrollab admin API",
            "version": __version__,
            "description": "The reference enrollment server's admin API (PROTOCOL.md §3). " + INPUT_RULES,
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
