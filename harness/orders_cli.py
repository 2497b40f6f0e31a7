"""`enrollab orders …` (DEP-1): an order system's side of order-driven enrollment, on the command line.

`register` makes an order system (an administrator's call), `submit` sends a batch file (and
encrypts it with `--key`), `fetch` writes the response batch (decrypted with `--key`). The
contract is docs/orders.md; the schemas are `GET /api/v1/schemas/{name}`.

Who calls (PROTOCOL §4 conventions): the order system's API token (`--token` or
ENROLLAB_ORDER_TOKEN), or an administrator (`--admin-login`/`--admin-password`, or
ENROLLAB_ADMIN_LOGIN / ENROLLAB_ADMIN_PASSWORD) acting for `--order-system ID`.
Exit status: 0 done (every device succeeded, for submit), 1 processed with some devices not
succeeding, 2 refused, bad input or an unreachable server — with the error id and a sentence.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.admin_cli import admin_options, credential_options, fail, refused, server_option
from server.domain import order_envelope
from server.domain.errors import DomainError
from simulators.admin_client import AdminClient, AdminError

console = Console(stderr=True)


@dataclass
class Caller:
    server: str
    token: str | None
    order_system: int | None
    admin_login: str
    admin_password: str | None

    @property
    def params(self) -> dict[str, str] | None:
        return None if self.token else {"order_system": str(self.order_system)}

    async def client(self, http: aiohttp.ClientSession) -> AdminClient:
        if self.token:
            return AdminClient(self.server, http, self.token)
        return await AdminClient(self.server, http).login(self.admin_login, self.admin_password or "")


def _caller(server: str, token: str | None, order_system: int | None, login: str, password: str | None) -> Caller:
    if not server.startswith(("http://", "https://")):
        fail("invalid-server-url", f"--server {server!r} is not an http(s) URL of an admin API")
    if not token:
        if password is None:
            fail("credentials-required", "give --token (or ENROLLAB_ORDER_TOKEN), or admin credentials")
        if order_system is None:
            fail("order-system-required", "an administrator names the order system: --order-system ID")
    return Caller(server, token, order_system, login, password)


def _key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return order_envelope.check_key(path.read_text(encoding="ascii"))
    except OSError as exc:
        fail("cannot-read", f"cannot read the key file {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail("invalid-key", f"{path} does not hold a key (32 bytes in url-safe base64)")
    except DomainError as err:
        fail(err.error, f"{path}: {err.detail}")


def _server_options(fn: Any) -> Any:
    options = [
        server_option,
        click.option(
            "--token",
            envvar="ENROLLAB_ORDER_TOKEN",
            default=None,
            help="The order system's API token (or ENROLLAB_ORDER_TOKEN).",
        ),
        click.option("--order-system", type=int, default=None, help="With admin credentials: the order system's id."),
        credential_options,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def orders() -> None:
    """Order-driven enrollment (DEP-1): batches of device enrolment requests from an order system."""


@orders.command("register")
@click.argument("name")
@click.option("--account", "account_id", default=None, help="The seller account (default: the administrator's).")
@click.option("--plain", is_flag=True, help="No key: batches and responses travel in plain JSON.")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the key here.")
@admin_options
def register(
    name: str,
    account_id: str | None,
    plain: bool,
    key_out: Path | None,
    server: str,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Register an order system NAME for a service provider or reseller account. Prints its id
    and API token on stdout (shown once); its key goes to --key-out (mode 600)."""
    caller = _caller(server, None, 0, admin_login, admin_password)
    if not plain and key_out is None:
        fail("key-out-required", "an encrypted order system's key is shown once: give --key-out FILE (or --plain)")
    body: dict[str, Any] = {"name": name, "encrypted": not plain}
    if account_id:
        body["account_id"] = account_id

    async def go() -> Any:
        async with aiohttp.ClientSession() as http:
            client = await caller.client(http)
            return await client.call("POST", "/order-systems", body)

    created = _call(go)
    if key_out is not None and created.get("key"):
        try:
            key_out.touch(mode=0o600)
            key_out.write_text(created["key"] + "\n", encoding="ascii")
        except OSError as exc:
            fail("cannot-write", f"cannot write {key_out}: {exc.strerror or exc}")
    click.echo(json.dumps({"id": created["id"], "token": created["token"], "key_id": created.get("key_id")}))


def _call(go: Any) -> Any:
    try:
        return asyncio.run(go())
    except AdminError as exc:
        refused(exc, getattr(exc, "answer", None))
    except aiohttp.ClientError as exc:
        fail("server-unreachable", str(exc))


async def _post_batch(client: AdminClient, body: bytes, params: dict[str, str] | None) -> Any:
    """POST the batch; on a refusal keep the whole answer (schema errors list their pointers)."""
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"}
    async with client.http.post(client.base + "/orders/batches", data=body, params=params, headers=headers) as resp:
        answer = await resp.json(content_type=None)
        if resp.status >= 400:
            error = AdminError(
                "POST", "/orders/batches", resp.status, answer.get("error", "?"), answer.get("detail", "")
            )
            error.answer = answer  # type: ignore[attr-defined]
            raise error
        return answer


async def _follow(client: AdminClient, batch_id: str, total: int, params: dict[str, str] | None) -> Any:
    """Poll the batch with a progress bar until it is processed."""
    columns = (TextColumn("batch {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(batch_id, total=total)
        delay = 0.05
        while True:
            state = await client.call("GET", f"/orders/batches/{batch_id}", params=params)
            bar.update(task, completed=state["processed"])
            if state["status"] != "IN PROGRESS":
                return state
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def _print_outcomes(state: dict[str, Any]) -> None:
    table = Table(title=f"batch {state['batch_id']}: {state['status']}")
    table.add_column("outcome")
    table.add_column("devices", justify="right")
    for outcome, n in sorted(state["outcomes"].items()):
        table.add_row(outcome, str(n))
    console.print(table)


@orders.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The order system's key: a plain batch FILE is encrypted with it before it is sent.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the processing with a progress bar.")
@_server_options
def submit(
    file: Path,
    key_file: Path | None,
    wait: bool,
    server: str,
    token: str | None,
    order_system: int | None,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Submit the request batch FILE (dep-batch JSON, or a dep-envelope already encrypted).

    Submitting the same batch again is harmless: the server answers the batch it has. Prints the
    batch's state as JSON on stdout; exit 0 when every device succeeded, 1 when some did not."""
    caller = _caller(server, token, order_system, admin_login, admin_password)
    key = _key(key_file)
    try:
        data = file.read_bytes()
        document = json.loads(data)
    except OSError as exc:
        fail("cannot-read", f"cannot read {file}: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail("invalid-json", f"{file} is not a JSON document: {exc}")
    if key is not None and not order_envelope.is_envelope(document):
        data = json.dumps(order_envelope.seal(data, key, "dep-batch")).encode()

    async def go() -> Any:
        async with aiohttp.ClientSession() as http:
            client = await caller.client(http)
            state = await _post_batch(client, data, caller.params)
            if state.get("replayed"):
                console.print(f"batch {escape(state['batch_id'])} was submitted before: the server's batch follows")
            if wait and state["status"] == "IN PROGRESS":
                state = await _follow(client, state["batch_id"], state["total"], caller.params)
            return state

    state = _call(go)
    if state["status"] != "IN PROGRESS":
        _print_outcomes(state)
    click.echo(json.dumps(state))
    sys.exit(1 if state["status"] == "FAIL" else 0)


@orders.command("fetch")
@click.argument("batch_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the response batch here (default: stdout).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Decrypt the response with this key; without it an encrypted response is written as served.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait while the batch is processed.")
@_server_options
def fetch(
    batch_id: str,
    out: Path | None,
    key_file: Path | None,
    wait: bool,
    server: str,
    token: str | None,
    order_system: int | None,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Fetch the response batch of BATCH_ID (dep-response; a dep-envelope when encrypted)."""
    caller = _caller(server, token, order_system, admin_login, admin_password)
    key = _key(key_file)

    async def go() -> Any:
        async with aiohttp.ClientSession() as http:
            client = await caller.client(http)
            if wait:
                state = await client.call("GET", f"/orders/batches/{batch_id}", params=caller.params)
                if state["status"] == "IN PROGRESS":
                    await _follow(client, batch_id, state["total"], caller.params)
            return await client.call("GET", f"/orders/batches/{batch_id}/response", params=caller.params)

    document = _call(go)
    if key is not None and order_envelope.is_envelope(document):
        try:
            document = json.loads(order_envelope.open_envelope(document, key))
        except DomainError as err:
            fail(err.error, err.detail)
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail("cannot-write", f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"response batch {escape(batch_id)} written to {escape(str(out))}")
