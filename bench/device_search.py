"""Device import and DEV-11 search at scale, against the reference server on SQLite (or --db).

Prints: import throughput through the admin API (CSV, rows/s); MAC-prefix search latency through
the admin API (p50/p99); and, in the same run, the same prefix query in SQL served by the index
versus forced to scan the table — the ratio shows what the index buys.

    .venv/bin/python bench/device_search.py [--rows 50000] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select, text

from server.runner import ServeConfig, start
from server.store.models import Device
from server.store.search import text_match

PASSWORD = "Bench-Admin-Pw-1"  # noqa: S105 - throwaway server


def csv_chunk(start_i: int, n: int) -> bytes:
    lines = ["mac,serial,model"]
    for i in range(start_i, start_i + n):
        lines.append(f"A4251B{i:06X},BN{i:010d},J179")
    return ("\n".join(lines) + "\n").encode()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def main(rows: int, db: str | None, queries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        running = await start(
            ServeConfig(data_dir=Path(tmp) / "data", db_url=db, admin_port=0), admin_password=PASSWORD
        )
        api = running.admin_url + "/api/v1"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(api + "/auth/login", json={"login": "admin", "password": PASSWORD}) as r:
                    token = (await r.json())["token"]
                auth = {"Authorization": f"Bearer {token}"}
                chunk = 10_000
                t0 = time.perf_counter()
                for s in range(0, rows, chunk):
                    body = csv_chunk(s, min(chunk, rows - s))
                    async with http.post(
                        api + "/devices/import", data=body, headers={**auth, "Content-Type": "text/csv"}
                    ) as r:
                        job = await r.json()
                        assert r.status in (200, 201, 202), job
                import_s = time.perf_counter() - t0

                rng = random.Random(7)
                kinds = {  # DEV-11 filters: few matches, and broad ones (every device matches)
                    "MAC prefix": lambda: ("mac", "starts_with", f"A4251B{rng.randrange(max(1, rows >> 8)):04X}"),
                    "serial (exact)": lambda: ("serial", "eq", f"BN{rng.randrange(rows):010d}"),
                    "serial (free text)": lambda: ("serial", "contains", f"{rng.randrange(rows):010d}"[2:]),
                    "model (every device)": lambda: ("model", "eq", "J179"),
                    "state: not approved (every device)": lambda: ("approved", "eq", "false"),
                }
                by_kind: dict[str, list[float]] = {}
                for kind, make in kinds.items():
                    for _ in range(queries if kind == "MAC prefix" else max(20, queries // 4)):
                        field, op, value = make()
                        q = json.dumps({"all": [{"field": field, "op": op, "value": value}]})
                        t = time.perf_counter()
                        async with http.get(api + "/devices", params={"q": q, "limit": "100"}, headers=auth) as r:
                            await r.read()
                            assert r.status == 200, await r.text()
                        by_kind.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
                latencies = by_kind["MAC prefix"]

            store = running.opened.ctx.store
            async with store.transaction() as session:
                total = await session.scalar(select(func.count()).select_from(Device))
                prefix = "A4251B0001"
                indexed = select(func.count()).where(text_match(Device.mac, "starts_with", prefix))
                # Baseline: the same predicate on an expression no index covers (`mac || ''`).
                scanned = select(func.count()).where(text_match(Device.mac.concat(""), "starts_with", prefix))
                timings = {}
                for name, stmt in (("index", indexed), ("scan", scanned)):
                    await session.execute(stmt)  # warm
                    t = time.perf_counter()
                    for _ in range(20):
                        n = await session.scalar(stmt)
                    timings[name] = (time.perf_counter() - t) / 20 * 1000
                plan = ""
                if store.is_sqlite:
                    compiled = indexed.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True})
                    plan = " ".join(str(r[-1]) for r in await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        finally:
            await running.stop()

    print(f"backend:               {'SQLite' if store.is_sqlite else 'PostgreSQL'}, {total} devices")
    print(f"import via admin API:  {rows / import_s:,.0f} rows/s ({import_s:.1f} s for {rows} rows, CSV chunks of 10k)")
    print(
        f"search via admin API:  p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms "
        f"({queries} MAC-prefix queries)"
    )
    for kind, values in by_kind.items():
        print(f"  {kind:36} p50 {statistics.median(values):7.1f} ms, p95 {pct(values, 0.95):7.1f} ms "
              f"({len(values)} queries, limit 100)")
    print(
        f"SQL prefix count ({n} matches): index {timings['index']:.3f} ms, scan baseline {timings['scan']:.3f} ms, "
        f"ratio scan/index {timings['scan'] / timings['index']:.1f}x"
    )
    if plan:
        print(f"SQLite plan:           {plan}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    asyncio.run(main(args.rows, args.db, args.queries))
