"""`enrollab fleet run`: the harness around `simulators.fleet` — where the server and the
provisioning file server come from, the progress bar, the summary table, the exit status.

- `--server URL`: a running server (PROTOCOL §3). The fleet's factory certificates must come
  from a manufacturer CA that server trusts and the phones must trust its TLS CA: both are read
  from the server's data directory (`--data`, as `enrollab serve --data`), or given as files
  (`--manufacturer-key/--manufacturer-cert`, `--server-ca` from `enrollab pki export-ca`).
- No `--server`: an embedded reference server on SQLite in a temporary directory.
- The provisioning file server is always the harness's own (`harness.fileserver`): HTTPS on
  127.0.0.1 as `files.enrollab.test` with a certificate from a public-looking CA that the
  phones carry as a built-in public root, serving `fixtures/provisioning/`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import fixtures
from harness.fileserver import FileServer
from simulators.fleet import FleetResult, FleetSpec, FleetTarget, run_fleet

EMBEDDED_PASSWORD = "Fleet-Embedded-Pw-1"  # noqa: S105 - a throwaway server in a temporary directory
FILES_HOST = "files.enrollab.test"


class FleetSetupError(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error, self.detail = error, detail


@dataclass(frozen=True)
class ServerChoice:
    url: str | None
    data: Path | None
    admin_login: str
    admin_password: str | None
    manufacturer_key: Path | None = None
    manufacturer_cert: Path | None = None
    server_ca: Path | None = None


def provisioning_files() -> dict[str, bytes]:
    folder = fixtures.path("provisioning")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FleetSetupError("cannot-read", f"cannot read the {what} {path}: {exc.strerror or exc}") from None


@contextlib.asynccontextmanager
async def fleet_target(choice: ServerChoice) -> AsyncIterator[FleetTarget]:
    """The server (embedded or given) and the harness's file server, for one fleet run."""
    async with FileServer(provisioning_files(), cert_mode="public", hostnames=(FILES_HOST,)) as files:
        if choice.url is None:
            from server.runner import SIMULATION_GUESSING, ServeConfig, start

            with tempfile.TemporaryDirectory(prefix="enrollab-fleet-") as tmp:
                data = Path(tmp) / "data"
                running = await start(ServeConfig(data_dir=data, admin_port=0, guessing=SIMULATION_GUESSING),
                                      admin_password=EMBEDDED_PASSWORD)
                try:
                    yield _target(running.admin_url, "admin", EMBEDDED_PASSWORD, _pki_files(data), files)
                finally:
                    await running.stop()
            return
        if not choice.admin_password:
            raise FleetSetupError(
                "admin-password-required",
                "give the platform administrator's password with --admin-password or ENROLLAB_ADMIN_PASSWORD",
            )
        if choice.manufacturer_key and choice.manufacturer_cert and choice.server_ca:
            pki = (
                _read(choice.manufacturer_key, "manufacturer CA key"),
                _read(choice.manufacturer_cert, "manufacturer CA certificate"),
                _read(choice.server_ca, "server TLS CA"),
            )
        elif choice.data is not None:
            pki = _pki_files(choice.data)
        else:
            raise FleetSetupError(
                "pki-required",
                "with --server, give the server's data directory (--data) or --manufacturer-key, "
                "--manufacturer-cert and --server-ca",
            )
        yield _target(choice.url, choice.admin_login, choice.admin_password, pki, files)


def _pki_files(data: Path) -> tuple[bytes, bytes, bytes]:
    from server.pki.store import PkiLayout

    layout = PkiLayout.of(data)
    if not layout.manufacturer_ca_key.exists():
        raise FleetSetupError(
            "no-pki", f"{data} holds no server PKI (no {layout.manufacturer_ca_key}); is it the server's --data?"
        )
    return (
        _read(layout.manufacturer_ca_key, "manufacturer CA key"),
        _read(layout.manufacturer_ca_cert, "manufacturer CA certificate"),
        _read(layout.tls_ca_cert, "server TLS CA"),
    )


def _target(
    admin_url: str, login: str, password: str, pki: tuple[bytes, bytes, bytes], files: FileServer
) -> FleetTarget:
    key, cert, server_ca = pki
    return FleetTarget(
        admin_url=admin_url,
        admin_login=login,
        admin_password=password,
        manufacturer_key_pem=key,
        manufacturer_cert_pem=cert,
        public_roots=[server_ca, files.ca_pem],
        provisioning_url=files.https_url,
        hosts={FILES_HOST: "127.0.0.1"},
    )


async def run_with_progress(
    spec: FleetSpec, choice: ServerChoice, console: Console, out: IO[str] | None
) -> FleetResult:
    columns = (
        TextColumn("{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        async with fleet_target(choice) as target:
            return await run_fleet(spec, target, progress=report, jsonl=out)


def summary_table(result: FleetResult) -> Table:
    table = Table(title="Fleet outcomes by model, firmware and outcome", title_justify="left")
    for name in ("Model", "Firmware", "Outcome", "Predicted by Appendix A"):
        table.add_column(name)
    table.add_column("Phones", justify="right")
    table.add_column("Unexpected", justify="right")
    for (model, firmware, outcome, expected), count, bad in result.by_group():
        mark = "[green]0[/]" if bad == 0 else f"[red]{bad}[/]"
        same = "[dim]same[/]" if expected == outcome else escape(expected)
        table.add_row(model, firmware, escape(outcome), same, str(count), mark)
    return table


def compact_table(result: FleetResult) -> Table:
    """Outcomes per model (all firmware versions together), for a short screen."""
    table = Table(title="Fleet outcomes by model (every firmware together)", title_justify="left")
    table.add_column("Model")
    table.add_column("Versions", justify="right")
    table.add_column("Outcomes (count)")
    table.add_column("Unexpected", justify="right")
    models: dict[str, dict[str, int]] = {}
    versions: dict[str, set[str]] = {}
    bad: dict[str, int] = {}
    for p in result.phones:
        m = p.member.model
        label = _label_of(p.result, p.reason)
        models.setdefault(m, {})[label] = models.setdefault(m, {}).get(label, 0) + 1
        versions.setdefault(m, set()).add(p.member.firmware)
        bad[m] = bad.get(m, 0) + (0 if p.as_expected else 1)
    for m, outcomes in models.items():
        text = ", ".join(f"{escape(k)} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        table.add_row(m, str(len(versions[m])), text, "[green]0[/]" if not bad[m] else f"[red]{bad[m]}[/]")
    return table


def _label_of(result: str, reason: str | None) -> str:
    return f"{result} ({reason})" if reason else result


def print_summary(result: FleetResult, console: Console, *, compact: bool = False) -> None:
    console.print(compact_table(result) if compact else summary_table(result))
    total = len(result.phones)
    unexpected = result.unexpected
    rate = total / result.boot_seconds if result.boot_seconds > 0 else 0.0
    console.print(
        f"{total} phones in {result.wall_seconds:.1f} s (booting {result.boot_seconds:.1f} s, {rate:.0f} phones/s)"
        f"{'' if result.spec.shard is None else f', shard {result.spec.shard}'}"
    )
    if not unexpected:
        console.print(f"[green]every outcome equals the feature matrix's prediction[/] ({total}/{total})")
        return
    console.print(f"[red]{len(unexpected)} of {total} phones did not do what Appendix A predicts:[/]")
    for p in unexpected[:10]:
        m = p.member
        console.print(
            f"  {m.mac} {m.model} {m.firmware} {m.arrangement}: got {p.result} ({p.reason}), "
            f"expected {p.expected.result} ({p.expected.reason}) — {escape(p.expected.why)}",
            soft_wrap=True,
        )
    if len(unexpected) > 10:
        console.print(f"  … and {len(unexpected) - 10} more (see the JSONL results)")
