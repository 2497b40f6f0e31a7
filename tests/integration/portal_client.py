"""A signed-in browser-like client of the portal for integration tests: a cookie jar, the login
form's double-submit token, and the session's CSRF token read from the pages it draws."""

from __future__ import annotations

import re
import ssl
from typing import Any

import aiohttp

_FIELD = re.compile(r'name="(csrf|login_csrf)" value="([^"]*)"')


def field(html: str, name: str = "csrf") -> str:
    for found, value in _FIELD.findall(html):
        if found == name:
            return value
    raise AssertionError(f"no {name} field in the page")


class Portal:
    def __init__(self, base_url: str, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: for an HTTPS portal (`--admin-tls`), the server's trust and a user certificate."""
        self.base = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=kw.pop("allow_redirects", True), **kw) as r:
            text = await r.text()
            if 'name="csrf"' in text:
                self.csrf = field(text)
            return r.status, text

    async def post(self, path: str, data: dict[str, Any] | aiohttp.FormData | None = None, *,
                   csrf: bool = True, **kw: Any) -> tuple[int, str, str]:
        """POST a form (with the session's CSRF token unless csrf=False); answers status, page, Location."""
        if isinstance(data, aiohttp.FormData):
            form = data
            if csrf:
                form.add_field("csrf", self.csrf)
        else:
            form = aiohttp.FormData({**(data or {}), **({"csrf": self.csrf} if csrf else {})})
        async with self.http.post(self.base + path, data=form, allow_redirects=False, **kw) as r:
            text = await r.text()
            if 'name="csrf"' in text:
                self.csrf = field(text)
            return r.status, text, r.headers.get("Location", "")

    async def login(self, login: str, password: str, otp: str | None = None) -> tuple[int, str, str]:
        _, page = await self.get("/login")
        status, text, location = await self.post(
            "/login", {"login_csrf": field(page, "login_csrf"), "login": login, "password": password, "next": "/"},
            csrf=False,
        )
        if otp is not None and location.startswith("/login/otp"):
            _, page = await self.get(location)
            status, text, location = await self.post(
                "/login/otp", {"login_csrf": field(page, "login_csrf"), "otp": otp, "next": "/"}, csrf=False
            )
        if status == 303:
            await self.get("/")  # picks up the session's CSRF token
        return status, text, location


async def signed_in(base_url: str, login: str, password: str) -> Portal:
    portal = Portal(base_url)
    status, _, location = await portal.login(login, password)
    assert status == 303 and location in ("/", "/password"), (status, location)
    return portal
