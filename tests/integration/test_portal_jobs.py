"""The portal's jobs, device import and bulk actions over a real socket (issue 16): an import with
a bad row shows that row's number, field and reason while the good rows are imported; a bulk job
started from the form runs to COMPLETE with a result per device and is listed; a role that may not
import is refused and nothing is imported; a form without the CSRF token changes nothing."""

from __future__ import annotations

import asyncio
import html as htmllib
import io
import json
import re
import zipfile

import aiohttp

from server.runner import Running
from server.store.models import Job, JobResult
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.portal_client import Portal, signed_in
from tests.integration.test_api_devices import SERIAL_OF, device, fleet, macs_for

CSV_WITH_A_BAD_ROW = (
    "mac,serial,model\n"
    "A4251B7A0001,SNPORTAL0001,J179\n"
    "not-a-mac,SNPORTAL0002,J179\n"
    "A4251B7A0003,SNPORTAL0003,J169\n"
)


def _upload(csv_text: str, filename: str = "devices.csv", name: str = "") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", csv_text.encode(), filename=filename, content_type="text/csv")
    form.add_field("name", name)
    return form


def _text(page: str) -> str:
    """The page's words, tags dropped: what a reader sees."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _row_of(page: str, needle: str) -> str:
    """The text of the table row holding `needle`."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        if needle in row:
            return _text(row)
    raise AssertionError(f"no row with {needle!r} in the page")


async def _watch(portal: Portal, location: str) -> str:
    """Reload a job's page as a browser would until the job is no longer IN PROGRESS (bounded)."""
    for _ in range(200):
        status, page = await portal.get(location)
        assert status == 200, page
        if "data-poll" not in page:
            return page
        await asyncio.sleep(0.05)
    raise AssertionError(f"{location} still in progress")


async def test_an_import_with_a_bad_row_reports_its_row_field_and_reason_and_imports_the_rest(
    server: Running, admin: ApiClient
) -> None:
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get("/devices/import")
        assert status == 200 and "<h1>Import devices</h1>" in page and 'enctype="multipart/form-data"' in page

        status, page, location = await portal.post("/devices/import", _upload(CSV_WITH_A_BAD_ROW, name="spring batch"))

        assert status == 303 and re.fullmatch(r"/jobs/\d+", location), (status, page)
        status, page = await portal.get(location)
        assert status == 200
        seen = _text(page)
        assert "spring batch" in seen and "FAIL" in seen
        assert "Imported 2 device(s)" in seen and "Rejected 1 row(s)" in seen
        row = _row_of(page, "invalid-mac")
        assert row.startswith("3 ") and " mac " in f" {row} ", row  # row 3 of the sheet, field mac
        assert "data-poll" not in page  # an import is finished at once
        # the good rows are in the store, the bad one is not
        for mac in ("A4251B7A0001", "A4251B7A0003"):
            assert (await admin.get(f"/devices/{mac}")).status == 200
        assert (await admin.get("/devices")).ok()["total"] == 2  # nothing of row 3

        # the per-row report exports as a file
        job_id = location.rsplit("/", 1)[1]
        async with portal.http.get(f"{server.admin_url}/jobs/{job_id}/export?format=csv") as r:
            assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
            exported = await r.text()
        assert exported.splitlines()[0] == "subject,file,row,field,status,reason,detail"
        assert ",3,mac,FAIL,invalid-mac," in exported
    finally:
        await portal.close()


async def test_a_bulk_job_from_the_form_runs_to_complete_and_is_listed(server: Running, admin: ApiClient) -> None:
    macs = await fleet(admin, [device(m) for m in macs_for("A4257C", 3)], approve=False)
    platform = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    sp = await admin.new_account("service_provider")
    partner = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        # The platform approves the imported devices from the same form (DEV-2: done at once).
        status, page = await platform.get("/jobs/new?" + "&".join(f"mac={m}" for m in macs))
        assert status == 200 and all(m in page for m in macs)  # prefilled from the devices list
        status, page, _ = await platform.post("/jobs/new", {"create": "1", "actions": "approve",
                                                            "macs": "\n".join(macs)})
        assert status == 200 and "3 device(s) approved" in _text(page), page
        assert all(_row_of(page, m).endswith("SUCCESS") for m in macs)

        # The devices list posts its selected boxes: the form comes back prefilled.
        status, page, _ = await partner.post("/jobs/new", aiohttp.FormData([("mac", m) for m in macs]))
        assert status == 200 and "<h1>Start a job</h1>" in page and all(m in page for m in macs)
        assert 'value="approve"' not in page  # a partner is not offered what it may not do

        lines = "\n".join(f"{m},{SERIAL_OF[m]}" for m in macs)
        status, page, location = await partner.post(
            "/jobs/new", {"create": "1", "actions": "claim", "name": "claim the spring batch", "macs": lines}
        )
        assert status == 303 and re.fullmatch(r"/jobs/\d+\?created=1", location), (status, page)
        page = await _watch(partner, location)
        seen = _text(page)
        assert "claim the spring batch" in seen and "Status COMPLETE" in seen
        assert "Done: 3 of 3" in seen and 'value="3"' in page
        for mac in macs:
            assert _row_of(page, mac).split()[:2] == [mac, "SUCCESS"]
            assert SERIAL_OF[mac] not in page  # the proof is not drawn back
        assert (await sp.get(f"/devices/{macs[0]}")).ok()["owner_id"] == sp.account_id

        # per-device results filter by status
        job_id = location.split("/")[2].split("?")[0]
        status, page = await partner.get(f"/jobs/{job_id}?status=FAIL")
        assert status == 200 and "No results match these filters." in _text(page)

        # the jobs list shows it, filtered as GET /jobs takes them
        status, page = await partner.get("/jobs?status=COMPLETE&kind=devices&name=spring")
        assert status == 200 and "claim the spring batch" in page and f'href="/jobs/{job_id}"' in page
        status, page = await partner.get("/jobs?status=FAIL")
        assert "claim the spring batch" not in page
    finally:
        await platform.close()
        await partner.close()


async def test_a_claim_line_without_its_serial_is_sent_back_with_what_was_typed(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page, _ = await portal.post(
            "/jobs/new", {"create": "1", "actions": "claim", "name": "oops", "macs": "A4251B7B0001"}
        )
        assert status == 422 and 'role="alert"' in page and "Line 1" in page and "A4251B7B0001" in page
        assert (await sp.get("/jobs")).ok()["total"] == 0
    finally:
        await portal.close()


async def test_a_role_that_may_not_import_is_refused_and_nothing_is_imported(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page = await portal.get("/devices/import")
        assert status == 403 and "forbidden-role" in page
        status, page, _ = await portal.post("/devices/import", _upload(CSV_WITH_A_BAD_ROW))
        assert status == 403 and "Not allowed" in page
        assert (await admin.get("/devices/A4251B7A0001")).status == 404
        assert (await admin.get("/jobs", kind="import")).ok()["total"] == 0
        status, page = await portal.get("/jobs")
        assert status == 200 and 'href="/devices/import"' not in page
    finally:
        await portal.close()


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    server: Running, admin: ApiClient
) -> None:
    macs = await fleet(admin, [device(m) for m in macs_for("A4257D", 1)], approve=False)
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page, _ = await portal.post("/devices/import", _upload(CSV_WITH_A_BAD_ROW), csrf=False)
        assert status == 403 and "csrf-invalid" in page
        status, page, _ = await portal.post(
            "/jobs/new", {"create": "1", "actions": "approve", "macs": macs[0]}, csrf=False
        )
        assert status == 403 and "csrf-invalid" in page
        assert (await admin.get("/devices/A4251B7A0001")).status == 404
        assert (await admin.get(f"/devices/{macs[0]}")).ok()["approved"] is False
        assert (await admin.get("/jobs", kind="import")).ok()["total"] == 1  # the fleet's own import only
    finally:
        await portal.close()


async def test_a_job_in_progress_is_followed_live_and_stops_being_polled_once_finished(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    # A job another host is running (its lease fresh), a quarter done: stored as its runner leaves it.
    async with server.opened.ctx.store.transaction() as s:
        job = Job(account_id=admin.account_id, created_by="admin", name="long activation", kind="devices",
                  actions=["activate"], params={}, status="IN PROGRESS",
                  summary={"total": 4, "done": 1, "succeeded": 1, "failed": 0}, created_at=clock(),
                  heartbeat_at=clock(), runner_id="another-host")
        s.add(job)
        await s.flush()
        s.add(JobResult(job_id=job.id, subject="A4251B7C0001", status="SUCCESS"))
        job_id = job.id
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get(f"/jobs/{job_id}")
        assert status == 200 and "Status IN PROGRESS" in _text(page) and "Done: 1 of 4" in _text(page)
        assert f'id="job-live" data-poll="/jobs/{job_id}" data-every="2"' in page
        assert '<progress id="job-progress" max="4" value="1">' in page
        assert _row_of(page, "A4251B7C0001").split()[:2] == ["A4251B7C0001", "SUCCESS"]

        async with server.opened.ctx.store.transaction() as s:
            stored = await s.get(Job, job_id)
            assert stored is not None
            stored.status, stored.finished_at = "COMPLETE", clock()
            stored.summary = {"total": 4, "done": 4, "succeeded": 4, "failed": 0}
        status, page = await portal.get(f"/jobs/{job_id}")
        assert "Status COMPLETE" in _text(page) and "Done: 4 of 4" in _text(page)
        assert 'id="job-live"' in page and "data-poll" not in page  # the script stops polling
    finally:
        await portal.close()


async def test_json_and_zip_files_import_from_the_form_as_csv_does(server: Running, admin: ApiClient) -> None:
    payload = json.dumps({"devices": [device("A4251B7D0001"), {"mac": "A4251B7D0002", "model": "J179"}]})
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as z:
        z.writestr("batch/devices.csv", CSV_WITH_A_BAD_ROW)
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        for filename, data, kind, reason, imported in (
            ("devices.json", payload.encode(), "application/json", "missing-field", "A4251B7D0001"),
            ("batch.zip", packed.getvalue(), "application/x-zip-compressed", "invalid-mac", "A4251B7A0003"),
        ):
            form = aiohttp.FormData()
            form.add_field("file", data, filename=filename, content_type=kind)
            status, page, location = await portal.post("/devices/import", form)
            assert status == 303, (filename, status, page)
            _, page = await portal.get(location)
            assert reason in _row_of(page, reason), filename
            assert (await admin.get(f"/devices/{imported}")).status == 200, filename
        assert "batch/devices.csv" in _row_of(page, "invalid-mac")  # the file of the ZIP the row is in
    finally:
        await portal.close()


async def test_a_job_of_another_hierarchy_is_not_found_and_its_export_neither(
    server: Running, admin: ApiClient
) -> None:
    macs = await fleet(admin, [device(m) for m in macs_for("A4257E", 2)])
    sp = await admin.new_account("service_provider")
    other = await admin.new_account("service_provider")
    owner = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    stranger = await signed_in(server.admin_url, other.login_name, PASSWORD)
    try:
        # the ticked boxes of the devices list, started at once (create=1)
        lines = "\n".join(f"{m},{SERIAL_OF[m]}" for m in macs)
        status, _, location = await owner.post("/jobs/new", {"create": "1", "actions": "claim", "name": "mine",
                                                             "macs": lines})
        assert status == 303
        await _watch(owner, location)
        form = aiohttp.FormData([("create", "1"), ("actions", "release"), ("name", "give back"),
                                 *[("mac", m) for m in macs]])
        status, page, location = await owner.post("/jobs/new", form)
        assert status == 303, page
        page = await _watch(owner, location)
        assert "Status COMPLETE" in _text(page) and all(_row_of(page, m).endswith("SUCCESS") for m in macs)
        job_id = location.split("/")[2].split("?")[0]

        status, page = await stranger.get(f"/jobs/{job_id}")
        assert status == 404 and "job-not-found" in page and "give back" not in page
        status, page = await stranger.get(f"/jobs/{job_id}/export?format=csv")
        assert status == 404 and macs[0] not in page
        status, page = await stranger.get("/jobs")
        assert "give back" not in page and "No jobs" in page
    finally:
        await owner.close()
        await stranger.close()


async def test_a_job_on_the_devices_a_csv_file_lists_reports_the_rows_it_could_not_select(
    server: Running, admin: ApiClient
) -> None:
    macs = await fleet(admin, [device(m) for m in macs_for("A4257F", 2)])
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        sheet = f"mac,serial\n{macs[0]},{SERIAL_OF[macs[0]]}\n{macs[1]},\n"
        form = aiohttp.FormData({"create": "1", "actions": "claim", "name": "claim from a sheet"})
        form.add_field("selection_file", sheet.encode(), filename="claim.csv", content_type="text/csv")
        status, page, location = await portal.post("/jobs/new", form)
        assert status == 303, page
        page = await _watch(portal, location)
        assert _row_of(page, macs[0]).split()[:2] == [macs[0], "SUCCESS"]
        refused = _row_of(page, "missing-field")
        assert "FAIL" in refused and " 3 " in f" {refused} "  # row 3 of the sheet: no serial
        assert (await sp.get(f"/devices/{macs[0]}")).ok()["owner_id"] == sp.account_id
        assert (await sp.get(f"/devices/{macs[1]}")).status == 404  # not claimed
    finally:
        await portal.close()


async def test_a_claim_attaches_the_ticked_labels_and_a_job_selects_its_devices_by_label(
    server: Running, admin: ApiClient
) -> None:
    """DEV-8 in the bulk form: labels ticked on a claim go onto the claimed devices; a later job
    ticks the label instead of listing MACs; MACs and labels together are sent back."""
    macs = await fleet(admin, [device(m) for m in macs_for("A4257E", 3)])
    sp = await admin.new_account("service_provider")
    label = (await sp.post("/labels", {"name": "spring batch"})).ok()
    partner = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page = await partner.get("/jobs/new")
        assert status == 200 and "spring batch (0 devices)" in page
        lines = "\n".join(f"{m},{SERIAL_OF[m]}" for m in macs)
        status, page, location = await partner.post(
            "/jobs/new", {"create": "1", "actions": "claim", "name": "claim, labelled", "macs": lines,
                          "label": str(label["id"])})
        assert status == 303, page
        assert "Status COMPLETE" in _text(await _watch(partner, location))
        labelled = (await sp.get("/devices", label="spring batch")).ok()
        assert sorted(d["mac"] for d in labelled["items"]) == sorted(macs)

        status, page, _ = await partner.post(
            "/jobs/new", {"create": "1", "actions": "release", "name": "both", "macs": macs[0],
                          "label": str(label["id"])})
        assert status == 422 and "by MAC or by label, not both" in _text(page)
        assert 'checked' in page  # the ticked label is kept

        status, page, location = await partner.post(
            "/jobs/new", {"create": "1", "actions": "release", "name": "release by label", "macs": "",
                          "label": str(label["id"])})
        assert status == 303, _text(page)[:400]
        seen = _text(await _watch(partner, location))
        assert "Done: 3 of 3" in seen, seen[:600]
    finally:
        await partner.close()
