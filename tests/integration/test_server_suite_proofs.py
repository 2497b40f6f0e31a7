"""Issue 5: the server suite can fail. The reference server is started with a deliberately broken
configuration — a feature matrix that claims a Vantage K175 takes IP-address URLs and the
provisioning enrollment code — and `enrollab conformance run --suite server` against it must
fail exactly the tests of the rules that configuration breaks (ENR-4, ENR-3), citing them,
while the rest of the suite still passes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PASSWORD = "Broken-Server-Pw-1"

# A server process whose Appendix A is wrong for the K175 (the "broken configuration").
BROKEN_SERVER = r"""
import asyncio, copy, sys
import fixtures, fixtures.features as features
doc = copy.deepcopy(fixtures.load_json("feature-matrix.json"))
doc["models"]["K175"]["minimums"]["provisioning-url-with-ip-address"] = "1.0"
doc["models"]["K175"]["minimums"]["provisioning-enrollment-code"] = "1.0"
broken = features.FeatureMatrix.from_documents(doc, fixtures.load_json("firmware-catalog.json"))
features._shipped_matrix = lambda: broken
from pathlib import Path
from server.runner import ServeConfig, serve_forever
def announce(running):
    print(running.admin_url, flush=True)
asyncio.run(serve_forever(ServeConfig(data_dir=Path(sys.argv[1]), admin_port=0), announce))
"""


def test_the_server_suite_fails_the_rules_a_broken_server_breaks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "ENROLLAB_ADMIN_PASSWORD": PASSWORD}
    server = subprocess.Popen(
        [sys.executable, "-c", BROKEN_SERVER, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 60
        url = ""
        while not url and time.monotonic() < deadline:
            line = server.stdout.readline()
            if re.match(r"http://\S+", line):
                url = line.strip()
        assert url, "the broken server did not start"
        lab = tmp_path / "lab.toml"
        lab.write_text(
            f'[server]\nurl = "{url}"\nadmin_login = "admin"\nadmin_password_env = "ENROLLAB_ADMIN_PASSWORD"\n'
            f'data = "{data}"\n\n[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
        )
        report = tmp_path / "report"
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("enrollab")),
                "conformance",
                "run",
                "--target",
                "sim",
                "--suite",
                "server",
                "--lab",
                str(lab),
                "--report-dir",
                str(report),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        budgets = _guessing_of(url)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((report / "report.json").read_text())
    failed = {t["name"]: t["rules"] for t in doc["tests"] if t["outcome"] == "fail"}
    assert failed == {
        "test_an_ip_address_url_is_never_sent_to_a_vantage": ["ENR-4"],
        "test_a_device_not_arranged_is_asked_for_the_codes_its_firmware_takes": ["ENR-3", "DEV-7"],
    }, failed
    assert doc["summary"]["error"] == 0
    assert doc["rules"]["ENR-4"]["fail"] == 1 and doc["rules"]["EC-3"]["fail"] == 0
    # The run raised the server's guessing budgets for its wrong-code probes, said so, and put them back.
    default = {"per_address": {"failures": 30, "minutes": 10}, "global": {"failures": 1000, "minutes": 10}}
    assert doc["provenance"]["server"]["guessing_relaxed_from"] == default
    assert budgets == default


def _guessing_of(url: str) -> dict[str, object]:
    def call(method: str, path: str, body: object = None, token: str = "") -> dict[str, object]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(url + "/api/v1" + path, data=data, headers=headers, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read())

    token = str(call("POST", "/auth/login", {"login": "admin", "password": PASSWORD})["token"])
    answer = call("GET", "/settings/guessing", token=token)
    return {k: answer[k] for k in ("per_address", "global")}
