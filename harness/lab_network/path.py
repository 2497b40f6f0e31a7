"""The device suite over a real network path: `[options] network_path = "namespaces"`.

    path = LabPath(prefix="enrollab-c1a2", capture_dir=report_dir / "network").start()
    server = await _start_embedded(data, device_at=(path.address, DEVICE_PORT, path.netns))
    device.path = path                              # harness.dut.SimulatedDevice
    ...                                             # every boot of the device now goes over the wire
    path.close()

Each simulated device gets a network namespace of its own (`LabTopology.add_host`, its interface
carrying the device's MAC) on the lab bridge. Every boot:

1. The device's interface loses its addresses (a phone that reboots starts without one; one
   re-provisioned from its settings menu keeps its lease and asks the network nothing).
2. The harness's `LabNetwork` starts on the bridge — DHCP responder, LLDP advertiser when the
   test's network offers an LLDP file server, packet capture — configured from the network the
   test put the device on (`device.network`, a `simulators.network.NetworkLayer` knob):
   `StaticNetwork(option_242=…, lldp_file_server=…)` becomes the scope's option 242 and the
   advertiser's Avaya file-server TLV; a knob with `params` (parameters "the DHCP answer
   carried") becomes an option 242 of those `NAME=value` pairs; None is a network that names no
   server (a plain lease). What the test declared is what the network really sends.
3. The device boots with a `simulators.l2.wire.WireNetwork` on its interface (real DHCP and LLDP
   frames) and makes every connection from inside its namespace; the servers it reaches listen
   on the lab address inside the lab namespace (the embedded server's device listener, the
   tests' file servers and scripted enrollment servers: the plugin starts them there).
4. The network stops; the capture's entries for the device's MAC wait in `take_evidence(mac)`
   for the test's `evidence.network` (the dut fixture takes them), the pcap stays in
   `capture_dir` (`<mac>-<n>.pcap`).

Decisions:
- The admin API stays on 127.0.0.1 in the harness's namespace (arrangements go through it);
  only what a phone talks to is on the lab network (as in `harness.lab_box`) [inf].
- The server suite is not run on this path: it speaks the device protocol from the harness's own
  namespace, which has no route to the lab; a run that collects it is refused with that reason.
- LLDP: the device listens `lldp_wait` seconds (default 1.0: the advertiser sends at once, no
  switch's 30 s interval to sit out) [inf].
- A knob that cannot be expressed on the wire (anything else) is a `HarnessError`: the run never
  silently tests something other than what the test declared.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.lab_network.netns import Host, LabTopology, run_ip
from harness.lab_network.spec import DhcpScope, LldpSpec, NetworkSpec

__all__ = ["DEVICE_PORT", "LabPath", "WireOffer", "wire_offer"]

DEVICE_PORT = 8443
POOL_SIZE = 100  # leases per lab: one namespace per device, a few boots each


@dataclass(frozen=True)
class WireOffer:
    """What the harness's lab network sends for one boot."""

    option_242: str | None = None
    lldp_file_server: str | None = None


def wire_offer(network: Any) -> WireOffer:
    """The DHCP/LLDP configuration that offers what the test's network knob declares (module
    docstring, 2)."""
    from simulators.network import StaticNetwork

    if network is None:
        return WireOffer()
    if isinstance(network, StaticNetwork):
        return WireOffer(network.option_242 or None, network.lldp_file_server)
    params = getattr(network, "params", None)
    if isinstance(params, Mapping) and getattr(network, "source", "dhcp-242") == "dhcp-242":
        text = ",".join(f"{name}={value}" for name, value in params.items())
        return WireOffer(text or None)
    raise HarnessError("network-not-on-wire",
                       f"the test's network ({type(network).__name__}) cannot be sent as DHCP/LLDP on a lab network: "
                       "use StaticNetwork(option_242=…, lldp_file_server=…)")


@dataclass
class LabPath:
    """The lab network the run's simulated devices boot over (module docstring)."""

    prefix: str
    capture_dir: Path
    lldp_wait: float = 1.0
    dhcp_timeout: float = 6.0
    topology: LabTopology = field(init=False)
    _hosts: dict[str, Host] = field(default_factory=dict, init=False)
    _boots: dict[str, int] = field(default_factory=dict, init=False)
    _evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.topology = LabTopology(self.prefix)

    @property
    def address(self) -> str:
        return self.topology.address

    @property
    def netns(self) -> str:
        return self.topology.netns

    def start(self) -> LabPath:
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        self.topology.start()
        return self

    def close(self) -> None:
        self.topology.close()

    def host(self, mac: str) -> Host:
        """The device's namespace and interface on the bridge, made on first use."""
        key = mac.replace(":", "").upper()
        if key not in self._hosts:
            self._hosts[key] = self.topology.add_host(f"d{len(self._hosts)}", mac=key)
        return self._hosts[key]

    def _scope(self, offer: WireOffer) -> NetworkSpec:
        base = self.topology.subnet.network_address
        pool = (str(base + 50), str(base + 50 + POOL_SIZE - 1))
        scope = DhcpScope(address=self.address, prefixlen=self.topology.subnet.prefixlen, pool=pool,
                          lease_time=600, option_242=offer.option_242)
        lldp = None
        if offer.lldp_file_server is not None:
            lldp = LldpSpec(interval=1.0, system_name="enrollab-lab", file_servers=(offer.lldp_file_server,))
        return NetworkSpec(interface=self.topology.bridge, dhcp=scope, lldp=lldp)

    @contextlib.asynccontextmanager
    async def boot(self, identity: Any, network: Any, *, reboot: bool = True) -> AsyncIterator[tuple[Any, str]]:
        """One boot of the device `identity` (mac, model, firmware, serial) on the wire: yields
        (its `WireNetwork`, its namespace); afterwards its capture entries wait for the test.
        `reboot=False` (re-provisioning from the settings menu): the device keeps its address."""
        from harness.lab_network.service import LabNetwork
        from simulators.l2.wire import WireNetwork

        offer = wire_offer(network)
        host = self.host(identity.mac)
        if reboot:
            run_ip("addr", "flush", "dev", host.interface, netns=host.netns, check=False)
        n = self._boots[host.mac] = self._boots.get(host.mac, 0) + 1
        capture = self.capture_dir / f"{host.mac}-{n}.pcap"
        lab = LabNetwork(self._scope(offer), interface=self.topology.bridge, netns=self.netns, capture_path=capture)
        wire = WireNetwork(host.interface, host.mac, model=identity.model, firmware=identity.firmware,
                           serial=identity.serial or "", netns=host.netns, lldp_wait=self.lldp_wait,
                           dhcp_timeout=self.dhcp_timeout)
        try:
            async with lab:
                try:
                    yield wire, host.netns
                finally:
                    await wire.close()
        except subprocess.CalledProcessError as exc:
            raise HarnessError("lab-network-failed", f"the lab network for {host.mac} failed: {exc}") from None
        with contextlib.suppress(Exception):  # a device test's verdict never hangs on the evidence
            self._evidence.setdefault(host.mac, []).extend(lab.evidence(mac=host.mac))

    def take_evidence(self, mac: str) -> list[dict[str, Any]]:
        """The capture entries of the device's boots since the last call."""
        return self._evidence.pop(mac.replace(":", "").upper(), [])
