"""The bench's commands for physical phones (PROTOCOL §5):

`enrollab lab reboot --lab FILE NAME|MAC` — reboot one physical phone of a lab file by its
`reboot` method (`harness.physical.reboot`): SIP NOTIFY check-sync, a PoE power cycle over
SNMPv2c, or an operator at the bench.

    enrollab lab reboot --lab bench.toml desk-1
    POE_COMMUNITY=… enrollab lab reboot --lab bench.toml A4:25:1B:0C:3D:5E --json

`enrollab lab check --lab FILE` — whether each physical phone's reboot method is ready (SIP
OPTIONS to the phone, an SNMP read of its PoE port, a terminal for the operator), as a table;
exit 0 when all are ready, 1 otherwise (`harness.physical.check`). It reboots nothing.

Exit 0 when the reboot was carried out; 1 with a one-line reason when it was not (no answer,
refused, wrong community, no terminal for an operator); 2 for bad arguments (no such lab file or
phone, a simulated device). Never a traceback, never a hang: a SIP NOTIFY gives up after Timer F
(32 s), SNMP after its timeout, and `manual` without a terminal fails at once.

Extensions beyond PROTOCOL §5: `--netns NS` sends the NOTIFY from inside a network namespace (a
lab in a box), `--json` prints one JSON object `{"event": "rebooted"|"error", …}`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError, LabError

__all__ = ["check_command", "reboot_command"]

console = Console(stderr=True)


def _out(as_json: bool, status: int, event: dict[str, object], text: str) -> NoReturn:
    if as_json:
        click.echo(json.dumps(event, ensure_ascii=False))
    elif status == 0:
        click.echo(text)
    else:
        console.print(f"[red]error[/] {escape(text)}", soft_wrap=True, highlight=False)
    sys.exit(status)


@click.command("reboot")
@click.argument("phone", metavar="NAME|MAC")
@click.option("--lab", "lab_file", type=click.Path(path_type=Path, dir_okay=False), required=True, metavar="FILE",
              help="The lab file that lists the phone (a [[devices]] entry with driver = \"physical\").")
@click.option("--netns", default=None, metavar="NS",
              help="Send a SIP NOTIFY from inside this network namespace (ip netns); an extension of PROTOCOL §5.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout instead of text.")
def reboot_command(phone: str, lab_file: Path, netns: str | None, as_json: bool) -> None:
    """Reboot the physical phone NAME|MAC of the lab file by its `reboot` method.

    \b
    sip-notify  SIP NOTIFY (Event: check-sync) over UDP to the phone's ip, port 5060 (or sip.port),
                retransmitted per RFC 3261 until the final answer; 2xx = rebooting.
    poe         the switch port's pethPsePortAdminEnable (POWER-ETHERNET-MIB) false(2), wait
                poe.off_seconds (5), true(1), over SNMPv2c; the community from the environment
                variable poe.community_env names, never from the lab file.
    manual      asks the operator on the terminal; without a terminal it fails at once.

    Exit 0 when the reboot was carried out, 1 with a one-line reason when not, 2 for bad arguments.
    """
    from harness.lab import load_lab
    from harness.physical.reboot import reboot

    def bad(error: str, detail: str) -> NoReturn:
        _out(as_json, 2, {"event": "error", "error": error, "detail": detail}, f"{error}: {detail}")

    try:
        loaded = load_lab(lab_file)
    except LabError as err:
        bad(err.error, str(err))
    bare = re.sub(r"[:.\-]", "", phone).upper()
    mac = bare if re.fullmatch(r"[0-9A-F]{12}", bare) else None
    found = [d for d in loaded.devices if d.name == phone or (mac is not None and d.mac == mac)]
    if not found:
        names = ", ".join(d.name or d.mac for d in loaded.devices if d.driver == "physical") or "none"
        bad("no-such-phone", f"{lab_file} has no device named or with MAC {phone!r} (physical phones: {names})")
    spec = found[0]
    if spec.driver != "physical":
        bad("not-physical", f"{phone} is a {spec.driver} device: only physical phones are rebooted this way")
    label = spec.name or spec.mac

    def progress(line: str) -> None:
        if not as_json:
            console.print(escape(line), highlight=False)

    try:
        done = asyncio.run(reboot(spec, netns=netns, progress=progress))
    except HarnessError as err:
        _out(as_json, 1, {"event": "error", "phone": label, "method": spec.reboot, "error": err.error,
                          "detail": err.detail}, f"{err.error}: {err.detail}")
    except KeyboardInterrupt:
        _out(as_json, 1, {"event": "error", "phone": label, "method": spec.reboot, "error": "interrupted",
                          "detail": "interrupted"}, "interrupted")
    _out(as_json, 0, {"event": "rebooted", "phone": label, "mac": spec.mac, "method": done.method,
                      "detail": done.detail}, f"rebooted {label} ({done.method}): {done.detail}")


@click.command("check")
@click.option("--lab", "lab_file", type=click.Path(path_type=Path, dir_okay=False), required=True, metavar="FILE",
              help="The lab file whose physical phones to check.")
@click.option("--netns", default=None, metavar="NS",
              help="Send SIP OPTIONS from inside this network namespace (ip netns); an extension of PROTOCOL §5.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per phone on stdout instead of a table.")
def check_command(lab_file: Path, netns: str | None, as_json: bool) -> None:
    """Is the bench ready? For each physical phone of the lab file, what its reboot method needs:
    SIP OPTIONS to its ip (sip-notify), an SNMP read of its PoE port with the community from the
    environment (poe), a terminal for the operator (manual). Reboots nothing.

    Prints a table (phone, MAC, ip, reboot, checked, ready, detail); exit 0 when every phone is
    ready, 1 when one is not, 2 for a lab file that cannot be used or has no physical phones.
    """
    from dataclasses import asdict

    from rich.table import Table

    from harness.lab import load_lab
    from harness.physical.check import check_devices

    try:
        loaded = load_lab(lab_file)
    except LabError as err:
        _out(as_json, 2, {"event": "error", "error": err.error, "detail": str(err)}, f"{err.error}: {err}")
    physical = [d for d in loaded.devices if d.driver == "physical"]
    if not physical:
        _out(as_json, 2, {"event": "error", "error": "no-physical-phones", "detail": f"{lab_file} lists none"},
             f"no-physical-phones: {lab_file} lists no driver = \"physical\" devices")
    checks = asyncio.run(check_devices(physical, netns=netns))
    ready = all(c.ready for c in checks)
    if as_json:
        for c in checks:
            click.echo(json.dumps({"event": "check", **asdict(c)}, ensure_ascii=False))
    else:
        table = Table(title=f"bench check: {lab_file}")
        for column in ("phone", "MAC", "ip", "reboot", "checked", "ready", "detail"):
            table.add_column(column)
        for c in checks:
            table.add_row(c.phone, c.mac, c.ip or "-", c.reboot, c.what, "[green]yes[/]" if c.ready else "[red]no[/]",
                          escape(c.detail))
        Console(width=160).print(table)
        click.echo(f"{sum(c.ready for c in checks)} of {len(checks)} phones ready")
    sys.exit(0 if ready else 1)
