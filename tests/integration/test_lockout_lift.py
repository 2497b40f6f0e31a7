"""LCK-2 (issue 13): lifting a code lockout with `POST /devices/unlock`, over real sockets — the
device side over mutual TLS (PROTOCOL §2), the administrators over the admin API.

A device that types codes is unclaimed, so no partner holds it: the platform administrator
lifts its lock; afterwards the right code enrolls and claims it (EC-7). A partner lifts locks of
the devices its hierarchy holds only (ACC-7); every lift is in the log with the state it found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from server.runner import Running
from server.store.models import AuditLog
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Phone,
    device_row,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
)


def _wrong(code: str) -> str:
    return "00000000" if code != "00000000" else "11111111"


async def _locked_phone(server: Running, admin: ApiClient) -> tuple[Phone, str, str]:
    """An imported, approved, unclaimed phone locked by three wrong codes; the right code, the customer id."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site)
    answers = [await phone.enroll(code=_wrong(code)) for _ in range(3)]
    assert [a["result"] for a in answers] == ["code_invalid", "code_invalid", "locked"]
    assert (await phone.enroll(code=code)).status == 423  # the right code too, while locked
    return phone, code, cust.id


async def _unlock_log(server: Running) -> list[AuditLog]:
    async with server.opened.ctx.store.transaction() as s:
        stmt = select(AuditLog).where(AuditLog.action == "unlock_devices").order_by(AuditLog.id)
        return list(await s.scalars(stmt))


async def test_lck2_platform_unlocks_an_unclaimed_device_and_the_right_code_then_enrolls_and_claims(
    server: Running, admin: ApiClient
) -> None:
    phone, code, customer_id = await _locked_phone(server, admin)
    # Activation is a holder's action; the platform holds no devices (the defect of issue 13).
    refused = await admin.post("/devices/activate", {"macs": [phone.mac]})
    assert (refused.status, refused["error"]) == (403, "forbidden-role")

    answer = (await admin.post("/devices/unlock", {"macs": [phone.mac.lower()]})).ok()

    (only,) = answer["results"]
    assert (only["mac"], only["status"]) == (phone.mac, "SUCCESS")
    assert only["was"]["locked"] is True and only["was"]["failed_attempts"] == 3
    assert answer["summary"] == {"succeeded": 1, "failed": 0}
    row = await device_row(server, phone.mac)
    assert (row.failed_attempts, row.locked_until, row.owner_id) == (0, None, None)
    enrolled = await phone.enroll(code=code)
    assert (enrolled.status, enrolled["result"]) == (200, "redirect"), enrolled.body
    assert (await device_row(server, phone.mac)).owner_id == customer_id  # EC-7
    (entry_,) = await _unlock_log(server)
    assert entry_.status == "SUCCESS" and entry_.login == "admin"
    assert phone.mac in entry_.message and "locked until" in entry_.message and "3 wrong codes" in entry_.message


async def test_lck2_unlock_resets_a_count_below_the_limit_and_answers_per_device(
    server: Running, admin: ApiClient
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    code = await nec(cust.sp, await new_site(cust.sp, cust.id, entry()))
    await phone.enroll(code=_wrong(code))
    await phone.enroll(code=_wrong(code))

    answer = (await admin.post("/devices/unlock", {"macs": [phone.mac, "A4251BFFFFFF"]})).ok()

    assert [(r["mac"], r["status"]) for r in answer["results"]] == [(phone.mac, "SUCCESS"), ("A4251BFFFFFF", "FAIL")]
    assert answer["results"][0]["was"] == {"locked": False, "failed_attempts": 2, "locked_until": None}
    assert answer["results"][1]["reason"] == "device-not-found"
    # The count starts again: two more wrong codes leave one attempt, not a lock.
    await phone.enroll(code=_wrong(code))
    again = await phone.enroll(code=_wrong(code))
    assert (again.status, again["attempts_left"]) == (422, 1)


async def test_lck2_acc7_a_partner_unlocks_only_devices_its_hierarchy_holds(
    server: Running, admin: ApiClient
) -> None:
    phone, code, _ = await _locked_phone(server, admin)
    stranger = await admin.new_account("service_provider")
    # Unclaimed: outside every partner's hierarchy, answered like a missing device.
    ans = await stranger.post("/devices/unlock", {"macs": [phone.mac]})
    assert (ans.status, ans["error"]) == (404, "device-not-found")
    assert (await device_row(server, phone.mac)).locked_until is not None
    (await stranger.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    held = (await stranger.post("/devices/unlock", {"macs": [phone.mac]})).ok()
    assert held["results"][0]["was"]["locked"] is True
    assert (await device_row(server, phone.mac)).locked_until is None
    (first, second) = await _unlock_log(server)
    assert (first.status, second.status) == ("FAIL", "SUCCESS")
    assert first.login == second.login == stranger.login_name


async def test_lck2_manufacturers_may_not_unlock(server: Running, admin: ApiClient) -> None:
    phone, _, _ = await _locked_phone(server, admin)
    maker = await admin.new_account("manufacturer")
    ans = await maker.post("/devices/unlock", {"macs": [phone.mac]})
    assert (ans.status, ans["error"]) == (403, "forbidden-role")


# A server process without `POST /devices/unlock`, as a third-party server written before it.
WITHOUT_UNLOCK = r"""
import asyncio, sys
from pathlib import Path
import server.api.devices as devices
devices.api.routes[:] = [r for r in devices.api.routes if r.path != "/devices/unlock"]
from server.runner import ServeConfig, serve_forever
def announce(running):
    print(running.admin_url, flush=True)
asyncio.run(serve_forever(ServeConfig(data_dir=Path(sys.argv[1]), admin_port=0), announce))
"""


def test_lck2_the_server_suite_fails_a_server_without_unlock_citing_lck2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "ENROLLAB_ADMIN_PASSWORD": "Unlock-Less-Pw-1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_UNLOCK, str(data)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # the server prints its admin URL once it listens
        assert url.startswith("http://"), "the server did not start"
        lab = tmp_path / "lab.toml"
        lab.write_text(
            f'[server]\nurl = "{url}"\nadmin_login = "admin"\nadmin_password_env = "ENROLLAB_ADMIN_PASSWORD"\n'
            f'data = "{data}"\n\n[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
        )
        report = tmp_path / "report"
        done = subprocess.run(
            [str(Path(sys.executable).with_name("enrollab")), "conformance", "run", "--target", "sim",
             "--suite", "server", "--lab", str(lab), "--report-dir", str(report), "-k", "test_lockout"],
            capture_output=True, text=True, env=env, timeout=300,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((report / "report.json").read_text())
    outcomes = {t["name"]: (t["outcome"], t["rules"], t.get("message") or "") for t in doc["tests"]}
    name = "test_the_platform_lifts_the_lockout_of_an_unclaimed_device_and_the_right_code_then_enrolls_and_claims"
    outcome, rules, message = outcomes.pop(name)
    assert (outcome, rules) == ("fail", ["LCK-2", "EC-7"])
    assert "LCK-2" in message and "POST /api/v1/devices/unlock answered 4" in message, message
    assert {o for o, _, _ in outcomes.values()} == {"pass"}, outcomes
