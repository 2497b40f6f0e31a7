"""`enrollab billing …` (FF-1): the billing report of an account and month, on the command line.

`report` reads `GET /api/v1/billing?account=…&month=…` — every direct addition of the account in
that UTC month, also of devices deleted since — and prints it as a table (or `--json`); `--csv
FILE` also writes it as CSV, rendered from that one answer by the server's `report_csv` (the
columns of docs/fleet-freedom.md, exactly as `format=csv`). Server and credentials as
every admin command (`harness.admin_cli`). Exit status 0 done, 2 refused, bad input or an
unreachable server — with the error id and a sentence.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.admin_cli import admin_call, admin_options, fail
from server.domain import billing as billing_rules
from server.domain.errors import DomainError
from simulators.admin_client import AdminClient

console = Console()


@click.group("billing")
def billing() -> None:
    """Billing of direct additions (FF-1): what each account added directly, per month."""


def _csv(answer: dict[str, Any]) -> str:
    """The report's CSV from its JSON answer, rendered by the server's own function (the same
    columns and formula neutralising as `format=csv`), so one request serves both."""
    items = tuple(
        billing_rules.Addition(**{**item, "added_at": datetime.fromisoformat(item["added_at"])})
        for item in answer["items"]
    )
    return billing_rules.report_csv(billing_rules.Report(answer["account_id"], answer["month"], items))


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
    if not billing_rules.ACCOUNT_ID.fullmatch(account):
        fail("invalid-account", f"--account {account!r} is not an 8-digit account id")
    try:
        billing_rules.parse_month(month)
    except DomainError as err:
        fail(err.error, f"--month {month!r}: {err.detail}")
    params = {"account": account, "month": month}

    async def work(client: AdminClient) -> Any:
        return await client.call("GET", "/billing", params=params)

    answer = admin_call(server, admin_login, admin_password, work)
    if csv_file is not None:
        try:
            csv_file.write_text(_csv(answer), encoding="utf-8", newline="")
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
