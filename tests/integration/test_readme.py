"""The README's curl walk-through runs as printed against a real `enrollab serve` process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Platform-Admin-Pw-1"


def walkthrough(name: str = "walkthrough") -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
    return block.split("```bash", 1)[1].rsplit("```", 1)[0]


def workdir(tmp: Path) -> Path:
    """A scratch copy of the project root's layout: the walk-throughs write files where they run."""
    work = tmp / "work"
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "enrollab").symlink_to(Path(sys.executable).with_name("enrollab"))
    (work / "fixtures").symlink_to(ROOT / "fixtures")
    return work


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Path]]:
    yield from _serve(tmp_path, db_url)


@pytest.fixture
def served_tls(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Path]]:
    yield from _serve(tmp_path, db_url, "--admin-tls")


def _serve(tmp_path: Path, db_url: str, *options: str) -> Iterator[tuple[str, Path]]:
    enrollab = Path(sys.executable).with_name("enrollab")
    env = {**os.environ, "ENROLLAB_ADMIN_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [str(enrollab), "serve", "--data", str(tmp_path / "data"), "--db", db_url, "--admin-port", "0", *options],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"enrollab serve exited with {proc.returncode}")
            if m := re.search(r"(https?://\S+/api/v1)", line):
                url = m.group(1)
        assert url, "enrollab serve did not announce its URL"
        yield url, tmp_path / "data"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


NEEDS = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("openssl")),
    reason="the walk-throughs need curl, jq and openssl",
)


def run_blocks(served: tuple[str, Path], tmp_path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    url, data = served
    script = "set -euo pipefail\n" + "\n".join(walkthrough(n) for n in names)
    return subprocess.run(
        ["bash", "-c", script],
        cwd=workdir(tmp_path),
        env={**os.environ, "S": url, "D": str(data)},
        capture_output=True,
        text=True,
        timeout=180,
    )


@NEEDS
def test_readme_walkthrough_runs_as_printed(served: tuple[str, Path], tmp_path: Path) -> None:
    out = run_blocks(served, tmp_path, "walkthrough")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "403" in lines  # step 5: a reseller cannot create a reseller
    assert '"error":"account-type-not-allowed"' in out.stdout
    assert re.search(r'\{"code":"\d{8}","expires_at":"\d{4}-\d\d-\d\dT', out.stdout)  # step 7
    assert '{"total":1,"macs":["A4251B0C3D5E"]}' in out.stdout  # step 10
    assert "s3cret" not in out.stdout and "prov:****@" in out.stdout  # step 11, LOG-1 redaction
    assert out.stderr == ""


@NEEDS
def test_readme_device_walkthrough_runs_as_printed(served: tuple[str, Path], tmp_path: Path) -> None:
    out = run_blocks(served, tmp_path, "walkthrough", "device-walkthrough")
    assert out.returncode == 0, out.stdout + out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"result"')]
    results = [a["result"] for a in answers]
    # phone 1 redirected; phone 2 asked for a code, two wrong codes, the third locks it (LCK-2)
    assert results == ["redirect", "code_required", "code_invalid", "code_invalid", "locked"], answers
    assert answers[0]["provisioning"]["url"] == "https://files.contoso.example/$MODEL4/"
    assert answers[0]["provisioning"]["group"] == 3 and answers[0]["identity"]
    assert [a["attempts_left"] for a in answers[2:4]] == [2, 1]
    assert "subject=CN" in out.stdout and "A4251B0D0001" in out.stdout.split("subject=", 1)[1]  # EST
    # `enrollab pki export-ca` says where it wrote the CA; nothing else may reach stderr
    assert [line for line in out.stderr.splitlines() if not line.startswith("wrote ")] == []


@NEEDS
def test_readme_certificate_login_runs_as_printed(served_tls: tuple[str, Path], tmp_path: Path) -> None:
    """USR-3 with certificates openssl made and curl presents: tools we did not write."""
    out = run_blocks(served_tls, tmp_path, "certificate-login")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert '{"subject":"CN=Lab Login Root","certificate_login":true}' in lines, out.stdout
    assert '{"role":"platform","token":true}' in lines, out.stdout
    assert json.loads(lines[-1])["error"] == "certificate-required"
    assert [line for line in out.stderr.splitlines() if not line.startswith("wrote ")] == []
