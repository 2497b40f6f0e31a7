"""`enrollab fleet …` commands (PROTOCOL §4)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import IO

import aiohttp
import click
from rich.console import Console
from rich.markup import escape

from simulators.admin_client import AdminError
from simulators.arrange import ArrangeError
from simulators.fleet import FAULTS, FleetSpec
from simulators.mix import MixError, parse_arrange, parse_mix, parse_shard

console = Console(stderr=True)
DEFAULT_ARRANGE = "zero-touch=70,nec=10,pec=10,wrong-code=10"


def _fail(error: str, detail: str) -> None:
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True)
    sys.exit(2)


@click.group()
def fleet() -> None:
    """Simulated fleets of phones against an enrollment server."""


@fleet.command("run")
@click.option(
    "--server", "server_url", default=None, help="Admin API URL of a running server; default: an embedded one."
)
@click.option(
    "--mix",
    required=True,
    help="Phones as MODEL@FIRMWARE=COUNT, comma-separated, e.g. J179@4.1.3.0=50,K175@3.0=20,B199@1.0.3.0=10; "
    "or appendix-a[=N]: every model at the versions on both sides of each Appendix A minimum, N phones each.",
)
@click.option(
    "--arrange",
    default=DEFAULT_ARRANGE,
    show_default=True,
    help="Shares (weights) of zero-touch, nec (the site's NEC), pec (account ID + PIN) and wrong-code phones.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the phones' identities and arrangements.")
@click.option(
    "--concurrency", default=64, show_default=True, type=click.IntRange(1, 10_000), help="Phones booting at once."
)
@click.option(
    "--shard", default=None, help="Run only shard I of N (I/N, 0-based); shards merge by concatenating --out."
)
@click.option(
    "--group", default=1, show_default=True, type=click.IntRange(0, 999), help="Phone group the profile sends."
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(FAULTS),
    help="A non-conforming behaviour every phone shows (to check that the run notices); repeatable.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSONL results, one per phone."
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --server: the server's data directory (its manufacturer CA and TLS CA are read from DATA/pki).",
)
@click.option(
    "--manufacturer-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --server and no --data: the key of a manufacturer CA the server trusts (PEM).",
)
@click.option(
    "--manufacturer-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="…and its certificate (PEM).",
)
@click.option(
    "--server-ca", type=click.Path(dir_okay=False, path_type=Path), default=None, help="`enrollab pki export-ca`."
)
@click.option("--admin-login", envvar="ENROLLAB_ADMIN_LOGIN", default="admin", show_default=True)
@click.option("--admin-password", envvar="ENROLLAB_ADMIN_PASSWORD", default=None, help="Or ENROLLAB_ADMIN_PASSWORD.")
def run(
    server_url: str | None,
    mix: str,
    arrange: str,
    seed: int,
    concurrency: int,
    shard: str | None,
    group: int,
    faults: tuple[str, ...],
    out: Path | None,
    data: Path | None,
    manufacturer_key: Path | None,
    manufacturer_cert: Path | None,
    server_ca: Path | None,
    admin_login: str,
    admin_password: str | None,
) -> None:
    """Boot a simulated fleet: import and arrange the phones on the server, boot them, and
    compare every phone's outcome with what the feature matrix (Appendix A) predicts for its
    model, firmware and arrangement. Exit status 1 when any phone did something unexpected,
    2 on bad input or an unreachable server."""
    from harness.fleet_run import FleetSetupError, ServerChoice, print_summary, run_with_progress

    try:
        spec = FleetSpec(
            groups=parse_mix(mix),
            weights=parse_arrange(arrange),
            seed=seed,
            shard=parse_shard(shard) if shard else None,
            concurrency=concurrency,
            group=group,
            faults=tuple(faults),
        )
    except MixError as exc:
        _fail(exc.error, exc.detail)
        return
    choice = ServerChoice(server_url, data, admin_login, admin_password, manufacturer_key, manufacturer_cert, server_ca)
    with contextlib.ExitStack() as stack:
        sink: IO[str] | None = None
        if out is not None:
            try:
                sink = stack.enter_context(out.open("w", encoding="utf-8"))
            except OSError as exc:
                _fail("cannot-write", f"cannot write {out}: {exc.strerror or exc}")
        try:
            result = asyncio.run(run_with_progress(spec, choice, console, sink))
        except FleetSetupError as exc:
            _fail(exc.error, exc.detail)
            return
        except (ArrangeError, AdminError) as exc:
            _fail(getattr(exc, "error", "admin-error"), str(exc))
            return
        except aiohttp.ClientError as exc:
            _fail("server-unreachable", f"{server_url}: {exc}")
            return
    print_summary(result, console)
    if out is not None:
        console.print(f"results: {out}")
    sys.exit(1 if result.unexpected else 0)
