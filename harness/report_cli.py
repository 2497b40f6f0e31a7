"""`enrollab report …`: compare two conformance runs, re-render a report's HTML."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from harness.report import ReportError, load_report

__all__ = ["report"]


def _fail(err: ReportError) -> NoReturn:
    click.echo(f"error {err.error}: {err.detail}", err=True)
    sys.exit(2)


@click.group()
def report() -> None:
    """Conformance reports (report.json): compare two runs, re-render report.html."""


@report.command("diff")
@click.argument("old", type=click.Path(dir_okay=True, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people and CI logs; json for programs.",
)
def diff(old: Path, new: Path, fmt: str) -> None:
    """List the regressions between two runs: OLD.json (the baseline) and NEW.json.

    A regression is a test that passed or was not applicable in OLD and failed or errored in
    NEW, or a device x feature cell that went from pass to fail or error. Devices pair up by
    id, else MAC, so a new firmware on the same phone is compared with the old one. Tests in
    one run only, improvements and other changes are listed but do not gate.

    Exit status: 0 no regression, 1 at least one (the CI gate for a new firmware or server
    release), 2 a report that cannot be read (`error <id>: <detail>` on standard error).
    """
    from harness.report_diff import diff_reports, render_diff

    try:
        old_doc = load_report(old)
        new_doc = load_report(new)
    except ReportError as err:
        _fail(err)
    result = diff_reports(old_doc, new_doc)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_diff(result), nl=False)
    sys.exit(1 if result.has_regressions else 0)


@report.command("render")
@click.argument("report_json", metavar="REPORT.json", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for report.html (created if missing); default: the directory of REPORT.json.",
)
def render(report_json: Path, out_dir: Path | None) -> None:
    """Re-render report.html from a report.json (e.g. after an enrollab upgrade changed the page).

    Prints the path written. Exit status 2 with `error <id>: <detail>` when the report cannot be
    read or the page cannot be written.
    """
    from harness.report_html import write_html

    try:
        doc = load_report(report_json)
        target = out_dir if out_dir is not None else report_json.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportError("report-unwritable", f"cannot create {target}: {exc.strerror or exc}") from None
        path = write_html(doc, target)
    except ReportError as err:
        _fail(err)
    click.echo(str(path))
