"""Enrollment throughput over mutual TLS (issue 3), with its baseline measured in the same run.

Pre-activated devices enroll (`POST /device/v1/enroll` → redirect) from a separate client process,
one new TLS connection per enrollment with the device's own factory certificate, as real phones
connect. In the same run the same server stack — aiohttp, the same device TLS context, the same
process — answers a trivial handler, driven the same way. The ratio of the two rates shows what
the enrollment logic and its database transaction cost on top of TLS and HTTP.

    .venv/bin/python bench/enroll_throughput.py [--devices 1000] [--concurrency 32] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    """Enroll every device once against `url`, `concurrency` at a time; latencies in ms."""
    certs = Path(spec["certs"])
    contexts = []
    for i in range(spec["devices"]):
        ctx = ssl.create_default_context(cafile=spec["ca"])
        ctx.load_cert_chain(certs / f"{i}.crt", certs / f"{i}.key")
        contexts.append(ctx)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(spec["devices"]):
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

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    wall = time.perf_counter() - t0
    return {"wall": wall, "latencies": latencies, "results": results}


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--client", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


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
        for s in range(0, n, 1000):
            chunk = macs[s : s + 1000]
            await call("POST", "/devices/approve", admin, {"macs": chunk})
            for mac in chunk:
                await call("POST", "/devices/claim", spt, {"mac": mac})
            await call(
                "POST", "/devices/associate", spt, {"macs": chunk, "account_id": cu["id"], "site_id": site["id"]}
            )
            await call("POST", "/devices/activate", spt, {"macs": chunk})


async def main(n: int, concurrency: int, db: str | None) -> None:
    from server.pki.tls import device_server_context
    from server.runner import ServeConfig, start

    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp) / "certs"
        certs.mkdir()
        cfg = ServeConfig(data_dir=Path(tmp) / "data", db_url=db, admin_port=0, device_port=0)
        running = await start(cfg, admin_password=PASSWORD)
        trivial_runner = None
        try:
            await arrange(running, n, certs)
            ctx = running.opened.ctx
            ca = str(ctx.pki.tls_ca_path)

            async def trivial(request: web.Request) -> web.Response:
                await request.json()
                return web.json_response({"result": "ok"})

            app = web.Application()
            app.router.add_post("/trivial", trivial)
            trivial_runner = web.AppRunner(app, access_log=None)
            await trivial_runner.setup()
            site = web.TCPSite(trivial_runner, "127.0.0.1", 0, ssl_context=device_server_context(ctx.pki))
            await site.start()
            tport = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

            base = {"devices": n, "concurrency": concurrency, "certs": str(certs), "ca": ca}
            loop = asyncio.get_running_loop()
            # The client runs in its own process while this loop keeps serving.
            baseline = await loop.run_in_executor(
                None, run_client, {**base, "url": f"https://127.0.0.1:{tport}/trivial"}
            )
            enroll = await loop.run_in_executor(None, run_client, {**base, "url": ctx.device_url + "/device/v1/enroll"})
        finally:
            if trivial_runner is not None:
                await trivial_runner.cleanup()
            await running.stop()

    def line(name: str, r: dict[str, Any]) -> tuple[float, str]:
        rate = n / r["wall"]
        lat = sorted(r["latencies"])
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return rate, (
            f"{name:<22} {rate:8.1f} req/s   p50 {statistics.median(lat):6.1f} ms   p99 {p99:6.1f} ms   "
            f"answers {r['results']}"
        )

    erate, etext = line("enroll (redirect)", enroll)
    brate, btext = line("trivial handler", baseline)
    print(
        f"{n} pre-activated devices, {concurrency} concurrent connections, one TLS handshake per request, "
        f"{'SQLite' if db is None else db.split('?')[0]}"
    )
    print(etext)
    print(btext)
    print(f"ratio enroll/trivial: {erate / brate:.2f} (aim >= 0.7)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        print(json.dumps(asyncio.run(client(json.loads(sys.argv[2])))))
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    asyncio.run(main(args.devices, args.concurrency, args.db))
