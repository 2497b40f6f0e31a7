"""`enrollab billing …` (FF-1): the billing report of an account and month, on the command line.

`report` reads `GET /api/v1/billing?account=…&month=…` — every direct addition of the account in
that UTC month, also of devices deleted since — and prints it as a table (or `--json`); `--csv
FILE` also writes the server's CSV (columns in docs/fleet-freedom.md). Server and credentials as
every admin command (`harness.admin_cli`). Exit status 0 done, 2 refused, bad input or an
unreachable server — with the error id and a sentence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.admin_cli import admin_call, admin_options, fail
from server.domain import billing as billing_rules
from server.domain.errors import DomainError
from simulators.admin_client import AdminClient, AdminError

console = Console()
_ACCOUNT = re.compile(r"[0-9]{8}")


@click.group("billing")
def billing() -> None:
    """Billing of direct additions (FF-1): what each account added directly, per month."""


async def _csv(client: AdminClient, params: dict[str, str]) -> str:
    """The CSV form of the report (the JSON client only takes JSON answers)."""
    headers = {"Authorization": f"Bearer {client.token}"}
    async with client.http.get(client.base + "/billing", params={**params, "format": "csv"}, headers=headers) as resp:
        text = await resp.text()
        if resp.status >= 400:
            try:
                answer = json.loads(text)
            except ValueError:
                answer = {}
            error, detail = answer.get("error", "http-error"), answer.get("detail", "")
            raise AdminError("GET", "/billing", resp.status, error, detail)
        return text


@billing.command("report")
@click.option("--account", required=True, help="The account id (8 digits).")
@click.option("--month", required=True, help="The month, YYYY-MM (UTC).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as CSV to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@admin_options
def report(
    account: str,
    month: str,
    csv_file: Path | None,
    as_json: bool,
    server: str,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """The billing report of ACCOUNT in MONTH: each direct addition, even of a device deleted at once."""
    if not _ACCOUNT.fullmatch(account):
        fail("invalid-account", f"--account {account!r} is not an 8-digit account id")
    try:
        billing_rules.parse_month(month)
    except DomainError as err:
        fail(err.error, f"--month {month!r}: {err.detail}")
    params = {"account": account, "month": month}

    async def work(client: AdminClient) -> tuple[Any, str | None]:
        answer = await client.call("GET", "/billing", params=params)
        return answer, (await _csv(client, params) if csv_file is not None else None)

    answer, csv_text = admin_call(server, admin_login, admin_password, work)
    if csv_file is not None and csv_text is not None:
        try:
            csv_file.write_text(csv_text, encoding="utf-8", newline="")
        except OSError as exc:
            fail("cannot-write", f"cannot write {csv_file}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps(answer))
    else:
        _print(answer)
    if csv_file is not None:
        Console(stderr=True).print(f"CSV written to {escape(str(csv_file))}")


def _print(answer: dict[str, Any]) -> None:
    table = Table(title=f"account {answer['account_id']}, {answer['month']}: direct additions")
    for column in ("mac", "kind", "via", "added by", "added at", "present"):
        table.add_column(column)
    for item in answer["items"]:
        table.add_row(item["mac"], item["kind"], item["via"], escape(item["added_by"]), item["added_at"],
                      "yes" if item["present"] else "deleted")
    console.print(table)
    console.print(f"billable direct additions: {answer['direct_additions']} ({answer['devices']} devices)")
