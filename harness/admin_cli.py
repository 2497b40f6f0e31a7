"""What every admin-API command of `enrollab` shares: the server and credential options, one
way to fail (error id + sentence, exit 2, never a traceback) and a logged-in client.

PROTOCOL §4 conventions: `--server` (or ENROLLAB_SERVER), `--admin-login` (default admin, or
ENROLLAB_ADMIN_LOGIN), `--admin-password` (or ENROLLAB_ADMIN_PASSWORD; never echoed or logged).
A command declares them with `@admin_options` and receives `server`, `admin_login` and
`admin_password`; `admin_call(...)` runs one coroutine with a logged-in `AdminClient` and turns
an unreachable server or a refusal into `fail`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import aiohttp
import click
from rich.console import Console
from rich.markup import escape

from simulators.admin_client import AdminClient, AdminError

console = Console(stderr=True)
T = TypeVar("T")


def fail(error: str, detail: str, lines: list[str] | None = None) -> NoReturn:
    """Print `error <id>: <sentence>` (and optional detail lines) on stderr and exit 2."""
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True)
    for line in lines or []:
        console.print(f"  {escape(line)}", soft_wrap=True)
    sys.exit(2)


def refused(exc: AdminError, answer: Any = None) -> NoReturn:
    """An admin API refusal; a body with `errors` (JSON pointer + message) lists up to 20 of them."""
    lines = []
    if isinstance(answer, dict):
        for e in answer.get("errors", [])[:20]:
            lines.append(f"{e.get('pointer') or '/'}: {e.get('message')}")
    fail(exc.error, exc.detail, lines)


def server_option(fn: Any) -> Any:
    return click.option(
        "--server", envvar="ENROLLAB_SERVER", required=True, help="Admin API URL (or ENROLLAB_SERVER)."
    )(fn)


def credential_options(fn: Any) -> Any:
    options = [
        click.option("--admin-login", envvar="ENROLLAB_ADMIN_LOGIN", default="admin", show_default=True,
                     help="Administrator login (or ENROLLAB_ADMIN_LOGIN)."),
        click.option("--admin-password", envvar="ENROLLAB_ADMIN_PASSWORD", default=None,
                     help="Administrator password (or ENROLLAB_ADMIN_PASSWORD)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def admin_options(fn: Any) -> Any:
    """`--server`, `--admin-login`, `--admin-password`."""
    return server_option(credential_options(fn))


def check_server(server: str) -> str:
    if not server.startswith(("http://", "https://")):
        fail("invalid-server-url", f"--server {server!r} is not an http(s) URL of an admin API")
    return server.rstrip("/")


def admin_call(
    server: str,
    login: str,
    password: str | None,
    work: Callable[[AdminClient], Awaitable[T]],
) -> T:
    """Log in and run `work(client)`; a refusal or an unreachable server exits 2 with its reason."""
    base = check_server(server)
    if password is None:
        fail("credentials-required", "give --admin-password (or ENROLLAB_ADMIN_PASSWORD)")

    async def run() -> T:
        async with aiohttp.ClientSession() as http:
            client = await AdminClient(base, http).login(login, password or "")
            return await work(client)

    try:
        return asyncio.run(run())
    except AdminError as exc:
        refused(exc)
    except aiohttp.ClientError as exc:
        fail("server-unreachable", f"{base}: {exc}")
    except KeyboardInterrupt:
        fail("interrupted", "stopped by the user")
