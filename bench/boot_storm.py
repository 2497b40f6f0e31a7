"""Boot storm (issue 4): N simulated phones against the reference server on this machine, and the
memory of M idle phones — with baselines measured in the same run.

Part 1, the storm: `enrollab serve` runs as its own process (SQLite, temporary directory). The
phones run in `--processes` fleet workers (default: one per CPU; one Python process drives
about one core, and a storm is CPU-bound), each a shard of the same roster (`--shard I/N`):
each worker issues its phones' factory certificates and arranges them as zero-touch through the
admin API, says it is ready, and all start booting when this process says go. Each phone
enrolls over mutual TLS with its own factory certificate, then fetches its upgrade script,
settings and MAC file over HTTPS from the harness's file server (in this process). Printed:
wall time of the boot phase (first start to last phone done), phones/s, p50/p99 per phone,
peak RSS of the fleet workers (summed), and CPU seconds of the boot: fleet workers, file
server, server. Baseline, same run, same server: the bare mutual-TLS rate — as many new
connections with factory certificates, each sending one trivial request (answered 404 by the
device listener's router, no application code), from this one process on Python's ssl with 64
contexts built beforehand — and the ratio. (Phones build their own-certificate contexts during
the boot, on pyOpenSSL: `simulators/mtls.py`.)

Part 2, idle phones: a fresh interpreter builds M `Phone` objects (identity, credentials as
separate PEM byte strings, user, shared environment), never booted; printed: bytes per phone by
RSS and by tracemalloc, against a baseline of M bare `PhoneIdentity` objects.

    .venv/bin/python bench/boot_storm.py [--phones 10000] [--idle 100000] [--concurrency 128] [--processes 2]

Aims (issue 4): 10,000 phones in 60 s or less; 20 KB or less per idle phone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import OpenSSL.SSL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.enroll_throughput import own_schema  # noqa: E402
from harness.fileserver import FileServer  # noqa: E402
from harness.fleet_run import FILES_HOST, _pki_files, _target, provisioning_files  # noqa: E402
from simulators.factory import ManufacturerCA  # noqa: E402
from simulators.fleet import FleetSpec, FleetTarget, run_fleet  # noqa: E402
from simulators.mix import parse_mix, parse_shard  # noqa: E402

PASSWORD = "Bench-Storm-Pw-1"  # noqa: S105 - a throwaway server
MODELS = ("J179@4.1.11.0.9", "J139@4.1.11.0.9", "K175@3.1", "K155-HW3@3.2", "B199@1.0.4.0", "CU360@11.4.0.20")


def start_server(data: Path, db: str | None = None, workers: int = 1) -> tuple[subprocess.Popen[bytes], str, list[int]]:
    """`enrollab serve` in its own process (with `workers`: that many worker processes, issue 17);
    its log goes to a file (a pipe would need draining, which costs this process CPU the fleet
    needs). Answers the process, the admin URL and the pids that serve (the workers, or itself)."""
    env = {**os.environ, "ENROLLAB_ADMIN_PASSWORD": PASSWORD}
    enrollab = Path(sys.executable).with_name("enrollab")
    log = data.parent / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(enrollab), "serve", "--data", str(data), "--admin-port", "0",
             *(["--db", db] if db else []), *(["--workers", str(workers)] if workers > 1 else [])],
            stderr=sink,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if (m := re.search(r"(http://\S+)/api/v1", text)) and (workers == 1 or "Ctrl-C" in text):
            pids = re.search(r"workers \(pids ([\d, ]+)\)", text)
            return proc, m.group(1), [int(p) for p in pids.group(1).split(", ")] if pids else [proc.pid]
        if proc.poll() is not None:
            raise SystemExit(f"enrollab serve exited with {proc.returncode}: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("enrollab serve did not announce its URL")


def cpu_seconds(pid: int | list[int]) -> float:
    if isinstance(pid, list):
        return sum(cpu_seconds(one) for one in pid)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_spec(args: argparse.Namespace, shard: str | None) -> FleetSpec:
    counts = [args.phones // len(MODELS) + (1 if i < args.phones % len(MODELS) else 0) for i in range(len(MODELS))]
    mix = ",".join(f"{m}={n}" for m, n in zip(MODELS, counts, strict=True) if n)
    return FleetSpec(
        parse_mix(mix),
        {"zero-touch": 1, "nec": 0, "pec": 0, "wrong-code": 0},
        seed=args.seed,
        shard=parse_shard(shard) if shard else None,
        concurrency=max(1, args.concurrency // args.processes),
        group=1,
    )


async def storm(args: argparse.Namespace, data: Path, admin_url: str, server_pid: list[int]) -> dict[str, Any]:
    """The file server in this process; the phones in `--processes` worker processes, one shard
    each, which arrange their share, then boot when this process says go (all at once)."""
    async with FileServer(provisioning_files(), cert_mode="public", hostnames=(FILES_HOST,)) as files:
        target = _target(admin_url, "admin", PASSWORD, _pki_files(data), files)
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,  # the results line holds every phone's time
            )
            for _ in range(args.processes)
        ]
        try:
            for i, worker in enumerate(workers):
                order = {"args": vars(args), "shard": f"{i}/{args.processes}", "target": _target_json(target)}
                assert worker.stdin is not None
                worker.stdin.write(json.dumps(order).encode() + b"\n")
                await worker.stdin.drain()
            t0 = time.perf_counter()
            for worker in workers:  # each says "ready" once its phones are arranged
                assert worker.stdout is not None
                if (await worker.stdout.readline()).strip() != b"ready":
                    raise SystemExit("a fleet worker failed before booting")
            prepared = time.perf_counter() - t0
            print(f"  certificates + arrangement ({args.processes} workers): {prepared:.1f} s", flush=True)
            own_cpu0, server_cpu0 = time.process_time(), cpu_seconds(server_pid)
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outs = []
            for worker in workers:
                assert worker.stdout is not None
                line = await worker.stdout.readline()
                if await worker.wait() != 0 or not line:
                    raise SystemExit("a fleet worker failed while booting")
                outs.append(json.loads(line))
        finally:  # a worker that failed must not leave the others waiting (or booting) on their own
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        server_cpu, files_cpu = cpu_seconds(server_pid) - server_cpu0, time.process_time() - own_cpu0
        boot = max(o["end"] for o in outs) - min(o["start"] for o in outs)
        device_url = outs[0]["device_url"]
        baseline = await bare_tls(target, device_url, min(args.phones, args.baseline), args.concurrency)
    seconds = sorted(s for o in outs for s in o["seconds"])
    phones = len(seconds)
    print(f"  booting: {phones} in {boot:.1f} s", flush=True)
    return {
        "phones": phones,
        "unexpected": sum(o["unexpected"] for o in outs),
        "boot_seconds": boot,
        "wall_seconds": max(o["wall"] for o in outs),
        "phones_per_second": phones / boot,
        "p50_ms": 1000 * statistics.median(seconds),
        "p99_ms": 1000 * seconds[int(0.99 * (phones - 1))],
        "fleet_peak_rss_mb": sum(o["peak_rss_mb"] for o in outs),
        "fleet_cpu_s": sum(o["cpu"] for o in outs),
        "files_cpu_s": files_cpu,
        "server_cpu_s": server_cpu,
        "baseline_tls_per_second": baseline,
    }


def _target_json(target: FleetTarget) -> dict[str, Any]:
    return {
        "admin_url": target.admin_url,
        "admin_login": target.admin_login,
        "admin_password": target.admin_password,
        "manufacturer_key_pem": target.manufacturer_key_pem.decode(),
        "manufacturer_cert_pem": target.manufacturer_cert_pem.decode(),
        "public_roots": [pem.decode() for pem in target.public_roots],
        "provisioning_url": target.provisioning_url,
        "hosts": dict(target.hosts),
    }


async def worker_main() -> None:
    """One fleet worker (`--worker`): its order on stdin, "ready" after arranging, boots on "go",
    then one JSON line of results."""
    loop = asyncio.get_running_loop()
    order = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    args = argparse.Namespace(**order["args"])
    t = order["target"]
    target = FleetTarget(
        admin_url=t["admin_url"],
        admin_login=t["admin_login"],
        admin_password=t["admin_password"],
        manufacturer_key_pem=t["manufacturer_key_pem"].encode(),
        manufacturer_cert_pem=t["manufacturer_cert_pem"].encode(),
        public_roots=[pem.encode() for pem in t["public_roots"]],
        provisioning_url=t["provisioning_url"],
        hosts=t["hosts"],
    )
    marks: dict[str, float] = {}

    async def go() -> None:
        print("ready", flush=True)
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            raise SystemExit(1)  # the bench gave up: boot nothing
        marks["cpu"] = time.process_time()
        marks["start"] = time.monotonic()

    result = await run_fleet(fleet_spec(args, order["shard"]), target, before_boot=go)
    end, cpu = time.monotonic(), time.process_time() - marks["cpu"]
    out = {
        "start": marks["start"],
        "end": end,
        "wall": result.wall_seconds,
        "cpu": cpu,
        "seconds": [p.seconds for p in result.phones],
        "unexpected": len(result.unexpected),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device_url": result.device_url,
    }
    print(json.dumps(out), flush=True)


async def bare_tls(target: Any, device_url: str, n: int, concurrency: int) -> float:
    """New mutual-TLS connections to the device listener, one trivial request each (404)."""
    ca = ManufacturerCA(target.manufacturer_key_pem, target.manufacturer_cert_pem)
    contexts = []
    with tempfile.TemporaryDirectory() as tmp:
        creds = ca.issue("A4251BFFFFFF", "99WZ99999999", "J179")
        key, cert = Path(tmp) / "k.pem", Path(tmp) / "c.pem"
        key.write_bytes(creds.key_pem)
        cert.write_bytes(creds.cert_pem)
        for _ in range(min(n, 64)):
            ctx = ssl.create_default_context(cadata=target.public_roots[0].decode())
            ctx.load_cert_chain(cert, key)
            contexts.append(ctx)
    queue = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in queue:
            async with session.get(device_url + "/device/v1/bench-baseline", ssl=contexts[i % len(contexts)]) as r:
                await r.read()

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


IDLE = r"""
import gc, json, os, sys, tracemalloc
sys.path.insert(0, {root!r})
from simulators.identity import PhoneIdentity
from simulators.phone import Phone, PhoneEnvironment, User, Faults
from simulators.factory import ManufacturerCA
n = {n}
ca = ManufacturerCA.generate()
creds = ca.issue("A4251B000001", "21WZ51234567", "J179")
env = PhoneEnvironment(enrollment_url="https://127.0.0.1:8443", public_roots=[ca.cert_pem])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def build(kind):
    gc.collect(); tracemalloc.start(); before, traced = rss(), tracemalloc.get_traced_memory()[0]
    phones = []
    for i in range(n):
        ident = PhoneIdentity("J179", "4.1.11.0.9", f"A4251B{{i:06X}}", f"21WZ{{i:08d}}")
        if kind == "identity":
            phones.append(ident)
        else:
            key, cert = bytes(bytearray(creds.key_pem)), bytes(bytearray(creds.cert_pem))
            phones.append(Phone(ident, key, cert, env, user=User(prompt="yes", codes=[f"{{i:08d}}"]), faults=Faults()))
    gc.collect(); after, traced_after = rss(), tracemalloc.get_traced_memory()[0]; tracemalloc.stop()
    return phones, (after - before) / n, (traced_after - traced) / n
_, base_rss, base_traced = build("identity")
del _
_, rss_each, traced_each = build("phone")
print(json.dumps({{"identity_rss": base_rss, "identity_traced": base_traced, "phone_rss": rss_each,
                  "phone_traced": traced_each}}))
"""


def idle(n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", IDLE.format(root=str(ROOT), n=n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=10_000)
    parser.add_argument("--idle", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--baseline", type=int, default=3_000, help="connections for the bare-TLS baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default=None, help="the server's database (default: SQLite in the temporary directory)")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="'enrollab serve --workers N' (issue 17; needs --db postgresql://…)")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="fleet worker processes, one shard each (default: one per CPU)",
    )
    if sys.argv[1:] == ["--worker"]:
        asyncio.run(worker_main())
        return
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(
        "TLS: the phones' own-certificate connections on pyOpenSSL / "
        f"{OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()}; "
        f"everything else and the server on Python's ssl / {ssl.OPENSSL_VERSION}"
    )
    with tempfile.TemporaryDirectory(prefix="enrollab-storm-") as tmp:
        db, drop_schema = asyncio.run(own_schema(args.db))  # a fresh PostgreSQL schema, dropped after
        proc, admin_url, server_pids = start_server(Path(tmp) / "data", db, args.server_workers)
        try:
            print(f"storm: {args.phones} phones, concurrency {args.concurrency}, server pids {server_pids} "
                  f"({args.db.split('@')[-1] if args.db else 'SQLite'})", flush=True)
            s = asyncio.run(storm(args, Path(tmp) / "data", admin_url, server_pids))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            asyncio.run(drop_schema())
    print(
        f"storm: {s['phones']} phones booted in {s['boot_seconds']:.1f} s = {s['phones_per_second']:.0f} phones/s "
        f"(aim: {args.phones} in 60 s), p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, "
        f"unexpected {s['unexpected']}"
    )
    print(f"       whole run {s['wall_seconds']:.1f} s (certificates + import + arrangement + boot)")
    print(
        f"       fleet peak RSS {s['fleet_peak_rss_mb']:.0f} MB (sum of {args.processes} workers); CPU s of the boot: "
        f"fleet {s['fleet_cpu_s']:.0f}, file server {s['files_cpu_s']:.0f}, server {s['server_cpu_s']:.0f}"
    )
    print(
        f"baseline: bare mutual TLS + trivial request {s['baseline_tls_per_second']:.0f} connections/s; "
        f"ratio storm/baseline {s['phones_per_second'] / s['baseline_tls_per_second']:.2f}"
    )
    if args.idle:
        m = idle(args.idle)
        print(
            f"idle: {args.idle} phones: {m['phone_rss'] / 1024:.1f} KB per phone by RSS, "
            f"{m['phone_traced'] / 1024:.1f} KB by tracemalloc (aim: 20 KB); baseline bare PhoneIdentity "
            f"{m['identity_rss'] / 1024:.2f} KB by RSS, {m['identity_traced'] / 1024:.2f} KB traced; "
            f"ratio {m['phone_traced'] / max(m['identity_traced'], 1):.1f}x"
        )


if __name__ == "__main__":
    main()
