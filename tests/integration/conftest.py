"""A running reference server per test, driven over HTTP on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.runner import Running, ServeConfig, start
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.integration.client import ApiClient


@pytest.fixture
async def server(tmp_path, db_url: str, clock: FakeClock) -> AsyncIterator[Running]:  # type: ignore[no-untyped-def]
    cfg = ServeConfig(data_dir=tmp_path / "data", db_url=db_url, admin_port=0)
    running = await start(cfg, admin_password=ADMIN_PASSWORD, clock=clock)
    yield running
    await running.stop()


@pytest.fixture
async def api(server: Running) -> AsyncIterator[ApiClient]:
    client = ApiClient(server.admin_url)
    yield client
    await client.close()


@pytest.fixture
async def admin(api: ApiClient) -> ApiClient:
    """The platform administrator, logged in."""
    return await api.as_user("admin", ADMIN_PASSWORD)


@pytest.fixture
def bench():  # type: ignore[no-untyped-def]
    """A lab in a box for physical-phone tests: the harness on the bridge (the lab namespace) and
    one phone host at .20 of the lab subnet; yields (lab, phone host, phone address)."""
    from harness.lab_network.netns import run_ip
    from tests.lab_tiers import lab_topology

    with lab_topology("enrollab-p") as lab:
        phone = lab.add_host("phone", "A4251B00E001")
        ip = str(lab.subnet.network_address + 20)
        run_ip("addr", "add", f"{ip}/{lab.subnet.prefixlen}", "dev", "eth0", netns=phone.netns)
        yield lab, phone, ip


@pytest.fixture
def postgres(db_backend: str | None) -> None:
    """Tests of several server processes on one database (issue 17) run on PostgreSQL only."""
    if db_backend is None:
        pytest.skip("several server processes share one PostgreSQL database (tox -e postgres); SQLite is one "
                    "server process per database file")


@pytest.fixture
async def first(postgres: None, tmp_path: Path, db_url: str) -> AsyncIterator[Running]:
    """The test's own server on tmp_path/data beside other server processes: its PKI makes the
    phones, its store is read."""
    running = await start(ServeConfig(data_dir=tmp_path / "data", db_url=db_url, admin_port=0, webhook_interval=0),
                          admin_password=ADMIN_PASSWORD)
    yield running
    await running.stop()
