"""`enrollab qr …` (PNP-1): QR onboarding on the command line — generate a batch of one-time codes
(PNG and SVG per device, a printable HTML sheet), list and show batches by batch number, and
scan a payload into a site. The contract is docs/pnp.md.

Admin credentials as every admin command (harness/admin_cli.py): `--server`, `--admin-login`,
`--admin-password` (or ENROLLAB_SERVER / ENROLLAB_ADMIN_LOGIN / ENROLLAB_ADMIN_PASSWORD).
Exit status: 0 done, 2 refused, bad input or an unreachable server — with the error id and a sentence.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.admin_cli import admin_call, admin_options, fail
from harness.cli_files import fresh_directory, read_text
from server.domain import pnp_qr
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac

console = Console(stderr=True)
FORMATS = ("png", "svg", "html")
BATCH_NUMBER = re.compile(r"QR[0-9]{6,12}")


def read_macs(path: Path) -> list[str]:
    """MACs from a file: one per line, or a CSV with a `mac` column (other columns ignored)."""
    text = read_text(path, "invalid-devices-file", "UTF-8 text")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if lines and "mac" in [c.strip().lower() for c in lines[0].split(",")]:
        rows = csv.DictReader(io.StringIO("\n".join(lines)))
        values = [(row.get("mac") or row.get("MAC") or "").strip() for row in rows]
    else:
        values = [line.split(",")[0].strip() for line in lines]
    macs = []
    for number, value in enumerate(values, start=1):
        try:
            macs.append(normalize_mac(value))
        except DomainError:
            fail("invalid-mac", f"{path}: entry {number}: {value[:40]!r} is not a MAC address")
    if not macs:
        fail("invalid-devices-file", f"{path} names no device")
    return macs


def write_codes(out: Path, number: str, codes: Sequence[dict[str, Any]], formats: Sequence[str]) -> list[Path]:
    """The batch's files in OUT (made by `fresh_directory`; no file is overwritten): <MAC>.png /
    <MAC>.svg per device, sheet.html, manifest.csv (no tokens). File names are the MACs of the
    payloads as parsed (12 hex digits), never text the server sent as it came."""
    try:
        payloads = [pnp_qr.parse_payload(c["payload"]) for c in codes]
    except DomainError as err:
        fail("invalid-answer", f"the server's batch {number} holds a code that is no onboarding code: {err.detail}")
    written: list[Path] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    per_device = [f for f in formats if f in ("png", "svg")]
    try:
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            if per_device:
                task = bar.add_task(f"batch {number}: codes", total=len(payloads))
                for payload in payloads:
                    for kind in per_device:
                        path = out / f"{payload.mac}.{kind}"
                        with path.open("xb") as image:
                            image.write(pnp_qr.png(payload) if kind == "png" else pnp_qr.svg(payload))
                        written.append(path)
                    bar.advance(task)
            if "html" in formats:
                bar.add_task(f"batch {number}: sheet", total=None)
                sheet = out / "sheet.html"
                with sheet.open("x", encoding="utf-8") as page:
                    page.write(pnp_qr.sheet_html(number, payloads))
                written.append(sheet)
        manifest = out / "manifest.csv"
        with manifest.open("x", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["batch", "mac", "serial", "model"])
            for code, payload in zip(codes, payloads, strict=True):
                writer.writerow([number, payload.mac, payload.serial, code.get("model", "")])
        written.append(manifest)
    except OSError as exc:
        fail("cannot-write", f"cannot write into {out}: {exc.strerror or exc}")
    return written


@click.group()
def qr() -> None:
    """QR onboarding (PNP-1): batches of one-time codes, scanned on site to onboard devices."""


@qr.command("batch")
@click.option(
    "--count",
    type=click.IntRange(1, 5000),
    default=None,
    help="Pick this many approved devices nobody holds and without a live code.",
)
@click.option(
    "--devices",
    "devices_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file of MACs: one per line, or a CSV with a `mac` column.",
)
@click.option("--account", "account_id", default=None, help="Target account of the batch (with --site).")
@click.option("--site", "site_id", type=click.IntRange(1), default=None, help="Target site of the batch.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A new or empty directory for the codes and the sheet (made mode 700; files in it are never "
    "overwritten: a directory with files is refused before the batch is made).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(FORMATS),
    multiple=True,
    help="What to write (repeatable; default: png, svg and html).",
)
@admin_options
def batch(
    count: int | None,
    devices_file: Path | None,
    account_id: str | None,
    site_id: int | None,
    out: Path,
    formats: tuple[str, ...],
    server: str,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Generate a batch of one-time QR onboarding codes and write them to OUT.

    Each code carries MAC, serial, the batch number and a claim token the server shows only now:
    <MAC>.png and <MAC>.svg per device, sheet.html (every code, printable), manifest.csv. Prints
    the batch (number, total) as JSON on stdout."""
    if (count is None) == (devices_file is None):
        fail("devices-required", "give --count N or --devices FILE (one of them)")
    if account_id is not None and site_id is None:
        fail("site-required", "--account needs --site")
    fresh_directory(out)  # before the batch exists: its tokens are shown once
    if count is not None:
        body: dict[str, Any] = {"count": count}
    else:
        assert devices_file is not None
        body = {"devices": read_macs(devices_file)}
    if site_id is not None:
        body["site_id"] = site_id
    if account_id is not None:
        body["account_id"] = account_id
    created = admin_call(server, admin_login, admin_password, lambda c: c.call("POST", "/pnp/qr-batches", body))
    files = write_codes(out, created["number"], created["codes"], tuple(dict.fromkeys(formats)) or FORMATS)
    console.print(f"batch {escape(created['number'])}: {created['total']} codes written to {escape(str(out))}")
    summary = {k: v for k, v in created.items() if k != "codes"}
    click.echo(json.dumps({**summary, "out": str(out), "files": len(files)}))


def _table(items: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="QR batches")
    for column in ("number", "created", "target", "total", "scanned", "enrolled", "revoked"):
        table.add_column(column, justify="right" if column in ("total", "scanned", "enrolled", "revoked") else "left")
    for b in items:
        target = b["target"]
        where = f"{target['account_id']} / {target['site_id']}" if target["site_id"] else "—"
        table.add_row(
            b["number"],
            str(b["created_at"])[:19],
            where,
            *(str(b[k]) for k in ("total", "scanned", "enrolled", "revoked")),
        )
    return table


@qr.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON instead of a table.")
@admin_options
def list_command(as_json: bool, server: str, admin_login: str, admin_password: str | None) -> None:
    """The QR batches of your hierarchy, newest first: total, scanned (onboarded), enrolled."""
    listed = admin_call(
        server, admin_login, admin_password, lambda c: c.call("GET", "/pnp/qr-batches", params={"limit": "1000"})
    )
    if as_json:
        click.echo(json.dumps(listed))
        return
    Console().print(_table(listed["items"]))


@qr.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print the batch as JSON instead of tables.")
@admin_options
def show(number: str, as_json: bool, server: str, admin_login: str, admin_password: str | None) -> None:
    """One batch by its NUMBER (QR000017): its counts and each device's state."""
    if not BATCH_NUMBER.fullmatch(number):
        fail("invalid-batch-number", f"{number[:40]!r} is not a batch number (QR and 6-12 digits, e.g. QR000017)")
    shown = admin_call(server, admin_login, admin_password, lambda c: c.call("GET", f"/pnp/qr-batches/{number}"))
    if as_json:
        click.echo(json.dumps(shown))
        return
    out = Console()
    out.print(_table([shown]))
    table = Table(title=f"batch {shown['number']}: devices")
    for column in ("mac", "serial", "state", "account / site", "scanned at"):
        table.add_column(column)
    for d in shown["devices"]:
        where = f"{d['account_id']} / {d['site_id']}" if d["site_id"] else ""
        table.add_row(d["mac"], d["serial"], d["state"], where, str(d["scanned_at"] or "")[:19])
    out.print(table)


@qr.command("scan")
@click.argument("payload")
@click.option("--account", "account_id", default=None, help="Onboard into this account (default: the batch's).")
@click.option("--site", "site_id", type=click.IntRange(1), default=None, help="Onboard into this site.")
@admin_options
def scan(
    payload: str, account_id: str | None, site_id: int | None, server: str, admin_login: str, admin_password: str | None
) -> None:
    """Onboard the device of a scanned PAYLOAD (the text a QR reader gives: enrollab:onboard?…).

    PAYLOAD `-` reads it from standard input (e.g. `zbarimg --raw -q label.png | enrollab qr scan -`),
    which keeps its one-time token out of the shell history and the process list."""
    if payload == "-":
        payload = sys.stdin.readline().strip()
    try:
        pnp_qr.parse_payload(payload)
    except DomainError as err:
        fail(err.error, err.detail)
    body: dict[str, Any] = {"payload": payload}
    if account_id is not None:
        body["account_id"] = account_id
    if site_id is not None:
        body["site_id"] = site_id
    onboarded = admin_call(server, admin_login, admin_password, lambda c: c.call("POST", "/pnp/scan", body))
    console.print(
        f"{escape(onboarded['mac'])} onboarded into account {onboarded['account_id']} site {onboarded['site_id']}"
    )
    click.echo(json.dumps(onboarded))
