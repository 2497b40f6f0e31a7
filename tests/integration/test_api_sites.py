"""Customer sites over the admin API: SIT-1, SIT-2, SIT-3, PRF-4, PRF-5, ACC-7, roles, LOG-1."""

from __future__ import annotations

import io
import itertools
import zipfile
from typing import Any

import pytest
from sqlalchemy import select

from server.runner import Running
from server.store.models import AuditLog, Device, DeviceFamily, Job, JobResult, Notification, Site, SiteFirmware
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.test_api_profiles import entry, make_profile

_n = itertools.count(1)
DES = entry("https://des.example.test", "DES")
SETTINGS = b"SET SIG 1\n"


async def customer_of(sp: ApiClient) -> str:
    return str((await sp.post("/accounts", {"type": "customer", "name": f"Customer {next(_n)}"})).ok()["id"])


async def make_site(client: ApiClient, account_id: str, profile_id: int | None, **extra: Any) -> dict[str, Any]:
    body = {"name": f"Site {next(_n)}", "profile_id": profile_id, **extra}
    return (await client.post(f"/accounts/{account_id}/sites", body)).ok()


async def setup(admin: ApiClient, *entries: dict[str, Any]) -> tuple[ApiClient, str, dict[str, Any], dict[str, Any]]:
    """A service provider, one of its customers, a profile of the provider and a site using it."""
    sp = await admin.new_account("service_provider")
    customer = await customer_of(sp)
    profile = await make_profile(sp, *entries)
    site = await make_site(sp, customer, profile["id"])
    return sp, customer, profile, site


def make_zip(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


async def put_zip(client: ApiClient, site_id: int, data: bytes) -> Any:
    return await client.call("PUT", f"/sites/{site_id}/config", data=data, content_type="application/zip")


# SIT-1 ------------------------------------------------------------------------------------------


async def test_sit1_site_has_profile_entry_and_pin(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    customer = await customer_of(sp)
    profile = await make_profile(sp, entry(), entry("http://two.example.test/j100", group=42))
    site = await make_site(sp, customer, profile["id"], entry=1, pin="0042")
    assert (site["account_id"], site["profile_id"], site["entry"], site["pin"]) == (customer, profile["id"], 1, "0042")
    assert site["provisioning"]["url"] == "http://two.example.test/j100" and site["provisioning"]["group"] == 42
    assert (await sp.get(f"/sites/{site['id']}")).ok() == site
    listed = (await sp.get(f"/accounts/{customer}/sites")).ok()
    assert listed["total"] == 1 and listed["items"][0]["id"] == site["id"]


async def test_sit1_default_entry_is_0_and_no_pin(admin: ApiClient) -> None:
    _, _, profile, site = await setup(admin)
    assert site["entry"] == 0 and site["pin"] is None
    assert site["provisioning"]["url"] == profile["entries"][0]["url"]


@pytest.mark.parametrize("pin", ["12345", "123", "12a4", 1234, "１２３４"])
async def test_sit1_bad_pin_is_refused(admin: ApiClient, pin: Any) -> None:
    sp, customer, profile, _ = await setup(admin)
    ans = await sp.post(f"/accounts/{customer}/sites", {"name": "P", "profile_id": profile["id"], "pin": pin})
    assert ans.status == 422 and ans["error"] == "invalid-pin"
    assert (await sp.get(f"/accounts/{customer}/sites")).ok()["total"] == 1  # only setup's site


async def test_sit1_pin_and_name_unique_within_account(admin: ApiClient) -> None:
    sp, customer, profile, site = await setup(admin)
    (await sp.call("PATCH", f"/sites/{site['id']}", {"pin": "0000"})).ok()
    ans = await sp.post(f"/accounts/{customer}/sites", {"name": "Other", "profile_id": profile["id"], "pin": "0000"})
    assert ans.status == 409 and ans["error"] == "pin-taken"
    ans = await sp.post(f"/accounts/{customer}/sites", {"name": site["name"], "profile_id": profile["id"]})
    assert ans.status == 409 and ans["error"] == "site-name-taken"
    other = await customer_of(sp)  # another account may reuse both
    await make_site(sp, other, profile["id"], pin="0000")


async def test_sit1_entry_index_must_exist(admin: ApiClient) -> None:
    sp, customer, profile, site = await setup(admin)
    for bad in (1, -1, "0"):
        ans = await sp.post(f"/accounts/{customer}/sites", {"name": "E", "profile_id": profile["id"], "entry": bad})
        assert ans.status == 422 and ans["error"] == "invalid-profile-entry", bad
    ans = await sp.call("PATCH", f"/sites/{site['id']}", {"entry": 3})
    assert ans.status == 422 and ans["error"] == "invalid-profile-entry"


async def test_sit1_sites_belong_to_customer_accounts_only(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    profile = await make_profile(sp)
    for account in (reseller.account_id, sp.account_id):
        ans = await sp.post(f"/accounts/{account}/sites", {"name": "S", "profile_id": profile["id"]})
        assert ans.status == 422 and ans["error"] == "not-a-customer-account"


async def test_sit1_profile_of_own_or_ancestor_account_only(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    sp_profile = await make_profile(sp)
    customer = await customer_of(reseller)
    # the reseller's customer may use the reseller's profile ...
    await make_site(reseller, customer, (await make_profile(reseller))["id"])
    # ... the provider may give it its own profile (an ancestor's) ...
    await make_site(sp, customer, sp_profile["id"])
    # ... but the reseller cannot use a profile it cannot see (ACC-7) ...
    ans = await reseller.post(f"/accounts/{customer}/sites", {"name": "X", "profile_id": sp_profile["id"]})
    assert ans.status == 404 and ans["error"] == "profile-not-found"
    # ... and nobody uses a profile of another branch
    sibling = await sp.new_account("customer")
    sibling_profile = await make_profile(sibling)
    ans = await sp.post(f"/accounts/{customer}/sites", {"name": "Y", "profile_id": sibling_profile["id"]})
    assert ans.status == 422 and ans["error"] == "profile-not-available"


async def test_sit1_patch_profile_and_entry_notifies_provision_changes(admin: ApiClient, server: Running) -> None:
    sp, customer, profile, site = await setup(admin, entry(), entry("https://admin:s3cret@b.example.test/x"))
    patched = (await sp.call("PATCH", f"/sites/{site['id']}", {"entry": 1, "name": "Renamed"})).ok()
    assert patched["provisioning"]["url"] == "https://admin:****@b.example.test/x" and patched["name"] == "Renamed"
    same = (await sp.call("PATCH", f"/sites/{site['id']}", {"profile_id": profile["id"]})).ok()
    assert same["entry"] == 1  # naming the current profile again keeps the entry
    other = await make_profile(sp, entry("https://c.example.test"))
    patched = (await sp.call("PATCH", f"/sites/{site['id']}", {"profile_id": other["id"]})).ok()
    assert patched["profile_id"] == other["id"] and patched["entry"] == 0  # a new profile starts at entry 0
    async with server.opened.ctx.store.transaction() as s:
        notes = list(await s.scalars(select(Notification).where(Notification.kind == "provision-changes")))
    assert len(notes) == 2 and {n.account_id for n in notes} == {customer}
    assert all("s3cret" not in n.body for n in notes)


async def test_prf4_site_without_profile_shows_no_provisioning(admin: ApiClient) -> None:
    sp, customer, _, site = await setup(admin)
    cleared = (await sp.call("PATCH", f"/sites/{site['id']}", {"profile_id": None})).ok()
    assert cleared["profile_id"] is None and cleared["provisioning"] is None
    bare = await make_site(sp, customer, None)
    assert bare["provisioning"] is None


async def test_sit1_delete_site_refused_while_devices_are_associated(
    admin: ApiClient, server: Running, clock: FakeClock
) -> None:
    sp, customer, _, site = await setup(admin)
    async with server.opened.ctx.store.transaction() as s:
        s.add(
            Device(
                mac="A4251B000001",
                serial="S1",
                model="J179",
                approved=True,
                owner_id=customer,
                site_id=site["id"],
                associated=True,
                created_at=clock(),
            )
        )
    ans = await sp.call("DELETE", f"/sites/{site['id']}")
    assert ans.status == 409 and ans["error"] == "site-in-use"
    async with server.opened.ctx.store.transaction() as s:
        dev = await s.get(Device, "A4251B000001")
        assert dev is not None
        dev.site_id, dev.associated = None, False
    assert (await sp.call("DELETE", f"/sites/{site['id']}")).ok() == {"deleted": site["id"]}
    assert (await sp.get(f"/sites/{site['id']}")).status == 404


# ACC-7 and roles --------------------------------------------------------------------------------


async def test_acc7_another_providers_site_is_404(admin: ApiClient) -> None:
    sp1, customer, _, site = await setup(admin, DES)
    sp2 = await admin.new_account("service_provider")
    own = await make_profile(sp2)
    sid = site["id"]
    answers = [
        await sp2.get(f"/sites/{sid}"),
        await sp2.call("PATCH", f"/sites/{sid}", {"name": "Mine"}),
        await sp2.call("DELETE", f"/sites/{sid}"),
        await put_zip(sp2, sid, make_zip({"46xxsettings.txt": SETTINGS})),
        await sp2.get(f"/sites/{sid}/config"),
        await sp2.call("PUT", f"/sites/{sid}/firmware/J179", {"setting": "latest"}),
        await sp2.get(f"/sites/{sid}/firmware"),
    ]
    for ans in answers:
        assert ans.status == 404 and ans["error"] == "site-not-found", ans
    for ans in (
        await sp2.post(f"/accounts/{customer}/sites", {"name": "Z", "profile_id": own["id"]}),
        await sp2.get(f"/accounts/{customer}/sites"),
    ):
        assert ans.status == 404 and ans["error"] == "account-not-found"
    assert (await sp1.get(f"/sites/{sid}")).ok()["name"] == site["name"]


async def test_roles_manufacturer_cannot_touch_sites_platform_reads(admin: ApiClient) -> None:
    sp, customer, profile, site = await setup(admin)
    manufacturer = await admin.new_account("manufacturer")
    ans = await manufacturer.post(f"/accounts/{customer}/sites", {"name": "M", "profile_id": profile["id"]})
    assert ans.status == 403 and ans["error"] == "forbidden-role"
    ans = await admin.post(f"/accounts/{customer}/sites", {"name": "M", "profile_id": profile["id"]})
    assert ans.status == 403 and ans["error"] == "forbidden-role"
    assert (await admin.get(f"/sites/{site['id']}")).ok()["id"] == site["id"]


async def test_log1_site_changes_are_audited_without_the_pin(admin: ApiClient, server: Running) -> None:
    sp, customer, profile, _ = await setup(admin)
    site = await make_site(sp, customer, profile["id"], pin="7391")
    async with server.opened.ctx.store.transaction() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.action == "create_site")))
    mine = [r for r in rows if r.message.startswith(f"created site {site['id']} ")]
    assert len(mine) == 1 and mine[0].status == "SUCCESS" and mine[0].process == "SITE"
    assert mine[0].account_id == customer and "7391" not in mine[0].message


# PRF-5 ------------------------------------------------------------------------------------------


async def test_prf5_des_site_takes_a_zip_and_lists_its_members(admin: ApiClient, server: Running) -> None:
    sp, _, _, site = await setup(admin, DES)
    data = make_zip({"46xxsettings.txt": SETTINGS, "logo.png": b"\x89PNG", "ring.wav": b"RIFF"})
    stored = (await put_zip(sp, site["id"], data)).ok()
    assert stored["members"] == ["46xxsettings.txt", "logo.png", "ring.wav"]
    listed = (await sp.get(f"/sites/{site['id']}/config")).ok()
    assert listed["members"] == stored["members"] and listed["size"] == len(data)
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(Site, site["id"])
        assert row is not None and row.config_zip == data


async def test_prf5_no_zip_without_des(admin: ApiClient) -> None:
    sp, customer, _, site = await setup(admin)  # HTTPS entry
    ans = await put_zip(sp, site["id"], make_zip({"46xxsettings.txt": SETTINGS}))
    assert ans.status == 409 and ans["error"] == "not-des"
    assert (await sp.get(f"/sites/{site['id']}/config")).status == 404
    bare = await make_site(sp, customer, None)
    assert (await put_zip(sp, bare["id"], make_zip({"46xxsettings.txt": SETTINGS})))["error"] == "not-des"


def _bomb() -> bytes:
    return make_zip({"46xxsettings.txt": SETTINGS, "big.txt": b"\0" * (8 << 20)})


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"46xxsettings.txt": SETTINGS, "../evil.txt": b"x"}, "zip-path-traversal"),
        ({"46xxsettings.txt": SETTINGS, "/etc/passwd.txt": b"x"}, "zip-absolute-name"),
        ({"46xxsettings.txt": SETTINGS, "sub/a.txt": b"x"}, "zip-subdirectory"),
        ({"46xxsettings.txt": SETTINGS, "run.exe": b"MZ"}, "zip-member-type-not-allowed"),
        ({"logo.png": b"x"}, "zip-missing-settings"),
        ({"46XXSettings.txt": SETTINGS}, "zip-missing-settings"),  # names are case-sensitive
        (None, "zip-bomb"),
        (b"not a zip at all", "not-a-zip"),
    ],
)
async def test_prf5_bad_zip_is_refused_whole_and_nothing_stored(
    admin: ApiClient, server: Running, files: Any, error: str
) -> None:
    sp, _, _, site = await setup(admin, DES)
    good = make_zip({"46xxsettings.txt": SETTINGS})
    (await put_zip(sp, site["id"], good)).ok()
    data = _bomb() if files is None else files if isinstance(files, bytes) else make_zip(files)
    ans = await put_zip(sp, site["id"], data)
    assert ans.status == 422 and ans["error"] == error, ans.body
    assert (await sp.get(f"/sites/{site['id']}/config")).ok()["members"] == ["46xxsettings.txt"]
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(Site, site["id"])
        assert row is not None and row.config_zip == good
        fail = await s.scalar(select(AuditLog).where(AuditLog.action == "put_site_config", AuditLog.status == "FAIL"))
    assert fail is not None and error in fail.message


# SIT-3 ------------------------------------------------------------------------------------------

J179_LAST_5 = ["4.0.10.0", "4.0.13.0", "4.1.1.0.7", "4.1.3.0", "4.1.11.0.9"]


async def test_sit3_firmware_per_model_defaults_and_choices(admin: ApiClient, server: Running) -> None:
    sp, _, _, site = await setup(admin)
    sid = site["id"]
    listed = {i["model"]: i for i in (await sp.get(f"/sites/{sid}/firmware")).ok()["items"]}
    assert listed["J179"]["setting"] == "same-as-account" and listed["J179"]["offered"] == J179_LAST_5
    for setting in ("latest", "off", "4.0.10.0", "4.1.11.0.9"):
        ans = (await sp.call("PUT", f"/sites/{sid}/firmware/J179", {"setting": setting})).ok()
        assert ans["setting"] == setting
    listed = {i["model"]: i for i in (await sp.get(f"/sites/{sid}/firmware")).ok()["items"]}
    assert listed["J179"]["setting"] == "4.1.11.0.9" and listed["J169"]["setting"] == "same-as-account"
    (await sp.call("PUT", f"/sites/{sid}/firmware/J179", {"setting": "same-as-account"})).ok()
    async with server.opened.ctx.store.transaction() as s:
        assert not list(await s.scalars(select(SiteFirmware).where(SiteFirmware.site_id == sid)))


@pytest.mark.parametrize(
    ("model", "setting", "error"),
    [
        ("J179", "4.0.6.0", "firmware-not-offered"),  # a release, but not among the last 5
        ("J179", "9.9", "firmware-not-offered"),
        ("J179", "newest", "invalid-firmware-setting"),
        ("X999", "latest", "unknown-model"),
    ],
)
async def test_sit3_firmware_setting_refusals(admin: ApiClient, model: str, setting: str, error: str) -> None:
    sp, _, _, site = await setup(admin)
    ans = await sp.call("PUT", f"/sites/{site['id']}/firmware/{model}", {"setting": setting})
    assert ans.status == 422 and ans["error"] == error
    listed = {i["model"]: i["setting"] for i in (await sp.get(f"/sites/{site['id']}/firmware")).ok()["items"]}
    assert listed["J179"] == "same-as-account"


async def test_sit3_platform_catalog_edits_apply(admin: ApiClient, server: Running) -> None:
    sp, _, _, site = await setup(admin)
    assert (await sp.call("PUT", f"/sites/{site['id']}/firmware/J179", {"setting": "4.0.6.0"})).status == 422
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(DeviceFamily, "J179")
        assert row is not None
        row.data = {**row.data, "last_n": 9}  # the platform raises N for J179
    ans = (await sp.call("PUT", f"/sites/{site['id']}/firmware/J179", {"setting": "4.0.6.0"})).ok()
    assert ans["setting"] == "4.0.6.0"


# SIT-2 ------------------------------------------------------------------------------------------


async def test_sit2_bulk_profile_association_completes(admin: ApiClient, server: Running) -> None:
    sp = await admin.new_account("service_provider")
    customer = await customer_of(sp)
    old = await make_profile(sp)
    sites = [await make_site(sp, customer, old["id"]) for _ in range(3)]
    new = await make_profile(sp, entry(), DES)
    ans = (
        await sp.post(
            "/sites/bulk-profile", {"site_ids": [s["id"] for s in sites], "profile_id": new["id"], "entry": 1}
        )
    ).ok()
    assert ans["status"] == "COMPLETE" and ans["kind"] == "profile-association"
    assert [r["status"] for r in ans["results"]] == ["SUCCESS"] * 3
    for site in sites:
        now = (await sp.get(f"/sites/{site['id']}")).ok()
        assert (now["profile_id"], now["entry"], now["provisioning"]["server_type"]) == (new["id"], 1, "DES")
    async with server.opened.ctx.store.transaction() as db:
        job = await db.get(Job, ans["id"])
        results = list(await db.scalars(select(JobResult).where(JobResult.job_id == ans["id"])))
    assert job is not None and job.status == "COMPLETE" and job.finished_at is not None
    assert job.account_id == sp.account_id
    assert sorted(r.subject for r in results) == sorted(str(site["id"]) for site in sites)


async def test_sit2_bulk_with_failing_sites_is_fail_with_reasons(admin: ApiClient, server: Running) -> None:
    sp, customer, profile, site = await setup(admin)
    _, _, _, foreign = await setup(admin)
    new = await make_profile(sp, entry("https://new.example.test"))
    ans = (
        await sp.post("/sites/bulk-profile", {"site_ids": [site["id"], foreign["id"], 99999], "profile_id": new["id"]})
    ).ok()
    assert ans["status"] == "FAIL" and ans["summary"] == {"total": 3, "succeeded": 1, "failed": 2}
    by_site = {r["subject"]: (r["status"], r["reason"]) for r in ans["results"]}
    assert by_site == {
        str(site["id"]): ("SUCCESS", None),
        str(foreign["id"]): ("FAIL", "site-not-found"),
        "99999": ("FAIL", "site-not-found"),
    }
    assert (await sp.get(f"/sites/{site['id']}")).ok()["profile_id"] == new["id"]
    async with server.opened.ctx.store.transaction() as s:
        job = await s.get(Job, ans["id"])
    assert job is not None and job.status == "FAIL"


async def test_sit2_bulk_refusals(admin: ApiClient) -> None:
    sp, _, profile, site = await setup(admin)
    other = await admin.new_account("service_provider")
    theirs = await make_profile(other)
    ans = await sp.post("/sites/bulk-profile", {"site_ids": [site["id"]], "profile_id": theirs["id"]})
    assert ans.status == 404 and ans["error"] == "profile-not-found"
    ans = await sp.post("/sites/bulk-profile", {"site_ids": [site["id"]], "profile_id": profile["id"], "entry": 4})
    assert ans.status == 422 and ans["error"] == "invalid-profile-entry"
    ans = await sp.post("/sites/bulk-profile", {"site_ids": [], "profile_id": profile["id"]})
    assert ans.status == 422 and ans["error"] == "invalid-body"
