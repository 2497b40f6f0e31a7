"""Crash safety (issue 13): `kill -9` of a real `enrollab serve` process in the middle of bulk work
and of an enrollment burst, then a restart on the same data.

What "wholly or not at all" means, per action (checked in the database itself):
- import (DEV-1): the file's devices are all there, each with every field of its row, and the
  import job says so, or none is there and there is no import job;
- approve (DEV-2): each call's devices are all approved and the call has its SUCCESS audit
  entry (LOG-1), or none of them is and there is no entry;
- claim job (DEV-3, DEV-9): a device is the claimant's exactly when the job has a SUCCESS result
  for it; release job (DEV-5): a device is back in the pool with its order fields erased
  exactly when the job has a SUCCESS result for it, and otherwise still held with its order
  fields;
- a job reaches COMPLETE or FAIL (with `summary.reason`) after the restart, has one result per
  device, and its counts equal its result rows;
- order batch (DEP-1): at the kill a device is the customer's exactly when it has its outcome;
  after the restart the batch goes on where it stopped, each device one outcome and one job
  result, and the same batch submitted again is the same batch;
- enrollment burst (EC-3, EC-7): after the restart the code's enrolled count equals the devices
  it claimed onto its site, never exceeds its total, every phone answered `redirect` before
  the kill is among them, and the rest of the burst fills the code up to its total exactly.

The kill waits for an event, never a fixed time: the job's progress (GET /jobs/{id}), the
phones' answers, or — for the import and approve calls, which are one transaction each — the
database showing that transaction writing (SQLite: the write lock held while the WAL grows;
PostgreSQL: the server's backend running the INSERT or UPDATE). One round of each test is in
the default run; `-m slow` runs 20 rounds (the issue's "passes 20 times in a row").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.pki.store import ensure_pki
from server.pki.tls import client_context
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import LATEST_J, entry, new_site

DEVICES = 20_000  # the slow tier's rounds
DEVICES_FAST = 4_000  # round 0, in the default run
BURST_PHONES, BURST_TOTAL = 300, 150
ROUNDS = 20
RESTART_DEADLINE = 60.0  # seconds for a restarted server to answer
FINAL_DEADLINE = 180.0  # seconds for a resumed job to end
ORDER = {"order_id": "ORD-{i}", "reseller_order_id": "RORD-{i}", "shipment_carrier": "DHL", "tracking_id": "TRK-{i}"}

SERVE = r"""
import asyncio, json, sys
from pathlib import Path
from server.runner import SIMULATION_GUESSING, ServeConfig, serve_forever
def announce(running):
    print(json.dumps({"admin": running.admin_url, "device": running.device_url}), flush=True)
config = ServeConfig(data_dir=Path(sys.argv[1]), db_url=sys.argv[2], admin_port=0, guessing=SIMULATION_GUESSING)
asyncio.run(serve_forever(config, announce))
"""


def rounds() -> list[Any]:
    """Round 0 in the default run, all 20 in the slow tier."""
    return [0, *(pytest.param(i, marks=pytest.mark.slow) for i in range(1, ROUNDS))]


# --- the server process and its database -----------------------------------------------------------


@dataclass
class Database:
    """The server's database, read from outside (SQLite file, or a PostgreSQL database of its own)."""

    url: str
    sqlite_path: Path | None = None
    pg_dsn: str | None = None
    pg_name: str | None = None

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            path = self.sqlite_path

            def read() -> list[tuple[Any, ...]]:
                with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
                    return conn.execute(sql, args).fetchall()

            return await asyncio.to_thread(read)
        import asyncpg  # type: ignore[import-untyped]

        numbered = sql
        for n in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *args)]
        finally:
            await conn.close()

    async def scalar(self, sql: str, *args: Any) -> Any:
        return (await self.rows(sql, *args))[0][0]

    async def writing(self, table_sql: str) -> bool:
        """True while the server is inside a write transaction that is writing (module docstring)."""
        if self.sqlite_path is not None:
            wal = Path(f"{self.sqlite_path}-wal")
            if not wal.exists() or wal.stat().st_size == 0:
                return False
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=0, isolation_level=None)) as conn:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    return True  # locked by the server's transaction
                conn.execute("ROLLBACK")
                return False
        busy = await self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND state = 'active' AND query ILIKE ?",
            self.pg_name,
            table_sql + "%",
        )
        return bool(busy)

    def quiet_wal(self) -> None:
        """SQLite: an empty WAL, so that its growth shows a transaction writing."""
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite in tmp_path, or (ENROLLAB_TEST_DB set) a fresh PostgreSQL database, dropped afterwards."""
    base = os.environ.get("ENROLLAB_TEST_DB")
    if not base:
        path = tmp_path / "enrollab.db"
        yield Database(f"sqlite:///{path}", sqlite_path=path)
        return
    import asyncpg

    admin_dsn = base.replace("postgresql://", "postgres://", 1)
    name = f"crash_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        pytest.skip(f"PostgreSQL at {base} is not reachable ({exc})")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    server_part, _, _ = base.rpartition("/")
    yield Database(
        f"{server_part}/{name}", pg_dsn=f"{server_part}/{name}".replace("postgresql://", "postgres://", 1), pg_name=name
    )
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Server:
    """`enrollab serve` as a child process on one data dir and database; killed and restarted."""

    data: Path
    db: Database
    log: Path
    proc: subprocess.Popen[str] | None = None
    admin_url: str = ""
    device_url: str = ""
    starts: list[float] = field(default_factory=list)

    def start(self) -> None:
        began = time.monotonic()
        env = {**os.environ, "ENROLLAB_ADMIN_PASSWORD": ADMIN_PASSWORD}
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.data), self.db.url],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the server announces itself once it listens
        assert line, f"the server did not start; see {self.log}:\n{self.log.read_text()[-3000:]}"
        urls = json.loads(line)
        self.admin_url, self.device_url = urls["admin"], urls["device"]
        self.starts.append(time.monotonic() - began)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, open transactions are simply cut off."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def server(tmp_path: Path, database: Database) -> AsyncIterator[Server]:
    running = Server(tmp_path / "data", database, tmp_path / "server.log")
    running.start()
    yield running
    running.stop()


async def login(server: Server, user: str, password: str) -> ApiClient:
    anon = ApiClient(server.admin_url)
    try:
        return await anon.as_user(user, password)  # the logged-in client has a session of its own
    finally:
        if anon.session is not None:
            await anon.session.close()


async def admin_of(server: Server) -> ApiClient:
    return await login(server, "admin", ADMIN_PASSWORD)


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], deadline: float) -> None:
    """Poll an event (a job's progress, a transaction writing) until it happens."""
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        await asyncio.sleep(0.005)


async def kill_when(server: Server, call: Awaitable[Any], event: Callable[[], Awaitable[bool]]) -> bool:
    """Run `call`; SIGKILL the server once `event` is true. True when the call did not answer."""
    task = asyncio.ensure_future(call)
    while not task.done() and not await event():
        await asyncio.sleep(0.002)
    answered = task.done()
    server.kill()
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
        await task
    return not answered


async def relogin(server: Server, sp_login: str, *old: ApiClient) -> tuple[ApiClient, ApiClient]:
    for client in old:
        await client.close()
    admin = await admin_of(server)
    sp = await login(server, sp_login, PASSWORD)
    return admin, sp


# --- bulk work: import, approve, claim job, release job ----------------------------------------------


def import_file(n: int) -> bytes:
    rows = [
        {
            "mac": f"A4C0{i:08X}",
            "serial": f"CRASH{i:07d}",
            "model": "J179",
            "product_id": "700513916",
            "hardware": "1",
            **{k: v.format(i=i) for k, v in ORDER.items()},
        }
        for i in range(n)
    ]
    return json.dumps({"devices": rows}).encode()


async def import_all_or_nothing(db: Database, n: int) -> int:
    """The import is all or nothing; answers how many devices it holds (0 or n)."""
    held = await db.scalar("SELECT count(*) FROM devices")
    jobs = await db.rows("SELECT summary FROM jobs WHERE kind = 'import'")
    if held == 0:
        assert jobs == [], jobs
        return 0
    assert held == n, f"half an import: {held} of {n} devices"
    assert len(jobs) == 1, jobs
    summary = json.loads(jobs[0][0]) if isinstance(jobs[0][0], str) else jobs[0][0]
    assert summary["imported"] == n
    incomplete = await db.scalar(
        "SELECT count(*) FROM devices WHERE serial IS NULL OR model IS NULL OR product_id IS NULL "
        "OR hardware IS NULL OR order_id IS NULL OR reseller_order_id IS NULL OR tracking_id IS NULL "
        "OR shipment_carrier IS NULL OR approved IS NULL"
    )
    assert incomplete == 0, f"{incomplete} devices without all their fields"
    return n


async def approvals_consistent(db: Database, per_call: int) -> int:
    """Approved devices come in whole calls, each with its SUCCESS audit entry; answers the calls."""
    approved = await db.scalar("SELECT count(*) FROM devices WHERE approved = ?", True)
    entries = await db.scalar("SELECT count(*) FROM audit_log WHERE action = 'approve_devices' AND status = 'SUCCESS'")
    assert approved == entries * per_call, f"{approved} devices approved by {entries} audited calls"
    return int(entries)


async def final_job(client: ApiClient, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal job
        job = (await client.get(f"/jobs/{job_id}", limit="1")).ok()
        return job["status"] != "IN PROGRESS"

    await wait_for(f"job {job_id} to end", ended, FINAL_DEADLINE)
    return job


async def job_matches_database(db: Database, job: dict[str, Any], total: int) -> dict[str, str]:
    """One result per device, counts equal to the result rows; answers each device's result."""
    assert job["status"] in ("COMPLETE", "FAIL"), job
    if job["status"] == "FAIL" and "reason" in job["summary"]:
        assert job["summary"]["note"], job
    results = await db.rows("SELECT subject, status FROM job_results WHERE job_id = ?", job["id"])
    by_subject = dict(results)
    assert len(by_subject) == len(results), "a device with two results"
    summary = job["summary"]
    assert summary["done"] == len(results)
    assert summary["succeeded"] == sum(s == "SUCCESS" for s in by_subject.values())
    assert summary["failed"] == sum(s == "FAIL" for s in by_subject.values())
    if job["status"] == "COMPLETE":
        assert summary["done"] == total and summary["failed"] == 0
    return by_subject


async def job_progressed(client: ApiClient, job_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        job = (await client.get(f"/jobs/{job_id}", limit="1")).ok()
        return job["status"] != "IN PROGRESS" or job["summary"]["done"] > 0

    return check


@dataclass
class Outcome:
    """What one round saw, for the report: where each kill landed and how each job ended."""

    cut: dict[str, bool] = field(default_factory=dict)  # True: killed before the work committed
    jobs: dict[str, str] = field(default_factory=dict)  # resumed / completed-before-kill / failed
    seconds: float = 0.0


@pytest.mark.parametrize("round_", rounds())
async def test_kill_9_in_the_middle_of_import_approve_claim_and_release(
    server: Server, database: Database, round_: int
) -> None:
    began = time.monotonic()
    outcome = Outcome()
    db, n = database, DEVICES if round_ else DEVICES_FAST
    half = n // 2  # approve calls take at most 10,000 devices
    admin = await admin_of(server)
    sp = await admin.new_account("service_provider")
    sp_login = sp.login_name

    # Import: one call, one transaction.
    data = import_file(n)
    db.quiet_wal()
    outcome.cut["import"] = await kill_when(
        server,
        admin.post("/devices/import", data=data, content_type="application/json"),
        lambda: db.writing("INSERT INTO devices"),
    )
    server.start()
    admin, sp = await relogin(server, sp_login, admin, sp)
    if await import_all_or_nothing(db, n) == 0:
        (await admin.post("/devices/import", data=data, content_type="application/json")).ok()
    assert await import_all_or_nothing(db, n) == n

    # Approve: two calls; the kill lands in the second.
    macs = [f"A4C0{i:08X}" for i in range(n)]
    (await admin.post("/devices/approve", {"macs": macs[:half]})).ok()
    db.quiet_wal()
    outcome.cut["approve"] = await kill_when(
        server,
        admin.post("/devices/approve", {"macs": macs[half:]}),
        lambda: db.writing("UPDATE devices"),
    )
    server.start()
    admin, sp = await relogin(server, sp_login, admin, sp)
    if await approvals_consistent(db, half) == 1:
        (await admin.post("/devices/approve", {"macs": macs[half:]})).ok()
    assert await approvals_consistent(db, half) == 2

    # A claim job and a release job, each killed once it has made progress.
    # DEV-3: a claim job names each device with the serial printed on its box (`import_file`).
    proofs = [{"mac": mac, "serial": f"CRASH{i:07d}"} for i, mac in enumerate(macs)]
    for action, body in (("claim", {"devices": proofs}), ("release", {"all": True})):
        job_id = (await sp.post("/jobs", {"name": f"crash {action}", "actions": [action], **body})).ok()["id"]
        progressed = await job_progressed(sp, job_id)
        await wait_for(f"the {action} job to make progress", progressed, FINAL_DEADLINE)
        before = (await sp.get(f"/jobs/{job_id}", limit="1")).ok()
        server.restart()
        admin, sp = await relogin(server, sp_login, admin, sp)
        job = await final_job(sp, job_id)
        results = await job_matches_database(db, job, n)
        outcome.cut[action] = before["status"] == "IN PROGRESS"
        resumed = int(job["summary"].get("resumed", 0))
        outcome.jobs[action] = (
            "failed: " + str(job["summary"].get("reason"))
            if job["status"] == "FAIL"
            else "resumed"
            if resumed
            else "completed before the kill"
        )
        assert job["status"] == "COMPLETE", job  # every device can be claimed and released
        assert resumed == (1 if before["status"] == "IN PROGRESS" else 0)
        owners = dict(await db.rows("SELECT mac, owner_id FROM devices"))
        orders = dict(await db.rows("SELECT mac, order_id FROM devices"))
        for mac in macs:
            ok = results.get(mac) == "SUCCESS"
            if action == "claim":
                assert (owners[mac] == sp.account_id) == ok, (mac, owners[mac], results.get(mac))
            else:  # released: unclaimed and order fields erased, together (DEV-5)
                assert (owners[mac] is None) == ok and (orders[mac] is None) == ok, (mac, owners[mac], orders[mac])

    outcome.seconds = time.monotonic() - began
    print(
        f"\nround {round_}: {outcome.seconds:.1f} s, killed mid-work: {outcome.cut}, jobs: {outcome.jobs}, "
        f"server starts: {[round(s, 1) for s in server.starts]} s"
    )
    await admin.close()
    await sp.close()


# --- an enrollment burst ---------------------------------------------------------------------------


@dataclass
class BurstPhone:
    mac: str
    serial: str
    thumbprint: str
    ssl: ssl.SSLContext

    def body(self, code: str) -> dict[str, Any]:
        return {"model": "J179", "firmware": LATEST_J, "mac": self.mac, "serial": self.serial, "code": code}


def make_phones(data: Path, n: int, round_: int) -> list[BurstPhone]:
    pki = ensure_pki(data)
    phones = []
    for i in range(n):
        mac, serial = f"A4B0{i:08X}", f"BURST{round_:02d}{i:06d}"
        factory = pki.issue_factory(mac, serial, "J179", record=False)
        phones.append(
            BurstPhone(
                mac, serial, factory.thumbprint, client_context(pki.tls_ca_path, factory.cert_pem, factory.key_pem)
            )
        )
    return phones


async def enroll(device_url: str, phone: BurstPhone, code: str) -> str:
    """One enrollment over its own mutual-TLS connection; the answer's result."""
    connector = aiohttp.TCPConnector(ssl=phone.ssl, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session,
        session.post(device_url + "/device/v1/enroll", json=phone.body(code)) as resp,
    ):
        return str((await resp.json())["result"])


@pytest.mark.parametrize("round_", rounds())
async def test_kill_9_in_the_middle_of_an_enrollment_burst(server: Server, database: Database, round_: int) -> None:
    began = time.monotonic()
    db = database
    admin = await admin_of(server)
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site_id = await new_site(sp, customer.account_id, entry())
    code = str((await customer.post(f"/sites/{site_id}/nec", {"length": 8, "total_devices": BURST_TOTAL})).ok()["code"])
    phones = make_phones(server.data, BURST_PHONES, round_)
    rows = [{"mac": p.mac, "serial": p.serial, "model": "J179", "thumbprint": p.thumbprint} for p in phones]
    (
        await admin.post(
            "/devices/import", data=json.dumps({"devices": rows}).encode(), content_type="application/json"
        )
    ).ok()
    (await admin.post("/devices/approve", {"macs": [p.mac for p in phones]})).ok()

    # The burst: every phone at once with the same code; killed once a few have been answered.
    answered: dict[str, str] = {}

    async def one(phone: BurstPhone) -> None:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ValueError):
            answered[phone.mac] = await enroll(server.device_url, phone, code)

    tasks = [asyncio.ensure_future(one(p)) for p in phones]

    async def some_redirected() -> bool:
        return any(r == "redirect" for r in answered.values()) or all(t.done() for t in tasks)

    await wait_for("the first enrollments", some_redirected, FINAL_DEADLINE)
    server.kill()
    await asyncio.gather(*tasks)
    redirected_before = {mac for mac, r in answered.items() if r == "redirect"}
    server.start()
    for client in (admin, sp, customer):
        await client.close()
    admin = await admin_of(server)
    customer = await login(server, customer.login_name, PASSWORD)

    async def code_holds() -> tuple[int, set[str]]:
        enrolled = int((await customer.get(f"/sites/{site_id}/nec")).ok()["enrolled"])
        claimed = {
            mac
            for (mac,) in await db.rows(
                "SELECT mac FROM devices WHERE site_id = ? AND owner_id = ?", site_id, customer.account_id
            )
        }
        assert enrolled == len(claimed) <= BURST_TOTAL, (enrolled, len(claimed))
        return enrolled, claimed

    enrolled, claimed = await code_holds()
    assert redirected_before <= claimed, "a phone answered redirect was not claimed"
    # The rest of the burst fills the code to its total, exactly (EC-3 across the restart).
    rest = [p for p in phones if p.mac not in claimed]
    results = await asyncio.gather(*(enroll(server.device_url, p, code) for p in rest))
    assert sum(r == "redirect" for r in results) == BURST_TOTAL - enrolled
    assert set(results) <= {"redirect", "code_invalid"}
    assert (await code_holds())[0] == BURST_TOTAL
    print(
        f"\nround {round_}: {time.monotonic() - began:.1f} s, {len(redirected_before)} answered and "
        f"{enrolled} enrolled before the kill (total {BURST_TOTAL}), server starts: "
        f"{[round(s, 1) for s in server.starts]} s"
    )
    await admin.close()
    await customer.close()


# --- an order batch (DEP-1) ------------------------------------------------------------------------


@pytest.mark.parametrize("round_", rounds())
async def test_kill_9_in_the_middle_of_an_order_batch(server: Server, database: Database, round_: int) -> None:
    """DEP-1 "never half a device": a batch killed while it is processed is taken over after the
    restart and goes on where it stopped; each device has one outcome, one job result, and is
    claimed by the customer exactly when its outcome says enrolled. Submitting the batch again
    after the restart is the same batch (idempotent batch id)."""
    import jsonschema

    from server.domain import orders as order_rules

    began = time.monotonic()
    db, n = database, DEVICES // 2 if round_ else DEVICES_FAST  # a batch holds at most 10,000 devices
    admin = await admin_of(server)
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    (await admin.post("/devices/import", data=import_file(n), content_type="application/json")).ok()
    macs = [f"A4C0{i:08X}" for i in range(n)]
    (await admin.post("/devices/approve", {"macs": macs})).ok()
    system = (await sp.post("/order-systems", {"name": "crash orders", "encrypted": False})).ok()
    token = ApiClient(server.admin_url, token=system["token"])
    document = {
        "version": 1,
        "batch_id": f"CRASH-{round_}",
        "order_id": "SO-CRASH",
        "customer_account": customer.account_id,
        "devices": [
            {"mac": mac, "serial": f"CRASH{i:07d}", "model": "J179", "request_type": "EN"} for i, mac in enumerate(macs)
        ],
    }
    body = json.dumps(document).encode()
    submitted = (await token.call("POST", "/orders/batches", data=body, content_type="application/json")).ok()
    batch_id = submitted["batch_id"]

    async def processing() -> bool:
        state = (await token.get(f"/orders/batches/{batch_id}")).ok()
        return state["status"] != "IN PROGRESS" or state["processed"] > 0

    await wait_for("the batch to make progress", processing, FINAL_DEADLINE)
    before = (await token.get(f"/orders/batches/{batch_id}")).ok()
    server.kill()
    # At the kill, in the database: a device is the customer's exactly when it has its outcome.
    cut_outcomes = dict(await db.rows("SELECT mac, outcome FROM order_devices"))
    cut_owners = dict(await db.rows("SELECT mac, owner_id FROM devices"))
    for mac in macs:
        assert (cut_owners[mac] == customer.account_id) == (cut_outcomes[mac] == "enrolled"), (mac, cut_outcomes[mac])
    at_kill = sum(o is not None for o in cut_outcomes.values())
    server.start()
    for client in (admin, sp, customer, token):
        await client.close()
    token = ApiClient(server.admin_url, token=system["token"])
    again = (await token.call("POST", "/orders/batches", data=body, content_type="application/json")).ok()
    assert again["batch_id"] == batch_id and again["replayed"] is True, again

    async def ended() -> bool:
        return (await token.get(f"/orders/batches/{batch_id}")).ok()["status"] != "IN PROGRESS"

    await wait_for(f"batch {batch_id} to end", ended, FINAL_DEADLINE)
    state = (await token.get(f"/orders/batches/{batch_id}")).ok()
    assert state["status"] == "COMPLETE" and state["outcomes"] == {"enrolled": n}, state
    answered = (await token.get(f"/orders/batches/{batch_id}/response")).ok()
    jsonschema.validate(answered, order_rules.schema("dep-response"))
    assert [d["outcome"] for d in answered["devices"]] == ["enrolled"] * n
    outcomes = dict(await db.rows("SELECT mac, outcome FROM order_devices"))
    results = await db.rows("SELECT subject, status FROM job_results WHERE job_id = ?", state["job_id"])
    assert len(results) == n and len(dict(results)) == n, "a device with two results or none"
    owners = dict(await db.rows("SELECT mac, owner_id FROM devices"))
    assert all(owners[mac] == customer.account_id and outcomes[mac] == "enrolled" for mac in macs)
    jobs = await db.rows("SELECT summary FROM jobs WHERE id = ?", state["job_id"])
    summary = json.loads(jobs[0][0]) if isinstance(jobs[0][0], str) else jobs[0][0]
    assert summary["done"] == n and summary["succeeded"] == n
    cut = before["status"] == "IN PROGRESS"
    assert int(summary.get("resumed", 0)) == (1 if cut else 0), summary
    print(
        f"\nround {round_}: {time.monotonic() - began:.1f} s, batch of {n} killed at {at_kill} "
        f"devices with outcomes ({'mid-batch' if cut else 'after it ended'}), server starts: "
        f"{[round(s, 1) for s in server.starts]} s"
    )
    await token.close()
