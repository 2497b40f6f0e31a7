"""A lab in a box: network namespaces joined by veth pairs to a bridge, made with iproute2 and
removed again, also when a test or the demo fails half-way.

    with LabTopology("enrollab-t1") as lab:         # namespace enrollab-t1-lab, bridge br0
        lab.address                                  # 10.213.0.1 (the harness on the bridge)
        phone = lab.add_host("p1", mac="A4251B000001")   # namespace enrollab-t1-p1, eth0
        lab.add_vlan(212)                             # br0.212 in the lab namespace, 10.213.212.1/24
        ...                                           # phone.netns, phone.interface, lab.netns

A VLAN sub-interface is the kernel's 802.1Q interface when the kernel has 802.1Q, else a software
one (`harness.lab_network.vlan_tap`: a TAP and a relay thread), closed with the topology; either way
a daemon bound to `br0.VID` serves that VLAN's tagged frames.

Nothing outside the namespaces it creates is touched: the bridge, the veth ends and every
address live in the lab's or the hosts' namespaces; the caller's own namespace gains nothing.
Addresses are from 10.213.0.0/16 by default, inside namespaces only. Leftovers of a run that was
killed are removed by `sweep(prefix)` (and by entering a topology with the same prefix).

Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and `ip`; `available()` says why not.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab_network.vlan_tap import SoftwareVlan, software_vlan_support
from simulators.l2.netns import NETNS_DIR

__all__ = ["Host", "LabTopology", "TopologyError", "available", "kernel_vlan_support", "run_ip", "sweep",
           "vlan_support"]

BRIDGE = "br0"


class TopologyError(RuntimeError):
    """An `ip` command failed (its command line and what it printed)."""


def available() -> str | None:
    """None when namespaces can be made here, else the reason why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


def kernel_vlan_support(netns: str) -> str | None:
    """None when the kernel makes 802.1Q sub-interfaces (in `netns`), else why not: some kernels
    (e.g. a minimal VM's) are built without CONFIG_VLAN_8021Q. The probe's parent is a veth end,
    since loopback takes no VLANs even where the kernel has them."""
    parent = "vlanprobe0"
    made = run_ip("link", "add", parent, "type", "veth", "peer", "name", "vlanprobe1", netns=netns, check=False)
    if made.returncode != 0:
        return f"no probe interface for 802.1Q ({made.stderr.strip()})"
    try:
        done = run_ip("link", "add", "link", parent, "name", "vlanprobe", "type", "vlan", "id", "4094",
                      netns=netns, check=False)
    finally:
        run_ip("link", "del", parent, netns=netns, check=False)  # its VLAN and its peer go with it
    if done.returncode != 0:
        return f"this kernel makes no 802.1Q VLAN sub-interfaces ({done.stderr.strip()}; CONFIG_VLAN_8021Q)"
    return None


def vlan_support(netns: str) -> str | None:
    """None when `LabTopology.add_vlan` can make a VLAN sub-interface in `netns`: the kernel's
    802.1Q, else a software one on a TAP; else why neither (no 802.1Q and no /dev/net/tun)."""
    kernel = kernel_vlan_support(netns)
    if kernel is None:
        return None
    software = software_vlan_support(netns)
    return None if software is None else f"{kernel}; {software}"


def run_ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One `ip` command (in `netns` with `ip -n`); TopologyError with its output when it fails."""
    command = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if check and done.returncode != 0:
        raise TopologyError(f"{' '.join(command)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def sweep(prefix: str) -> list[str]:
    """Remove every namespace named `prefix-…` (leftovers of a killed run); the names removed."""
    removed = []
    if NETNS_DIR.is_dir():
        for entry in sorted(NETNS_DIR.iterdir()):
            if entry.name.startswith(prefix + "-"):
                run_ip("netns", "del", entry.name, check=False)
                removed.append(entry.name)
    return removed


@dataclass(frozen=True)
class Host:
    """A host on the lab bridge: its namespace, its interface there and that interface's MAC."""

    name: str
    netns: str
    interface: str
    mac: str
    peer: str  # the veth end on the bridge, in the lab namespace


def _mac_text(mac: str) -> str:
    digits = mac.replace(":", "").replace("-", "").replace(".", "").lower()
    if len(digits) != 12:
        raise ValueError(f"{mac!r} is not a MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass
class LabTopology:
    """Namespaces and a bridge (module docstring)."""

    prefix: str = "enrollab"
    network: str = "10.213.0.0/24"
    hosts: dict[str, Host] = field(default_factory=dict)
    vlans: dict[int, str] = field(default_factory=dict)  # VLAN id -> the harness's address on it
    software_vlans: dict[int, SoftwareVlan] = field(default_factory=dict)  # the VLANs kept in userspace
    _made: list[str] = field(default_factory=list)
    _kernel_vlans: bool | None = None  # probed at the first add_vlan
    _kernel_vlan_gap: str | None = None  # why not, when not

    @property
    def netns(self) -> str:
        return f"{self.prefix}-lab"

    @property
    def bridge(self) -> str:
        return BRIDGE

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.network)

    @property
    def address(self) -> str:
        """The harness's address on the bridge (the first of the subnet)."""
        return str(self.subnet.network_address + 1)

    def vlan_interface(self, vid: int) -> str:
        return f"{BRIDGE}.{vid}"

    def vlan_subnet(self, vid: int) -> ipaddress.IPv4Network:
        base = self.subnet.network_address.packed
        return ipaddress.IPv4Network(f"{base[0]}.{base[1]}.{vid % 256}.0/24")

    def start(self) -> LabTopology:
        why = available()
        if why:
            raise TopologyError(why)
        sweep(self.prefix)
        try:
            self._netns(self.netns)
            run_ip("link", "set", "lo", "up", netns=self.netns)
            # group_fwd_mask bit 14: the bridge forwards LLDP (01:80:c2:00:00:0e) between its ports, as a
            # switch hub would; by default a Linux bridge keeps link-local frames to itself.
            run_ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0",
                   "group_fwd_mask", "0x4000", netns=self.netns)
            run_ip("addr", "add", f"{self.address}/{self.subnet.prefixlen}", "dev", BRIDGE, netns=self.netns)
            run_ip("link", "set", BRIDGE, "up", netns=self.netns)
        except BaseException:
            self.close()
            raise
        return self

    def _netns(self, name: str) -> None:
        run_ip("netns", "add", name)
        self._made.append(name)

    def add_host(self, name: str, mac: str, interface: str = "eth0") -> Host:
        """A namespace `prefix-name` with `interface` (MAC `mac`) on the bridge; loopback up,
        no address (a phone takes one by DHCP)."""
        netns = f"{self.prefix}-{name}"
        peer = f"v{len(self.hosts)}-{name}"[:15]
        self._netns(netns)
        run_ip("link", "set", "lo", "up", netns=netns)
        run_ip("link", "add", peer, "netns", self.netns, "type", "veth", "peer", "name", interface,
               "netns", netns, "address", _mac_text(mac), netns=netns)
        run_ip("link", "set", peer, "master", BRIDGE, "up", netns=self.netns)
        run_ip("link", "set", interface, "up", netns=netns)
        host = Host(name, netns, interface, _mac_text(mac).replace(":", "").upper(), peer)
        self.hosts[name] = host
        return host

    def add_vlan(self, vid: int) -> str:
        """An 802.1Q sub-interface `br0.VID` on the bridge with the harness's address on that
        VLAN's subnet; the interface's name. The kernel's when it has 802.1Q, else a software one
        (module docstring); TopologyError when neither can be made."""
        if not 1 <= vid <= 4094:
            raise ValueError(f"VLAN id {vid} is not 1-4094")
        name = self.vlan_interface(vid)
        subnet = self.vlan_subnet(vid)
        address = str(subnet.network_address + 1)
        if self._kernel_vlans is None:
            self._kernel_vlan_gap = kernel_vlan_support(self.netns)
            self._kernel_vlans = self._kernel_vlan_gap is None
        if self._kernel_vlans:
            run_ip("link", "add", "link", BRIDGE, "name", name, "type", "vlan", "id", str(vid), netns=self.netns)
        else:
            if vid in self.software_vlans:
                raise TopologyError(f"VLAN {vid} is already on {BRIDGE} ({name})")
            try:
                self.software_vlans[vid] = SoftwareVlan(BRIDGE, vid, netns=self.netns, name=name).open()
            except OSError as exc:
                raise TopologyError(f"{self._kernel_vlan_gap}; and no software 802.1Q interface {name}: {exc}"
                                    ) from exc
        run_ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", name, netns=self.netns)
        run_ip("link", "set", name, "up", netns=self.netns)
        self.vlans[vid] = address
        return name

    def close(self) -> None:
        """Stop the software VLANs' relays and remove every namespace made (their interfaces go
        with them); never raises."""
        for vlan in self.software_vlans.values():
            vlan.close()
        self.software_vlans.clear()
        for name in reversed(self._made):
            run_ip("netns", "del", name, check=False)
        self._made.clear()
        self.hosts.clear()
        self.vlans.clear()

    def __enter__(self) -> LabTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def pid_file_dir(prefix: str) -> Path:
    """Where daemons started for a topology keep their pid and lease files."""
    path = Path("/run") / "enrollab" / prefix
    path.mkdir(parents=True, exist_ok=True)
    return path
