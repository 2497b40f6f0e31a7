"""`enrollab serve --workers N` (issue 17, server/workers.py): N server processes behind the same
two ports (SO_REUSEPORT) on one PostgreSQL database. Driven from the CLI as a user starts it:
both workers listen on both ports and the kernel spreads connections over them; EC-3 stays exact
for 500 phones on one port; a worker killed with SIGKILL is started again while the other goes
on answering; SIGTERM stops every worker and frees the ports. SQLite is refused with the reason."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.cli_servers import announced, popen_serve, serve_command, stop
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, enrollment_log, entry, import_phones, nec, new_customer, new_site

pytestmark = pytest.mark.timeout(300)


@dataclass
class Workers:
    proc: subprocess.Popen[str]
    admin_url: str
    device_url: str
    pids: list[int]

    @property
    def admin_port(self) -> int:
        return int(urlsplit(self.admin_url).port or 0)

    @property
    def device_port(self) -> int:
        return int(urlsplit(self.device_url).port or 0)


def _pids(port: int, state: str = "listening") -> collections.Counter[int]:
    """Which processes hold TCP sockets on local `port` in `state` (ss, iproute2): pid → sockets."""
    flag = "-Htlnp" if state == "listening" else "-Htnp"
    query = [f"sport = :{port}"] if state == "listening" else ["state", state, f"sport = :{port}"]
    out = subprocess.run(["ss", flag, *query], capture_output=True, text=True, check=True).stdout
    return collections.Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def workers(first: Running, tmp_path: Path, db_url: str) -> Iterator[Workers]:
    proc = popen_serve(tmp_path / "data", db_url, "--workers", "2")
    pids: list[int] = []
    try:
        admin, device, lines = announced(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the line after the URLs names the workers
        m = re.search(r"2 workers \(pids (\d+), (\d+)\), each with up to (\d+) database connections", line)
        assert m, "".join([*lines, line])
        pids = [int(m.group(1)), int(m.group(2))]
        yield Workers(proc, admin, device, pids)
    finally:
        stop(proc, timeout=40)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:  # never leave a worker behind, even when the parent was the one that failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_both_workers_listen_on_both_ports_and_share_the_connections(workers: Workers) -> None:
    assert set(_pids(workers.admin_port)) == set(workers.pids)
    assert set(_pids(workers.device_port)) == set(workers.pids)
    assert workers.proc.pid not in _pids(workers.admin_port)  # the parent only holds the ports
    conns = [socket.create_connection(("127.0.0.1", workers.admin_port)) for _ in range(64)]
    try:
        time.sleep(0.5)  # accepted by the workers' event loops
        spread = _pids(workers.admin_port, "established")
    finally:
        for conn in conns:
            conn.close()
    print(f"\n64 connections to one admin port, by worker: {dict(spread)}")
    assert set(spread) == set(workers.pids)
    assert min(spread.values()) >= 8  # the kernel's hash spreads them; 64 all on one worker: broken


async def test_ec3_five_hundred_phones_on_one_port_of_two_workers(first: Running, workers: Workers) -> None:
    admin = await ApiClient(workers.admin_url).as_user("admin", ADMIN_PASSWORD)
    try:
        phones = [Phone.make(first) for _ in range(500)]
        await import_phones(admin, phones)
        cust = await new_customer(admin)
        site = await new_site(cust.sp, cust.id, entry())
        code = await nec(cust.sp, site, total=50)
        for phone in phones:
            assert phone.ssl is not None
        answers = await asyncio.gather(*(
            phone.request("POST", workers.device_url + "/device/v1/enroll", json_body=phone.enroll_body(code))
            for phone in phones))
        counted = collections.Counter((answer.status, answer["result"]) for answer in answers)
        print(f"\nEC-3 on 2 workers behind one port: {dict(counted)}")
        assert counted == {(200, "redirect"): 50, (422, "code_invalid"): 450}
        assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 50
        log = await enrollment_log(first)
        assert collections.Counter(e.status for e in log) == {"SUCCESS": 50, "FAIL": 450}
    finally:
        await admin.close()


async def test_a_killed_worker_is_started_again_and_sigterm_stops_all(workers: Workers) -> None:
    killed, other = workers.pids
    os.kill(killed, signal.SIGKILL)
    # Connections the kernel queued on the killed worker's socket before it closed are reset (the
    # price of SO_REUSEPORT): ask once the killed worker no longer listens.
    deadline = time.monotonic() + 10
    while killed in _pids(workers.admin_port) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    admin = await ApiClient(workers.admin_url).as_user("admin", ADMIN_PASSWORD)  # the other one answers
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listening = set(_pids(workers.admin_port)) & set(_pids(workers.device_port))
            if len(listening) == 2 and killed not in listening:
                break
            (await admin.get("/accounts", limit="1")).ok()
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"no new worker listens on both ports: {_pids(workers.admin_port)}")
        assert other in listening
        (await admin.get("/accounts", limit="1")).ok()
    finally:
        await admin.close()
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(timeout=40) == 0
    assert not any(_alive(pid) for pid in listening)
    for port in (workers.admin_port, workers.device_port):  # both ports are free again
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_workers_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    command = serve_command(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'enrollab.db'}", "--workers", "2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "workers-need-postgresql" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
