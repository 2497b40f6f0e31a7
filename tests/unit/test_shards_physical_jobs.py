"""Shards of a run with several physical phones (`[options] physical_jobs`, harness.shards): how
the phones are dealt, what the lab file accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import LabError
from harness.lab import parse_lab
from harness.shards import default_jobs, end_shard, plan_shards

PHYSICAL = ('[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.0"\nmac = "A4251B00000{n}"\n'
            'ip = "10.0.0.{n}"\nreboot = "sip-notify"\n')


def test_physical_phones_are_dealt_over_up_to_physical_jobs_bench_shards() -> None:
    drivers = ["physical", "simulated", "physical", "physical", "simulated"]
    assert plan_shards(drivers, 3, 2) == [[0, 3], [2], [1, 4]]  # two benches, the simulated ones beside them
    assert plan_shards(drivers, 8, 3) == [[0], [2], [3], [1], [4]]  # one phone per bench shard
    assert plan_shards(drivers, 8, 8) == [[0], [2], [3], [1], [4]]  # never more benches than phones


def test_jobs_bound_the_bench_shards_and_the_simulated_devices_keep_one() -> None:
    drivers = ["physical", "physical", "simulated"]
    assert plan_shards(drivers, 2, 2) == [[0, 1], [2]]  # --jobs 2: one bench beside one simulated shard
    assert plan_shards(drivers, 1, 4) == [[0, 1], [2]]  # --jobs 1 here still separates the kinds
    assert plan_shards(["physical"] * 4, 3, 4) == [[0, 3], [1], [2]]  # no simulated device: all jobs benches


def test_the_labs_concurrency_bounds_the_simulated_shards_jobs_the_machines() -> None:
    drivers = ["simulated"] * 6 + ["physical"]
    assert plan_shards(drivers, 8, 1, concurrency=2) == [[6], [0, 2, 4], [1, 3, 5]]  # the lab: 2 at once
    assert plan_shards(drivers, 3, 1, concurrency=4) == [[6], [0, 2, 4], [1, 3, 5]]  # the machine: 3 jobs
    assert plan_shards(["simulated"] * 3, 8, concurrency=1) == [[0, 1, 2]]  # one after another


def test_one_physical_job_is_todays_single_bench_shard() -> None:
    drivers = ["simulated", "physical", "simulated", "physical", "simulated"]
    assert plan_shards(drivers, 3, 1) == plan_shards(drivers, 3) == [[1, 3], [0, 4], [2]]


def test_the_lab_file_takes_physical_jobs_and_defaults_to_one() -> None:
    two = "[options]\nphysical_jobs = 2\n" + PHYSICAL.format(n=1) + PHYSICAL.format(n=2)
    assert parse_lab(two).options.physical_jobs == 2
    assert parse_lab(PHYSICAL.format(n=1)).options.physical_jobs == 1


@pytest.mark.parametrize(("value", "says"), [("0", "minimum"), ("65", "maximum"), ('"2"', "is not an integer"),
                                             ("true", "is not an integer")])
def test_a_bad_physical_jobs_names_the_line_and_the_field(value: str, says: str) -> None:
    with pytest.raises(LabError) as caught:
        parse_lab(f"[options]\nphysical_jobs = {value}\n" + PHYSICAL.format(n=1))
    message = str(caught.value)
    assert "options.physical_jobs" in message and ":2:" in message, message


def test_without_jobs_a_mixed_lab_runs_its_bench_beside_the_simulated_devices() -> None:
    mixed = ["simulated", "physical", "simulated", "physical"]
    assert default_jobs(mixed, ["server", "device"]) == 3  # server suite, one bench, one simulated shard
    assert default_jobs(mixed, ["device"], physical_jobs=2) == 3  # two benches and one simulated shard
    assert plan_shards(mixed, default_jobs(mixed, ["device"])) == [[1, 3], [0, 2]]
    for drivers in (["simulated"] * 3, ["physical"] * 2):
        assert default_jobs(drivers, ["server", "device"]) == 1  # one kind: one process, as always
    assert default_jobs(mixed, ["server"]) == 1  # no device suite: nothing to run side by side


SHARD = """
import pathlib, sys, time
try:
    pathlib.Path(sys.argv[1]).write_text("started")
    time.sleep(600)
finally:  # what pytest's teardowns are on an interrupt: the namespaces go away
    pathlib.Path(sys.argv[1]).write_text("torn down")
"""


def test_an_interrupted_run_lets_a_running_shard_tear_down_before_it_would_kill_it(tmp_path: Path) -> None:
    marker = tmp_path / "shard"
    shard = subprocess.Popen([sys.executable, "-c", SHARD, str(marker)])
    try:
        while not marker.exists():  # bounded by the suite's timeout
            shard.poll()
            assert shard.returncode is None
        end_shard(shard, grace=60)
    finally:
        if shard.poll() is None:
            shard.kill()
            shard.wait()
    assert marker.read_text() == "torn down"
    end_shard(shard)  # one that has ended: nothing to do
