"""`enrollab demo --network`: a lab in a box for anyone without a switch (root).

The command creates network namespaces (a lab bridge and one namespace per phone), runs the
harness's own DHCP responder, LLDP advertiser and capture on the bridge, the enrollment server's
device listener and a file server on the lab address, and boots simulated phones over it with
`enrollab phone boot`, in three rounds that each show one way a phone finds its server:

1. DHCP option 242 names the file server           -> source `dhcp-242`
2. no option 242, the LLDP file-server TLV names it -> source `lldp`
3. neither: the phone asks the enrollment server    -> source `des` (a zero-touch redirect)

Each round boots one J179, one K175 and one B199 at once. Everything it made is removed at the
end, also after a failure or Ctrl-C; the capture stays as `enrollab-report/network.pcap`, and the
evidence read back from it (DHCPACK with option 242, LLDPDUs, HTTP GETs) is printed.

Decisions:
- Three rounds with a restarted lab network rather than per-MAC DHCP options: one DHCP scope is
  what a lab file describes, and each round then shows exactly one rule [inf].
- The person at each phone answers the auto-provisioning prompt "No" in the network rounds (the
  network's server is used; "Yes" makes a J100 ask only DES, research §11.3) and "Yes" in the DES
  round.
- The phones are the ones the device suite runs over the network path (J179, K175, B199).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.lab_box import BootResult, BoxPhone, LabBox
from harness.lab_network.spec import DhcpScope, LldpSpec, NetworkSpec

__all__ = ["ROUNDS", "run_network_demo"]

PHONES = (("J179", "4.1.11.0.9"), ("K175", "3.0"), ("B199", "1.0.3.0"))


@dataclass(frozen=True)
class Round:
    title: str
    source: str
    option_242: bool
    lldp: bool


ROUNDS = (
    Round("DHCP option 242 names the file server", "dhcp-242", option_242=True, lldp=False),
    Round("LLDP file-server TLV, no option 242", "lldp", option_242=False, lldp=True),
    Round("nothing on the network: DES", "des", option_242=False, lldp=False),
)


def _spec(box: LabBox, round_: Round) -> NetworkSpec:
    address = box.address
    base = ".".join(address.split(".")[:3])
    scope = DhcpScope(address=address, prefixlen=box.topology.subnet.prefixlen,
                      pool=(f"{base}.50", f"{base}.199"), router=address, lease_time=600,
                      option_242=f"HTTPSRVR={address},HTTPDIR=/" if round_.option_242 else None)
    lldp = LldpSpec(interval=1.0, system_name="enrollab-lab", file_servers=(address,)) if round_.lldp else None
    return NetworkSpec(interface=box.topology.bridge, dhcp=scope, lldp=lldp, capture=True)


async def run_network_demo(out: Console, report_dir: Path, work_dir: Path) -> int:
    """The demo (module docstring); the number of phones that did not do what their round shows."""
    from harness.lab_network.evidence import read_evidence, summarise
    from harness.lab_network.service import LabNetwork

    report_dir.mkdir(parents=True, exist_ok=True)
    unexpected = 0
    table = Table(title="phones on the lab network")
    for column in ("round", "phone", "address", "source", "server", "settings", "ok"):
        table.add_column(column)
    async with LabBox(work_dir, prefix="enrollab-demo") as box:
        assert box.files is not None
        url = box.files.url("http", host=box.address)
        out.print(f"[bold]lab in a box[/]: bridge {box.topology.bridge} in namespace {box.topology.netns}, "
                  f"harness at {box.address}; enrollment server {box.server.device_url if box.server else '?'}, "
                  f"file server {url}")
        counter = 0
        for number, round_ in enumerate(ROUNDS, 1):
            phones: list[BoxPhone] = []
            for model, firmware in PHONES:
                counter += 1
                phone = box.add_phone(f"r{number}{model.lower()}", model, firmware, f"A4251BDE{counter:04X}")
                if round_.source == "des":
                    await box.arrange_zero_touch(phone, box.files_url())
                phones.append(phone)
            capture = report_dir / f"network-{number}.pcap"
            out.print(f"\n[bold]round {number}[/]: {round_.title} — {', '.join(p.model for p in phones)} boot …")
            started = time.monotonic()
            async with LabNetwork(_spec(box, round_), interface=box.topology.bridge, netns=box.topology.netns,
                                  capture_path=capture):
                results: list[BootResult] = await asyncio.gather(
                    *(box.boot(p, lldp_wait=8 if round_.lldp else 2, prompt="yes" if round_.source == "des" else "no")
                      for p in phones))
            out.print(f"  {len(phones)} phones in {time.monotonic() - started:.1f} s")
            for phone, result in zip(phones, results, strict=True):
                summary = result.summary or {}
                ok = summary.get("source") == round_.source and bool(summary.get("settings_fetched"))
                unexpected += not ok
                table.add_row(str(number), f"{phone.model}@{phone.firmware}", str(summary.get("ip")),
                              str(summary.get("source")), str(summary.get("server")),
                              "fetched" if summary.get("settings_fetched") else "no",
                              "[green]yes[/]" if ok else "[red]no[/]")
                if not ok:
                    tail = [f"{e.get('event')} {e.get('detail')}" for e in result.events[-4:]]
                    out.print(f"  {phone.name} rc {result.rc}: {result.stderr[-800:]} {tail}", markup=False,
                              style="red")
            lines = summarise(read_evidence(capture))
            for line in [ln for ln in lines if "DHCPACK" in ln or "LLDP" in ln or "GET" in ln][:6]:
                out.print(f"  evidence: {line}", markup=False, highlight=False)
    out.print()
    out.print(table)
    out.print(f"captures: {report_dir.resolve()}/network-*.pcap (tcpdump -r / Wireshark); namespaces removed")
    return unexpected
