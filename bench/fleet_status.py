"""Device status report-back at scale (issue 16): `GET /fleet/status` and `GET /devices/{mac}/timeline`
over `--devices` devices (default 50,000) with five recorded steps each, on SQLite (or --db).

The devices and their events are written straight into the store (an enrollment run's worth:
claimed, associated, activated, first contact, redirected), held by one customer of a service
provider. Then, through the admin API over a real socket, as the platform and as the customer's
administrator (the ACC-7 subtree join): a first call (no cursor), a poll with the cursor when
nothing changed, a poll after 100 more devices enrolled, the same poll without counts, and
timelines of random devices. Prints p50/p95 per kind, and SQLite's plan of the poll.

    .venv/bin/python bench/fleet_status.py [--devices 50000] [--calls 30] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, select, text

from server.runner import ServeConfig, start
from server.store.models import Device, DeviceEvent

PASSWORD = "Bench-Admin-Pw-1"  # noqa: S105 - throwaway server
CHILD_PASSWORD = "Bench-Child-Pw-1"  # noqa: S105
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def login(http: aiohttp.ClientSession, api: str, who: str, password: str) -> dict[str, str]:
    async with http.post(api + "/auth/login", json={"login": who, "password": password}) as r:
        body = await r.json()
        assert r.status == 200, body
    return {"Authorization": f"Bearer {body['token']}"}


async def child(http: aiohttp.ClientSession, api: str, auth: dict[str, str], kind: str) -> tuple[str, dict[str, str]]:
    """A child account and its logged-in administrator (password changed)."""
    async with http.post(api + "/accounts", json={"type": kind, "name": f"bench {kind}"}, headers=auth) as r:
        acc = await r.json()
        assert r.status in (200, 201), acc
    who = f"bench-{kind}@example.test"
    user = {
        "account_id": acc["id"],
        "login": who,
        "password": "Temporary-Pw-1",
        "email": who,
        "first_name": "B",
        "last_name": "B",
    }
    async with http.post(api + "/users", json=user, headers=auth) as r:
        assert r.status in (200, 201), await r.text()
    mine = await login(http, api, who, "Temporary-Pw-1")
    change = {"old_password": "Temporary-Pw-1", "new_password": CHILD_PASSWORD}
    async with http.post(api + "/auth/password", json=change, headers=mine) as r:
        assert r.status == 200, await r.text()
    return acc["id"], await login(http, api, who, CHILD_PASSWORD)


def device_rows(start_i: int, n: int, owner: str) -> list[dict[str, Any]]:
    return [
        {
            "mac": f"A4251B{i:06X}",
            "serial": f"BN{i:010d}",
            "model": "J179",
            "approved": True,
            "owner_id": owner,
            "associated": True,
            "activated": True,
            "created_at": T0,
            "imported_by": "00000001",
            "last_contact": T0 + timedelta(seconds=i) if i % 2 else None,
            "enrolled_at": T0 + timedelta(seconds=i) if i % 2 else None,
        }
        for i in range(start_i, start_i + n)
    ]


def event_rows(start_i: int, n: int, owner: str, at: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(start_i, start_i + n):
        mac = f"A4251B{i:06X}"
        for step in ("claimed", "associated", "activated", "first_contact", "redirected"):
            rows.append(
                {
                    "mac": mac,
                    "step": step,
                    "ok": True,
                    "at": at,
                    "login": None,
                    "account_id": owner,
                    "detail": {"profile_url": "https://prov.example.com/J179/"} if step == "redirected" else {},
                }
            )
    return rows


async def timed(http: aiohttp.ClientSession, url: str, auth: dict[str, str], **params: str) -> tuple[float, Any]:
    t = time.perf_counter()
    async with http.get(url, params=params or None, headers=auth) as r:
        body = await r.json()
        assert r.status == 200, body
    return (time.perf_counter() - t) * 1000, body


async def main(devices: int, calls: int, db: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        running = await start(
            ServeConfig(data_dir=Path(tmp) / "data", db_url=db, admin_port=0), admin_password=PASSWORD
        )
        api = running.admin_url + "/api/v1"
        store = running.opened.ctx.store
        results: dict[str, list[float]] = {}
        plan = ""
        try:
            async with aiohttp.ClientSession() as http:
                platform = await login(http, api, "admin", PASSWORD)
                _sp, sp_auth = await child(http, api, platform, "service_provider")
                customer, cust_auth = await child(http, api, sp_auth, "customer")
                t0 = time.perf_counter()
                chunk = 5_000
                for s in range(0, devices, chunk):
                    n = min(chunk, devices - s)
                    async with store.transaction() as session:
                        await session.execute(insert(Device), device_rows(s, n, customer))
                        await session.execute(insert(DeviceEvent), event_rows(s, n, customer, T0))
                print(f"store filled: {devices} devices, {devices * 5} events in {time.perf_counter() - t0:.1f} s")
                await store.refresh_statistics("devices")
                rng = random.Random(16)
                for who, auth in (("platform", platform), ("customer", cust_auth)):
                    for _ in range(calls):
                        ms, first = await timed(http, api + "/fleet/status", auth)
                        results.setdefault(f"{who}: first call (counts + latest 100)", []).append(ms)
                        ms, _ = await timed(http, api + "/fleet/status", auth, after=str(first["cursor"]))
                        results.setdefault(f"{who}: poll, nothing new (counts)", []).append(ms)
                        ms, _ = await timed(
                            http, api + "/fleet/status", auth, after=str(first["cursor"]), counts="false"
                        )
                        results.setdefault(f"{who}: poll, nothing new, no counts", []).append(ms)
                        base = rng.randrange(devices - 100)
                        async with store.transaction() as session:
                            await session.execute(insert(DeviceEvent), event_rows(base, 20, customer, T0)[:100])
                        ms, polled = await timed(http, api + "/fleet/status", auth, after=str(first["cursor"]))
                        assert len(polled["changes"]) == 100, len(polled["changes"])
                        results.setdefault(f"{who}: poll, 100 new changes (counts)", []).append(ms)
                        ms, _ = await timed(
                            http, api + "/fleet/status", auth, after=str(first["cursor"]), counts="false"
                        )
                        results.setdefault(f"{who}: poll, 100 new changes, no counts", []).append(ms)
                        mac = f"A4251B{rng.randrange(devices):06X}"
                        ms, _ = await timed(http, api + f"/devices/{mac}/timeline", auth)
                        results.setdefault(f"{who}: one device's timeline", []).append(ms)
            if store.is_sqlite:
                async with store.transaction() as session:
                    stmt = (
                        select(DeviceEvent.id)
                        .join(Device, Device.mac == DeviceEvent.mac)
                        .where(DeviceEvent.id > devices * 5, DeviceEvent.id <= devices * 5 + 100)
                        .order_by(DeviceEvent.id)
                        .limit(101)
                    )
                    compiled = stmt.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True})
                    plan = " | ".join(str(r[-1]) for r in await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        finally:
            await running.stop()
    print(f"backend: {'SQLite' if store.is_sqlite else 'PostgreSQL'}, {devices} devices, {calls} calls per kind")
    for name, values in results.items():
        print(f"  {name:<46} p50 {statistics.median(values):7.1f} ms   p95 {pct(values, 0.95):7.1f} ms")
    if plan:
        print(f"SQLite plan of a poll (platform): {plan}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50_000)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    asyncio.run(main(args.devices, args.calls, args.db))
