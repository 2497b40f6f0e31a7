"""Enrollment throughput over mutual TLS (issue 3), with its baseline measured in the same run.

Pre-activated devices enroll (`POST /device/v1/enroll` → redirect) from a separate client process,
one new TLS connection per enrollment with the device's own factory certificate, as real phones
connect. In the same run the same server stack — aiohttp, the same device TLS context, the same
process — answers a trivial handler, driven the same way. The ratio of the two rates shows what
the enrollment logic and its database transaction cost on top of TLS and HTTP.

The machine is shared (the client, the server, the database, and whatever else runs), and a
virtual machine's speed drifts by tens of percent within a minute, so a run is `--rounds` rounds,
each alternating trivial and enroll runs `--chunks` times over `--devices` devices (each enroll on
devices that never enrolled), and the summary takes medians; each line also says where the CPU
went, per request: the server process (all its threads), the client process, and the rest of the
machine (the database server, and other load — which makes that round's figures suspect). The
server's CPU per enrollment over its CPU per trivial request is the steadiest figure of what
enrolling costs.

    .venv/bin/python bench/enroll_throughput.py [--devices 1000] [--rounds 3] [--chunks 4] [--concurrency 32] [--db URL]

A PostgreSQL URL without `?schema=` gets a fresh schema for the run, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

PASSWORD = "Bench-Admin-Pw-1"  # noqa: S105 - throwaway server
MODEL, FIRMWARE = "J179", "4.1.11.0.9"


def mac_of(i: int) -> str:
    return f"A4251BE{i:05X}"


# --- client process -------------------------------------------------------------------------------


async def client(spec: dict[str, Any]) -> dict[str, Any]:
    """Enroll devices `first` .. `first + devices - 1` once each against `url`, `concurrency` at a
    time; latencies in ms, CPU seconds of the timed part only."""
    certs = Path(spec["certs"])
    indexes = range(spec["first"], spec["first"] + spec["devices"])
    contexts = {}
    for i in indexes:
        ctx = ssl.create_default_context(cafile=spec["ca"])
        ctx.load_cert_chain(certs / f"{i}.crt", certs / f"{i}.key")
        contexts[i] = ctx
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in indexes:
        queue.put_nowait(i)
    latencies: list[float] = []
    results: dict[str, int] = {}

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {"model": MODEL, "firmware": FIRMWARE, "mac": mac_of(i), "serial": f"BE{i:010d}", "code": None}
            t = time.perf_counter()
            # A connector per request: a fresh TLS handshake, as each phone makes its own.
            connector = aiohttp.TCPConnector(ssl=contexts[i], force_close=True)
            async with aiohttp.ClientSession(connector=connector) as s, s.post(spec["url"], json=body) as r:
                answer = await r.json(content_type=None)
            latencies.append((time.perf_counter() - t) * 1000)
            key = f"{r.status} {answer.get('result')}"
            results[key] = results.get(key, 0) + 1

    t0, before = time.perf_counter(), cpu_reading()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    wall, after = time.perf_counter() - t0, cpu_reading()
    cpu = {k: _less(after[k], before[k]) for k in before}
    return {"wall": wall, "cpu": cpu, "latencies": latencies, "results": results}


def machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy (every core, every process); None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU seconds of process `pid`, all its threads; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_reading() -> dict[str, float | None]:
    """The client's, the server's (its parent process) and the whole machine's CPU seconds so far."""
    return {"client": time.process_time(), "server": process_cpu(os.getppid()), "machine": machine_busy()}


def _less(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--client", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


# --- server side ----------------------------------------------------------------------------------


async def arrange(running: Any, n: int, certs: Path) -> None:
    """Factory certificates, import with thumbprints, approve, claim, associate, activate."""
    pki = running.opened.ctx.pki
    rows = ["mac,serial,model,thumbprint"]
    for i in range(n):
        fc = pki.issue_factory(mac_of(i), f"BE{i:010d}", MODEL, record=False)
        (certs / f"{i}.crt").write_bytes(fc.cert_pem)
        (certs / f"{i}.key").write_bytes(fc.key_pem)
        rows.append(f"{mac_of(i)},BE{i:010d},{MODEL},{fc.thumbprint}")
    api = running.admin_url + "/api/v1"
    async with aiohttp.ClientSession() as http:

        async def call(method: str, path: str, token: str | None, body: Any = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            headers.update(kw.pop("headers", {}))
            async with http.request(method, api + path, json=body, headers=headers, **kw) as r:
                answer = await r.json()
                assert r.status < 300, (path, answer)
                return answer

        admin = (await call("POST", "/auth/login", None, {"login": "admin", "password": PASSWORD}))["token"]
        sp = await call("POST", "/accounts", admin, {"type": "service_provider", "name": "Bench SP"})
        await call(
            "POST",
            "/users",
            admin,
            {
                "account_id": sp["id"],
                "login": "bench@sp.example",
                "password": "Temporary-Pw-1",
                "email": "bench@sp.example",
            },
        )
        spt = (await call("POST", "/auth/login", None, {"login": "bench@sp.example", "password": "Temporary-Pw-1"}))[
            "token"
        ]
        await call("POST", "/auth/password", spt, {"old_password": "Temporary-Pw-1", "new_password": "Bench-Sp-Pw-2"})
        cu = await call("POST", "/accounts", spt, {"type": "customer", "name": "Bench customer"})
        entry = {
            "server_type": "HTTPS",
            "url": "https://files.bench.example/$MODEL4/",
            "group": 1,
            "identity_certificates": False,
        }
        pr = await call("POST", "/profiles", spt, {"name": "Bench", "entries": [entry]})
        site = await call("POST", f"/accounts/{cu['id']}/sites", spt, {"name": "Bench site", "profile_id": pr["id"]})
        await call(
            "POST",
            "/devices/import",
            admin,
            data="\n".join(rows).encode(),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "text/csv"},
        )
        macs = [mac_of(i) for i in range(n)]
        serial_of = {mac_of(i): f"BE{i:010d}" for i in range(n)}
        for s in range(0, n, 1000):
            chunk = macs[s : s + 1000]
            await call("POST", "/devices/approve", admin, {"macs": chunk})
            for mac in chunk:
                await call("POST", "/devices/claim", spt, {"mac": mac, "serial": serial_of[mac]})
            await call(
                "POST", "/devices/associate", spt, {"macs": chunk, "account_id": cu["id"], "site_id": site["id"]}
            )
            await call("POST", "/devices/activate", spt, {"macs": chunk})


def chunk_ranges(first: int, n: int, chunks: int) -> list[tuple[int, int]]:
    """(first device, devices) of each of `chunks` near-equal parts of `n` devices from `first`."""
    sizes = [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]
    starts = [first + sum(sizes[:i]) for i in range(chunks)]
    return [(start, size) for start, size in zip(starts, sizes, strict=True) if size]


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Client runs taken together: walls and CPU summed, latencies and answers pooled."""
    results: dict[str, int] = {}
    for part in parts:
        for key, count in part["results"].items():
            results[key] = results.get(key, 0) + count
    cpu = {
        key: None if any(p["cpu"][key] is None for p in parts) else sum(p["cpu"][key] for p in parts)
        for key in parts[0]["cpu"]
    }
    return {
        "wall": sum(p["wall"] for p in parts),
        "cpu": cpu,
        "latencies": [latency for p in parts for latency in p["latencies"]],
        "results": results,
    }


async def main(n: int, rounds: int, concurrency: int, db: str | None, chunks: int = 4) -> None:
    from server.pki.tls import device_server_context
    from server.runner import ServeConfig, start

    db, drop_schema = await own_schema(db)
    results: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            certs = Path(tmp) / "certs"
            certs.mkdir()
            cfg = ServeConfig(data_dir=Path(tmp) / "data", db_url=db, admin_port=0, device_port=0)
            running = await start(cfg, admin_password=PASSWORD)
            trivial_runner = None
            try:
                await arrange(running, n * rounds, certs)
                ctx = running.opened.ctx
                pki = ctx.pki
                assert pki is not None  # `start` created or loaded it

                async def trivial(request: web.Request) -> web.Response:
                    await request.json()
                    return web.json_response({"result": "ok"})

                app = web.Application()
                app.router.add_post("/trivial", trivial)
                trivial_runner = web.AppRunner(app, access_log=None)
                await trivial_runner.setup()
                site = web.TCPSite(trivial_runner, "127.0.0.1", 0, ssl_context=device_server_context(pki))
                await site.start()
                tport = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

                base = {"devices": n, "concurrency": concurrency, "certs": str(certs), "ca": str(pki.tls_ca_path)}
                loop = asyncio.get_running_loop()
                for r in range(rounds):
                    # The client runs in its own process while this loop keeps serving. A round
                    # alternates trivial and enroll runs in `chunks` parts, so that the machine's
                    # speed drifting during a round (a virtual machine) weighs on both alike.
                    baselines, enrolls = [], []
                    for first, size in chunk_ranges(r * n, n, chunks):
                        spec = {**base, "first": first, "devices": size}
                        baselines.append(
                            await loop.run_in_executor(
                                None, run_client, {**spec, "url": f"https://127.0.0.1:{tport}/trivial"}
                            )
                        )
                        enrolls.append(
                            await loop.run_in_executor(
                                None, run_client, {**spec, "url": ctx.device_url + "/device/v1/enroll"}
                            )
                        )
                    results.append((merged(enrolls), merged(baselines)))
            finally:
                if trivial_runner is not None:
                    await trivial_runner.cleanup()
                await running.stop()
    finally:
        await drop_schema()
    report(n, concurrency, db, results)


async def own_schema(db: str | None) -> tuple[str | None, Any]:
    """A PostgreSQL URL without `?schema=` gets a fresh schema (and a way to drop it): a second run
    must not meet the first one's devices."""
    if db is None or not db.startswith(("postgresql://", "postgres://")) or "schema=" in db:
        return db, _nothing
    import uuid

    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        conn = await asyncpg.connect(db.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    return f"{db}{'&' if '?' in db else '?'}schema={schema}", drop


async def _nothing() -> None:
    return None


def report(n: int, concurrency: int, db: str | None, results: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    def line(name: str, r: dict[str, Any]) -> tuple[float, str]:
        rate = n / r["wall"]
        lat = sorted(r["latencies"])
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        cpu = r["cpu"]

        def ms(seconds: float | None) -> str:
            return "?" if seconds is None else f"{1000 * max(seconds, 0.0) / n:5.2f} ms"

        rest = None if None in cpu.values() else cpu["machine"] - cpu["server"] - cpu["client"]
        return rate, (
            f"  {name:<18} {rate:7.1f} req/s   p50 {statistics.median(lat):6.1f} ms   p99 {p99:6.1f} ms   "
            f"CPU/req: server {ms(cpu['server'])}, client {ms(cpu['client'])}, rest of the machine {ms(rest)}   "
            f"answers {r['results']}"
        )

    where = "SQLite" if db is None else db.split("?")[0]
    print(
        f"{n} pre-activated devices per round, {concurrency} concurrent connections, "
        f"one TLS handshake per request, {where}"
    )
    erates, brates, ratios = [], [], []
    for number, (enroll, baseline) in enumerate(results, 1):
        brate, btext = line("trivial handler", baseline)
        erate, etext = line("enroll (redirect)", enroll)
        cpu_e, cpu_b = enroll["cpu"]["server"], baseline["cpu"]["server"]
        extra = f", server CPU per request enroll/trivial {cpu_e / cpu_b:.2f}x" if cpu_e and cpu_b else ""
        print(f"round {number}: ratio {erate / brate:.2f}{extra}")
        print(btext)
        print(etext)
        erates.append(erate)
        brates.append(brate)
        ratios.append(erate / brate)
    print(
        f"median: enroll {statistics.median(erates):.1f} req/s, trivial {statistics.median(brates):.1f} req/s, "
        f"ratio enroll/trivial {statistics.median(ratios):.2f} (aim >= 0.7)"
    )
    print(
        f"{os.cpu_count()} CPUs shared by the client, the server, the database and whatever else runs: "
        "'rest of the machine' is the database server's CPU and any other load."
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        print(json.dumps(asyncio.run(client(json.loads(sys.argv[2])))))
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000, help="devices enrolled per round (default 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="trivial-then-enroll pairs (default 3)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--chunks", type=int, default=4, help="trivial/enroll alternations per round (default 4; see above)"
    )
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    if args.devices < 1 or args.rounds < 1 or args.chunks < 1 or args.concurrency < 1:
        ap.error("--devices, --rounds, --chunks and --concurrency must be at least 1")
    asyncio.run(main(args.devices, args.rounds, args.concurrency, args.db, min(args.chunks, args.devices)))
