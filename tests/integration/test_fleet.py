"""Fleets (issue 4): simulated phones of every model against the reference server over real
sockets — mutual TLS to the device API, HTTPS to the harness's file server — and every outcome
compared with what Appendix A predicts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from harness.fileserver import FileServer
from harness.fleet_run import FILES_HOST, _pki_files, _target, provisioning_files, summary_table
from server.runner import SIMULATION_GUESSING, Running, ServeConfig, start
from simulators.capabilities import Capabilities
from simulators.fleet import FleetSpec, run_fleet
from simulators.mix import boundary_mix, parse_mix
from tests.conftest import ADMIN_PASSWORD, FakeClock

EQUAL = {"zero-touch": 1, "nec": 1, "pec": 1, "wrong-code": 1}


@pytest.fixture
async def server(tmp_path, db_url: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    """A fleet comes from one loopback address: its wrong-code phones would spend the
    per-address guessing budget of a production server, so the server is configured as the
    harness's embedded servers are (SIMULATION_GUESSING)."""
    cfg = ServeConfig(data_dir=tmp_path / "data", db_url=db_url, admin_port=0, guessing=SIMULATION_GUESSING)
    running = await start(cfg, admin_password=ADMIN_PASSWORD, clock=clock)
    yield running
    await running.stop()


async def fleet(server: Running, spec: FleetSpec, out: io.StringIO | None = None, before_boot=None):  # type: ignore[no-untyped-def]
    async with FileServer(provisioning_files(), cert_mode="public", hostnames=(FILES_HOST,)) as files:
        pki = server.opened.ctx.pki
        assert pki is not None
        target = _target(server.admin_url, "admin", ADMIN_PASSWORD, _pki_files(pki.layout.root.parent), files)
        return await run_fleet(spec, target, jsonl=out, before_boot=before_boot), files


async def test_every_model_at_versions_on_both_sides_of_each_minimum_does_what_appendix_a_predicts(
    server: Running,
) -> None:
    """Issue 4's must-show: every model at two or more versions, including versions below a
    feature's minimum; every outcome equals the matrix's prediction."""
    groups = boundary_mix(4)
    assert {g.model for g in groups} == set(Capabilities.load().models())
    assert all(sum(1 for g in groups if g.model == m) >= 2 for m in {g.model for g in groups})
    out = io.StringIO()
    result, files = await fleet(server, FleetSpec(groups, EQUAL, seed=11, concurrency=32, group=1), out)

    wrong = [(p.member, p.result, p.reason, p.expected) for p in result.unexpected]
    assert not wrong, wrong[:5]
    assert len(result.phones) == sum(g.count for g in groups)
    outcomes = Counter((p.result, p.reason) for p in result.phones)
    # The matrix's boundaries show up as distinct outcomes, each predicted.
    for seen in [
        ("provisioned", None),
        ("rejected", "manual-upgrade-required"),  # J100 1.5 (FW-4)
        ("rejected", "firmware-too-old"),  # claimed, below the minimum, FW-3 off
        ("rejected", "codes-not-supported"),  # J129 2.0: no code feature (ENR-3)
        ("locked", None),  # LCK-2
        ("code-invalid", None),  # a PEC typed on a version with only the 12-digit NEC
        ("manual-entry", "code-entry-cancelled"),  # a PEC on a B199: the phone refuses it
    ]:
        assert outcomes[seen] > 0, (seen, outcomes)
    # Group applied only where "Device group ID" is supported (ENR-4 omission, phone side).
    groups_applied = {
        (p.member.model, p.expected.firmware, p.group) for p in result.phones if p.result == "provisioned"
    }
    assert ("J129", "2.0", 0) in groups_applied and ("J129", "4.1.11.0.9", 1) in groups_applied
    # Provisioned phones fetched the model's upgrade script and the settings from the file server.
    assert "J100Supgrade.txt" in files.paths() and "K1xxSupgrade.txt" in files.paths()
    assert "46xxsettings.txt" in files.paths()
    # One JSON line per phone with its timeline.
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == len(result.phones)
    first = lines[0]
    assert first["as_expected"] is True and first["events"][0]["event"] == "power-on"
    assert {"mac", "serial", "model", "firmware", "arrangement", "result", "expected", "why"} <= set(first)
    table = summary_table(result)
    assert table.row_count == len(result.by_group())


async def test_a_phone_that_ignores_its_group_is_reported_unexpected(server: Running) -> None:
    """The fleet notices a non-conforming phone: the fault knob `ignore-group` keeps GROUP 0."""
    spec = FleetSpec(
        parse_mix("J179@4.1.11.0.9=3,B199@1.0.4.0=2"),
        {"zero-touch": 1, "nec": 0, "pec": 0, "wrong-code": 0},
        seed=5,
        group=7,
        faults=("ignore-group",),
    )
    result, _ = await fleet(server, spec)
    unexpected = {(p.member.model, p.group, p.expected.group) for p in result.unexpected}
    assert unexpected == {("J179", 0, 7)}  # the B199 has no group feature: 0 was right for it


async def test_before_boot_runs_after_the_arrangement_and_before_any_phone_boots(server: Running) -> None:
    """Shards that start together (bench/boot_storm.py): the hook sees every phone arranged on the
    server and none enrolled yet; every phone's first event comes after it."""
    seen: dict[str, object] = {}

    async def hook() -> None:
        async with server.opened.ctx.store.reading() as session:
            rows = (await session.execute(text("SELECT COUNT(*), COUNT(last_contact) FROM devices"))).one()
        seen["devices"], seen["contacted"], seen["at"] = rows[0], rows[1], time.time()

    spec = FleetSpec(parse_mix("J179@4.1.11.0.9=3"), {"zero-touch": 1, "nec": 0, "pec": 0, "wrong-code": 0})
    result, _ = await fleet(server, spec, before_boot=hook)
    assert (seen["devices"], seen["contacted"]) == (3, 0)
    assert all(p.result == "provisioned" for p in result.phones)
    assert min(p.events[0]["t"] for p in result.phones) >= seen["at"]  # type: ignore[operator]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    enrollab = Path(sys.executable).with_name("enrollab")
    return subprocess.run(
        [str(enrollab), "fleet", "run", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_cli_fleet_on_an_embedded_server_exits_0_and_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    done = run_cli("--mix", "K175@3.0=3,CU360@11.4.0.20=2", "--seed", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "every outcome equals the feature matrix's prediction (5/5)" in done.stderr
    assert "K175" in done.stderr and "CU360" in done.stderr
    assert len(out.read_text().splitlines()) == 5


def test_cli_fleet_exit_1_on_unexpected_outcomes(tmp_path: Path) -> None:
    done = run_cli("--mix", "J179@4.1.11.0.9=2", "--arrange", "zero-touch=1", "--fault", "ignore-group")
    assert done.returncode == 1, done.stderr
    assert "2 of 2 phones did not do what Appendix A predicts" in done.stderr


def test_cli_fleet_shards_partition_the_phones(tmp_path: Path) -> None:
    outs = []
    for shard in ("0/2", "1/2"):
        out = tmp_path / f"{shard.replace('/', 'of')}.jsonl"
        done = run_cli("--mix", "J169@4.1.11.0.9=5", "--seed", "9", "--shard", shard, "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert f"shard {shard}" in done.stderr
        outs.append([json.loads(line) for line in out.read_text().splitlines()])
    indexes = sorted(line["index"] for lines in outs for line in lines)
    assert indexes == [0, 1, 2, 3, 4]
    assert len({line["mac"] for lines in outs for line in lines}) == 5


def test_cli_fleet_refuses_bad_input_with_an_error_id() -> None:
    for args, error in (
        (("--mix", "J999@4.1=2"), "unknown-model"),
        (("--mix", "J179@4.1=2", "--shard", "3/2"), "invalid-shard"),
        (("--mix", "J179@4.1=2", "--arrange", "sideways=1"), "invalid-arrange"),
        (("--mix", "J179@4.1=2", "--server", "http://127.0.0.1:9/"), "admin-password-required"),
    ):
        done = run_cli(*args, env={"ENROLLAB_ADMIN_PASSWORD": ""})
        assert done.returncode == 2, (args, done.stderr)
        assert error in done.stderr and "Traceback" not in done.stderr
