"""Issue 17's exactness across processes: two `enrollab serve` processes on one PostgreSQL
database — the test's own server and a second OS process started from the CLI on the same data
directory (PKI) and database — take enrollments at the same moment. EC-3: 500 phones on a code
for 50, split over the device listeners of two CLI processes: exactly 50 enroll. LCK-3: one phone's 20 wrong codes,
10 to each process at once: exactly L=3 count and the device locks."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.runner import Running
from server.store.models import Device, JobResult
from tests.conftest import ADMIN_PASSWORD
from tests.integration.cli_servers import announced, cli_servers, popen_serve
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import (
    Phone,
    device_row,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def second(first: Running, tmp_path: Path, db_url: str) -> Iterator[str]:
    """`enrollab serve` in another process on the same data directory and database: its device URL."""
    with cli_servers(tmp_path / "data", db_url, 1) as urls:
        yield urls[0]


@pytest.fixture
def two_cli(first: Running, tmp_path: Path, db_url: str) -> Iterator[list[str]]:
    """Two such processes: the phones' requests race in two processes neither of which is the test's."""
    with cli_servers(tmp_path / "data", db_url, 2) as urls:
        yield urls


async def _enroll(phone: Phone, url: str, code: str) -> tuple[int, str]:
    answer = await phone.request("POST", url + "/device/v1/enroll", json_body=phone.enroll_body(code))
    return answer.status, answer["result"]


async def test_ec3_five_hundred_phones_over_two_processes_on_a_code_for_fifty(
    first: Running, two_cli: list[str]
) -> None:
    admin = await ApiClient(first.admin_url).as_user("admin", ADMIN_PASSWORD)
    try:
        phones = [Phone.make(first) for _ in range(500)]
        await import_phones(admin, phones)
        cust = await new_customer(admin)
        site = await new_site(cust.sp, cust.id, entry())
        code = await nec(cust.sp, site, total=50)
        for phone in phones:
            assert phone.ssl is not None  # contexts built before the start: only the requests race
        urls = two_cli
        started = time.perf_counter()
        answers = await asyncio.gather(*(_enroll(p, urls[i % 2], code) for i, p in enumerate(phones)))
        elapsed = time.perf_counter() - started
        counted = collections.Counter(answers)
        wins = collections.Counter(f"process {i % 2 + 1}" for i, a in enumerate(answers) if a[0] == 200)
        print(f"\nEC-3 over 2 processes: 500 enrollments in {elapsed:.1f} s: {dict(counted)}; "
              f"enrollments by process {dict(wins)}")
        assert counted == {(200, "redirect"): 50, (422, "code_invalid"): 450}
        assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 50
        async with first.opened.ctx.store.transaction() as s:
            enrolled = await s.scalar(select(func.count()).select_from(Device).where(
                Device.owner_id == cust.id, Device.site_id == site, Device.activated.is_(True)))
        assert enrolled == 50
        log = await enrollment_log(first)  # ENR-5: one entry per attempt, whichever process took it
        assert collections.Counter(e.status for e in log) == {"SUCCESS": 50, "FAIL": 450}
    finally:
        await admin.close()


async def test_lck3_wrong_codes_at_both_processes_at_once_count_exactly_three(first: Running, second: str) -> None:
    admin = await ApiClient(first.admin_url).as_user("admin", ADMIN_PASSWORD)
    try:
        phone = Phone.make(first)
        await import_phones(admin, [phone])
        cust = await new_customer(admin)
        site = await new_site(cust.sp, cust.id, entry())
        code = await nec(cust.sp, site)
        wrong = "55555555" if code != "55555555" else "66666666"
        urls = [first.device_url, second]
        answers = await asyncio.gather(*(_enroll(phone, urls[i % 2], wrong) for i in range(20)))
        counted = collections.Counter(answers)
        print(f"\nLCK-3 over 2 processes: {dict(counted)}")
        assert counted == {(422, "code_invalid"): 2, (423, "locked"): 18}
        row = await device_row(first, phone.mac)
        assert row.failed_attempts == 3 and row.locked_until is not None
        assert await _enroll(phone, second, code) == (423, "locked")  # the other process sees the lock
    finally:
        await admin.close()


async def test_a_bulk_job_of_a_killed_process_is_finished_by_the_other(
    first: Running, tmp_path: Path, db_url: str
) -> None:
    """DEV-10 across processes: a claim job runs in a CLI process, which is killed (SIGKILL) once
    the job has made progress; the other process's sweep takes the job over and finishes it — each
    device claimed exactly when the job has a SUCCESS result for it, none twice, none skipped."""
    from tests.integration.test_crash_safety import final_job, import_file, job_progressed, wait_for

    n = 6000
    admin = await ApiClient(first.admin_url).as_user("admin", ADMIN_PASSWORD)
    sp = await admin.new_account("service_provider")
    worker = popen_serve(tmp_path / "data", db_url)
    there = None
    try:
        worker_admin, _, _ = announced(worker)
        (await admin.post("/devices/import", data=import_file(n), content_type="application/json")).ok()
        macs = [f"A4C0{i:08X}" for i in range(n)]
        (await admin.post("/devices/approve", {"macs": macs})).ok()
        there = await ApiClient(worker_admin).as_user(sp.login_name, PASSWORD)
        proofs = [{"mac": mac, "serial": f"CRASH{i:07d}"} for i, mac in enumerate(macs)]
        job_id = (await there.post("/jobs", {"name": "claim, then killed", "actions": ["claim"],
                                             "devices": proofs})).ok()["id"]
        await wait_for("the job to make progress", await job_progressed(sp, job_id), 120)
        before = (await sp.get(f"/jobs/{job_id}", limit="1")).ok()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=15)
        job = await final_job(sp, job_id)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=15)
        if there is not None:
            await there.close()
    print(f"\nkilled at {before['summary']['done']} of {n} done ({before['status']}); the other process "
          f"ended it {job['status']} with summary {job['summary']}")
    assert before["status"] == "IN PROGRESS", "the job ended before the kill: make it bigger"
    assert job["status"] == "COMPLETE" and int(job["summary"].get("resumed", 0)) == 1, job
    assert job["summary"]["done"] == n and job["summary"].get("succeeded", n) == n
    async with first.opened.ctx.store.transaction() as s:
        owned = await s.scalar(select(func.count()).select_from(Device).where(Device.owner_id == sp.account_id))
        results = collections.Counter((await s.execute(
            select(JobResult.subject, JobResult.status).where(JobResult.job_id == job_id))).all())
    assert owned == n
    assert len(results) == n and set(results.values()) == {1}  # one result per device: none twice
    assert {status for _, status in results} == {"SUCCESS"}
    await admin.close()
    await sp.close()
