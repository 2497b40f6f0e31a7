"""The bad-input tier's server, world and bookkeeping.

One real server per test module (SQLite in a temporary directory, or a PostgreSQL schema of its
own with ENROLLAB_TEST_DB, as the `postgres` tier selects it), an account hierarchy to aim at, and
`Probe`: it sends an item, checks the answer against the manifest, that the server still answers
`/info` (and, for device items, the device listener its enrolled phone), and that a digest of the
database (`tests.integration.test_api_input_boundary.digest`) shows no partial write. Every probe
lands in `TALLY`, printed at the end of the run as kinds × endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from server.domain.notifications import NotificationKind
from server.runner import Running, ServeConfig, start
from server.store.models import AuditLog, Base, DeviceEvent
from tests.badinput.corpus import Item
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import Answer, ApiClient
from tests.integration.device_client import LATEST_J, Phone, entry
from tests.integration.test_api_input_boundary import digest

ERROR_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# A job's own rows are what a refused-row import writes on purpose (DEV-1: the job lists them).
JOB_TABLES = frozenset({"jobs", "job_results"})
TLS_REFUSED = "tls-refused"
# What a device refusal may write besides its audit entry (a manifest item's `writes`): NTF-1's
# "Device Enrollment Failure" notice to the owner of the device the request named, and, for a
# device whose certificate verified, its last contact and reported firmware (the admin API shows both).
FAILURE_NOTICE, LAST_CONTACT = "failure-notice", "last-contact"
DEVICE_SEEN_COLUMNS = frozenset({"last_contact", "firmware"})


def allowances(expect: dict[str, Any]) -> frozenset[str]:
    writes = expect.get("writes", ())
    return frozenset([writes] if isinstance(writes, str) else writes)


async def permitted_digest(server: Running, allow: frozenset[str]) -> str:
    """`digest` without what `allow` lets a refusal write: failure notices, a device's last contact."""
    h = hashlib.sha256()
    async with server.opened.ctx.store.transaction() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in (AuditLog.__tablename__, DeviceEvent.__tablename__):
                continue  # what the server saw, written for a refusal on purpose (LOG-1; the timeline, issue 16)
            columns = list(table.c)
            if LAST_CONTACT in allow and table.name == "devices":
                columns = [c for c in columns if c.name not in DEVICE_SEEN_COLUMNS]
            stmt = select(*columns)
            if FAILURE_NOTICE in allow and table.name == "notifications":
                stmt = stmt.where(table.c.kind != NotificationKind.DEVICE_ENROLLMENT_FAILURE.value)
            rows = (await session.execute(stmt)).all()
            h.update(table.name.encode())
            for row in sorted(repr(tuple(r)) for r in rows):
                h.update(row.encode("utf-8", "backslashreplace"))
    return h.hexdigest()


# --- the tally -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    tried: int = 0
    refused: int = 0  # 4xx with a stable error id (or a refused TLS handshake)
    accepted: int = 0  # 2xx where the manifest documents why
    server_errors: int = 0
    partial_writes: int = 0
    unexpected: int = 0
    handshakes: dict[str, int] = field(default_factory=dict)  # how refused handshakes ended, by alert


@dataclass
class Tally:
    cells: dict[tuple[str, str], Cell] = field(default_factory=lambda: defaultdict(Cell))
    failures: list[str] = field(default_factory=list)

    def table(self) -> list[str]:
        rows = sorted(self.cells.items())
        width = max((len(f"{k} {e}") for (k, e), _ in rows), default=20)
        head = f"{'kind / endpoint':<{width}}  tried  4xx  accepted  5xx  partial  unexpected"
        lines = [head, "-" * len(head)]
        total = Cell()
        for (kind, endpoint), c in rows:
            lines.append(
                f"{kind + ' ' + endpoint:<{width}}  {c.tried:5}  {c.refused:3}  {c.accepted:8}  "
                f"{c.server_errors:3}  {c.partial_writes:7}  {c.unexpected:10}"
            )
            for name in ("tried", "refused", "accepted", "server_errors", "partial_writes", "unexpected"):
                setattr(total, name, getattr(total, name) + getattr(c, name))
        kinds = len({k for k, _ in self.cells})
        endpoints = len({e for _, e in self.cells})
        lines.append("-" * len(head))
        alerts: dict[str, int] = defaultdict(int)
        for _, c in rows:
            for alert, count in c.handshakes.items():
                alerts[alert] += count
        for alert, count in sorted(alerts.items()):
            lines.append(f"refused handshake: {count:4} x {alert}")
        lines.append(
            f"bad input: {total.tried} inputs x endpoints tried ({kinds} kinds, {endpoints} endpoints), "
            f"{total.refused} x 4xx, {total.accepted} accepted as documented, {total.server_errors} x 5xx, "
            f"{total.partial_writes} partial writes, {total.unexpected} unexpected answers"
        )
        return lines


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.cells:
        terminalreporter.section("bad-input tier: kinds x endpoints")
        for line in TALLY.table():
            terminalreporter.write_line(line)


# --- the server and the world it holds -------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory, db_backend: str | None) -> AsyncIterator[Running]:
    """PostgreSQL as the other tiers select it (`db_backend`: ENROLLAB_TEST_DB, checked reachable
    once per session, outside any event loop), in a schema of this module's own; else SQLite."""
    tmp = tmp_path_factory.mktemp("badinput")
    backend = db_backend
    schema = None
    if backend:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        db_url = f"{backend}{'&' if '?' in backend else '?'}schema={schema}"
    else:
        db_url = f"sqlite:///{tmp / 'enrollab.db'}"
    config = ServeConfig(data_dir=tmp / "data", db_url=db_url, admin_port=0)
    running = await start(config, admin_password=ADMIN_PASSWORD)
    yield running
    await running.stop()
    if backend and schema:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(backend.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@dataclass
class World:
    """What the bad input is aimed at: a provider (`sp`) with a customer, profiles (HTTPS, DES,
    identity certificates), sites, a code, a label, an enrolled phone; the platform administrator."""

    server: Running
    admin: ApiClient
    sp: ApiClient
    customer: ApiClient
    ids: dict[str, str]
    phone: Phone
    look_alikes: dict[str, str] = field(default_factory=dict)

    def client(self, actor: str) -> ApiClient:
        return self.admin if actor == "platform" else self.sp


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(server: Running) -> AsyncIterator[World]:
    api = ApiClient(server.admin_url)
    admin = await api.as_user("admin", ADMIN_PASSWORD)
    sp = await admin.new_account("service_provider", name="Acme Telecom")
    customer = await sp.new_account("customer", name="Acme Customer")
    users = (await admin.get("/users", account_id=customer.account_id)).ok()["items"]

    async def profile(name: str, **extra: Any) -> int:
        body = {"name": name, "entries": [entry("https://prov.example.com/$MODEL4/", **extra)]}
        return int((await sp.post("/profiles", body)).ok()["id"])

    https = await profile("Acme Telecom")
    des = await profile("Acme DES", server_type="DES")
    identity = await profile("Acme identity", identity_certificates=True)

    async def site(name: str, profile_id: int) -> int:
        body = {"name": name, "profile_id": profile_id}
        return int((await sp.post(f"/accounts/{customer.account_id}/sites", body)).ok()["id"])

    site_id = await site("Acme Telecom", https)
    des_site = await site("Acme DES site", des)
    identity_site = await site("Acme identity site", identity)
    (await sp.post(f"/sites/{site_id}/nec", {"length": 8, "total_devices": 5})).ok()
    label = (await sp.post("/labels", {"name": "bad-input"})).ok()

    phone = Phone.make(server, firmware=LATEST_J)
    job = (await admin.post("/devices/import", {"devices": [phone.import_row()]})).ok()
    (await admin.post("/devices/approve", {"macs": [phone.mac]})).ok()
    (await sp.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    body = {"macs": [phone.mac], "account_id": customer.account_id, "site_id": identity_site}
    (await sp.post("/devices/associate", body)).ok()
    (await sp.post("/devices/activate", {"macs": [phone.mac]})).ok()
    assert (await phone.enroll())["result"] == "redirect"

    ids = {
        "account": customer.account_id,
        "user": str(users[0]["id"]),
        "profile": str(https),
        "des_profile": str(des),
        "site": str(site_id),
        "des_site": str(des_site),
        "job": str(job["id"]),
        "label": str(label["id"]),
        "mac": phone.mac,
        "serial": phone.serial,
        "model": "J179",
    }
    yield World(server, admin, sp, customer, ids, phone)
    await api.close()


# --- one probe ---------------------------------------------------------------------------------------------


def _status_matches(expected: int | str, status: int) -> bool:
    if isinstance(expected, int):
        return status == expected
    return any(
        status // 100 == int(part[0]) if part.endswith("xx") else status == int(part) for part in expected.split("|")
    )


@dataclass
class Probe:
    """Sends items, judges each answer, keeps the tally. `failures` are this test's."""

    world: World
    failures: list[str] = field(default_factory=list)
    last: str | None = None  # the digest after the previous probe
    device: bool = False  # also check, after each item, that the device listener still answers

    async def _job_finished(self, answer: Answer) -> None:
        """An accepted bulk job runs after its answer: let it end before the next digest, or its
        writes would be taken for the next probe's."""
        body = answer.body
        if not (isinstance(body, dict) and body.get("status") == "IN PROGRESS" and "id" in body):
            return
        for _ in range(400):
            job = await self.world.admin.get(f"/jobs/{body['id']}")
            if job.status != 200 or job.body.get("status") != "IN PROGRESS":
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {body['id']} still IN PROGRESS")

    async def health(self) -> bool:
        try:
            answer = await self.world.admin.get("/info")
            if answer.status == 200 and self.device:
                # The enrolled phone, on a connection of its own: the listener still serves devices.
                return (await self.world.phone.request("GET", "/.well-known/est/cacerts")).status == 200
        except Exception:
            return False
        return answer.status == 200

    async def send(
        self,
        item: Item,
        endpoint: str,
        call: Callable[[], Awaitable[Answer]],
        *,
        check: Callable[[Answer], str | None] | None = None,
    ) -> Answer | None:
        """One item to one endpoint: the answer must meet the manifest, the server must stay up, and
        a refusal must leave the database as it was (a refused-row import may add its job)."""
        expect = item.expectation(endpoint)
        rows_only = expect.get("writes") == "job"
        allow = allowances(expect) - {"job"}
        before = self.last or await digest(self.world.server)
        before_jobs = await digest(self.world.server, skip=JOB_TABLES) if rows_only else ""
        before_permitted = await permitted_digest(self.world.server, allow) if allow else ""
        cell = TALLY.cells[(item.kind, endpoint)]
        cell.tried += 1
        where = f"{item.key} -> {endpoint}"
        refused_handshake = False
        try:
            answer: Answer | None = await call()
        except Exception as exc:  # a dropped connection is as bad as a 500
            answer = None
            problem: str | None = f"no answer: {type(exc).__name__}: {exc}"
            alert = tls_alert(exc)
            if alert is not None and expect["status"] == TLS_REFUSED:
                refused_handshake, problem = True, None
                cell.refused += 1
                cell.handshakes[alert] = cell.handshakes.get(alert, 0) + 1
            elif alert is not None:
                cell.unexpected += 1
                problem = f"the TLS handshake refused it ({alert}), expected {expect['status']}"
                refused_handshake = True
        if answer is not None and expect["status"] == TLS_REFUSED:
            cell.unexpected += 1
            problem = "the TLS handshake let it through"
        elif answer is not None:
            problem = self._judge(answer, expect, cell, check)
        if (answer is None and not refused_handshake) or (answer is not None and answer.status >= 500):
            cell.server_errors += 1
        if answer is not None and answer.status < 300:
            await self._job_finished(answer)
        after = self.last = await digest(self.world.server)
        refused = refused_handshake or (answer is not None and answer.status >= 400)
        if (
            refused
            and after != before
            and (not allow or await permitted_digest(self.world.server, allow) != before_permitted)
        ):
            cell.partial_writes += 1
            problem = problem or "the refusal wrote to the database"
        if (
            answer is not None
            and answer.status < 300
            and rows_only
            and await digest(self.world.server, skip=JOB_TABLES) != before_jobs
        ):
            cell.partial_writes += 1
            problem = problem or "a job of refused rows wrote more than the job"
        if not await self.health():
            problem = problem or "the server stopped answering"
        if problem:
            shown = "" if answer is None else f" [{answer.status} {str(answer.body)[:200]}]"
            self.failures.append(f"{where}: {problem}{shown}")
        return answer

    def _judge(
        self, answer: Answer, expect: dict[str, Any], cell: Cell, check: Callable[[Answer], str | None] | None
    ) -> str | None:
        status, body = answer.status, answer.body
        if status >= 500:
            return f"{status}"
        if status >= 400 and isinstance(body, dict) and "result" in body and "error" not in body:
            return self._judge_enrollment(answer, expect, cell, check)
        if status >= 400:
            if not (
                isinstance(body, dict)
                and isinstance(body.get("error"), str)
                and ERROR_ID.match(body["error"])
                and isinstance(body.get("detail"), str)
            ):
                cell.unexpected += 1
                return "a refusal without a stable {error, detail} body"
            if not _status_matches(expect["status"], status) or expect.get("error") not in (None, body["error"]):
                cell.unexpected += 1
                return f"expected {expect['status']} {expect.get('error') or ''}".rstrip()
            cell.refused += 1
            return check(answer) if check else None
        # 2xx: only where the manifest says the input is let through, and why.
        if not _status_matches(expect["status"], status):
            cell.unexpected += 1
            return f"accepted (expected {expect['status']} {expect.get('error') or ''})".rstrip()
        if "imported" in expect and _imported(body) != expect["imported"]:
            cell.unexpected += 1
            return f"imported {_imported(body)}, expected {expect['imported']}"
        cell.accepted += 1
        return check(answer) if check else None

    def _judge_enrollment(
        self, answer: Answer, expect: dict[str, Any], cell: Cell, check: Callable[[Answer], str | None] | None
    ) -> str | None:
        """A refusal in PROTOCOL §2's shape: `result` (e.g. `unknown_device`), and for `rejected` a
        stable kebab-case `reason` with a `detail`."""
        status, body = answer.status, answer.body
        stable = isinstance(body.get("result"), str) and (
            body["result"] != "rejected"
            or (
                isinstance(body.get("reason"), str)
                and ERROR_ID.match(body["reason"])
                and isinstance(body.get("detail"), str)
            )
        )
        if not stable:
            cell.unexpected += 1
            return "an enrollment refusal without a stable result/reason"
        if (
            not _status_matches(expect["status"], status)
            or expect.get("result") not in (None, body["result"])
            or expect.get("reason") not in (None, body.get("reason"))
        ):
            cell.unexpected += 1
            wanted = " ".join(str(expect.get(k)) for k in ("status", "result", "reason") if expect.get(k))
            return f"expected {wanted}"
        cell.refused += 1
        return check(answer) if check else None

    def assert_clean(self) -> None:
        TALLY.failures.extend(self.failures)
        assert not self.failures, "\n".join(self.failures)


def tls_alert(exc: BaseException) -> str | None:
    """How a refused handshake showed itself to the client, or None when `exc` is no TLS failure.

    With TLS 1.3 the client finishes its side of the handshake before the server has judged its
    certificate, so the server's alert (or, for an alert the client did not read in time, the
    connection it then closed) arrives on the first read of the request."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or type(seen).__name__).lower().replace("_", " ")
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionError | aiohttp.ClientOSError):
        return f"connection closed in the handshake ({type(exc).__name__})"
    return None


def _imported(body: Any) -> Any:
    summary = body.get("summary") if isinstance(body, dict) else None
    return summary.get("imported") if isinstance(summary, dict) else None


@pytest.fixture
def probe(world: World) -> Probe:
    return Probe(world)
