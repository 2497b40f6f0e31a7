"""DEV-3 claim proof for bulk claim jobs (issue 13) over a real socket: `POST /jobs` with `claim`
names each device by MAC and serial (and label code), `POST /jobs/upload` needs mac and serial
columns; an unknown device and a wrong or missing proof end with the same per-device result, each
counts toward the claiming account's budget (shared with `POST /devices/claim`), and no serial or
label code is kept in the job or shown back by it, its export or the audit log."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import aiohttp
from sqlalchemy import select

from server.domain.throttle import CLAIM_PROOF
from server.runner import Running
from server.store.models import AuditLog, Job
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import SERIAL_OF, device, fleet, macs_for, profile_and_site, wait_job


async def _raw(client: ApiClient, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    """A call with its answer's headers (the test client keeps none)."""
    headers = {"Authorization": f"Bearer {client.token}", **kw.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(client.base + "/api/v1" + path, headers=headers, **kw) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json()


def _claim_job(devices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "claim with proof", "actions": ["claim"], "devices": devices, **extra}


def _results(job: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None]]:
    return {r["subject"]: (r["status"], r["reason"], r["detail"]) for r in job["results"]["items"]}


async def _upload(client: ApiClient, text: str, **params: str) -> Any:
    params.setdefault("name", "claim file")
    return await client.call("POST", "/jobs/upload", data=text.encode(), content_type="text/csv", params=params)


async def _shown_everywhere(server: Running, client: ApiClient, job_id: int) -> str:
    """Everything the server keeps or shows of a job: the job, both exports, the job row's params
    and the audit log."""
    shown = [json.dumps((await client.get(f"/jobs/{job_id}", limit="1000")).ok())]
    shown.append(json.dumps((await client.get(f"/jobs/{job_id}/export")).ok()))
    shown.append((await client.call("GET", f"/jobs/{job_id}/export", params={"format": "csv"})).body)
    async with server.opened.ctx.store.transaction() as s:
        job = await s.get(Job, job_id)
        assert job is not None
        shown.append(json.dumps(job.params))
        shown.extend(a.message for a in await s.scalars(select(AuditLog)))
    return "\n".join(shown)


async def test_dev3_a_claim_job_with_the_right_pairs_claims_associates_and_activates(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    site = await profile_and_site(sp, customer.account_id)
    macs = await fleet(admin, [device(m) for m in macs_for("A42560", 3)])
    devices = [{"mac": macs[0].lower(), "serial": SERIAL_OF[macs[0]]}]  # any PROTOCOL §1 form
    devices += [{"mac": m, "serial": SERIAL_OF[m]} for m in macs[1:]]
    body = _claim_job(devices, actions=["claim", "associate", "activate"], account_id=customer.account_id, site_id=site)

    ans = await sp.post("/jobs", body)

    assert ans.status == 202 and ans["total"] == 3, ans.body
    job = await wait_job(sp, ans["id"])
    assert job["status"] == "COMPLETE" and job["summary"]["succeeded"] == 3, job
    for mac in macs:
        assert (await customer.get(f"/devices/{mac}")).ok()["zero_touch_ready"] is True
    shown = await _shown_everywhere(server, sp, ans["id"])
    assert not any(SERIAL_OF[m] in shown for m in macs)  # the serials were checked, not kept


async def test_dev3_unknown_device_and_wrong_proof_give_identical_results_and_claim_nothing(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    first, second, labelled, coded, fine = (device(m) for m in macs_for("A42561", 5))
    await fleet(admin, [first, second, labelled, coded, fine])
    codes = [{"mac": labelled["mac"], "label_code": "QX7-R2M9"}, {"mac": coded["mac"], "label_code": "ZZ4K7P2Q"}]
    (await admin.post("/devices/label-codes", {"codes": codes})).ok()
    unknown = "A42561FFFFFF"
    devices = [
        {"mac": unknown, "serial": "SNNOSUCH"},  # unknown device
        {"mac": first["mac"], "serial": "SNNOSUCH"},  # known MAC, wrong serial
        {"mac": first["mac"].replace("0001", "0009"), "serial": first["serial"]},  # wrong MAC, known serial
        {"mac": second["mac"], "serial": first["serial"]},  # MAC and serial of two devices
        {"mac": labelled["mac"], "serial": labelled["serial"]},  # its label code missing
        {"mac": coded["mac"], "serial": coded["serial"], "label_code": "QX7R2M8"},  # a wrong label code
        {"mac": fine["mac"], "serial": fine["serial"]},
    ]
    ans = (await sp.post("/jobs", _claim_job(devices))).ok()
    job = await wait_job(sp, ans["id"])

    assert job["status"] == "FAIL" and job["summary"]["failed"] == 6 and job["summary"]["succeeded"] == 1, job
    items = job["results"]["items"]
    refused = [r for r in items if r["status"] == "FAIL"]
    assert len(refused) == 6
    template = _results(job)[unknown]
    for r in refused:
        # Same reason, field and detail for every one (the detail names only the MAC as given).
        assert (r["reason"], r["field"], r["detail"]) == (
            template[1],
            None,
            template[2].replace(unknown, r["subject"]),
        ), r
    assert template[1] == "device-not-found"
    assert _results(job)[fine["mac"]][0] == "SUCCESS"
    for d in (first, second, labelled, coded):
        assert (await sp.get(f"/devices/{d['mac']}")).status == 404, d["mac"]  # not claimed
    shown = await _shown_everywhere(server, sp, ans["id"])
    for secret in ("QX7R2M8", first["serial"], labelled["serial"], coded["serial"], "SNNOSUCH"):
        assert secret not in shown, secret
    # The right code claims it (a code is typed in any case, with blanks or '-').
    right = [{"mac": labelled["mac"], "serial": labelled["serial"], "label_code": "qx7 r2m9"}]
    job = await wait_job(sp, (await sp.post("/jobs", _claim_job(right))).ok()["id"])
    assert job["status"] == "COMPLETE", job
    assert "QX7" not in await _shown_everywhere(server, sp, job["id"])


async def test_dev3_an_account_requiring_label_codes_claims_by_job_only_with_them(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    plain, labelled = (device(m) for m in macs_for("A42562", 2))
    await fleet(admin, [plain, labelled])
    (await admin.post("/devices/label-codes", {"codes": [{"mac": labelled["mac"], "label_code": "LB12CD34"}]})).ok()
    (await sp.call("PUT", f"/accounts/{sp.account_id}/claim-policy", {"label_code_required": True})).ok()

    # A body with an entry lacking a label code is refused whole, before any look-up.
    ans = await sp.post("/jobs", _claim_job([{"mac": labelled["mac"], "serial": labelled["serial"]}]))
    assert (ans.status, ans["error"]) == (422, "label-code-required"), ans.body
    # With codes: the labelled device is claimed; a device without one cannot be under the policy.
    devices = [
        {"mac": labelled["mac"], "serial": labelled["serial"], "label_code": "LB12CD34"},
        {"mac": plain["mac"], "serial": plain["serial"], "label_code": "ANY12345"},
    ]
    job = await wait_job(sp, (await sp.post("/jobs", _claim_job(devices))).ok()["id"])
    assert {m: r[:2] for m, r in _results(job).items()} == {
        labelled["mac"]: ("SUCCESS", None),
        plain["mac"]: ("FAIL", "device-not-found"),
    }
    # Input problems are whole-body 422s that do not echo the code.
    for code in ("a!", 12345678):
        ans = await sp.post("/jobs", _claim_job([{"mac": plain["mac"], "serial": plain["serial"], "label_code": code}]))
        assert (ans.status, ans["error"]) == (422, "invalid-label-code"), ans.body


async def test_dev3_wrong_proofs_in_jobs_spend_the_accounts_claim_budget(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    """DEV-3: every unproven device counts; when the budget runs out during the check, the
    later devices (the right ones too) end FAIL too-many-attempts untried; a job asked while the
    budget is spent is 429 with Retry-After and stores nothing; single claims share the budget."""
    sp = await admin.new_account("service_provider")
    neighbour = await admin.new_account("service_provider")
    devs = [device(m) for m in macs_for("A42563", 3)]
    macs = await fleet(admin, devs)
    right = [{"mac": d["mac"], "serial": d["serial"]} for d in devs]
    guesses = [{"mac": macs[0], "serial": f"SNGUESS{i}"} for i in range(CLAIM_PROOF.failures + 1)]
    # One guess per MAC and entry: later entries for the same MAC are duplicates, not tries.
    guesses = [{"mac": f"A42563F{i:05X}", "serial": g["serial"]} for i, g in enumerate(guesses)]

    ans = (await sp.post("/jobs", _claim_job([right[0], *guesses, right[1]]))).ok()
    job = await wait_job(sp, ans["id"])

    reasons = [(r["subject"], r["reason"]) for r in job["results"]["items"]]
    over = [subject for subject, reason in reasons if reason == "too-many-attempts"]
    not_found = [subject for subject, reason in reasons if reason == "device-not-found"]
    assert len(not_found) == CLAIM_PROOF.failures
    assert over == [guesses[-1]["mac"], macs[1]]  # untried once the budget ran out, the right one too
    assert (macs[0], None) in reasons  # before the budget ran out: claimed
    assert (await sp.get(f"/devices/{macs[1]}")).status == 404

    jobs_before = (await sp.get("/jobs")).ok()["total"]
    status, headers, body = await _raw(sp, "/jobs", json=_claim_job(right[2:]))
    assert (status, body["error"]) == (429, "too-many-attempts"), body
    assert 1 <= int(headers["Retry-After"]) <= CLAIM_PROOF.minutes * 60
    status, headers, body = await _raw(
        sp,
        "/jobs/upload",
        params={"name": "f", "actions": "claim"},
        data=f"mac,serial\n{macs[2]},{devs[2]['serial']}\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (status, body["error"]) == (429, "too-many-attempts") and int(headers["Retry-After"]) >= 1
    assert (await sp.get("/jobs")).ok()["total"] == jobs_before  # nothing stored
    status, _, body = await _raw(sp, "/devices/claim", json=right[2])  # one budget for every way of claiming
    assert status == 429
    async with server.opened.ctx.store.transaction() as s:
        fails = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "create_job", AuditLog.status == "FAIL"))
        )
    assert [f.message.split(":")[0] for f in fails] == ["too-many-attempts"]
    # Another account's budget is its own; and the window passes.
    job = await wait_job(neighbour, (await neighbour.post("/jobs", _claim_job(right[2:]))).ok()["id"])
    assert job["status"] == "COMPLETE"
    clock.advance(minutes=CLAIM_PROOF.minutes)
    job = await wait_job(sp, (await sp.post("/jobs", _claim_job(right[1:2]))).ok()["id"])
    assert job["status"] == "COMPLETE", job


async def test_dev3_a_claim_job_by_macs_alone_is_refused_with_what_to_send(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    macs = await fleet(admin, [device("A42564000001")])
    ans = await sp.post("/jobs", {"name": "by MAC", "actions": ["claim", "associate"], "macs": macs})
    assert (ans.status, ans["error"]) == (422, "claim-needs-serial"), ans.body
    assert "serial" in ans["detail"] and "devices" in ans["detail"]
    proof = [{"mac": macs[0], "serial": SERIAL_OF[macs[0]]}]
    for body, error in (
        ({"name": "x", "actions": ["claim"], "macs": macs, "devices": proof}, "invalid-selection"),
        ({"name": "x", "actions": ["claim"], "all": True, "devices": proof}, "invalid-selection"),
        ({"name": "x", "actions": ["activate"], "devices": proof}, "invalid-selection"),
        ({"name": "x", "actions": ["claim"], "devices": [{"mac": macs[0]}]}, "invalid-body"),
        ({"name": "x", "actions": ["claim"], "devices": [{"mac": "nope", "serial": "S"}]}, "invalid-mac"),
    ):
        ans = await sp.post("/jobs", body)
        assert (ans.status, ans["error"]) == (422, error), (body, ans.body)
    ans = await _upload(sp, f"mac\n{macs[0]}\n", actions="claim")
    assert (ans.status, ans["error"]) == (422, "claim-needs-serial"), ans.body
    assert (await sp.get("/jobs")).ok()["total"] == 0
    assert (await sp.get(f"/devices/{macs[0]}")).status == 404


async def test_dev3_a_claim_file_needs_serials_row_by_row(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    devs = [device(m) for m in macs_for("A42565", 4)]
    macs = await fleet(admin, devs)
    (await admin.post("/devices/label-codes", {"codes": [{"mac": macs[3], "label_code": "FILE2468"}]})).ok()
    text = (
        "mac,serial,label_code\n"  # row 1
        f"{macs[0]},{devs[0]['serial']},\n"  # row 2: claimed
        f"{macs[1]},,\n"  # row 3: no serial
        f",{devs[2]['serial']},\n"  # row 4: no MAC (not selected by serial, as other jobs are)
        f"{macs[2]},SNWRONG,\n"  # row 5: wrong serial
        f"{macs[3]},{devs[3]['serial']},file-2468\n"  # row 6: with its label code
        f"{macs[0]},{devs[0]['serial']},\n"  # row 7: again
    )
    ans = await _upload(sp, text, actions="claim")
    assert ans.status == 202 and ans["total"] == 6 and ans["refused"] == 4, ans.body
    job = await wait_job(sp, ans["id"])
    rows = {r["row"]: (r["subject"], r["field"], r["status"], r["reason"]) for r in job["results"]["items"]}
    assert rows == {
        2: (macs[0], None, "SUCCESS", None),
        3: (macs[1], "serial", "FAIL", "missing-field"),
        4: ("row 4", "mac", "FAIL", "missing-field"),
        5: (macs[2], None, "FAIL", "device-not-found"),
        6: (macs[3], None, "SUCCESS", None),
        7: (macs[0], "mac", "FAIL", "duplicate-device"),
    }
    assert [(await sp.get(f"/devices/{m}")).status for m in macs] == [200, 404, 404, 200]
    shown = await _shown_everywhere(server, sp, ans["id"])
    for secret in ("FILE2468", "file-2468", devs[2]["serial"], "SNWRONG"):
        assert secret not in shown, secret
    exported = (await sp.call("GET", f"/jobs/{ans['id']}/export", params={"format": "csv"})).body
    assert sorted(int(r["row"]) for r in csv.DictReader(io.StringIO(exported))) == [2, 3, 4, 5, 6, 7]


async def test_dev3_a_claim_file_under_a_label_code_policy_needs_the_codes(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    devs = [device(m) for m in macs_for("A42566", 2)]
    macs = await fleet(admin, devs)
    codes = [{"mac": m, "label_code": f"POL{i}CODE"} for i, m in enumerate(macs)]
    (await admin.post("/devices/label-codes", {"codes": codes})).ok()
    (await sp.call("PUT", f"/accounts/{sp.account_id}/claim-policy", {"label_code_required": True})).ok()
    text = f"mac,serial,label_code\n{macs[0]},{devs[0]['serial']},pol0code\n{macs[1]},{devs[1]['serial']},\n"
    ans = await _upload(sp, text, actions="claim")
    assert ans.status == 202 and ans["refused"] == 1, ans.body
    job = await wait_job(sp, ans["id"])
    rows = {r["row"]: (r["field"], r["status"], r["reason"]) for r in job["results"]["items"]}
    assert rows == {2: (None, "SUCCESS", None), 3: ("label_code", "FAIL", "label-code-required")}
