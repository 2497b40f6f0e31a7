"""`enrollab devices …` (PNP-1): one device's life after onboarding, on the command line —
pre-register devices for a site, place the pending ones, reprovision a device to another
account/site, replace a faulty device by a new one, show a device with its history.
The contract is docs/pnp.md.

Admin credentials as every admin command (harness/admin_cli.py): `--server`, `--admin-login`,
`--admin-password` (or ENROLLAB_SERVER / ENROLLAB_ADMIN_LOGIN / ENROLLAB_ADMIN_PASSWORD).
Exit status: 0 done, 1 done with some devices refused (register), 2 refused, bad input or an
unreachable server — with the error id and a sentence.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.admin_cli import admin_call, admin_options, fail
from harness.cli_files import read_text
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac
from simulators.admin_client import AdminClient

console = Console(stderr=True)
CHUNK = 500  # devices per registration call, so a long file shows progress


@click.group()
def devices() -> None:
    """Devices (PNP-1): pre-registration, reprovisioning, replacement, history."""


def _mac(value: str, where: str = "MAC") -> str:
    """A MAC as PROTOCOL §1 writes it (checked here: it goes into the call's URL path)."""
    try:
        return normalize_mac(value)
    except DomainError:
        fail("invalid-mac", f"{where}: {value[:40]!r} is not a MAC address (12 hex digits, ':' '-' '.' allowed)")


def _read_registrations(path: Path) -> list[dict[str, str]]:
    """The devices of a registration file, every line checked before anything is sent."""
    rows = list(csv.DictReader(io.StringIO(read_text(path, "invalid-devices-file", "UTF-8 text"))))
    if not rows or not {"mac", "serial"} <= set(rows[0]):
        fail(
            "invalid-devices-file",
            f"{path}: a CSV with a header row naming mac, serial (and optionally model, label_code)",
        )
    out = []
    for number, row in enumerate(rows, start=2):
        if not (row.get("mac") or "").strip() or not (row.get("serial") or "").strip():
            fail("invalid-devices-file", f"{path}: line {number}: mac and serial are required")
        item = {"mac": _mac(row["mac"].strip(), f"{path}: line {number}"), "serial": row["serial"].strip()}
        for optional in ("model", "label_code"):
            if (row.get(optional) or "").strip():
                item[optional] = (row.get(optional) or "").strip()
        out.append(item)
    return out


@devices.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", "account_id", default=None, help="Target account (default: yours).")
@click.option("--site", "site_id", type=click.IntRange(1), required=True, help="Target site (with a profile).")
@admin_options
def register(
    file: Path, account_id: str | None, site_id: int, server: str, admin_login: str, admin_password: str | None
) -> None:
    """Pre-register the devices of FILE (CSV: mac, serial[, model][, label_code]) for a site: each
    enrolls on its first contact — placed at once when it is imported and approved, else when it
    is approved (or by `devices apply`). label_code: the code printed on the box, where the device
    has one or your account requires one. Sent 500 devices a call: a refused call stops the
    command, the calls before it stay done (registering again is harmless)."""
    items = _read_registrations(file)

    async def work(client: AdminClient) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        columns = (TextColumn("pre-registering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("devices", total=len(items))
            for start in range(0, len(items), CHUNK):
                body: dict[str, Any] = {"site_id": site_id, "devices": items[start : start + CHUNK]}
                if account_id:
                    body["account_id"] = account_id
                answer = await client.call("POST", "/pnp/registrations", body)
                results.extend(answer["results"])
                bar.advance(task, len(body["devices"]))
        return results

    results = admin_call(server, admin_login, admin_password, work)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    table = Table(title=f"pre-registration of {len(results)} devices")
    table.add_column("outcome")
    table.add_column("devices", justify="right")
    for outcome, n in sorted(counts.items()):
        table.add_row(outcome, str(n))
    console.print(table)
    click.echo(json.dumps({"outcomes": counts, "results": results}))
    refused = sum(n for k, n in counts.items() if k not in ("ready", "already-placed", "pending"))
    sys.exit(1 if refused else 0)


@devices.command("apply")
@admin_options
def apply(server: str, admin_login: str, admin_password: str | None) -> None:
    """Place the pending pre-registered devices that are imported and approved by now."""
    answer = admin_call(server, admin_login, admin_password, lambda c: c.call("POST", "/pnp/registrations/apply", {}))
    summary = answer["summary"]
    console.print(f"{summary['ready']} of {summary['total']} pending devices placed")
    click.echo(json.dumps(answer))


@devices.command("reprovision")
@click.argument("mac")
@click.option("--account", "account_id", default=None, help="The new account (default: yours).")
@click.option("--site", "site_id", type=click.IntRange(1), required=True, help="The new site (with a profile).")
@admin_options
def reprovision(
    mac: str, account_id: str | None, site_id: int, server: str, admin_login: str, admin_password: str | None
) -> None:
    """Move the device MAC to another account/site without changing its identity (MAC, serial,
    certificates); its next contact gets the new site's profile."""
    body: dict[str, Any] = {"site_id": site_id}
    if account_id:
        body["account_id"] = account_id
    mac = _mac(mac)
    moved = admin_call(
        server, admin_login, admin_password, lambda c: c.call("POST", f"/pnp/devices/{mac}/reprovision", body)
    )
    last = moved["pnp"]["history"][-1]
    console.print(
        f"{escape(moved['mac'])}: account {last['from']['account_id']} site {last['from']['site_id']} -> "
        f"account {last['to']['account_id']} site {last['to']['site_id']}"
    )
    click.echo(json.dumps(moved))


@devices.command("replace")
@click.argument("old_mac")
@click.option("--new-mac", required=True, help="The new device's MAC.")
@click.option("--new-serial", required=True, help="The new device's serial number.")
@click.option(
    "--new-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The new device's factory certificate (PEM).",
)
@click.option("--new-model", default=None, help="The new device's model (default: the old one's).")
@admin_options
def replace(
    old_mac: str,
    new_mac: str,
    new_serial: str,
    new_cert: Path,
    new_model: str | None,
    server: str,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Replace the faulty device OLD_MAC by a new one: the new device takes its place (account,
    site, labels, activation) without re-registration; the old certificate is denied."""
    old_mac = _mac(old_mac)
    pem = read_text(new_cert, "invalid-certificate", "a PEM certificate", encoding="ascii")
    body: dict[str, Any] = {"new_mac": new_mac, "new_serial": new_serial, "new_certificate": pem}
    if new_model:
        body["new_model"] = new_model
    answer = admin_call(
        server, admin_login, admin_password, lambda c: c.call("POST", f"/pnp/devices/{old_mac}/replace", body)
    )
    console.print(
        f"{escape(answer['old']['mac'])} replaced by {escape(answer['new']['mac'])}; "
        f"old certificate denied: {answer['denied_thumbprint'] or 'none was imported'}"
    )
    click.echo(json.dumps(answer))


@devices.command("show")
@click.argument("mac")
@admin_options
def show(mac: str, server: str, admin_login: str, admin_password: str | None) -> None:
    """The device MAC with its PNP-1 history (placements, replacement links) as JSON."""
    mac = _mac(mac)
    shown = admin_call(server, admin_login, admin_password, lambda c: c.call("GET", f"/pnp/devices/{mac}"))
    click.echo(json.dumps(shown, indent=2))
