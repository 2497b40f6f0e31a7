"""Bulk device jobs over the admin API: action sets and roles (DEV-9), per-device results and
export (DEV-10), selecting all devices of an account (DEV-12) or by label (DEV-8), selecting
devices by an uploaded CSV file (DEV-9, DEV-12), and resuming or failing the jobs a stopped server
left IN PROGRESS (DEV-10)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import zipfile
from typing import Any

from server.api import jobs
from server.runner import Running, ServeConfig, start
from server.store.models import Job, JobResult
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import (
    SERIAL_OF,
    claim_all,
    device,
    fleet,
    macs_for,
    profile_and_site,
    search,
    wait_job,
)


def proofs(macs: list[str]) -> list[dict[str, str]]:
    """DEV-3: a claim job's devices, each with the serial printed on its box (a made-up one for
    a MAC never imported)."""
    return [{"mac": mac, "serial": SERIAL_OF.get(mac, "SNNOSUCH")} for mac in macs]


async def test_dev12_a_job_on_all_devices_of_the_account(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    mine = await fleet(admin, [device(m) for m in macs_for("A42530", 3)])
    await claim_all(sp, mine)
    # A device held by a child account is not "held by the acting account".
    site = await profile_and_site(sp, customer.account_id)
    (await sp.post("/devices/associate", {"macs": mine[2:], "account_id": customer.account_id, "site_id": site})).ok()
    ans = await sp.post("/jobs", {"name": "activate all", "actions": ["Activate"], "all": True})
    assert ans.status == 202, ans.body
    assert ans["status"] == "IN PROGRESS" and ans["total"] == 2
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "COMPLETE"
    assert job["summary"]["succeeded"] == 2 and job["summary"]["failed"] == 0
    assert {(r["subject"], r["status"]) for r in job["results"]["items"]} == {
        (mine[0], "SUCCESS"),
        (mine[1], "SUCCESS"),
    }
    active = await search(sp, {"all": [{"field": "activated", "op": "eq", "value": True}]})
    assert [d["mac"] for d in active["items"]] == mine[:2]


async def test_dev9_claim_associate_activate_in_one_job(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    macs = await fleet(admin, [device(m) for m in macs_for("A42531", 3)])
    ans = await sp.post(
        "/jobs",
        {
            "name": "roll-out",
            "actions": ["claim", "associate", "activate"],
            "devices": proofs(macs),
            "account_id": customer.account_id,
            "site_id": site,
        },
    )
    assert ans.status == 202, ans.body
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "COMPLETE", job
    ready = await search(customer, {"all": [{"field": "site_id", "op": "eq", "value": site}]})
    assert ready["total"] == 3 and all(d["zero_touch_ready"] for d in ready["items"])


async def test_dev10_a_job_with_failures_reports_each_reason(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider")
    approved = await fleet(admin, [device(m) for m in macs_for("A42532", 2)])
    pending = await fleet(admin, [device("A42532AAAAAA")], approve=False)
    await claim_all(other, approved[1:])
    macs = [*approved, *pending, "A42532FFFFFF"]
    ans = (await sp.post("/jobs", {"name": "claim mixed", "actions": ["claim"], "devices": proofs(macs)})).ok()
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "FAIL"
    assert job["summary"]["succeeded"] == 1 and job["summary"]["failed"] == 3
    reasons = {r["subject"]: (r["status"], r["reason"]) for r in job["results"]["items"]}
    assert reasons == {
        approved[0]: ("SUCCESS", None),
        approved[1]: ("FAIL", "already-claimed"),
        pending[0]: ("FAIL", "not-approved"),
        "A42532FFFFFF": ("FAIL", "device-not-found"),
    }
    # The device that could be claimed was, although the job failed.
    assert (await sp.get(f"/devices/{approved[0]}")).ok()["owner_id"] == sp.account_id
    failed_only = (await sp.get(f"/jobs/{ans['id']}", status="FAIL")).ok()
    assert failed_only["results"]["total"] == 3


async def test_dev9_invalid_action_sets_are_refused(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42533000001")])
    for actions in (
        ["claim", "release"],
        ["activate", "deactivate"],
        ["associate", "release"],
        ["reboot"],
        ["activate", "activate"],
    ):
        ans = await sp.post("/jobs", {"name": "bad", "actions": actions, "macs": macs})
        assert ans.status == 422 and ans["error"] == "invalid-action-set", (actions, ans.body)
    assert (await sp.get("/jobs")).ok()["total"] == 0


async def test_dev9_an_action_the_role_lacks_is_forbidden(admin: ApiClient) -> None:
    """DEV-9: which actions exist depends on the role. Resellers hold every action in the role
    table (ROLE_ACTIONS), so the role without some is the customer: no Disassociate, no Sync."""
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    macs = await fleet(admin, [device("A42534000001")])
    for actions in (["sync"], ["disassociate"]):
        ans = await customer.post("/jobs", {"name": "not mine", "actions": actions, "macs": macs})
        assert ans.status == 403 and ans["error"] == "action-not-allowed", ans.body
    # The platform runs no device jobs at all.
    ans = await admin.post("/jobs", {"name": "platform", "actions": ["activate"], "macs": macs})
    assert ans.status == 403


async def test_dev9_selection_must_be_one_and_not_empty(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42535000001")])
    ans = await sp.post("/jobs", {"name": "x", "actions": ["activate"]})
    assert ans.status == 422 and ans["error"] == "invalid-selection"
    ans = await sp.post("/jobs", {"name": "x", "actions": ["activate"], "macs": macs, "all": True})
    assert ans.status == 422 and ans["error"] == "invalid-selection"
    ans = await sp.post("/jobs", {"name": "x", "actions": ["claim"], "all": True})
    assert ans.status == 422 and ans["error"] == "invalid-selection"
    ans = await sp.post("/jobs", {"name": "x", "actions": ["activate"], "all": True})
    assert ans.status == 422 and ans["error"] == "no-devices"
    ans = await sp.post("/jobs", {"name": "x", "actions": ["associate"], "macs": macs})
    assert ans.status == 422 and ans["error"] == "association-target-required"


async def test_dev8_labels_select_the_devices_of_a_job(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42536", 3)])
    lobby = (await sp.post("/labels", {"name": "lobby"})).ok()
    # Claim attaches the job's labels to the devices it claims (the guide's "Associate with labels").
    body = {"name": "claim", "actions": ["claim"], "devices": proofs(macs[:2]), "labels": ["lobby"]}
    job = (await sp.post("/jobs", body)).ok()
    assert (await wait_job(sp, job["id"]))["status"] == "COMPLETE"
    await claim_all(sp, macs[2:])
    job = (await sp.post("/jobs", {"name": "by label", "actions": ["activate"], "labels": [lobby["id"]]})).ok()
    assert job["total"] == 2
    done = await wait_job(sp, job["id"])
    assert sorted(r["subject"] for r in done["results"]["items"]) == macs[:2]
    states = {d["mac"]: d["activated"] for d in (await search(sp))["items"]}
    assert states == {macs[0]: True, macs[1]: True, macs[2]: False}
    ans = await sp.post("/jobs", {"name": "x", "actions": ["activate"], "labels": ["no such label"]})
    assert ans.status == 404 and ans["error"] == "label-not-found"


async def test_dev10_job_export_parses_back(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42537", 2)])
    body = {"name": "export me", "actions": ["claim"], "devices": proofs([*macs, "A42537FFFFFF"])}
    job = (await sp.post("/jobs", body)).ok()
    await wait_job(sp, job["id"])
    ans = await sp.get(f"/jobs/{job['id']}/export", format="json")
    assert ans.status == 200
    assert ans["job"]["id"] == job["id"] and ans["job"]["status"] == "FAIL"
    # A claim's unproven devices are refused when the job is created: their results come first.
    assert [(r["subject"], r["status"], r["reason"]) for r in ans["results"]] == [
        ("A42537FFFFFF", "FAIL", "device-not-found"),
        (macs[0], "SUCCESS", None),
        (macs[1], "SUCCESS", None),
    ]
    ans = await sp.call("GET", f"/jobs/{job['id']}/export", params={"format": "csv"})
    assert ans.status == 200
    rows = list(csv.DictReader(io.StringIO(ans.body)))
    assert list(rows[0]) == ["subject", "file", "row", "field", "status", "reason", "detail"]
    assert [(r["subject"], r["status"], r["reason"]) for r in rows] == [
        ("A42537FFFFFF", "FAIL", "device-not-found"),
        (macs[0], "SUCCESS", ""),
        (macs[1], "SUCCESS", ""),
    ]


async def test_dev10_import_job_export_lists_rejected_rows(admin: ApiClient) -> None:
    data = json.dumps({"devices": [device("A42538000001"), {"mac": "A42538000002", "serial": "S"}]}).encode()
    job = (await admin.post("/devices/import", data=data, content_type="application/json")).ok()
    ans = await admin.call("GET", f"/jobs/{job['id']}/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(ans.body)))
    assert [(r["row"], r["field"], r["status"], r["reason"]) for r in rows] == [("2", "model", "FAIL", "missing-field")]


async def test_acc7_jobs_of_another_provider_are_invisible(admin: ApiClient) -> None:
    sp1 = await admin.new_account("service_provider")
    sp2 = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42539000001")])
    job = (await sp1.post("/jobs", {"name": "mine", "actions": ["claim"], "devices": proofs(macs)})).ok()
    await wait_job(sp1, job["id"])
    assert (await sp2.get(f"/jobs/{job['id']}")).status == 404
    assert (await sp2.get(f"/jobs/{job['id']}/export")).status == 404
    assert (await sp2.get("/jobs")).ok()["total"] == 0
    listed = (await sp1.get("/jobs", status="COMPLETE")).ok()
    assert [j["name"] for j in listed["items"]] == ["mine"]
    assert (await admin.get("/jobs", kind="devices")).ok()["total"] == 1


# --- POST /jobs/upload: devices selected by a CSV file --------------------------------------------


async def upload(client: ApiClient, text: str | bytes, content_type: str = "text/csv", **params: str) -> Any:
    data = text.encode() if isinstance(text, str) else text
    params.setdefault("name", "from file")
    return await client.call("POST", "/jobs/upload", data=data, content_type=content_type, params=params)


async def test_dev9_upload_a_csv_file_claims_associates_and_activates(admin: ApiClient) -> None:
    """DEV-9: the guide's bulk job from an uploaded file — MACs in any PROTOCOL §1 form, each
    with its serial number (DEV-3 claim proof); each result names its file row."""
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    devs = [device(m) for m in macs_for("A42540", 3)]
    macs = await fleet(admin, devs)
    text = (
        "mac,serial,model\n"
        f"a4:25:40:00:00:01,{devs[0]['serial']},J179\n"  # lower case with colons
        f"A42540000002,{devs[1]['serial']},J179\n"
        f"A4-25-40-00-00-03,{devs[2]['serial']},J179\n"
    )
    ans = await upload(
        sp,
        text,
        name="roll-out",
        actions="claim, associate,activate",
        account_id=customer.account_id,
        site_id=str(site),
    )
    assert ans.status == 202, ans.body
    assert ans["total"] == 3 and ans["refused"] == 0 and ans["status"] == "IN PROGRESS"
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "COMPLETE", job
    assert job["name"] == "roll-out" and job["actions"] == ["claim", "associate", "activate"]
    assert [(r["subject"], r["row"], r["status"]) for r in job["results"]["items"]] == [
        (macs[0], 2, "SUCCESS"),
        (macs[1], 3, "SUCCESS"),
        (macs[2], 4, "SUCCESS"),
    ]
    ready = await search(customer, {"all": [{"field": "site_id", "op": "eq", "value": site}]})
    assert ready["total"] == 3 and all(d["zero_touch_ready"] for d in ready["items"])


async def test_dev10_upload_bad_rows_fail_with_row_and_reason_the_rest_runs(admin: ApiClient) -> None:
    """DEV-10: rows that select no device are FAIL results (row, field, reason); the others run."""
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider")
    devs = [device(m) for m in macs_for("A42541", 4)]
    macs = await fleet(admin, devs)
    await claim_all(sp, macs[:3])
    await claim_all(other, macs[3:])  # outside sp's hierarchy: reads as not found (ACC-7)
    text = (
        "serial,mac,note\n"  # row 1
        f",{macs[0]}\n"  # row 2: fine
        ",A4:25:41:ZZ:00:01\n"  # row 3: not a MAC
        ",A42541FFFFFF\n"  # row 4: no such device
        f",{macs[3]}\n"  # row 5: another provider's device
        "SN-NO-SUCH,\n"  # row 6: no such serial number
        f"{devs[0]['serial']},\n"  # row 7: the device row 2 selects
        f"{devs[2]['serial']},{macs[1]}\n"  # row 8: MAC and serial of two devices
        "\n"  # row 9: blank, selects nothing and is no error
        ",,forgot the device\n"  # row 10: neither MAC nor serial
        f",{macs[2]},,extra\n"  # row 11: more cells than columns
        f"{devs[1]['serial']},\n"  # row 12: fine, by serial
    )
    ans = await upload(sp, text, actions="activate")
    assert ans.status == 202, ans.body
    assert ans["total"] == 10 and ans["refused"] == 8
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "FAIL"
    assert job["summary"]["succeeded"] == 2 and job["summary"]["failed"] == 8 and job["summary"]["done"] == 10
    failed = (await sp.get(f"/jobs/{ans['id']}", status="FAIL")).ok()["results"]["items"]
    assert [(r["row"], r["field"], r["reason"]) for r in failed] == [
        (3, "mac", "invalid-mac"),
        (4, "mac", "device-not-found"),
        (5, "mac", "device-not-found"),
        (6, "serial", "device-not-found"),
        (7, "serial", "duplicate-device"),
        (8, "serial", "mac-serial-mismatch"),
        (10, "mac", "missing-field"),
        (11, None, "extra-cells"),
    ]
    assert "A4:25:41:ZZ:00:01" in failed[0]["detail"]
    assert "row 2" in failed[4]["detail"]
    succeeded = (await sp.get(f"/jobs/{ans['id']}", status="SUCCESS")).ok()["results"]["items"]
    assert [(r["subject"], r["row"]) for r in succeeded] == [(macs[0], 2), (macs[1], 12)]
    states = {d["mac"]: d["activated"] for d in (await search(sp))["items"]}
    assert states == {macs[0]: True, macs[1]: True, macs[2]: False}
    assert (await other.get(f"/devices/{macs[3]}")).ok()["activated"] is False
    # The export carries the row numbers too.
    exported = await sp.call("GET", f"/jobs/{ans['id']}/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(exported.body)))
    assert sorted(int(r["row"]) for r in rows) == [2, 3, 4, 5, 6, 7, 8, 10, 11, 12]


async def test_dev10_upload_where_every_row_is_refused_still_reports_a_job(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ans = await upload(sp, "mac\nA42542FFFFF1\nnot-a-mac\n", actions="activate")
    assert ans.status == 202, ans.body
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "FAIL" and job["summary"]["failed"] == 2 and job["summary"]["succeeded"] == 0
    assert [r["reason"] for r in job["results"]["items"]] == ["device-not-found", "invalid-mac"]


async def test_dev9_upload_refuses_an_empty_or_non_csv_body_whole(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42543000001")])
    await claim_all(sp, macs)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("devices.csv", f"mac\n{macs[0]}\n")
    for body, ctype, error in (
        (b"", "text/csv", "job-file-empty"),
        (b"\xef\xbb\xbf \n\n", "text/csv", "job-file-empty"),
        (b"mac,serial\n\n", "text/csv", "job-file-empty"),  # a header, no device rows
        (json.dumps({"macs": macs}).encode(), "text/csv", "job-file-not-csv"),
        (archive.getvalue(), "application/octet-stream", "job-file-not-csv"),
        (b"model,hardware\nJ179,1\n", "text/csv", "job-file-not-csv"),  # no mac or serial column
        (b"mac,mac\nA42543000001,A42543000001\n", "text/csv", "job-file-not-csv"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "application/octet-stream", "job-file-not-csv"),
        (f"mac\n{macs[0]}\n".encode(), "application/json", "job-file-not-csv"),
        (f"mac\n{macs[0]}\n".encode("utf-16"), "text/csv", "job-file-bad-encoding"),
        (b"mac,serial\nA42543000001,S\xe9rie\n", "text/csv", "job-file-bad-encoding"),  # Latin-1
    ):
        ans = await upload(sp, body, ctype, actions="activate")
        assert ans.status == 422 and ans["error"] == error, (body[:40], ans.body)
        assert ans["detail"]
    # Parameters are checked too, before the file.
    for params, status, error in (
        ({"actions": "activate", "name": ""}, 422, "invalid-query"),
        ({"name": "x"}, 422, "invalid-query"),
        ({"actions": "claim,release"}, 422, "invalid-action-set"),
        ({"actions": "associate"}, 422, "association-target-required"),
        ({"actions": "associate", "site_id": "seven"}, 422, "invalid-query"),
        ({"actions": "associate", "account_id": "123"}, 422, "invalid-query"),
        ({"actions": "associate", "account_id": "99999999"}, 404, "account-not-found"),
        ({"actions": "sync,activate"}, 422, "invalid-action-set"),
    ):
        ans = await upload(sp, f"mac\n{macs[0]}\n", **params)
        assert ans.status == status and ans["error"] == error, (params, ans.body)
    # Nothing was started, nothing changed.
    assert (await sp.get("/jobs")).ok()["total"] == 0
    assert (await sp.get(f"/devices/{macs[0]}")).ok()["activated"] is False


async def test_dev9_upload_respects_the_roles_actions(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    ans = await upload(customer, "mac\nA42544000001\n", actions="sync")
    assert ans.status == 403 and ans["error"] == "action-not-allowed"
    manufacturer = await admin.new_account("manufacturer")
    ans = await upload(manufacturer, "mac\nA42544000001\n", actions="activate")
    assert ans.status == 403 and ans["error"] == "forbidden-role"


async def test_dev12_upload_selects_more_devices_than_one_batch(admin: ApiClient) -> None:
    """DEV-12: a file selecting many devices (more than a background batch), `;`-separated with
    a UTF-8 BOM and CRLF line ends as a spreadsheet saves it."""
    sp = await admin.new_account("service_provider")
    n = jobs.BATCH * 2 + 7
    macs = await fleet(admin, [device(m) for m in macs_for("A42545", n)])
    text = "\ufeffMAC;Serial;Model\r\n" + "".join(f"{m};{SERIAL_OF[m]};J179\r\n" for m in macs)
    ans = await upload(sp, text.encode(), "application/vnd.ms-excel", actions="claim")
    assert ans.status == 202, ans.body
    assert ans["total"] == n
    job = await wait_job(sp, ans["id"], timeout=30)
    assert job["status"] == "COMPLETE", job["summary"]
    assert job["summary"]["succeeded"] == n
    exported = (await sp.get(f"/jobs/{ans['id']}/export")).ok()
    assert [(r["subject"], r["row"]) for r in exported["results"]] == [(m, i) for i, m in enumerate(macs, start=2)]
    assert (await search(sp, limit="1"))["total"] == n


# --- interrupted jobs (a server stopped mid-way): resumed, or failed ------------------------------


async def _job_row(server: Running, job_id: int) -> Job:
    async with server.opened.ctx.store.transaction() as s:
        job = await s.get(Job, job_id)
        assert job is not None
        return job


async def stuck_job(
    server: Running,
    account_id: str,
    *,
    heartbeat: bool = True,
    runner: str = "another-server",
    done: int = 1,
    params: dict[str, Any] | None = None,
    resumed: int = 0,
    total: int = 3,
) -> int:
    """A job as a server that stopped mid-way leaves it: IN PROGRESS, `done` of `total` results
    written (for the first `done` MACs of `params`, or made-up ones)."""
    ctx = server.opened.ctx
    params = params or {"selection": "macs", "macs": []}
    subjects = (params.get("macs") or [f"A42546{i:06X}" for i in range(done)])[:done]
    summary: dict[str, Any] = {"total": total, "done": done, "succeeded": done, "failed": 0}
    if resumed:
        summary["resumed"] = resumed
    async with ctx.store.transaction() as s:
        job = Job(
            account_id=account_id,
            created_by="someone@example.test",
            name="stuck",
            kind="devices",
            actions=["activate"],
            params=params,
            status="IN PROGRESS",
            summary=summary,
            created_at=ctx.clock(),
            heartbeat_at=ctx.clock() if heartbeat else None,
            runner_id=runner if heartbeat else None,
        )
        s.add(job)
        await s.flush()
        s.add_all(JobResult(job_id=job.id, subject=mac, status="SUCCESS") for mac in subjects)
        return job.id


def gone_runner() -> str:
    """The runner id of a server process of this host that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{jobs.runner.HOST}:{int(child.stdout)}:0123456789ab"


async def _activate_job_params(server: Running, sp: ApiClient, macs: list[str]) -> dict[str, Any]:
    """The params a real `activate` job on `macs` stores (actor, context, selection)."""
    ans = (await sp.post("/jobs", {"name": "template", "actions": ["activate"], "macs": macs[:1]})).ok()
    assert (await wait_job(sp, ans["id"]))["status"] == "COMPLETE"
    params = dict((await _job_row(server, ans["id"])).params)
    params["macs"] = macs
    return params


async def test_dev10_a_job_without_heartbeat_for_the_lease_is_failed_when_it_cannot_be_resumed(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    """DEV-10: the sweep fails a job whose server stopped and that holds no actor or context to
    resume with; processed devices keep their results, and a job another server is still
    running (fresh heartbeat) is untouched."""
    sp = await admin.new_account("service_provider")
    ctx = server.opened.ctx
    stale = await stuck_job(server, sp.account_id)
    legacy = await stuck_job(server, sp.account_id, heartbeat=False)  # from before heartbeats existed
    clock.advance(minutes=1)
    assert await jobs.sweep_interrupted_jobs(ctx) == jobs.Sweep()  # 1 minute: maybe just slow
    clock.advance(minutes=2)
    fresh = await stuck_job(server, sp.account_id, runner="live-server", done=2)
    assert await jobs.sweep_interrupted_jobs(ctx) == jobs.Sweep(failed=[stale, legacy])

    job = (await sp.get(f"/jobs/{stale}")).ok()
    assert job["status"] == "FAIL" and job["summary"]["reason"] == "interrupted"
    assert "another-server" in job["summary"]["note"] and "1 of 3 devices" in job["summary"]["note"]
    assert job["finished_at"] is not None
    # The device it reached keeps its result; the note is no result row.
    assert [(r["subject"], r["status"]) for r in job["results"]["items"]] == [("A42546000000", "SUCCESS")]
    assert (await sp.get(f"/jobs/{legacy}")).ok()["summary"]["reason"] == "interrupted"

    still = (await sp.get(f"/jobs/{fresh}")).ok()
    assert still["status"] == "IN PROGRESS" and still["finished_at"] is None and "reason" not in still["summary"]
    # Sweeping again changes nothing: the failed jobs stay as they are, the fresh one runs on.
    clock.advance(minutes=1)
    assert await jobs.sweep_interrupted_jobs(ctx) == jobs.Sweep()
    assert (await sp.get(f"/jobs/{fresh}")).ok()["status"] == "IN PROGRESS"
    assert (await sp.get("/jobs", status="FAIL")).ok()["total"] == 2


async def test_dev10_the_sweep_never_takes_a_job_this_server_is_running(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    """DEV-10: a slow batch of this process (heartbeat late) is slow, not dead; the sweep renews
    its lease."""
    sp = await admin.new_account("service_provider")
    ctx = server.opened.ctx
    job_id = await stuck_job(server, sp.account_id, runner=jobs.RUNNER_ID)
    clock.advance(minutes=10)
    key = jobs.live_key(ctx, job_id)
    jobs._live.add(key)
    try:
        assert await jobs.sweep_interrupted_jobs(ctx) == jobs.Sweep()
        assert (await sp.get(f"/jobs/{job_id}")).ok()["heartbeat_at"] == clock().isoformat()
    finally:
        jobs._live.discard(key)
    assert (await sp.get(f"/jobs/{job_id}")).ok()["status"] == "IN PROGRESS"
    # Once its task is gone and its lease ran out, it is as dead as any other.
    clock.advance(minutes=3)
    assert await jobs.sweep_interrupted_jobs(ctx) == jobs.Sweep(failed=[job_id])


async def test_dev10_a_job_whose_server_process_is_gone_is_resumed_at_once_where_it_stopped(
    server: Running, admin: ApiClient
) -> None:
    """DEV-10: a job of a server process of this host that no longer runs is taken over at the
    next sweep (no lease to wait out) and goes on after its last committed batch: every device
    has exactly one result, the counts match them, and the devices done before are not redone."""
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42548", 5)])
    await claim_all(sp, macs)
    params = await _activate_job_params(server, sp, macs[:1])
    params["macs"] = macs[1:]
    # A dead server activated the first of the four (device and result in one batch) and stopped.
    (await sp.post("/devices/activate", {"macs": macs[1:2]})).ok()
    job_id = await stuck_job(server, sp.account_id, runner=gone_runner(), params=params, done=1, total=4)
    assert await jobs.sweep_interrupted_jobs(server.opened.ctx) == jobs.Sweep(resumed=[job_id])
    job = await wait_job(sp, job_id)
    assert job["status"] == "COMPLETE", job
    assert job["runner_id"] == jobs.RUNNER_ID and job["summary"]["resumed"] == 1
    assert {k: job["summary"][k] for k in ("total", "done", "succeeded", "failed")} == {
        "total": 4,
        "done": 4,
        "succeeded": 4,
        "failed": 0,
    }
    assert sorted(r["subject"] for r in job["results"]["items"]) == macs[1:]
    for mac in macs[1:]:
        assert (await sp.get(f"/devices/{mac}")).ok()["activated"] is True


async def test_dev10_a_labels_job_resumes_after_the_last_device_it_did(server: Running, admin: ApiClient) -> None:
    """DEV-10: a labels or all job pages on in MAC order after the greatest MAC with a result."""
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42549", 4)])
    await claim_all(sp, macs)
    params = await _activate_job_params(server, sp, macs[:1])
    params.pop("macs")
    params["selection"] = "all"
    job_id = await stuck_job(
        server, sp.account_id, runner=gone_runner(), params={**params, "macs": None}, done=0, total=4
    )
    async with server.opened.ctx.store.transaction() as s:  # two done before the crash
        s.add_all(JobResult(job_id=job_id, subject=mac, status="SUCCESS") for mac in macs[:2])
        row = await s.get(Job, job_id)
        assert row is not None
        row.summary = {**row.summary, "done": 2, "succeeded": 2}
    assert (await jobs.sweep_interrupted_jobs(server.opened.ctx)).resumed == [job_id]
    job = await wait_job(sp, job_id)
    assert job["status"] == "COMPLETE" and job["summary"]["done"] == 4
    assert [r["subject"] for r in job["results"]["items"]] == macs
    # The first two were not touched again (the template job activated only the first).
    assert (await sp.get(f"/devices/{macs[1]}")).ok()["activated"] is False
    assert (await sp.get(f"/devices/{macs[3]}")).ok()["activated"] is True


async def test_dev10_a_job_stopped_too_often_is_failed_not_resumed(server: Running, admin: ApiClient) -> None:
    """DEV-10: a job resumed MAX_RESUMES times that is orphaned again may be what stops its
    server: it ends FAIL `interrupted`, and a late runner does not run on with it."""
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A42547", 2)])
    await claim_all(sp, macs)
    params = await _activate_job_params(server, sp, macs[1:])
    job_id = await stuck_job(
        server, sp.account_id, runner=gone_runner(), params=params, done=0, resumed=jobs.MAX_RESUMES
    )
    assert await jobs.sweep_interrupted_jobs(server.opened.ctx) == jobs.Sweep(failed=[job_id])
    await jobs.run_device_job(server.opened.ctx, job_id)
    late = (await sp.get(f"/jobs/{job_id}")).ok()
    assert late["status"] == "FAIL" and late["summary"]["reason"] == "interrupted"
    assert f"stopped {jobs.MAX_RESUMES + 1} times" in late["summary"]["note"]
    assert late["results"]["total"] == 0


async def test_dev10_the_runner_heartbeats_and_stops_on_a_job_taken_over_meanwhile(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device(m) for m in macs_for("A4254A", 2)])
    await claim_all(sp, macs)
    started = clock()
    ans = (await sp.post("/jobs", {"name": "beat", "actions": ["activate"], "macs": macs[:1]})).ok()
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "COMPLETE"
    assert job["runner_id"] == jobs.RUNNER_ID and job["heartbeat_at"] == started.isoformat()
    # A job another live process owns is not run by this one.
    params = dict((await _job_row(server, ans["id"])).params)
    params["macs"] = macs[1:]
    job_id = await stuck_job(server, sp.account_id, runner="other-host:1:abc", done=0, params=params)
    await jobs.run_device_job(server.opened.ctx, job_id)
    other = (await sp.get(f"/jobs/{job_id}")).ok()
    assert other["status"] == "IN PROGRESS" and other["results"]["total"] == 0
    assert (await sp.get(f"/devices/{macs[1]}")).ok()["activated"] is False


async def test_dev10_a_starting_server_sweeps_the_jobs_a_stopped_one_left(
    server: Running, admin: ApiClient, clock: FakeClock, db_url: str, tmp_path: Any
) -> None:
    """DEV-10: `enrollab serve` sweeps at start (a second server on the same database here)."""
    sp = await admin.new_account("service_provider")
    job_id = await stuck_job(server, sp.account_id)
    clock.advance(minutes=6)
    second = await start(
        ServeConfig(data_dir=tmp_path / "second", db_url=db_url, admin_port=0),
        admin_password=ADMIN_PASSWORD,
        clock=clock,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while (await sp.get(f"/jobs/{job_id}")).ok()["status"] == "IN PROGRESS":
            assert asyncio.get_running_loop().time() < deadline, "the starting server did not sweep"
            await asyncio.sleep(0.05)
    finally:
        await second.stop()
    assert (await sp.get(f"/jobs/{job_id}")).ok()["summary"]["reason"] == "interrupted"
