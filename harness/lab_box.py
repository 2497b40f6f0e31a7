"""A lab in a box with servers: the namespaces of `harness.lab_network.netns.LabTopology`, the
embedded enrollment server's device listener and a file server on the lab address, and
simulated phones booted with `enrollab phone boot` each in a namespace of its own.

    async with LabBox(work_dir, prefix="enrollab-demo") as box:
        phone = box.add_phone("p1", "J179", "4.1.11.0.9", "A4251B000001")
        async with LabNetwork(spec, interface=box.topology.bridge, netns=box.topology.netns):  # or dnsmasq
            await box.arrange_zero_touch(phone, box.files.url("http", host=box.address))
            result = await box.boot(phone, lldp_wait=3)     # BootResult: rc, summary, events
        box.files.requests                                  # who fetched what, from which address

Used by `enrollab demo --network` and by the lab-network tests; the DHCP server and LLDP sender
are the caller's (the harness's own `LabNetwork`, or dnsmasq and lldpd as independent peers).

Decisions:
- The admin API stays on 127.0.0.1 in the caller's namespace (the harness arranges devices
  through it); only what phones talk to — the device listener (PROTOCOL §2, port 8443) and the
  file server (ports 80 and 443) — listens on the lab address inside the lab namespace, and the
  server certificate names that address [inf].
- Each phone's factory key and certificate are issued up front into the work directory
  (`<name>.key`/`<name>.crt`) and passed as `--factory-cert`, so the harness knows the
  thumbprint it imports before the phone boots.
- A phone boots as a subprocess (`ip netns exec <ns> enrollab phone boot --json`): the command
  users run is the one tested; its JSON lines are read back, the last being the summary.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.arrangement import Arranger
from harness.dut import DeviceIdentity
from harness.errors import HarnessError
from harness.fileserver import FileServer
from harness.lab_network.netns import Host, LabTopology
from harness.processes import run_bounded
from harness.session import EnrollmentServer, _start_embedded

__all__ = ["BootResult", "BoxPhone", "LabBox"]

DEVICE_PORT = 8443
FILES_NAME = "files.enrollab.test"  # the file server's name, which the phones resolve to the lab address


@dataclass
class BoxPhone:
    name: str
    model: str
    firmware: str
    mac: str
    serial: str
    host: Host
    factory_prefix: Path
    thumbprint: str

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity(self.model, self.firmware, self.mac, self.serial)

    def arrange_row(self) -> dict[str, str]:
        return {"mac": self.mac, "serial": self.serial, "model": self.model, "thumbprint": self.thumbprint}


@dataclass
class BootResult:
    rc: int
    summary: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""


class LabBox:
    """The lab in a box (module docstring)."""

    def __init__(self, work_dir: Path, *, prefix: str = "enrollab-box", files: Path | None = None) -> None:
        self.work_dir = work_dir
        self.topology = LabTopology(prefix)
        if files is None:
            import fixtures

            files = fixtures.path("provisioning")  # the upgrade scripts and 46xxsettings.txt
        self._files_root = files
        self.server: EnrollmentServer | None = None
        self.files: FileServer | None = None
        self._running: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.phones: list[BoxPhone] = []

    @property
    def address(self) -> str:
        return self.topology.address

    def files_url(self, scheme: str = "http") -> str:
        """The file server by name (a Vantage refuses IP-address provisioning URLs, ENR-4)."""
        assert self.files is not None
        return self.files.url(scheme, host=FILES_NAME)

    async def __aenter__(self) -> LabBox:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.topology.start()
        try:
            self.server, self._running = await _start_embedded(
                self.work_dir / "server-data", device_at=(self.address, DEVICE_PORT, self.topology.netns))
            self.files = FileServer(self._files_root, host=self.address, netns=self.topology.netns, ports=(80, 443))
            await self.files.start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self.files is not None:
            await self.files.stop()
        if self._running is not None:
            await self._running.stop()
            self._running = None
        self.topology.close()

    def add_phone(self, name: str, model: str, firmware: str, mac: str, serial: str | None = None) -> BoxPhone:
        """A phone namespace on the bridge, and the phone's factory credentials issued to files."""
        from simulators.identity import canonical_mac

        assert self.server is not None, "enter the box first"
        mac = canonical_mac(mac)
        serial = serial or "SIM" + mac[-9:]
        credentials = self.server.manufacturer_ca().issue(mac, serial, model)
        prefix = self.work_dir / name
        prefix.with_suffix(".key").write_bytes(credentials.key_pem)
        os.chmod(prefix.with_suffix(".key"), 0o600)
        prefix.with_suffix(".crt").write_bytes(credentials.cert_pem)
        host = self.topology.add_host(name, mac=mac)
        phone = BoxPhone(name, model, firmware, mac, serial, host, prefix, credentials.thumbprint)
        self.phones.append(phone)
        return phone

    async def arrange_zero_touch(self, phone: BoxPhone, url: str) -> None:
        """Import, claim and associate the phone with a site whose profile redirects to `url`."""
        assert self.server is not None
        async with self.server.admin() as admin:
            await Arranger(self.server, admin).zero_touch(phone, url)  # type: ignore[arg-type]

    async def imported(self, phone: BoxPhone) -> None:
        """Only imported and approved (DES answers, but no profile redirects it)."""
        assert self.server is not None
        async with self.server.admin() as admin:
            await Arranger(self.server, admin).imported(phone)  # type: ignore[arg-type]

    def boot_command(self, phone: BoxPhone, *, lldp_wait: float = 3.0, prompt: str = "yes",
                     dhcp_timeout: float = 8.0) -> list[str]:
        assert self.server is not None and self.server.tls_ca_pem is not None
        ca = self.work_dir / "server-tls-ca.crt"
        ca.write_bytes(self.server.tls_ca_pem)
        enrollab = str(Path(sys.executable).with_name("enrollab"))
        return ["ip", "netns", "exec", phone.host.netns, enrollab, "phone", "boot",
                "--model", phone.model, "--firmware", phone.firmware, "--mac", phone.mac,
                "--serial", phone.serial, "--interface", phone.host.interface,
                "--factory-cert", str(phone.factory_prefix), "--des-url", self.server.device_url,
                "--cacert", str(ca), "--prompt", prompt, "--lldp-wait", str(lldp_wait),
                "--dhcp-timeout", str(dhcp_timeout), "--host", f"{FILES_NAME}={self.address}", "--json"]

    async def boot(self, phone: BoxPhone, *, timeout: float = 120.0, **options: Any) -> BootResult:
        """Boot the phone with `enrollab phone boot` in its namespace; its JSON lines read back."""
        try:
            code, out, err = await run_bounded(*self.boot_command(phone, **options), timeout=timeout)
        except TimeoutError:
            raise HarnessError("phone-timeout", f"{phone.name} ({phone.mac}) did not finish booting in {timeout:.0f} s",
                               phone.mac) from None
        events: list[dict[str, Any]] = []
        for line in out.decode(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                events.append(item)
        summary = events[-1] if events and events[-1].get("event") == "summary" else None
        return BootResult(code, summary, events[:-1] if summary else events,
                          err.decode(errors="replace"))
