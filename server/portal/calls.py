"""Admin API calls made in-process for a page: the same route, permission check, validation and
audit entry as `curl` gets (server.api.routing.execute), with the session's token."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.api.app import all_routes
from server.api.routing import Answer, Call, Route, execute
from server.portal import session

_ROUTES: dict[tuple[str, str], Route] = {}


def _route(method: str, path: str) -> Route:
    if not _ROUTES:
        _ROUTES.update({(r.method, r.path): r for r in all_routes()})
    return _ROUTES[(method, path)]


@dataclass
class Result:
    """One call's answer; `error` is the stable id of a refusal ('' on success)."""

    status: int
    body: Any
    response: web.StreamResponse | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def error(self) -> str:
        return str(self.body.get("error", "")) if not self.ok and isinstance(self.body, dict) else ""

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", "")) if not self.ok and isinstance(self.body, dict) else ""


async def call(
    request: web.Request,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    data: bytes | None = None,
    content_type: str = "application/json",
    token: str | None = None,
) -> Result:
    """Call `METHOD path` (a route template such as `/devices/{mac}`) as the session's administrator."""
    route = _route(method, path)
    tok = session.token(request) if token is None else token
    payload = data if data is not None else (b"" if body is None else json.dumps(body).encode())
    given = Call(
        authorization=f"Bearer {tok}" if tok else "",
        match_info={k: str(v) for k, v in (params or {}).items()},
        query={k: str(v) for k, v in (query or {}).items() if v is not None and v != ""},
        data=payload,
        content_type=content_type,
    )
    answer: Answer = await execute(route, request, given)
    return Result(answer.status, answer.body, answer.response)
