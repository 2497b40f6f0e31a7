"""`enrollab conformance run` (PROTOCOL §4): the conformance suites, run by pytest in-process with
the enrollab plugin (`harness.pytest_plugin`), into junit.xml, report.json and report.html.

Exit status: 0 only when every test passed or was not applicable (so a run whose tests are all
not applicable is 0); 1 when any test failed, errored or needed an operator the run did not have
(a physical run that could not be completed must not look green; simulated devices never need
one), or no report could be written; 2 on bad input — an invalid lab file (its line and field are named), a bad
`--server` URL, missing credentials, a report directory that cannot be written, a `-k` that
selects nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
SUITES = ("server", "device")


def _bad(error: str, detail: str) -> NoReturn:
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True)
    sys.exit(2)


@click.group()
def conformance() -> None:
    """Conformance suites: a server (server suite) and devices (device suite) against the rules.

    Every test ends pass, fail (the device or server under test broke a rule), error (the
    harness or lab broke), needs operator (a person had to act at a physical phone and nobody
    was there) or not applicable (Appendix A: the device lacks the feature).
    """


@conformance.command("run")
@click.option("--target", type=click.Choice(["sim", "lab", "all"]), required=True,
              help="Devices under test: sim (the lab's simulated devices), lab (its physical phones) or all "
              "(both, in one run and one report).")
@click.option("--lab", "lab_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Lab file (TOML, see harness/lab.py); default: the shipped example-sim.toml.")
@click.option("--suite", type=click.Choice(["server", "device", "all"]), default="all", show_default=True,
              help="Which suite to run.")
@click.option("--server", "server_url", default=None, metavar="URL",
              help="Admin API URL of a running server instead of the lab's (ENROLLAB_ADMIN_LOGIN, "
              "ENROLLAB_ADMIN_PASSWORD).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("conformance-report"),
              show_default=True, help="Where junit.xml, report.json and report.html go.")
@click.option("--seed", type=int, default=None, help="Seed for derived device identities (overrides the lab's).")
@click.option("-k", "keyword", default=None, metavar="EXPR", help="Only tests matching this pytest -k expression.")
@click.option("--unattended", is_flag=True, default=False,
              help="Nobody is at the bench: tests that need a person at a physical phone (typing a code, "
              "answering the prompt) end 'needs operator' instead of prompting. Implied without a terminal.")
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help="Run the devices in parallel: up to N pytest processes, each a shard of the lab's devices "
              "(physical phones one at a time per shard, in up to [options] physical_jobs shards sharing the "
              "bench; the simulated devices in at most [options] concurrency shards; the server suite once), "
              "merged into one report. Default: a lab mixing physical and simulated devices runs its bench "
              "shards beside one simulated shard (and the server suite's); any other lab, one process.")
@click.option("-v", "--verbose", count=True, help="More pytest output (repeatable).")
def run(
    target: str,
    lab_path: Path | None,
    suite: str,
    server_url: str | None,
    report_dir: Path,
    seed: int | None,
    keyword: str | None,
    unattended: bool,
    jobs: int | None,
    verbose: int,
) -> None:
    """Run the conformance suites and write junit.xml, report.json and report.html.

    \b
    Exit status:
      0  every test passed or was not applicable
      1  a test failed, errored, or needs an operator (a physical phone needed a
         person and the run was unattended: not finished is not green)
      2  bad input (e.g. an invalid lab file: its line and field are named)
    """
    import pytest

    import conformance as suites_package
    from harness.errors import LabError
    from harness.lab import default_lab_path, load_lab
    from harness.report import ReportError, exit_status, load_report, summary_line

    try:
        lab = load_lab(lab_path or default_lab_path(), seed=seed)
    except LabError as err:
        _bad(err.error, str(err))
    if server_url is not None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            _bad("invalid-server-url", f"--server {server_url!r} is not an http(s) URL of an admin API")
        if not os.environ.get("ENROLLAB_ADMIN_PASSWORD"):
            _bad("admin-password-required", "with --server, set ENROLLAB_ADMIN_PASSWORD (and ENROLLAB_ADMIN_LOGIN)")
    elif not lab.server.embedded and not lab.server.admin_password():
        _bad("admin-password-required",
             f"the lab's server {lab.server.url} needs the administrator's password in {lab.server.admin_password_env}")
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _bad("cannot-write", f"cannot create the report directory {report_dir}: {exc.strerror or exc}")
    if not os.access(report_dir, os.W_OK):
        _bad("cannot-write", f"the report directory {report_dir} is not writable")

    root = Path(suites_package.__file__).resolve().parent
    chosen = SUITES if suite == "all" else (suite,)
    # `--opt=value`: pytest takes a separate value that looks like a path for a test path (rootdir).
    common = [f"--target={target}"]
    if lab_path is not None:
        common.append(f"--lab={lab_path}")
    if server_url is not None:
        common.append(f"--server={server_url}")
    if seed is not None:
        common.append(f"--enrollab-seed={seed}")
    if keyword:
        common += ["-k", keyword]
    if unattended:
        common.append("--enrollab-unattended")
    common += ["-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "-o",
               "asyncio_default_fixture_loop_scope=function", "-W", "ignore::pytest.PytestAssertRewriteWarning",
               "-rfEs"]
    common += ["-" + "v" * verbose] if verbose else ["-q"]
    args = [str(root / name) for name in chosen]
    args += [f"--report-dir={report_dir}", f"--junitxml={report_dir / 'junit.xml'}", *common]
    for stale in ("report.json", "report.html", "junit.xml"):
        (report_dir / stale).unlink(missing_ok=True)

    devices = lab.devices_for(target)
    if jobs is None:
        from harness.shards import default_jobs

        jobs = default_jobs([d.driver for d in devices], chosen, lab.options.physical_jobs)
    if jobs > 1 and suite != "server" and len(devices) > 1:
        from harness.shards import run_shards

        code = run_shards(root, chosen, common, report_dir, lab, devices, jobs)
    else:
        code = pytest.main(args)
    if code == pytest.ExitCode.USAGE_ERROR:
        _bad("usage", "pytest refused the run's options (see above)")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        _bad("no-tests", "no conformance test was selected" + (f" by -k {keyword!r}" if keyword else ""))
    try:
        doc = load_report(report_dir / "report.json")
    except ReportError as err:
        console.print(f"[red]error[/] no usable report: {escape(str(err))}", soft_wrap=True)
        sys.exit(1)
    s = doc["summary"]
    click.echo(
        f"enrollab conformance ({target}, {', '.join(doc['provenance']['suites'])}): {summary_line(s)} "
        f"of {s['total']}"
    )
    if s["needs_operator"]:
        click.echo(f"{s['needs_operator']} test(s) need a person at the bench: run again attended (on a terminal, "
                   "without --unattended) to finish them")
    click.echo(f"report: {report_dir / 'report.html'}")
    status = exit_status(doc)
    if code == pytest.ExitCode.INTERNAL_ERROR or code == pytest.ExitCode.INTERRUPTED:
        status = 1
    sys.exit(status)
