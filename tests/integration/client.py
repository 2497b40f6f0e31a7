"""A thin admin-API client for tests, and builders for the usual account hierarchy."""

from __future__ import annotations

import itertools
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp

_seq = itertools.count(1)
PASSWORD = "Sturdy-Password-42"


@dataclass
class Answer:
    status: int
    body: Any

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def ok(self) -> Any:
        assert 200 <= self.status < 300, f"{self.status}: {self.body}"
        return self.body


@dataclass
class ApiClient:
    base: str
    token: str | None = None
    session: aiohttp.ClientSession | None = None
    login_name: str = ""
    account_id: str = ""
    _children: list[ApiClient] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # an HTTPS admin listener (--admin-tls): trust, and a client certificate

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(ssl=self.tls) if self.tls is not None else None
            self.session = aiohttp.ClientSession(connector=connector)
        return self.session

    async def close(self) -> None:
        for child in self._children:
            await child.close()
        if self.session is not None:
            await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Answer:
        headers = {}
        tok = token if token is not None else self.token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        if data is not None:
            kwargs["data"] = data
            headers["Content-Type"] = content_type or "application/octet-stream"
        elif body is not None:
            kwargs["json"] = body
        async with self._session().request(method, self.base + "/api/v1" + path, **kwargs) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            parsed: Any = json.loads(raw) if "json" in ctype and raw else raw.decode(errors="replace")
            return Answer(resp.status, parsed)

    async def get(self, path: str, **params: str) -> Answer:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.call("POST", path, body if body is not None else ({} if "data" not in kw else None), **kw)

    async def as_user(self, login: str, password: str, otp: str | None = None) -> ApiClient:
        body = {"login": login, "password": password}
        if otp:
            body["otp"] = otp
        ans = await self.post("/auth/login", body)
        ans.ok()
        client = ApiClient(self.base, token=ans["token"], login_name=login, account_id=ans["account_id"], tls=self.tls)
        self._children.append(client)
        return client

    async def new_account(self, type_: str, name: str | None = None, **extra: Any) -> ApiClient:
        """Create a child account plus an administrator; log that administrator in (password changed)."""
        n = next(_seq)
        acc = (await self.post("/accounts", {"type": type_, "name": name or f"{type_} {n}", **extra})).ok()
        login = f"{type_}-{n}@example.test"
        (
            await self.post(
                "/users",
                {
                    "account_id": acc["id"],
                    "login": login,
                    "password": "Temporary-Pw-1",
                    "email": login,
                    "first_name": "A",
                    "last_name": "B",
                },
            )
        ).ok()
        child = await self.as_user(login, "Temporary-Pw-1")
        (await child.post("/auth/password", {"old_password": "Temporary-Pw-1", "new_password": PASSWORD})).ok()
        child.account_id = acc["id"]
        return child
