"""Tiers that need something of the machine (root for namespaces, a Debian package as an
independent peer): on a user's machine such a test skips and says what is missing; under
`ENROLLAB_REQUIRE_TIERS=1` (set by `.ci/run`, which installs the packages first) the same gap is a
failure, so CI really runs the lab-network tier.

    need_netns()                 # root and iproute2
    need_tool("dnsmasq", package="dnsmasq-base")
    need_zbarimg()               # zbar's QR reader (PNP-1 sheets), an independent decoder
    with lab_topology("enrollab-t") as lab: ...      # a LabTopology removed even when the test fails
    need_vlans(lab.netns)        # lab.add_vlan works: the kernel's 802.1Q, else a software one on a TAP

A kernel without 802.1Q (a minimal VM's) is no gap: `LabTopology.add_vlan` falls back to a
software sub-interface (`harness.lab_network.vlan_tap`). Only when /dev/net/tun is missing too
is it one, and then a failure under CI like any other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from harness.lab_network.netns import LabTopology, available, vlan_support

REQUIRE_VAR = "ENROLLAB_REQUIRE_TIERS"


def required() -> bool:
    return os.environ.get(REQUIRE_VAR) == "1"


def gap(reason: str) -> None:
    """Skip (a user's machine) or fail (CI) for `reason`."""
    if required():
        pytest.fail(f"{REQUIRE_VAR}=1 and this tier cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def need_netns() -> None:
    why = available()
    if why:
        gap(f"lab-network tier: {why}")


def need_tool(command: str, *, package: str) -> str:
    path = shutil.which(command) or next(
        (p for p in (f"/usr/sbin/{command}", f"/sbin/{command}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        gap(f"needs `{command}` (Debian package {package}: apt-get install {package})")
        raise AssertionError("unreachable")
    return path


def need_zbarimg() -> str:
    """zbar's `zbarimg` (Debian zbar-tools): reads PNP-1 QR codes as a third party would."""
    return need_tool("zbarimg", package="zbar-tools")


def need_vlans(netns: str) -> None:
    """VLAN sub-interfaces can be made in `netns` (kernel 802.1Q or a TAP), else a gap."""
    why = vlan_support(netns)
    if why:
        gap(f"VLAN sub-interfaces: {why}")


@contextlib.contextmanager
def lab_topology(prefix: str = "enrollab-t", **options: str) -> Iterator[LabTopology]:
    """A fresh lab in a box, removed afterwards whatever happens; `prefix` gets a random
    suffix so parallel test runs (tox -p) never share namespaces."""
    need_netns()
    lab = LabTopology(f"{prefix}{uuid.uuid4().hex[:4]}", **options)
    with lab:
        yield lab
