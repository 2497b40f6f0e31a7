"""`enrollab phone boot` — one simulated phone on a real network interface (PROTOCOL §5).

    ip netns exec phone1 enrollab phone boot --model J179 --firmware 4.1.11.0.9 \\
        --mac A4251B000001 --interface eth0 --data enrollab-data --json

The phone takes a DHCP lease on the interface (`simulators.l2.wire.WireNetwork`), listens for
LLDP, answers the auto-provisioning prompt as told, decides where its provisioning server comes
from (option 242 / 43 / siaddr / LLDP / DES / manual), contacts the enrollment server at
`--des-url` when discovery says so and fetches the settings file from the server it was given.

Decisions:
- The last line of `--json` is `{"event": "summary", "mac", "ip", "source", "server",
  "settings_fetched", "des_result"}` (PROTOCOL §5); `des_result` is the `result` of the last
  enrollment answer (PROTOCOL §2) or null when the phone never asked. Without `--json` the events
  go to stderr as text and the summary as one line.
- Exit 0 when the phone fetched a settings file or was redirected (PROTOCOL §5), 1 otherwise,
  2 for bad arguments or a set-up the phone cannot run in (no raw sockets, no such interface,
  an interface whose MAC is not `--mac`): those are one-line errors, never a traceback.
- The interface must carry the phone's MAC (a real phone's frames leave from its own address
  and the kernel drops unicast replies to another one); a mismatch is refused with the `ip link`
  command that fixes it rather than changing the interface behind the user's back [inf].
- Extensions beyond PROTOCOL §5, all optional: `--serial` (default: derived from the MAC, or
  the serial of `--factory-cert`), `--netns NS` (run in a named namespace without `ip netns
  exec`), `--host NAME=ADDRESS` (lab names such as `files.enrollab.test`, as the fleet has),
  `--dhcp-timeout`, `--code` (enrollment codes the user types, in order).
- The default `--des-url` is the enrollment server's public name https://des.avaya.com
  (research §11) [inf]; a lab passes its own server's device URL.
- Events stream as the phone records them (polled every 0.1 s), so a lab engineer watching a
  35 s LLDP wait sees the DHCP lease first.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

__all__ = ["boot_summary", "phone"]

console = Console(stderr=True)
DEFAULT_DES_URL = "https://des.avaya.com"


def _fail(error: str, detail: str, status: int = 2) -> NoReturn:
    console.print(f"[red]error[/] {escape(error)}: {escape(detail)}", soft_wrap=True)
    sys.exit(status)


@click.group()
def phone() -> None:
    """One simulated phone on a real network interface."""


@dataclass(frozen=True)
class _Credentials:
    key_pem: bytes
    cert_pem: bytes
    serial: str | None


def _credentials(data: Path | None, prefix: str | None, mac: str, serial: str | None, model: str) -> _Credentials:
    if (data is None) == (prefix is None):
        _fail("bad-arguments", "give exactly one of --data DIR (the server's data directory, whose manufacturer "
              "CA issues the factory certificate) and --factory-cert PREFIX (PREFIX.key and PREFIX.crt)")
    if prefix is not None:
        key, cert = Path(prefix + ".key"), Path(prefix + ".crt")
        for path in (key, cert):
            if not path.is_file():
                _fail("bad-arguments", f"--factory-cert {prefix}: {path} does not exist")
        cert_pem = cert.read_bytes()
        return _Credentials(key.read_bytes(), cert_pem, serial or _certificate_serial(cert_pem, cert))
    from server.pki.store import PkiLayout
    from simulators.factory import ManufacturerCA

    assert data is not None
    layout = PkiLayout.of(data)
    if not layout.manufacturer_ca_key.is_file():
        _fail("bad-arguments", f"--data {data}: no manufacturer CA ({layout.manufacturer_ca_key}); is it the "
              "server's data directory? (`enrollab serve --data DIR` creates it)")
    try:
        ca = ManufacturerCA(layout.manufacturer_ca_key.read_bytes(), layout.manufacturer_ca_cert.read_bytes())
    except (OSError, ValueError) as exc:
        _fail("bad-arguments", f"--data {data}: the manufacturer CA cannot be read ({exc})")
    chosen = serial or derived_serial(mac)
    issued = ca.issue(mac, chosen, model)
    return _Credentials(issued.key_pem, issued.cert_pem, chosen)


def _certificate_serial(cert_pem: bytes, path: Path) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        _fail("bad-arguments", f"{path} is not a PEM certificate")
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(values[0].value) if values else None


def derived_serial(mac: str) -> str:
    """A stable serial for a phone without one: `SIM` and the MAC's last 9 hex digits [inf]."""
    return "SIM" + mac[-9:]


def _hosts(values: tuple[str, ...]) -> dict[str, str]:
    from simulators.network import is_ip

    hosts: dict[str, str] = {}
    for value in values:
        name, sep, address = value.partition("=")
        if not sep or not name or not is_ip(address):
            _fail("bad-arguments", f"--host {value!r}: expected NAME=ADDRESS with an IP address")
        hosts[name.lower()] = address
    return hosts


def boot_summary(mac: str, ip: str | None, outcome: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The final `summary` object of PROTOCOL §5 from the phone's outcome and events."""
    answers = [e for e in events if e.get("event") == "enroll-answer"]
    des_result = answers[-1]["detail"].get("result") if answers else None
    fetched = [name for name in (outcome.fetched if outcome else []) if "settings" in name.lower()]
    source = outcome.source if outcome is not None else "none"
    server = outcome.server if outcome is not None and source != "none" else None
    return {"event": "summary", "mac": mac, "ip": ip, "source": source, "server": server,
            "settings_fetched": bool(fetched), "des_result": des_result}


@phone.command("boot")
@click.option("--model", required=True, help="Phone model as in the firmware catalog (J179, K175, B199, …).")
@click.option("--firmware", required=True, help="Firmware version the phone runs, e.g. 4.1.11.0.9.")
@click.option("--mac", required=True, help="The phone's MAC (12 hex digits, separators allowed); the interface's own.")
@click.option("--interface", required=True, help="Network interface the phone sits on (raw sockets: root or "
              "CAP_NET_RAW). Run it in a namespace of its own.")
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The enrollment server's data directory: its manufacturer CA issues the factory certificate.")
@click.option("--factory-cert", "factory_cert", default=None, metavar="PREFIX",
              help="A factory key and certificate pair PREFIX.key / PREFIX.crt instead of --data.")
@click.option("--des-url", default=DEFAULT_DES_URL, show_default=True,
              help="The enrollment server's device URL (asked when discovery says so).")
@click.option("--cacert", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True,
              help="A CA (PEM) the phone trusts as a built-in root, e.g. the server's TLS CA; repeatable.")
@click.option("--prompt", type=click.Choice(["yes", "no", "timeout"]), default="yes", show_default=True,
              help="The answer to the auto-provisioning prompt (timeout: nobody answers).")
@click.option("--lldp-wait", type=click.FloatRange(0, 300), default=35.0, show_default=True,
              help="Seconds to listen for LLDP when DHCP named no server (a switch sends every 30 s).")
@click.option("--dhcp-timeout", type=click.FloatRange(0.5, 300), default=10.0, show_default=True,
              help="Seconds to wait for a DHCP lease.")
@click.option("--serial", default=None, help="The phone's serial (default: from --factory-cert, else SIM+MAC).")
@click.option("--code", "codes", multiple=True, help="An enrollment code the user types when asked; repeatable.")
@click.option("--host", "hosts", multiple=True, metavar="NAME=ADDRESS",
              help="Resolve a lab host name to an address (e.g. files.enrollab.test=10.213.0.1); repeatable.")
@click.option("--netns", default=None, help="Run inside this named network namespace (instead of ip netns exec).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event on stdout; the last is the summary.")
def boot(model: str, firmware: str, mac: str, interface: str, data: Path | None, factory_cert: str | None,
         des_url: str, cacert: tuple[Path, ...], prompt: str, lldp_wait: float, dhcp_timeout: float,
         serial: str | None, codes: tuple[str, ...], hosts: tuple[str, ...], netns: str | None,
         as_json: bool) -> None:
    """Boot one simulated phone on INTERFACE: DHCP, LLDP, discovery, enrollment, settings.

    Exit 0 when it fetched a settings file or was redirected, 1 otherwise, 2 for bad arguments.
    """
    from simulators.capabilities import Capabilities
    from simulators.identity import canonical_mac

    try:
        mac = canonical_mac(mac)
    except ValueError as exc:
        _fail("bad-arguments", f"--mac: {exc}")
    from fixtures.versions import VersionError, parse_version

    capabilities = Capabilities.load()
    try:
        capabilities.model(model)
    except KeyError as exc:
        _fail("bad-arguments", f"--model: {exc.args[0]}")
    try:
        parse_version(firmware)
    except (VersionError, ValueError) as exc:
        _fail("bad-arguments", f"--firmware {firmware!r}: {exc}")
    if not des_url.lower().startswith(("https://", "http://")):
        _fail("bad-arguments", f"--des-url {des_url!r}: expected an https:// URL")
    credentials = _credentials(data, factory_cert, mac, serial, model)
    lab_hosts = _hosts(hosts)
    roots = [path.read_bytes() for path in cacert]
    _check_interface(interface, mac, netns)
    status = asyncio.run(_boot(model, firmware, mac, interface, credentials, des_url, roots, prompt, lldp_wait,
                               dhcp_timeout, codes, lab_hosts, netns, as_json, capabilities))
    sys.exit(status)


def _check_interface(interface: str, mac: str, netns: str | None) -> None:
    from simulators.l2.rawlink import interface_mac

    if os.geteuid() != 0:
        _fail("no-raw-sockets", "a phone on a real interface needs raw sockets: run as root (or with CAP_NET_RAW)")
    try:
        own = interface_mac(interface, netns)
    except OSError as exc:
        _fail("no-interface", f"{interface}: {exc}")
    if own.replace(":", "").upper() != mac:
        where = f"ip -n {netns} " if netns else "ip "
        _fail("mac-mismatch", f"{interface} has MAC {own}, the phone is {mac}; set it with "
              f"`{where}link set {interface} address {':'.join(mac[i:i + 2] for i in range(0, 12, 2)).lower()}`")


async def _boot(model: str, firmware: str, mac: str, interface: str, credentials: _Credentials, des_url: str,
                roots: list[bytes], prompt: str, lldp_wait: float, dhcp_timeout: float, codes: tuple[str, ...],
                hosts: dict[str, str], netns: str | None, as_json: bool, capabilities: Any) -> int:
    from simulators.identity import PhoneIdentity
    from simulators.l2.wire import WireNetwork
    from simulators.phone import Phone, PhoneEnvironment, User

    serial = credentials.serial or derived_serial(mac)
    network = WireNetwork(interface, mac, model=model, firmware=firmware, serial=serial, netns=netns,
                          lldp_wait=lldp_wait, dhcp_timeout=dhcp_timeout)
    env = PhoneEnvironment(des_url, roots, hosts, network, capabilities=capabilities, netns=netns)
    device = Phone(PhoneIdentity(model, firmware, mac, serial), credentials.key_pem, credentials.cert_pem, env,
                   user=User(prompt=prompt, codes=codes))
    printed = 0

    def flush() -> None:
        nonlocal printed
        for event in device.events[printed:]:
            if as_json:
                click.echo(json.dumps(event.to_json(), default=str))
            else:
                console.print(escape(str(event)), soft_wrap=True, highlight=False)
        printed = len(device.events)

    async def stream() -> None:
        while True:
            await asyncio.sleep(0.1)
            flush()

    streamer = asyncio.create_task(stream())
    try:
        async with env:
            outcome = await device.boot()
    except OSError as exc:
        streamer.cancel()
        flush()
        _fail("network", str(exc))
    finally:
        streamer.cancel()
        await network.close()
    flush()
    events = [event.to_json() for event in device.events]
    address = next((e["detail"].get("address") for e in events if e["event"] == "network-up"), None)
    summary = boot_summary(mac, address, outcome, events)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(" ".join(f"{key}={value}" for key, value in summary.items() if key != "event"))
    return 0 if summary["settings_fetched"] or summary["des_result"] == "redirect" else 1
