"""`enrollab lab network` — the harness's side of a lab network on one interface (PROTOCOL §5):
the DHCP responder (options 242/43 from the lab file's `[network]`), the LLDP advertiser (Avaya
TLVs, LLDP-MED) and the packet capture, running until interrupted.

    sudo enrollab lab network --interface eth1 --lab my-lab.toml --capture network.pcap
    sudo enrollab lab network --netns enrollab-t1-lab --interface br0 --lab lab.toml --json

It prints what it serves (interface, DHCP scope and pool, option 242 byte for byte, option 43,
each VLAN scope, the LLDP TLVs, the capture file), then one line per DHCP or LLDP event as it
happens (with `--json`: one JSON object per line, `{"event": "serving", …}` first and
`{"event": "summary", …}` last), and on SIGINT (Ctrl-C) or SIGTERM stops the services, closes
the capture and exits 0.

Decisions:
- Exit 0 after a clean stop on a signal; 2 for bad arguments, a lab file that cannot be used
  (none, invalid, without a `[network]` table: the message says what to add) and a set-up the
  services cannot run in (no such interface or namespace, interface down, no raw sockets, the
  scope's address not on the interface): one line on stderr, never a traceback (as `enrollab
  phone boot`); 1 when a service breaks while running.
- Extensions beyond PROTOCOL §5: `--netns NS` runs the services inside a named network
  namespace (a lab in a box: `harness.lab_network.netns`) without `ip netns exec`, `--json`,
  and `--interface` may be left out when the lab file's `[network]` names one.
- `--lab` defaults to `fixtures/labs/example-lab.toml`, the physical-lab example, which has a
  `[network]` table; the simulated lab (`example-sim.toml`) has none [inf].
- Without `--capture` the capture goes to `network.pcap` in the current directory when the lab
  file says `capture = true` (its default), and nowhere when it says false: an operator
  finds the file where the command ran [inf].
- Events are polled from the services every 0.1 s and printed in time order; the time shown
  is the UTC time of day, as in reports [inf].
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from harness.errors import LabError

__all__ = ["DEFAULT_NETWORK_LAB", "lab"]

console = Console(stderr=True)
DEFAULT_NETWORK_LAB = "labs/example-lab.toml"
POLL = 0.1
NETWORK_EXAMPLE = """[network]
interface = "eth1"
[network.dhcp]
address = "10.0.40.1"
pool = ["10.0.40.100", "10.0.40.199"]
option_242 = "HTTPSRVR=10.0.40.1,HTTPDIR=/lab,DES_STAT=2"
"""


def _fail(error: str, detail: str, status: int = 2) -> NoReturn:
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True, highlight=False)
    sys.exit(status)


@click.group()
def lab() -> None:
    """The lab's own services: the lab network a harness serves to physical or simulated phones."""


@lab.command("network")
@click.option("--interface", "-i", default=None, metavar="IF",
              help="The interface on the phones' LAN (raw sockets: root or CAP_NET_RAW). Default: the lab "
              "file's [network] interface.")
@click.option("--lab", "lab_file", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="The lab file whose [network] table says what to serve (default: "
              "fixtures/labs/example-lab.toml).")
@click.option("--capture", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE.pcap",
              help="Write every frame on the interface to this pcap file (tcpdump -r, Wireshark). Default: "
              "network.pcap here when the lab file says capture = true (its default).")
@click.option("--netns", default=None, metavar="NS",
              help="Run the services inside this named network namespace (ip netns) instead of the current one; "
              "needs root or CAP_SYS_ADMIN. An extension of PROTOCOL §5.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line on stdout instead of text.")
def network(interface: str | None, lab_file: Path | None, capture: Path | None, netns: str | None,
            as_json: bool) -> None:
    """Serve the lab network on IF until interrupted: DHCP (options 242 and 43 from the lab file's
    [network.dhcp], one scope per [network.vlans.VID], answered 802.1Q-tagged), LLDP ([network.lldp]:
    Avaya file/call server and 802.1Q framing TLVs, LLDP-MED voice policy) and a packet capture.

    Prints what it serves, then one line per DHCP and LLDP event. Ctrl-C (SIGINT) or SIGTERM stops
    it cleanly (the capture is flushed) with exit status 0; bad arguments and a set-up it cannot
    run in exit 2 with one line saying why.

    \b
    Example:
      sudo enrollab lab network --interface eth1 --lab my-lab.toml --capture network.pcap
    """
    import fixtures
    from harness.lab import load_lab
    from harness.lab_network.service import LabNetwork

    path = lab_file if lab_file is not None else fixtures.path(DEFAULT_NETWORK_LAB)
    try:
        loaded = load_lab(path)
    except LabError as err:
        _fail(err.error, str(err))
    spec = loaded.network
    if spec is None:
        _fail("no-network", f"{path} has no [network] table: add one saying what to serve on the interface, e.g.\n"
              f"{NETWORK_EXAMPLE}(the format: harness/lab_network/spec.py; fixtures/labs/example-lab.toml has one)")
    if interface is None and spec.interface is None:
        _fail("bad-arguments", f"no interface: give --interface IF, or set `interface` in the [network] table "
              f"of {path}")
    if capture is None and spec.capture:
        capture = Path("network.pcap")
    service = LabNetwork(spec, interface=interface, netns=netns, capture_path=capture)
    try:
        status = asyncio.run(_serve(service, as_json))
    except LabError as err:
        _fail(err.error, str(err))
    sys.exit(status)


def _emit(as_json: bool, text: str, data: dict[str, Any]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
    else:
        click.echo(text)
    sys.stdout.flush()


async def _serve(service: Any, as_json: bool) -> int:
    from harness.lab_network.service import describe_event, describe_serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        async with service:
            lines = describe_serving(service.spec, interface=service.interface, netns=service.netns,
                                     capture=service.capture_path, mac=service.mac, addresses=service.addresses)
            if as_json:
                _emit(True, "", _serving_json(service))
            else:
                for line in lines:
                    _emit(False, line, {})
                _emit(False, "serving until Ctrl-C (SIGINT) or SIGTERM", {})
            while not stop.is_set():
                for event in service.new_events():
                    _emit(as_json, describe_event(event), event)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL)
    except OSError as exc:
        console.print(f"[red]error[/] network-failed: {escape(str(exc))}", soft_wrap=True, highlight=False)
        status = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    for event in service.new_events():
        _emit(as_json, describe_event(event), event)
    summary = {"event": "summary", "dhcp_replies": service.dhcp.answered if service.dhcp else 0,
               "leases": len(service.dhcp.leases) if service.dhcp else 0,
               "lldpdus_sent": service.lldp.sent if service.lldp is not None else 0,
               "packets": service.capture.packets if service.capture else 0,
               "capture": str(service.capture_path) if service.capture is not None else None}
    text = (f"stopped: {summary['dhcp_replies']} DHCP replies, {summary['leases']} leases, "
            f"{summary['lldpdus_sent']} LLDPDUs sent"
            + (f", {summary['packets']} frames in {summary['capture']}" if summary["capture"] else ""))
    _emit(as_json, text, summary)
    return status


def _serving_json(service: Any) -> dict[str, Any]:
    from dataclasses import fields

    from harness.record import jsonable

    def asdict(spec: Any) -> Any:
        return jsonable({f.name: getattr(spec, f.name) for f in fields(spec)})

    spec = service.spec
    return {
        "event": "serving", "interface": service.interface, "netns": service.netns, "mac": service.mac,
        "addresses": service.addresses,
        "dhcp": asdict(spec.dhcp) if spec.dhcp is not None else None,
        "vlans": {str(vid): asdict(scope) for vid, scope in spec.vlans.items()},
        "lldp": asdict(spec.lldp) if spec.lldp is not None else None,
        "capture": str(service.capture_path) if service.capture_path is not None else None,
    }
