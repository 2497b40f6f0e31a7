"""The portal's device pages over 50,000 devices (issue 16 must-show: render p95 <= 300 ms).

Imports N devices into a reference server (SQLite by default, or --db), signs in to the portal as
a browser would (cookie session), and times, per query kind, the page `GET /devices?...` and the
admin API call the page is drawn from (`GET /api/v1/devices?q=...`, same filter, same page size)
in the same run: the ratio is what the portal adds (session check, /auth/me, HTML rendering).

    .venv/bin/python bench/portal_render.py [--rows 50000] [--rounds 60] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from server.runner import ServeConfig, start

PASSWORD = "Bench-Admin-Pw-1"  # noqa: S105 - throwaway server
PAGE = 50
MODELS = ("J179", "J169", "K175", "B199")


def csv_chunk(start_i: int, n: int) -> bytes:
    lines = ["mac,serial,model"]
    for i in range(start_i, start_i + n):
        lines.append(f"A4251B{i:06X},BN{i:010d},{MODELS[i % len(MODELS)]}")
    return ("\n".join(lines) + "\n").encode()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def kinds(rows: int, rng: random.Random) -> dict[str, tuple[dict[str, str], dict[str, object] | None, str]]:
    """query kind -> (page query, the DEV-11 filter the page sends, sort)."""
    i = rng.randrange(rows)
    mac = f"A4251B{i:06X}"
    serial = f"BN{i:010d}"
    return {
        "first page": ({}, None, "mac"),
        "deep page": ({"offset": str((rows // 2) // PAGE * PAGE)}, None, "mac"),
        "MAC prefix": ({"find": mac[:9]}, {"all": [{"any": [
            {"field": "mac", "op": "starts_with", "value": mac[:9]},
            {"field": "serial", "op": "starts_with", "value": mac[:9]},
            {"field": "model", "op": "starts_with", "value": mac[:9]},
            {"field": "label", "op": "eq", "value": mac[:9]}]}]}, "mac"),
        "serial": ({"find": serial}, {"all": [{"any": [
            {"field": "serial", "op": "starts_with", "value": serial},
            {"field": "model", "op": "starts_with", "value": serial},
            {"field": "label", "op": "eq", "value": serial}]}]}, "mac"),
        "model filter": ({"model": "K175"}, {"all": [{"field": "model", "op": "eq", "value": "K175"}]}, "mac"),
        "sorted by serial desc": ({"sort": "-serial"}, None, "-serial"),
    }


async def main(rows: int, rounds: int, db: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        running = await start(ServeConfig(data_dir=Path(tmp) / "data", db_url=db, admin_port=0),
                              admin_password=PASSWORD)
        base = running.admin_url
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(base + "/api/v1/auth/login", json={"login": "admin", "password": PASSWORD}) as r:
                    auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
                t0 = time.perf_counter()
                for s in range(0, rows, 10_000):
                    async with http.post(base + "/api/v1/devices/import", data=csv_chunk(s, min(10_000, rows - s)),
                                         headers={**auth, "Content-Type": "text/csv"}) as r:
                        assert r.status in (200, 201), await r.text()
                print(f"imported {rows:,} devices in {time.perf_counter() - t0:.1f} s")
                async with http.get(base + "/login") as r:
                    nonce = re.search(r'name="login_csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
                async with http.post(base + "/login", data={"login_csrf": nonce, "login": "admin",
                                                             "password": PASSWORD, "next": "/"},
                                     allow_redirects=False) as r:
                    assert r.status == 303, await r.text()
                rng = random.Random(16)
                portal: dict[str, list[float]] = {}
                api: dict[str, list[float]] = {}
                for _ in range(rounds):
                    for kind, (query, q, sort) in kinds(rows, rng).items():
                        t = time.perf_counter()
                        async with http.get(base + "/devices", params=query) as r:
                            page = await r.text()
                            assert r.status == 200 and "device(s)" in page, page[:500]
                        portal.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
                        params = {"limit": str(PAGE), "offset": query.get("offset", "0"), "sort": sort}
                        if q is not None:
                            params["q"] = json.dumps(q)
                        t = time.perf_counter()
                        async with http.get(base + "/api/v1/devices", params=params, headers=auth) as r:
                            await r.read()
                            assert r.status == 200
                        api.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
        finally:
            await running.stop()
    every = [v for values in portal.values() for v in values]
    print(f"\n{rows:,} devices, {rounds} rounds per kind ({'PostgreSQL' if db else 'SQLite'}); milliseconds")
    print(f"{'query':<24}{'page p50':>10}{'page p95':>10}{'API p50':>10}{'API p95':>10}{'page/API p95':>14}")
    for kind in portal:
        p, a = portal[kind], api[kind]
        print(f"{kind:<24}{statistics.median(p):>10.1f}{pct(p, 0.95):>10.1f}{statistics.median(a):>10.1f}"
              f"{pct(a, 0.95):>10.1f}{pct(p, 0.95) / pct(a, 0.95):>14.2f}")
    print(f"\nall device pages: p95 {pct(every, 0.95):.1f} ms (target <= 300 ms): "
          f"{'met' if pct(every, 0.95) <= 300 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--db", default=None, help="postgresql://… (default: SQLite in a temp dir)")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds, args.db))
