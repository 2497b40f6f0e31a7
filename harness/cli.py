"""The `enrollab` command (PROTOCOL.md §4)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from server.domain.errors import DomainError

if TYPE_CHECKING:
    from cryptography import x509

    from server.pki.store import Pki

console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrollab")
def main() -> None:
    """enrollab — a lab for zero-touch enrollment of IP phones.

    A reference enrollment server, simulated phones and conformance suites.
    """


@main.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("enrollab-data"),
    show_default=True,
    help="Data directory: SQLite database, PKI, site files. Created if missing.",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="Database URL; default sqlite:///DATA/enrollab.db. Use postgresql://user@host/db for a shared lab.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Admin API port (0 = any free port).",
)
@click.option(
    "--device-port",
    type=click.IntRange(0, 65535),
    default=None,
    show_default="8443, or any free port with --admin-port 0",
    help="Device API port (mutual TLS, PROTOCOL §2; 0 = any free port).",
)
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    metavar="NAME",
    help="A name devices reach this server by (DNS name or IP address), for the TLS certificate and "
    "the device URL; repeatable, the first one that is no wildcard is used in URLs. Default: the "
    "names already in the certificate (first start: localhost, 127.0.0.1, ::1).",
)
@click.option(
    "--smtp",
    default=None,
    metavar="HOST:PORT",
    help="Deliver email notifications (NTF-1) through this SMTP relay; without it they stay in the outbox.",
)
@click.option(
    "--admin-tls",
    is_flag=True,
    help="Serve the admin API and portal over HTTPS (the server certificate in DATA/pki) and take "
    "certificate logins (USR-3): a user certificate whose CN is the login name, issued by the "
    "account's client root CA (PUT /accounts/{id}/login-ca).",
)
@click.option(
    "--login-public-cas",
    is_flag=True,
    help="With --admin-tls: user certificates from the system's public CAs log in too (CN = login "
    "name), as the DES guide allows; off by default (docs/decisions.md 'Certificate login').",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing both ports (SO_REUSEPORT) and one PostgreSQL database (--db "
    "postgresql://…); the kernel spreads connections over them. Connection pools are split from "
    "PostgreSQL's max_connections. README 'Running at scale'.",
)
def serve(
    data_dir: Path,
    db_url: str | None,
    host: str,
    admin_port: int,
    device_port: int | None,
    hostnames: tuple[str, ...],
    smtp: str | None,
    admin_tls: bool,
    login_public_cas: bool,
    workers: int,
) -> None:
    """Run the reference enrollment server.

    The first start creates the data directory, the PKI (DATA/pki: server TLS certificate,
    device CA, manufacturer CA), the database and the platform administrator `admin`, whose
    password is printed once (or taken from ENROLLAB_ADMIN_PASSWORD). Devices talk to the
    device API on its own port with mutual TLS (PROTOCOL §2).
    """
    from server.runner import Running, ServeConfig, serve_forever

    def announce(running: Running) -> None:
        console.print(f"[bold]enrollab[/] admin API on {running.admin_url}/api/v1  (data: {data_dir})")
        device = escape(running.device_url)
        console.print(f"device API (mutual TLS) on {device}/device/v1, EST on {device}/.well-known/est", soft_wrap=True)
        for warning in running.warnings:
            console.print(f"[yellow]warning[/] {escape(warning)}", soft_wrap=True)
        if running.opened.first_password:
            console.print(
                f"first platform administrator: login [bold]admin[/], password "
                f"[bold]{running.opened.first_password}[/] (temporary: change it at first login)"
            )
        console.print("Ctrl-C stops the server.")

    relay = None
    if smtp:
        relay_host, _, relay_port = smtp.rpartition(":")
        if not relay_host or not relay_port.isdigit() or not 0 < int(relay_port) < 65536:
            raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:25", param_hint="--smtp")
        relay = (relay_host, int(relay_port))
    cfg = ServeConfig(
        data_dir=data_dir,
        db_url=db_url,
        host=host,
        admin_port=admin_port,
        device_port=device_port,
        smtp=relay,
        hostnames=list(hostnames) if hostnames else None,
        admin_tls=admin_tls or login_public_cas,
        login_public_cas=login_public_cas,
    )
    if workers > 1:
        _serve_workers(cfg, workers, data_dir)
        return
    _run(serve_forever(cfg, announce))


def _serve_workers(cfg: Any, workers: int, data_dir: Path) -> None:
    from server.workers import Started, Supervisor

    def announce(started: Started) -> None:
        console.print(f"[bold]enrollab[/] admin API on {started.admin_url}/api/v1  (data: {data_dir})")
        device = escape(started.device_url)
        console.print(f"device API (mutual TLS) on {device}/device/v1, EST on {device}/.well-known/est", soft_wrap=True)
        pools = started.pools
        console.print(f"{len(started.pids)} workers (pids {', '.join(map(str, started.pids))}), each with up to "
                      f"{pools.total} database connections ({pools.hot} enrollment, {pools.admin}+{pools.overflow} "
                      "admin)", soft_wrap=True)
        for warning in started.warnings:
            console.print(f"[yellow]warning[/] {escape(warning)}", soft_wrap=True)
        if started.first_password:
            console.print(
                f"first platform administrator: login [bold]admin[/], password "
                f"[bold]{started.first_password}[/] (temporary: change it at first login)"
            )
        console.print("Ctrl-C stops the server.")

    try:
        Supervisor(cfg, workers).run(announce)
    except DomainError as err:
        console.print(f"[red]error[/] {err.error}: {err.detail}")
        sys.exit(2)


@main.command()
@click.option("--network", is_flag=True,
              help="Instead: a lab in a box (root). Phones boot over network namespaces this command creates and "
              "removes, with the harness's own DHCP responder, LLDP advertiser and capture (see README "
              "'Simulated phones on a real network').")
def demo(network: bool) -> None:
    """The main job on embedded defaults: server, fleet, both conformance suites, reports.

    1. A throwaway server (SQLite in a temporary directory) and the administrator's scenario:
       hierarchy → profile → site → codes → import → approve/claim/associate/activate →
       search → audit log, each step printed.
    2. A fleet of every model at the firmware versions on both sides of each Appendix A
       minimum, each phone checked against the matrix's prediction.
    3. `enrollab conformance run --suite all` over the same models and versions; junit.xml,
       report.json and report.html in ./enrollab-report/.
    Exits 1 if any step, phone or test did something unexpected.

    With --network: J179, K175 and B199 phones boot on a lab network in namespaces, finding their
    server from DHCP option 242, from LLDP, and from the enrollment server; captures in
    ./enrollab-report/network-*.pcap.
    """
    from rich.console import Console as Out

    if network:
        _demo_network(Out())
        return

    from harness.demo import DemoFailed, run_demo

    try:
        steps = asyncio.run(run_demo(Out()))
    except DemoFailed as exc:
        console.print(f"[red]demo failed[/] {exc}")
        sys.exit(1)
    except DomainError as err:
        console.print(f"[red]error[/] {err.error}: {err.detail}")
        sys.exit(2)
    out = Out()
    out.print(f"\n[bold green]admin scenario complete[/]: {len(steps)} steps against the reference server.\n")
    unexpected = _demo_fleet(out)
    status = _demo_conformance(out, Path("enrollab-report"))
    if unexpected or status:
        out.print("\n[bold red]demo found problems[/] (see above)")
        sys.exit(1)
    out.print("\n[bold green]demo complete[/]")


def _demo_network(out: Console) -> None:
    import tempfile

    from harness.demo_network import run_network_demo
    from harness.errors import HarnessError
    from harness.lab_network.netns import TopologyError, available

    why = available()
    if why:
        _fail("no-namespaces", f"demo --network needs network namespaces: {why}")
    try:
        with tempfile.TemporaryDirectory(prefix="enrollab-demo-net-") as work:
            unexpected = asyncio.run(run_network_demo(out, Path("enrollab-report"), Path(work)))
    except (HarnessError, TopologyError) as exc:
        _fail(getattr(exc, "error", "lab-network"), str(getattr(exc, "detail", exc)))
    except KeyboardInterrupt:
        out.print("[yellow]interrupted[/]: namespaces removed")
        sys.exit(130)
    if unexpected:
        out.print(f"\n[bold red]{unexpected} phone(s) did not do what their round shows[/]")
        sys.exit(1)
    out.print("\n[bold green]network demo complete[/]")


def _demo_conformance(out: Console, report_dir: Path) -> int:
    """Issue 5: both suites — the server suite against an embedded reference server, the device
    suite over every model at the versions on both sides of each Appendix A minimum."""
    import json
    import subprocess

    import fixtures
    from harness.report import summarize, summary_line

    lab = fixtures.path("labs/appendix-a.toml")
    out.print(
        f"\n[bold]conformance[/]: server suite + device suite over {lab.name} (every model, both sides of each "
        f"minimum), reports in {report_dir}/ …"
    )
    enrollab = Path(sys.executable).with_name("enrollab")
    done = subprocess.run(  # noqa: S603 - our own entry point
        [str(enrollab), "conformance", "run", "--target", "sim", "--suite", "all", "--lab", str(lab),
         "--report-dir", str(report_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        doc = json.loads((report_dir / "report.json").read_text())
    except (OSError, ValueError):
        out.print(done.stdout[-4000:] + done.stderr[-4000:], markup=False, highlight=False)
        out.print("[red]the conformance run wrote no report[/]")
        return 1
    for suite in doc["provenance"]["suites"]:
        tests = [t for t in doc["tests"] if t["suite"] == suite]
        out.print(f"  {suite} suite: {summary_line(summarize(tests))}")
    cells = [c for row in doc["matrix"].values() for c in row.values()]
    out.print(
        f"  device × feature matrix: {len(doc['matrix'])} devices × {len(doc['features'])} features, "
        f"{cells.count('pass')} pass, {cells.count('not_applicable')} n/a, "
        f"{cells.count('fail') + cells.count('error')} fail/error"
        + (f", {cells.count('needs_operator')} needs operator" if "needs_operator" in cells else "")
    )
    out.print(f"  report: [bold]{(report_dir / 'report.html').resolve()}[/] (also report.json, junit.xml)")
    return done.returncode


def _demo_fleet(out: Console) -> int:
    """Issue 4's fleet: every model at the versions on both sides of each Appendix A minimum."""
    from harness.fleet_run import ServerChoice, print_summary, run_with_progress
    from simulators.fleet import FleetSpec
    from simulators.mix import boundary_mix

    groups = boundary_mix(4)
    out.print(
        f"[bold]fleet[/]: {sum(g.count for g in groups)} simulated phones, every model at {len(groups)} "
        "model/firmware pairs on both sides of each Appendix A minimum, one of each arrangement "
        "(zero-touch, NEC, PEC, wrong codes), on a fresh embedded server"
    )
    spec = FleetSpec(groups, {"zero-touch": 1, "nec": 1, "pec": 1, "wrong-code": 1}, seed=1, concurrency=64, group=1)
    result = asyncio.run(run_with_progress(spec, ServerChoice(None, None, "admin", None), out, None))
    print_summary(result, out, compact=True)
    return len(result.unexpected)


# --- pki ------------------------------------------------------------------------------------

_PKI_DATA = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("enrollab-data"),
    show_default=True,
    help="Data directory of the server (the PKI lives in DATA/pki). The PKI is created if it has none.",
)


def _fail(error: str, detail: str) -> NoReturn:
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True)
    sys.exit(2)


def _writable_target(path: Path) -> None:
    """Refuse early (exit 2) an output path whose directory is missing or not writable."""
    parent = path.parent
    if not parent.is_dir():
        _fail("cannot-write", f"cannot write {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        _fail("cannot-write", f"cannot write {path}: the directory {parent} is not writable")
    if path.is_dir():
        _fail("cannot-write", f"cannot write {path}: it is a directory")


def _open_pki(data_dir: Path) -> Pki:
    from server.pki import ensure_pki

    try:
        return ensure_pki(data_dir)
    except DomainError as err:
        _fail(err.error, err.detail)


@main.group()
def pki() -> None:
    """The server's PKI: CAs, factory certificates of simulated devices, revocation.

    DATA/pki holds a TLS CA and the server certificate it signs, a device CA (EST identity
    certificates) and a manufacturer CA that issues factory certificates for simulated
    devices; `enrollab serve` and every command here create them on first use. Private keys
    are files of mode 0600.
    """


@pki.command("issue-factory-cert")
@_PKI_DATA
@click.option("--mac", required=True, help="Device MAC; A4:25:1B:0C:3D:5E, a4-25-1b-… or A4251B0C3D5E.")
@click.option("--serial", required=True, help="Device serial number (1-64 ASCII letters, digits and -).")
@click.option("--model", required=True, help="Model, e.g. J179 (written to the certificate's OU).")
@click.option(
    "--out",
    "prefix",
    required=True,
    metavar="PREFIX",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Writes PREFIX.key (private key, mode 0600) and PREFIX.crt (certificate, PEM).",
)
def issue_factory_cert(data_dir: Path, mac: str, serial: str, model: str, prefix: Path) -> None:
    """Issue a factory certificate for a simulated device and print its thumbprint.

    The certificate comes from the manufacturer CA in DATA/pki: subject CN=<MAC>,
    serialNumber=<serial>, O=<manufacturer>. The only line on standard output is the
    thumbprint (SHA-256 of the DER, upper-case hex), the value of an import file's
    `thumbprint` column:

    \b
        TP=$(enrollab pki issue-factory-cert --data DIR \\
             --mac A4251B0C3D5E --serial 21WZ1 --model J179 --out phone)
    """
    from server.domain.identity import normalize_mac, validate_serial
    from server.pki.factory import validate_model

    try:
        mac = normalize_mac(mac)
        validate_serial(serial)
        validate_model(model)
    except DomainError as err:
        _fail(err.error, err.detail)
    for suffix in (".key", ".crt"):
        _writable_target(prefix.with_name(prefix.name + suffix))
    issued = _open_pki(data_dir).issue_factory(mac, serial, model)
    try:
        issued.write(prefix)
    except OSError as exc:
        _fail("cannot-write", f"cannot write {prefix}.key/.crt: {exc.strerror}")
    click.echo(issued.thumbprint)


@pki.command("export-ca")
@_PKI_DATA
@click.option(
    "--out",
    "out",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the CA certificate (PEM); '-' for standard output.",
)
def export_ca(data_dir: Path, out: Path) -> None:
    """Write the CA that signed the server's TLS certificate, for clients' --cacert.

    E.g. `curl --cacert tls-ca.pem --cert phone.crt --key phone.key https://127.0.0.1:8443/…`.
    """
    from server.pki.files import write_file
    from server.pki.keys import certificate_pem

    if str(out) != "-":
        _writable_target(out)
    ca = _open_pki(data_dir).tls_ca
    pem = certificate_pem(ca.certificate)
    if str(out) == "-":
        click.echo(pem.decode("ascii"), nl=False)
        return
    try:
        write_file(out, pem)
    except OSError as exc:
        _fail("cannot-write", f"cannot write {out}: {exc.strerror}")
    console.print(f"wrote {escape(str(out))}: {escape(ca.subject.rfc4514_string())}")


@pki.command("show")
@_PKI_DATA
def show_pki(data_dir: Path) -> None:
    """Show the CAs and the server certificate: subject, key type, validity, SHA-256 fingerprint.

    Also the manufacturer CA's CRL, the trusted manufacturer CAs
    (DATA/pki/trusted-manufacturers/NAME.pem with NAME.crl) and any warnings.
    """
    from server.pki.authority import subject_text
    from server.pki.keys import describe_key, thumbprint

    loaded = _open_pki(data_dir)

    def block(title: str, cert: x509.Certificate, path: Path) -> None:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        click.echo(title)
        click.echo(f"  subject      {subject_text(cert.subject)}")
        click.echo(f"  key          {describe_key(cert.public_key())}")
        click.echo(f"  valid        {start:%Y-%m-%d %H:%M} UTC to {end:%Y-%m-%d %H:%M} UTC")
        click.echo(f"  sha256       {thumbprint(cert)}")
        click.echo(f"  file         {path}")

    layout = loaded.layout
    manufacturer = loaded.manufacturer_ca
    click.echo(f"PKI in {layout.root}")
    block("TLS CA (signs the server certificate; export-ca)", loaded.tls_ca.certificate, layout.tls_ca_cert)
    block("Server certificate", loaded.server_certificate, layout.server_cert)
    click.echo(f"  names        {', '.join(loaded.server_names)}")
    block("Device CA (signs EST identity certificates)", loaded.device_ca.certificate, layout.device_ca_cert)
    block("Manufacturer CA (issues factory certificates)", manufacturer.certificate, layout.manufacturer_ca_cert)
    crl = manufacturer.crl
    if crl is not None:
        click.echo(f"  crl          {len(crl)} revoked, next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    click.echo("Trusted manufacturer CAs" + ("" if loaded.trusted else ": none besides the manufacturer CA"))
    for trusted in loaded.trusted:
        for cert in trusted.certificates:
            click.echo(f"  {trusted.name}: {subject_text(cert.subject)} ({describe_key(cert.public_key())})")
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}")


@pki.command("revoke")
@_PKI_DATA
@click.option("--thumbprint", default=None, help="Thumbprint of the factory certificate (64 hex digits).")
@click.option("--serial", default=None, help="Device serial: revokes every factory certificate issued for it.")
def revoke(data_dir: Path, thumbprint: str | None, serial: str | None) -> None:
    """Revoke factory certificates of the manufacturer CA (its CRL, checked in the TLS handshake).

    Give exactly one of --thumbprint or --serial; prints the revoked thumbprints, one a line.
    A running server applies the CRL when it reloads its device TLS context (at the latest
    on restart).
    """
    if (thumbprint is None) == (serial is None):
        raise click.UsageError("give exactly one of --thumbprint or --serial")
    loaded = _open_pki(data_dir)
    try:
        if thumbprint is not None:
            revoked = loaded.revoke_factory(thumbprint, by="thumbprint")
        else:
            assert serial is not None
            revoked = loaded.revoke_factory(serial, by="serial")
    except DomainError as err:
        _fail(err.error, err.detail)
    for value in revoked:
        click.echo(value)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(coro)
    except DomainError as err:
        console.print(f"[red]error[/] {err.error}: {err.detail}")
        sys.exit(2)
    except KeyboardInterrupt:
        pass


def _register() -> None:
    from harness.billing_cli import billing
    from harness.conformance_cli import conformance
    from harness.devices_cli import devices
    from harness.fleet_cli import fleet
    from harness.lab_bench_cli import check_command, reboot_command
    from harness.lab_cli import lab
    from harness.orders_cli import orders
    from harness.phone_cli import phone
    from harness.qr_cli import qr
    from harness.report_cli import report

    main.add_command(fleet)
    main.add_command(report)
    main.add_command(conformance)
    main.add_command(phone)
    main.add_command(orders)  # DEP-1
    main.add_command(billing)  # FF-1
    main.add_command(qr)  # PNP-1
    main.add_command(devices)  # PNP-1
    lab.add_command(reboot_command)
    lab.add_command(check_command)
    main.add_command(lab)


_register()

if __name__ == "__main__":
    main()
