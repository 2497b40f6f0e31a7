"""DEV-3 claim proof (issue 13) over a real socket: a label code and a claim's serial are secrets,
so no refusal echoes them — malformed ones included. Each malformed label code (wrong type, too
long, control characters, text the store cannot hold) is a 422 with a stable error id, and
neither the answer, the audit log (`GET /api/v1/logs`) nor any log line of the server holds it."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import device, fleet, wait_job

MAC = "A4251E000001"
SERIAL = "SNECHO0001"
MARK = "QZLEAKMARK"  # in every secret sent, and nowhere else: what must never come back

# (what is wrong, label_code as JSON text, the stable error id)
MALFORMED_LABEL_CODES = [
    ("an integer", "739182645", "invalid-body"),
    ("an integer beyond 32 bits", "7391826450" * 3, "integer-out-of-range"),
    ("a list", json.dumps([MARK]), "invalid-body"),
    ("an object", json.dumps({"code": MARK}), "invalid-body"),
    ("true", "true", "invalid-body"),
    ("empty", '""', "invalid-body"),
    ("over the schema's 64 characters", json.dumps(MARK + "X" * 60), "invalid-body"),
    ("over 32 letters and digits", json.dumps(MARK + "X" * 30), "invalid-label-code"),
    ("too short", json.dumps("Q1"), "invalid-label-code"),
    ("a C0 control character", json.dumps(MARK + "\x01"), "invalid-label-code"),
    ("DEL", json.dumps(MARK + "\x7f"), "invalid-label-code"),
    ("a C1 control character", json.dumps(MARK + "\u0085"), "invalid-label-code"),
    ("an escape sequence", json.dumps("\x1b[31m" + MARK), "invalid-label-code"),
    ("a newline (a forged log line)", json.dumps(MARK + "\nFAIL LOGIN admin"), "invalid-label-code"),
    ("punctuation", json.dumps(MARK + "!"), "invalid-label-code"),
    ("non-ASCII letters", json.dumps(MARK + "Ä"), "invalid-label-code"),
    ("NUL", json.dumps(MARK + "\x00"), "invalid-text"),
    ("a lone surrogate", '"' + MARK + '\\ud800"', "invalid-text"),
]


def _leaks(value_text: str) -> list[str]:
    """What of a sent value must not come back: the mark, or the integer's digits."""
    return [MARK] if MARK in value_text else [value_text[:8]]


async def _post_raw(client: ApiClient, path: str, text: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(client.base + "/api/v1" + path, data=text.encode(), headers=headers) as resp,
    ):
        return resp.status, await resp.text()


async def _everything_logged(admin: ApiClient) -> str:
    page = (await admin.get("/logs", limit="1000")).ok()
    return json.dumps(page, ensure_ascii=False)


def _claim_text(label_code_json: str, serial_json: str | None = None) -> str:
    serial = serial_json if serial_json is not None else json.dumps(SERIAL)
    return f'{{"mac": "{MAC}", "serial": {serial}, "label_code": {label_code_json}}}'


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every line the server logs (its own loggers at every level; libraries' debug output, such as
    the database driver's statement parameters, is not a log the server writes)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="enrollab")
    return caplog


async def test_dev3_a_malformed_label_code_is_a_422_that_echoes_nothing(
    server: Running, admin: ApiClient, server_log: pytest.LogCaptureFixture
) -> None:
    await fleet(admin, [device(MAC, serial=SERIAL)])
    sp = await admin.new_account("service_provider")
    answers = {}
    for what, value, error in MALFORMED_LABEL_CODES:
        status, text = await _post_raw(sp, "/devices/claim", _claim_text(value))
        body = json.loads(text)
        assert (status, body.get("error")) == (422, error), (what, text)
        assert isinstance(body.get("detail"), str) and body["detail"], (what, text)
        for leak in _leaks(value):
            assert leak not in text, (what, text)
        answers[what] = body

    logged = await _everything_logged(admin)
    fails = [e for e in json.loads(logged)["items"] if e["action"] == "claim_device" and e["status"] == "FAIL"]
    assert len(fails) == len(MALFORMED_LABEL_CODES)  # each refusal is audited (LOG-1) ...
    assert {e["message"].split(":")[0] for e in fails} == {error for _, _, error in MALFORMED_LABEL_CODES}
    for what, value, _ in MALFORMED_LABEL_CODES:
        for leak in _leaks(value):  # ... and none of them holds the code
            assert leak not in logged, what
            assert leak not in server_log.text, what
    # Input-only refusals cost no claim budget: the right proof still claims.
    (await sp.post("/devices/claim", {"mac": MAC, "serial": SERIAL})).ok()


async def test_dev3_a_wrong_or_malformed_serial_is_never_echoed(
    server: Running, admin: ApiClient, server_log: pytest.LogCaptureFixture
) -> None:
    await fleet(admin, [device(MAC, serial=SERIAL)])
    sp = await admin.new_account("service_provider")
    serials = [
        ("a wrong serial", json.dumps(MARK + "01"), 404, "device-not-found"),
        ("a serial with control characters", json.dumps(MARK + "\x01\n"), 404, "device-not-found"),
        ("an integer serial", "739182645", 422, "invalid-body"),
        ("a serial over 64 characters", json.dumps(MARK + "S" * 60), 422, "invalid-body"),
        ("a serial as a list", json.dumps([MARK]), 422, "invalid-body"),
    ]
    for what, value, status, error in serials:
        got, text = await _post_raw(sp, "/devices/claim", f'{{"mac": "{MAC}", "serial": {value}}}')
        assert (got, json.loads(text)["error"]) == (status, error), (what, text)
        for leak in _leaks(value):
            assert leak not in text, (what, text)
    logged = await _everything_logged(admin)
    for what, value, _, _ in serials:
        for leak in _leaks(value):
            assert leak not in logged and leak not in server_log.text, what
    # The right serial with a wrong label code: a right proof is not echoed either.
    await fleet(admin, [device("A4251E000002", serial=MARK + "RIGHT")])
    (await admin.post("/devices/label-codes", {"codes": [{"mac": "A4251E000002", "label_code": "LBL24680"}]})).ok()
    ans = await sp.post("/devices/claim", {"mac": "A4251E000002", "serial": MARK + "RIGHT", "label_code": "LBL24681"})
    assert (ans.status, ans["error"]) == (404, "device-not-found")
    assert MARK not in json.dumps(ans.body) and MARK not in await _everything_logged(admin)


async def test_dev3_label_code_uploads_and_claim_jobs_echo_no_proof(
    server: Running, admin: ApiClient, server_log: pytest.LogCaptureFixture
) -> None:
    await fleet(admin, [device(MAC, serial=SERIAL)])
    sp = await admin.new_account("service_provider")
    shown: list[str] = []
    # The importer's label-code upload: a refused code names its device, never itself.
    for value in (json.dumps(MARK + "\x01"), json.dumps(MARK + "X" * 60), "739182645"):
        status, text = await _post_raw(
            admin, "/devices/label-codes", f'{{"codes": [{{"mac": "{MAC}", "label_code": {value}}}]}}'
        )
        assert status == 422 and json.loads(text)["error"] in ("invalid-label-code", "invalid-body"), text
        shown.append(text)
    # A claim job: malformed label codes and serials refuse the body, unquoted.
    for entry in (
        f'{{"mac": "{MAC}", "serial": "{SERIAL}", "label_code": "{MARK}!"}}',
        f'{{"mac": "{MAC}", "serial": "{SERIAL}", "label_code": ["{MARK}"]}}',
        f'{{"mac": "{MAC}", "serial": "{MARK}{"S" * 60}"}}',
    ):
        status, text = await _post_raw(sp, "/jobs", f'{{"name": "claim", "actions": ["claim"], "devices": [{entry}]}}')
        assert status == 422 and json.loads(text)["error"] in ("invalid-label-code", "invalid-body"), text
        shown.append(text)
    # A claim file: a row with a malformed MAC is named by its row, not by its serial.
    csv_text = f"mac,serial,label_code\nnot-a-mac,{MARK}ROW2,\n{MAC},{MARK}ROW3,{MARK}!\n"
    ans = await sp.call(
        "POST",
        "/jobs/upload",
        data=csv_text.encode(),
        content_type="text/csv",
        params={"name": "claim file", "actions": "claim"},
    )
    assert ans.status == 202, ans.body
    job = await wait_job(sp, ans["id"])
    rows = {r["row"]: (r["subject"], r["reason"]) for r in job["results"]["items"]}
    assert rows == {2: ("row 2", "invalid-mac"), 3: (MAC, "invalid-label-code")}
    shown.append(json.dumps(job))
    shown.append((await sp.call("GET", f"/jobs/{ans['id']}/export", params={"format": "csv"})).body)
    shown.append(await _everything_logged(admin))
    everything = "\n".join(shown)
    assert MARK not in everything and "739182645" not in everything
    assert MARK not in server_log.text
