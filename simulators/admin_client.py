"""A small client of the admin API (PROTOCOL §3), as any third party would write one.

The fleet arranges its phones through it; it knows nothing of the server's code, only the
contract: JSON under `/api/v1`, bearer tokens, errors as `{"error", "detail"}`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp

__all__ = ["AdminClient", "AdminError"]

# Administrators the fleet creates get a password of this shape (USR-1: changed at first login).
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_password() -> str:
    return "Fl-" + "".join(secrets.choice(_ALPHABET) for _ in range(20)) + "-9"


class AdminError(Exception):
    """A call answered an error: the method, path, status and the server's error id and detail."""

    def __init__(self, method: str, path: str, status: int, error: str, detail: str) -> None:
        super().__init__(f"{method} {path} → {status} {error}: {detail}")
        self.method, self.path, self.status, self.error, self.detail = method, path, status, error, detail


class AdminClient:
    """One logged-in administrator (or none yet), sharing an aiohttp session."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession, token: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        if not self.base.endswith("/api/v1"):
            self.base += "/api/v1"
        self.http = http
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if content_type:
            headers["Content-Type"] = content_type
        async with self.http.request(
            method, self.base + path, json=body if data is None else None, data=data, params=params, headers=headers
        ) as resp:
            raw = await resp.read()
            try:
                answer = json.loads(raw) if raw else None
            except ValueError:  # a server (or a proxy) answering text: keep it for the error
                answer = raw[:300].decode("utf-8", "replace")
                if resp.status < 400:
                    raise AdminError(method, path, resp.status, "not-json", answer) from None
            if resp.status >= 400:
                error = answer.get("error", "http-error") if isinstance(answer, dict) else "http-error"
                detail = answer.get("detail", "") if isinstance(answer, dict) else str(answer)
                raise AdminError(method, path, resp.status, error, detail)
            return answer

    async def login(self, login: str, password: str) -> AdminClient:
        answer = await self.call("POST", "/auth/login", {"login": login, "password": password})
        client = AdminClient(self.base, self.http, answer["token"])
        client.password_change_required = bool(answer.get("password_change_required"))  # type: ignore[attr-defined]
        return client

    async def new_administered_account(self, type_: str, name: str, login: str) -> tuple[str, AdminClient]:
        """Create an account and its first administrator; log it in and set its own password (USR-1)."""
        account = await self.call("POST", "/accounts", {"type": type_, "name": name})
        temporary = new_password()
        await self.call(
            "POST",
            "/users",
            {"account_id": account["id"], "login": login, "password": temporary, "email": login},
        )
        user = await AdminClient(self.base, self.http).login(login, temporary)
        await user.call("POST", "/auth/password", {"old_password": temporary, "new_password": new_password()})
        return str(account["id"]), user

    async def wait_job(self, job_id: int, timeout: float = 600.0) -> Any:
        """DEV-10: poll a job until it leaves IN PROGRESS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.05
        while True:
            job = await self.call("GET", f"/jobs/{job_id}", params={"limit": "1"})
            if job["status"] != "IN PROGRESS":
                return job
            if loop.time() > deadline:
                raise AdminError("GET", f"/jobs/{job_id}", 0, "job-timeout", f"still IN PROGRESS after {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
