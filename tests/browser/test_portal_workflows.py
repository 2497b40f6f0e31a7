"""The portal's work in a real browser (issue 16): a customer administrator sees only its own
account's sites and devices, generates an enrollment code shown once, the platform imports a
file with a bad row and reads the row on the import's page, a service provider watches a bulk
job turn COMPLETE without reloading, the audit log downloads as CSV; and the main pages pass
axe-core and are drawn as screenshots (docs/portal-*.png under ENROLLAB_UPDATE_SCREENSHOTS=1).

Everything is arranged through the admin API first (accounts, devices, profiles, sites), then
looked at and changed only through the pages, as a person would."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    PHONE,
    Api,
    PortalServer,
    assert_accessible,
    heading,
    open_page,
    shoot,
    sign_in,
)

_macs = itertools.count(0x10)


def _mac() -> str:
    return f"A4251B{next(_macs):06X}"


@dataclass
class Fleet:
    admin: Api
    sp: Api
    acme: Api  # a customer of the service provider
    globex: Api  # another customer of the same service provider
    acme_devices: list[str]
    globex_devices: list[str]
    acme_site: int
    globex_site: int
    spare: dict[str, str]  # approved, unclaimed devices: MAC -> serial (the bulk claim's)
    import_job: int  # an import with a rejected row
    serials: dict[str, str]  # every fleet device's serial (the claim proof)


def _import(api: Api, rows: list[dict[str, str]]) -> Any:
    return api.ok("POST", "/devices/import", data=json.dumps({"devices": rows}).encode(),
                  content_type="application/json")


def _site(owner: Api, account_id: str, name: str) -> int:
    profile = owner.ok("POST", "/profiles", {"name": f"{name} profile", "entries": [
        {"server_type": "HTTPS", "url": "https://prov.example.test/j100/", "identity_certificates": False,
         "group": 0}]})
    return int(owner.ok("POST", f"/accounts/{account_id}/sites", {"name": name, "profile_id": profile["id"]})["id"])


@pytest.fixture(scope="module")
def fleet(admin_api: Api) -> Fleet:
    sp = admin_api.new_account("service_provider", "Northwind Telecom")
    acme = sp.new_account("customer", "Acme Dental")
    globex = sp.new_account("customer", "Globex Clinics")
    serials = itertools.count(1)
    rows = [{"mac": _mac(), "serial": f"SN{next(serials):08d}", "model": model}
            for model in ("J179", "J179", "J159", "J139", "J189", "B199", "J169", "J179", "J159", "J179", "J139")]
    serial_of = {r["mac"]: r["serial"] for r in rows}
    _import(admin_api, rows)
    admin_api.ok("POST", "/devices/approve", {"macs": list(serial_of)})
    macs = list(serial_of)
    acme_devices, globex_devices, spare = macs[:4], macs[4:6], macs[6:]
    acme_site = _site(acme, acme.account_id, "Head office")
    globex_site = _site(globex, globex.account_id, "Globex lab")
    for mac in acme_devices + globex_devices:
        sp.ok("POST", "/devices/claim", {"mac": mac, "serial": serial_of[mac]})
    sp.ok("POST", "/devices/associate", {"macs": acme_devices, "account_id": acme.account_id, "site_id": acme_site})
    sp.ok("POST", "/devices/associate", {"macs": globex_devices, "account_id": globex.account_id,
                                         "site_id": globex_site})
    bad = _import(admin_api, [{"mac": _mac(), "serial": "SN90000001", "model": "J179"},
                              {"mac": "not-a-mac", "serial": "SN90000002", "model": "J179"}])
    return Fleet(admin_api, sp, acme, globex, acme_devices, globex_devices, acme_site, globex_site,
                 {m: serial_of[m] for m in spare}, int(bad["id"]), serial_of)


def _signed_in(page: Any, api: Api) -> None:
    sign_in(page, api.login or "admin", ADMIN_PASSWORD if api.login == "admin" else PASSWORD)
    expect(heading(page, "Dashboard")).to_be_visible()


# --- what a customer may see -------------------------------------------------------------------


def test_a_customer_administrator_sees_only_its_own_sites_and_devices(page: Any, fleet: Fleet) -> None:
    _signed_in(page, fleet.acme)
    page.goto("/sites")
    expect(heading(page, "Sites & codes")).to_be_visible()
    expect(page.get_by_role("link", name="Head office")).to_be_visible()
    expect(page.get_by_text("Globex lab")).to_have_count(0)

    answer = page.goto(f"/sites/{fleet.globex_site}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_text("Globex lab")).to_have_count(0)

    page.goto("/devices")
    expect(heading(page, "Devices")).to_be_visible()
    for mac in fleet.acme_devices:
        expect(page.get_by_role("link", name=mac)).to_be_visible()
    for mac in fleet.globex_devices:
        expect(page.get_by_text(mac)).to_have_count(0)
    other = fleet.globex_devices[0]
    answer = page.goto(f"/devices/{other}")
    assert answer is not None and answer.status == 404
    shown = page.locator("main").inner_text()
    assert fleet.serials[other] not in shown and "Globex" not in shown, shown  # nothing of it but the MAC typed


# --- enrollment codes --------------------------------------------------------------------------


def test_a_generated_code_is_shown_once(page: Any, fleet: Fleet, tmp_path: Path) -> None:
    _signed_in(page, fleet.acme)
    page.goto("/sites")
    page.get_by_role("link", name="Head office").click()
    expect(heading(page, "Site Head office")).to_be_visible()
    codes = page.locator("#codes")
    expect(codes.get_by_text("This site has no numeric enrollment code.")).to_be_visible()
    codes.get_by_label("Length").select_option("8")
    codes.get_by_label("Total devices").fill("5")
    codes.get_by_label("Expiry", exact=True).select_option("days")
    codes.get_by_label("Expiry value").fill("30")
    codes.get_by_role("button", name="Generate a code").click()

    expect(heading(page, "The enrollment code of Head office")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Copy it now: it will not be shown again.")
    code = page.locator("#nec-code").inner_text()
    assert re.fullmatch(r"\d{8}", code), code
    assert fleet.acme.ok("GET", f"/sites/{fleet.acme_site}/nec")["code"] == code  # the real code
    assert "/" + code not in page.url and code not in page.url
    assert_accessible(page)

    page.get_by_role("link", name="I have copied it: back to the site").click()
    expect(heading(page, "Site Head office")).to_be_visible()
    expect(page.locator("#codes")).to_contain_text("0 / 5")
    assert code not in page.content()  # never again
    page.reload()
    assert code not in page.content()
    shoot(page, "site-codes", tmp_path)


# --- a device import with a bad row ------------------------------------------------------------


def test_an_import_lists_its_rejected_row_on_the_job_page(page: Any, fleet: Fleet, tmp_path: Path) -> None:
    _signed_in(page, fleet.admin)
    good = _mac()
    page.goto("/devices/import")
    expect(heading(page, "Import devices")).to_be_visible()
    data = f"mac,serial,model\n{good},SN70000001,J179\nA4251B-NOT-A-MAC,SN70000002,J179\n".encode()
    page.get_by_label("File").set_input_files({"name": "phones.csv", "mimeType": "text/csv", "buffer": data})
    page.get_by_label("Import name (optional)").fill("spring delivery")
    page.get_by_role("button", name="Import").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("spring delivery")
    expect(page.get_by_role("status")).to_contain_text("1 row(s) of the file were not imported")
    table = page.get_by_role("table")
    rejected = table.get_by_role("row").filter(has_text="mac")
    expect(rejected).to_have_count(1)
    cells = rejected.get_by_role("cell").all_inner_texts()
    assert cells[0] == "3" and "mac" in cells, cells  # row 3 of the file: the header is row 1
    assert fleet.admin.ok("GET", f"/devices/{good}")["mac"] == good  # the good row was imported
    assert_accessible(page)


# --- a bulk job, watched ----------------------------------------------------------------------


def test_a_bulk_job_is_watched_to_completion_without_reloading(
    page: Any, fleet: Fleet, portal_server: PortalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from server.api.jobs import runner

    # Hold the job's runner until the page shows it IN PROGRESS: the page must then follow it live.
    release = threading.Event()
    original = runner.run_device_job

    async def held(ctx: Any, job_id: int) -> None:
        while not release.is_set():
            await asyncio.sleep(0.05)
        await original(ctx, job_id)

    monkeypatch.setattr(runner, "run_device_job", held)
    try:
        _signed_in(page, fleet.sp)
        page.goto("/jobs/new")
        expect(heading(page, "Start a job")).to_be_visible()
        page.get_by_label("Action").select_option(label="Claim")
        page.get_by_label("Job name").fill("claim the spring boxes")
        page.get_by_label("Devices", exact=True).fill("\n".join(f"{m},{s}" for m, s in fleet.spare.items()))
        page.get_by_role("button", name="Start").click()

        expect(page.get_by_role("heading", level=1)).to_contain_text("claim the spring boxes")
        live = page.locator("#job-live")
        expect(live.get_by_role("heading", name="Status IN PROGRESS")).to_be_visible()
        expect(live).to_have_attribute("data-poll", re.compile(r"^/jobs/\d+"))
        page.evaluate("() => { window.stillTheSamePage = true; }")
        job_id = int(re.search(r"/jobs/(\d+)", page.url).group(1))  # type: ignore[union-attr]
        shoot(page, "job-in-progress", tmp_path)
    finally:
        release.set()

    live = page.locator("#job-live")
    expect(live.get_by_role("heading", name="Status COMPLETE")).to_be_visible(timeout=30_000)
    expect(live.get_by_text(f"Done: {len(fleet.spare)} of {len(fleet.spare)}")).to_be_visible()
    assert page.evaluate("() => window.stillTheSamePage === true")  # updated in place, not reloaded
    expect(live).not_to_have_attribute("data-poll", re.compile(".*"))  # polling stopped
    for mac in fleet.spare:
        expect(live.get_by_role("row").filter(has_text=mac)).to_contain_text("SUCCESS")
    assert fleet.sp.ok("GET", f"/jobs/{job_id}")["status"] == "COMPLETE"
    assert_accessible(page)
    shoot(page, "job", tmp_path)


# --- the audit log as CSV ----------------------------------------------------------------------


def test_the_audit_log_downloads_as_csv(page: Any, fleet: Fleet) -> None:
    _signed_in(page, fleet.admin)
    page.goto("/logs")
    expect(heading(page, "Audit log")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = download.value.path()
    assert download.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(saved).read_text(encoding="utf-8-sig"))))
    assert rows, "an empty export"
    logins = {r.get("login") or r.get("Login") or "" for r in rows}
    assert "admin" in logins, rows[0].keys()
    assert any("Northwind Telecom" in " ".join(r.values()) for r in rows)  # the account the fixture made


# --- the main pages: accessible, and drawn ----------------------------------------------------


def _main_pages(fleet: Fleet) -> dict[str, tuple[Api, str, str]]:
    """name -> (who looks, path, its h1)."""
    return {
        "dashboard": (fleet.admin, "/", "Dashboard"),
        "devices": (fleet.sp, "/devices", "Devices"),
        "device": (fleet.acme, f"/devices/{fleet.acme_devices[0]}", fleet.acme_devices[0]),
        "import-job": (fleet.admin, f"/jobs/{fleet.import_job}", f"Job #{fleet.import_job}"),
        "site": (fleet.acme, f"/sites/{fleet.acme_site}", "Site Head office"),
        "audit-log": (fleet.admin, "/logs", "Audit log"),
        "jobs": (fleet.sp, "/jobs", "Jobs"),
        "accounts": (fleet.sp, "/accounts", "Accounts"),
        "profiles": (fleet.acme, "/profiles", "Profiles"),
        "fleet": (fleet.sp, "/fleet", "Fleet"),
    }


@pytest.mark.parametrize("name", ["dashboard", "devices", "device", "import-job", "site", "audit-log",
                                  "jobs", "accounts", "profiles", "fleet"])
def test_a_main_page_passes_axe_and_is_drawn(page: Any, fleet: Fleet, name: str, tmp_path: Path) -> None:
    who, path, title = _main_pages(fleet)[name]
    _signed_in(page, who)
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, (path, answer and answer.status)
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    assert_accessible(page)
    shoot(page, name, tmp_path)


def test_the_dashboard_works_at_phone_width(browser: Any, portal_server: PortalServer, fleet: Fleet,
                                            tmp_path: Path) -> None:
    context, page, problems = open_page(browser, portal_server.url, PHONE)
    try:
        _signed_in(page, fleet.admin)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the dashboard scrolls sideways at {PHONE['width']} px: {width} px wide"
        assert_accessible(page)
        shoot(page, "dashboard-phone", tmp_path)
    finally:
        context.close()
    assert not problems, f"the browser reported problems: {problems}"


@pytest.mark.parametrize("role", ["admin", "sp", "acme"])
def test_every_link_of_the_navigation_opens_an_accessible_page(page: Any, fleet: Fleet, role: str) -> None:
    """Each administrator's navigation (what its role may see) leads to pages that answer 200 with
    one h1 and pass axe; the page's CSP and sub-resources are watched as everywhere."""
    _signed_in(page, getattr(fleet, role))
    nav = page.get_by_role("navigation", name="Main").get_by_role("link")
    links = [(link.inner_text(), link.get_attribute("href")) for link in nav.all()]
    assert ("Devices", "/devices") in links, links
    for label, href in links:
        answer = page.goto(href)
        assert answer is not None and answer.status == 200, (label, href, answer and answer.status)
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True)
               ).to_have_attribute("aria-current", "page")
        assert_accessible(page)


# --- finding a device, and a webhook's secret ---------------------------------------------------


def test_a_device_is_found_and_picked_for_a_bulk_action_from_the_list(page: Any, fleet: Fleet) -> None:
    target = fleet.acme_devices[1]
    _signed_in(page, fleet.sp)
    page.goto("/devices")
    page.get_by_label("MAC, serial, model or label").fill(fleet.serials[target])
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_role("table").locator("tbody").get_by_role("row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("link", name=target)).to_be_visible()
    page.get_by_label(f"Select {target}").check()
    page.get_by_role("button", name="Bulk action on the selected devices…").click()
    expect(heading(page, "Start a job")).to_be_visible()
    expect(page.get_by_label("Devices", exact=True)).to_have_value(re.compile(rf"^{target}\s*$"))


def test_a_webhook_secret_is_shown_once(page: Any, fleet: Fleet) -> None:
    _signed_in(page, fleet.acme)
    page.goto("/webhooks")
    expect(heading(page, "Webhooks")).to_be_visible()
    page.get_by_label("Receiver URL (http or https)").fill("http://127.0.0.1:9/acme-hook")
    page.get_by_label("Description").fill("front desk")
    page.get_by_role("group", name="Events").get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status")).to_contain_text("Copy the secret now")
    secret = page.locator("code.secret").inner_text().strip()
    assert len(secret) >= 20 and secret not in page.url
    assert_accessible(page)
    page.get_by_role("link", name="Go to the webhook").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Webhook #")
    assert secret not in page.content()
    page.goto("/webhooks")
    assert secret not in page.content()
