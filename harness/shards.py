"""Devices in parallel: `enrollab conformance run --jobs N` splits the lab's devices into shards,
runs each shard as its own pytest process (`--enrollab-devices`), and merges their records into
one report (report.json, report.html, junit.xml), device by device.

Decisions:
- Physical phones are dealt round-robin over up to `[options] physical_jobs` bench shards
  (default 1), each running its phones one after another; bounded by N, and never leaving the
  simulated devices without a shard of their own. Simulated devices are dealt round-robin over
  the other shards, so N jobs run N-B simulated shards beside B benches (N when there is none),
  and never more than the lab's `[options] concurrency` (the simulated devices at once, as for
  a fleet). N is the machine's budget of processes (a command-line flag, default 1: a lab file
  cannot know the machine it runs on), `physical_jobs` the bench's and `concurrency` the lab's.
- One bench shard serves the bench itself, as a run without shards does. Several share it
  through the bench hub (`harness.bench_hub`), which this process runs for the shards' lifetime:
  every phone needs the same lab network (one DHCP server on the LAN, one capture) and the same
  enrollment server port (`[bench] des_port`: a real phone asks the name it was built with on
  443). The hub serves the network once and fronts the port, forwarding each phone's connection
  — by its address, TLS untouched — to its own shard's scripted server on a port of its own;
  the shards reach it over a Unix socket named in `ENROLLAB_BENCH_HUB`. So a phone's scripted
  answers, evidence and verdict stay in its shard, exactly as when it runs alone; a hub that is
  not there is error `bench-hub-unreachable` for that shard's physical tests. The front's
  record (forwarded, no-route, backend-down per connection) is `<report-dir>/network/bench-hub.jsonl`.
- The server suite does not depend on a device: it runs once, in a shard of its own.
- Each shard has its own embedded enrollment server (a process each); a lab naming a remote
  server shares it. The merged record keeps the first shard's provenance (same lab, seed,
  command) with the suites of all, and recomputes summary, matrix and rule tallies from the
  tests; junit.xml holds one <testsuite> per shard; the bench shard's capture moves to
  `<report-dir>/network/` as without shards (the hub's is written there directly).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.lab import DeviceSpec, Lab
from harness.report import aggregate_matrix, rule_coverage, summarize

__all__ = ["bench_hub", "default_jobs", "end_shard", "merge_junit", "merge_reports", "plan_shards", "run_shards"]
SHARD_GRACE = 60.0  # seconds an interrupted shard has for its teardowns before it is killed


def plan_shards(
    drivers: Sequence[str], jobs: int, physical_jobs: int = 1, concurrency: int | None = None
) -> list[list[int]]:
    """Positions of the devices (by their driver) per shard (module docstring): at most `jobs`; the
    physical phones dealt round-robin over up to `physical_jobs` bench shards (each runs its phones
    one after another), never leaving the simulated devices without a shard; the simulated ones
    round-robin over the rest, in at most `concurrency` shards. Bench shards come first."""
    physical = [i for i, d in enumerate(drivers) if d != "simulated"]
    simulated = [i for i, d in enumerate(drivers) if d == "simulated"]
    benches = min(len(physical), max(1, physical_jobs), max(1, jobs - (1 if simulated else 0))) if physical else 0
    slots = max(1, jobs - benches)
    bench_shards: list[list[int]] = [[] for _ in range(benches)]
    for n, position in enumerate(physical):
        bench_shards[n % benches].append(position)
    if concurrency is not None:
        slots = min(slots, max(1, concurrency))
    shards: list[list[int]] = [[] for _ in range(min(slots, len(simulated)))]
    for n, position in enumerate(simulated):
        shards[n % len(shards)].append(position)
    return bench_shards + shards


def default_jobs(drivers: Sequence[str], suites: Sequence[str], physical_jobs: int = 1) -> int:
    """`--jobs` when not given: a lab mixing physical and simulated devices runs them side by side
    (its bench shards, one simulated shard, the server suite's), since a physical phone's tests
    take minutes and the simulated ones need not wait for them; any other lab runs in one
    process, as the suites always have."""
    physical = sum(d != "simulated" for d in drivers)
    if not physical or physical == len(drivers) or "device" not in suites:
        return 1
    return ("server" in suites) + min(physical, max(1, physical_jobs)) + 1


def merge_reports(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One record of the shards' records (module docstring)."""
    if not docs:
        raise ValueError("no shard left a report")
    first = docs[0]
    devices: dict[str, Any] = {}
    features: dict[str, Any] = {}
    tests: list[Any] = []
    suites: list[str] = []
    for doc in docs:
        for device in doc["devices"]:
            devices.setdefault(device["id"], device)
        for feature in doc["features"]:
            features.setdefault(feature["id"], feature)
        tests.extend(doc["tests"])
        suites.extend(s for s in doc["provenance"].get("suites", ()) if s not in suites)
    merged = dict(first)
    merged["features"] = list(features.values())
    merged["provenance"] = {**first["provenance"], "suites": suites}
    merged["devices"] = list(devices.values())
    merged["tests"] = tests
    merged["summary"] = summarize(tests)
    merged["matrix"] = aggregate_matrix(tests, merged["devices"], merged["features"])
    merged["rules"] = rule_coverage(tests)
    unobservable = {u["rule"]: u for d in docs for u in d.get("unobservable_rules", ())}
    if "unobservable_rules" in first or unobservable:
        merged["unobservable_rules"] = list(unobservable.values())
    return merged


def merge_junit(paths: Sequence[Path], out: Path) -> None:
    """One junit.xml with every shard's <testsuite> (a missing or unreadable one is left out)."""
    root = ET.Element("testsuites")
    for path in paths:
        try:
            tree = ET.parse(path)  # noqa: S314 - the file a shard's pytest just wrote
        except (OSError, ET.ParseError):
            continue
        top = tree.getroot()
        for suite in ([top] if top.tag == "testsuite" else list(top.iter("testsuite"))):
            root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


@contextlib.contextmanager
def bench_hub(lab: Lab, devices: Sequence[DeviceSpec], report_dir: Path,
              benches: int) -> Iterator[dict[str, str] | None]:
    """With more than one bench shard: the bench hub (`harness.bench_hub`) on a loop thread of this
    process for the block, and the environment the shards get (naming its control socket); else
    None (each shard — at most one with physical phones — serves the bench itself)."""
    if benches <= 1:
        yield None
        return
    from harness.bench_hub import ENV, BenchHub
    from harness.session import LoopThread

    network = lab.network
    capture = report_dir / "network" / "bench.pcap" if network is not None and network.capture else None
    if capture is not None:
        capture.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="enrollab-hub-"))  # short: a Unix socket's path is at most 107 bytes
    hub = BenchHub(address=lab.bench.address, port=lab.bench.des_port, control=tmp / "hub.sock",
                   phones={d.mac: d.ip for d in devices if d.driver != "simulated"}, network=network,
                   capture_path=capture, log_path=report_dir / "network" / "bench-hub.jsonl")
    loop = LoopThread("enrollab-bench-hub")
    try:
        try:
            loop.run(hub.start(), timeout=60)
        except (OSError, TimeoutError) as exc:
            raise HarnessError("bench-hub-failed", f"the bench hub did not start ({exc}): run the physical phones "
                               "one after another ([options] physical_jobs = 1)") from None
        where = f"{hub.address}:{hub.port}" if hub.address else "no enrollment server front (no [bench] address)"
        print(f"bench hub: {benches} bench shards share " + (f"[network] {network.interface}, " if network else "")
              + where, flush=True)
        for problem in (hub.network_error, hub.front_error):
            if problem is not None:
                print(f"bench hub: error {problem}", flush=True)
        yield {**os.environ, ENV: str(hub.control)}
    finally:
        with contextlib.suppress(Exception):
            loop.run(hub.stop(), timeout=30)
        loop.close()
        shutil.rmtree(tmp, ignore_errors=True)


def end_shard(process: subprocess.Popen[Any], grace: float = SHARD_GRACE) -> None:
    """End a shard still running as an interrupt would (pytest then runs its teardowns: the
    namespaces, captures and servers its fixtures made go away), killed only if it has not ended
    within `grace` seconds. A SIGKILL at once left a device suite's namespaces behind."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_shards(root: Path, suites: Sequence[str], common: Sequence[str], report_dir: Path,
               lab: Lab, devices: Sequence[DeviceSpec], jobs: int) -> int:
    """Run the shards as pytest processes at once, each into `report_dir/shards/<n>/` (its output in
    `pytest.log` there), beside the bench hub when more than one shard has physical phones, then
    write the merged report into `report_dir`. A pytest-like exit code: 4 when any shard refused
    its options, 5 when no shard collected a test, else the worst."""
    drivers = [d.driver for d in devices]
    plans: list[tuple[list[str], list[int] | None]] = []
    if "server" in suites:
        plans.append((["server"], None))
    if "device" in suites:  # the server suite's shard counts toward the N jobs
        device_jobs = max(1, jobs - len(plans))
        options = lab.options
        plans += [(["device"], positions)
                  for positions in plan_shards(drivers, device_jobs, options.physical_jobs, options.concurrency)]
    benches = sum(1 for _, p in plans if p is not None and any(drivers[i] != "simulated" for i in p))
    try:
        with bench_hub(lab, devices, report_dir, benches) as env:
            return _run(root, common, report_dir, plans, env)
    except HarnessError as exc:  # the hub did not start: no shard ran
        print(f"error {exc}", file=sys.stderr, flush=True)
        return 1


def _run(root: Path, common: Sequence[str], report_dir: Path, plans: Sequence[tuple[list[str], list[int] | None]],
         env: Mapping[str, str] | None) -> int:
    from pytest import ExitCode

    from harness.report import ReportError, load_report, write_report

    running = []
    for n, (names, positions) in enumerate(plans):
        where = report_dir / "shards" / str(n)
        where.mkdir(parents=True, exist_ok=True)
        args = [str(root / name) for name in names] + [f"--report-dir={where}", f"--junitxml={where / 'junit.xml'}",
                                                        *common]
        if positions is not None:
            args.append("--enrollab-devices=" + ",".join(map(str, positions)))
        log = (where / "pytest.log").open("w")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and suites
            [sys.executable, "-m", "pytest", *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env)
        running.append((n, positions, where, log, process))
    print(f"{len(running)} shards: " + ", ".join("server suite" if p is None else f"{len(p)} device(s)"
                                               for _, p in plans), flush=True)
    codes: list[int] = []
    started = time.monotonic()
    try:
        for n, positions, where, log, process in running:
            code = process.wait()
            log.close()
            codes.append(code)
            print(f"shard {n} ({'server suite' if positions is None else f'{len(positions)} device(s)'}) ended "
                  f"{code} after {time.monotonic() - started:.0f} s: {where / 'pytest.log'}", flush=True)
    finally:  # interrupted (or failing) here: the shards still running tear down first
        for *_, log, process in running:
            end_shard(process)
            log.close()
    if any(c == ExitCode.USAGE_ERROR for c in codes):
        return ExitCode.USAGE_ERROR
    if all(c == ExitCode.NO_TESTS_COLLECTED for c in codes):
        return ExitCode.NO_TESTS_COLLECTED
    docs = []
    for _, _, where, _, _ in running:
        try:
            docs.append(load_report(where / "report.json"))
        except ReportError:
            continue
    if not docs:
        return 1
    write_report(merge_reports(docs), report_dir)
    for _, _, where, _, _ in running:  # the bench capture (network/bench.pcap) where a run without shards puts it
        for item in sorted((where / "network").glob("*")) if (where / "network").is_dir() else ():
            (report_dir / "network").mkdir(exist_ok=True)
            shutil.move(str(item), report_dir / "network" / item.name)
    merge_junit([where / "junit.xml" for _, _, where, _, _ in running], report_dir / "junit.xml")
    return max((c for c in codes if c != ExitCode.NO_TESTS_COLLECTED), default=0)
