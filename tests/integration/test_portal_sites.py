"""Portal pages for sites, enrollment codes, profiles and firmware, over a real socket: a customer
administrator builds a profile and a site, generates a code shown once, and a phone enrolls with
it; another customer can neither open the site nor touch its code; forms need the CSRF token."""

from __future__ import annotations

import re

from server.runner import Running
from server.store.models import Profile
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import Phone, import_phones
from tests.integration.portal_client import Portal, signed_in

CODE = re.compile(r'id="nec-code">(\d{8}|\d{12})<')
URL = "https://prov.example.test/j100"


async def customer_portal(server: Running, admin: ApiClient) -> tuple[ApiClient, ApiClient, Portal]:
    """A service provider, one of its customers (API client), and the customer's admin in the portal."""
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    return sp, customer, await signed_in(server.admin_url, customer.login_name, PASSWORD)


async def portal_site(portal: Portal, customer: ApiClient, name: str = "Head office") -> int:
    """A profile and a site made through the portal's forms; the site's id."""
    status, _, location = await portal.post(
        "/profiles/new",
        {
            "name": f"Profile for {name}",
            "entry-0-server_type": "HTTPS",
            "entry-0-url": URL,
            "entry-0-group": "7",
            "entry-1-url": "",
            "entry-2-url": "",
        },
    )
    assert status == 303 and re.fullmatch(r"/profiles/\d+\?done=created", location), (status, location)
    profile_id = int(location.split("/")[2].split("?")[0])
    await portal.get("/sites")
    status, page, location = await portal.post(
        "/sites",
        {
            "account_id": customer.account_id,
            "name": name,
            "profile_id": str(profile_id),
            "entry": "0",
            "pin": "",
        },
    )
    assert status == 303, page
    match = re.fullmatch(r"/sites/(\d+)\?done=created", location)
    assert match, location
    return int(match.group(1))


async def test_customer_generates_a_code_shown_once_and_a_phone_enrolls_with_it(
    server: Running, admin: ApiClient
) -> None:
    _, customer, portal = await customer_portal(server, admin)
    try:
        site_id = await portal_site(portal, customer)
        status, page = await portal.get("/sites")
        assert status == 200 and "Head office" in page
        status, page = await portal.get(f"/sites/{site_id}")
        assert status == 200 and URL in page and "Generate a code" in page and "no numeric enrollment code" in page

        status, page, location = await portal.post(
            f"/sites/{site_id}/codes",
            {
                "length": "8",
                "total_devices": "5",
                "expiry_unit": "days",
                "expiry_value": "30",
            },
        )
        assert status == 201 and not location
        assert "Copy it now: it will not be shown again." in page
        found = CODE.search(page)
        assert found is not None
        code = found.group(1)
        assert len(code) == 8

        status, page = await portal.get(f"/sites/{site_id}")
        assert status == 200 and code not in page  # the API's reader answers it; the page does not draw it
        assert "0 / 5" in page and "30 days" in page and "expires" in page

        phone = Phone.make(server)
        await import_phones(admin, [phone])
        answer = await phone.enroll(code=code)
        assert (answer.status, answer["result"]) == (200, "redirect"), answer.body
        assert answer["provisioning"]["group"] == 7
        status, page = await portal.get(f"/sites/{site_id}")
        assert "1 / 5" in page and code not in page

        status, page, location = await portal.post(f"/sites/{site_id}/codes/regenerate", {"length": "12"})
        assert status == 200 and not location and "Copy it now" in page
        found = CODE.search(page)
        assert found is not None
        new_code = found.group(1)
        assert len(new_code) == 12 and new_code != code
        assert (await customer.get(f"/sites/{site_id}/nec")).ok()["code"] == new_code
        status, page = await portal.get(f"/sites/{site_id}")
        assert new_code not in page and code not in page and "1 / 5" in page
    finally:
        await portal.close()


async def test_code_settings_and_deletion_from_the_site_page(server: Running, admin: ApiClient) -> None:
    _, customer, portal = await customer_portal(server, admin)
    try:
        site_id = await portal_site(portal, customer)
        await portal.get(f"/sites/{site_id}")
        status, page, _ = await portal.post(
            f"/sites/{site_id}/codes",
            {
                "length": "8",
                "total_devices": "5",
                "expiry_unit": "days",
                "expiry_value": "91",
            },
        )
        assert status == 422 and 'role="alert"' in page and "Generate a code" in page  # EC-1: days 1-90
        assert (await customer.get(f"/sites/{site_id}/nec")).status == 404
        status, _, _ = await portal.post(
            f"/sites/{site_id}/codes", {"length": "8", "total_devices": "5", "expiry_unit": "never"}
        )
        assert status == 201
        status, _, location = await portal.post(
            f"/sites/{site_id}/codes/settings",
            {
                "total_devices": "9",
                "expiry_unit": "hours",
                "expiry_value": "12",
            },
        )
        assert status == 303 and location == f"/sites/{site_id}?done=code-saved"
        nec = (await customer.get(f"/sites/{site_id}/nec")).ok()
        assert nec["total_devices"] == 9 and nec["expiry"] == {"unit": "hours", "value": 12}
        status, page = await portal.get(f"/sites/{site_id}/codes/delete")
        assert status == 200 and "Delete the code" in page
        status, _, location = await portal.post(f"/sites/{site_id}/codes/delete", {})
        assert status == 303 and (await customer.get(f"/sites/{site_id}/nec")).status == 404
    finally:
        await portal.close()


async def test_another_customer_cannot_open_the_site_nor_change_its_code(server: Running, admin: ApiClient) -> None:
    sp, customer, portal = await customer_portal(server, admin)
    other = await sp.new_account("customer")
    intruder = await signed_in(server.admin_url, other.login_name, PASSWORD)
    try:
        site_id = await portal_site(portal, customer)
        await portal.get(f"/sites/{site_id}")
        status, page, _ = await portal.post(
            f"/sites/{site_id}/codes", {"length": "8", "total_devices": "3", "expiry_unit": "never"}
        )
        found = CODE.search(page)
        assert status == 201 and found is not None
        code = found.group(1)

        status, page = await intruder.get(f"/sites/{site_id}")
        assert status == 404 and "site-not-found" in page and "Head office" not in page
        status, _ = await intruder.get(f"/sites/{site_id}/codes/delete")
        assert status == 404
        await intruder.get("/sites")  # its own CSRF token
        for path, form in (
            (f"/sites/{site_id}/codes/regenerate", {}),
            (f"/sites/{site_id}/codes/settings", {"total_devices": "1000", "expiry_unit": "never"}),
            (f"/sites/{site_id}/codes/delete", {}),
            (f"/sites/{site_id}", {"name": "Taken over", "profile_id": "", "pin": ""}),
            (f"/sites/{site_id}/delete", {}),
        ):
            status, page, _ = await intruder.post(path, form)
            assert status == 404 and code not in page, path
        status, page, _ = await intruder.post(
            "/sites", {"account_id": customer.account_id, "name": "Mine", "profile_id": "", "pin": ""}
        )
        assert status == 404
        nec = (await customer.get(f"/sites/{site_id}/nec")).ok()
        assert (nec["code"], nec["total_devices"]) == (code, 3)
        site = (await customer.get(f"/sites/{site_id}")).ok()
        assert site["name"] == "Head office"
        assert (await customer.get(f"/accounts/{customer.account_id}/sites")).ok()["total"] == 1
        # the intruder's own sites page lists its account only
        status, page = await intruder.get("/sites")
        assert status == 200 and customer.account_id not in page and "Head office" not in page
    finally:
        await portal.close()
        await intruder.close()


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(server: Running, admin: ApiClient) -> None:
    _, customer, portal = await customer_portal(server, admin)
    try:
        site_id = await portal_site(portal, customer)
        await portal.get(f"/sites/{site_id}")
        status, page, _ = await portal.post(
            f"/sites/{site_id}/codes", {"length": "8", "total_devices": "3"}, csrf=False
        )
        assert status == 403 and "csrf-invalid" in page
        assert (await customer.get(f"/sites/{site_id}/nec")).status == 404
        status, _, _ = await portal.post(
            "/sites", {"account_id": customer.account_id, "name": "Forged", "profile_id": ""}, csrf=False
        )
        assert status == 403
        status, _, _ = await portal.post(f"/sites/{site_id}/delete", {}, csrf=False)
        assert status == 403
        status, _, _ = await portal.post("/profiles/new", {"name": "Forged", "entry-0-url": URL}, csrf=False)
        assert status == 403
        assert (await customer.get(f"/accounts/{customer.account_id}/sites")).ok()["total"] == 1
        assert [p["name"] for p in (await customer.get("/profiles")).ok()["items"]] == ["Profile for Head office"]
    finally:
        await portal.close()


async def test_site_edit_firmware_policy_and_the_account_switch(server: Running, admin: ApiClient) -> None:
    _, customer, portal = await customer_portal(server, admin)
    try:
        site_id = await portal_site(portal, customer)
        status, page = await portal.get(f"/sites/{site_id}")
        assert 'id="firmware"' in page and "same-as-account" in page
        firmware = (await customer.get(f"/sites/{site_id}/firmware")).ok()["items"]
        model = next(f for f in firmware if f["upgradable"] and f["offered"])
        status, _, location = await portal.post(
            f"/sites/{site_id}/firmware", {"model": model["model"], "setting": model["offered"][0]}
        )
        assert status == 303 and location.startswith(f"/sites/{site_id}?done=firmware")
        after = {f["model"]: f["setting"] for f in (await customer.get(f"/sites/{site_id}/firmware")).ok()["items"]}
        assert after[model["model"]] == model["offered"][0]
        status, page, _ = await portal.post(f"/sites/{site_id}/firmware", {"model": model["model"], "setting": "0.0.1"})
        assert status == 422 and 'role="alert"' in page

        status, _, location = await portal.post(
            f"/sites/{site_id}", {"name": "Branch", "profile_id": "", "pin": "0042"}
        )
        assert status == 303
        site = (await customer.get(f"/sites/{site_id}")).ok()
        assert (site["name"], site["profile_id"], site["pin"]) == ("Branch", None, "0042")
        status, page = await portal.get(f"/sites/{site_id}")
        assert f"{customer.account_id}0042" in page and "Choose a profile for the site first" in page
        status, page, _ = await portal.post(f"/sites/{site_id}", {"name": "Branch", "profile_id": "", "pin": "12a"})
        assert status == 422 and "Branch" in page and (await customer.get(f"/sites/{site_id}")).ok()["pin"] == "0042"

        assert (await customer.get(f"/accounts/{customer.account_id}")).ok()["firmware_upgrade"] is False
        status, page = await portal.get("/sites")
        assert "Switch firmware upgrade on" in page
        status, _, location = await portal.post(
            "/sites/firmware-upgrade", {"account_id": customer.account_id, "enabled": "on"}
        )
        assert status == 303
        assert (await customer.get(f"/accounts/{customer.account_id}")).ok()["firmware_upgrade"] is True

        status, page = await portal.get(f"/sites/{site_id}/delete")
        assert status == 200 and "Delete the site" in page
        status, _, location = await portal.post(f"/sites/{site_id}/delete", {})
        assert status == 303 and location.startswith("/sites?")
        assert (await customer.get(f"/sites/{site_id}")).status == 404
    finally:
        await portal.close()


async def test_profiles_list_edit_keeps_a_redacted_password_and_delete_is_refused_while_used(
    server: Running, admin: ApiClient
) -> None:
    _, customer, portal = await customer_portal(server, admin)
    try:
        secret_url = "https://user:Hidden-pw-9@prov.example.test/j100"
        await portal.get("/profiles/new")
        status, page, location = await portal.post(
            "/profiles/new",
            {
                "name": "With password",
                "entry-0-server_type": "HTTP(S)",
                "entry-0-url": secret_url,
                "entry-0-group": "3",
                "entry-1-url": "",
                "entry-2-url": "",
            },
        )
        assert status == 303, page
        pid = int(location.split("/")[2].split("?")[0])
        status, page = await portal.get(f"/profiles/{pid}")
        assert status == 200 and "Hidden-pw-9" not in page and "****" in page
        status, page = await portal.get("/profiles")
        assert "With password" in page and "Hidden-pw-9" not in page
        # edit: rename, keep the redacted URL as shown, add a second entry
        status, page, _ = await portal.post(
            f"/profiles/{pid}",
            {
                "name": "Renamed",
                "entry-0-was": "0",
                "entry-0-server_type": "HTTPS",
                "entry-0-url": "https://user:****@prov.example.test/j100",
                "entry-0-group": "3",
                "entry-1-server_type": "HTTP",
                "entry-1-url": "http://two.example.test/j100",
                "entry-1-group": "4",
                "entry-2-url": "",
            },
        )
        assert status == 303, page
        async with server.opened.ctx.store.transaction() as s:
            stored = await s.get(Profile, pid)
            assert stored is not None
            assert [e["url"] for e in stored.entries] == [secret_url, "http://two.example.test/j100"]
        # a new entry typed above the one with the hidden password would move it: refused before the API
        status, page, _ = await portal.post(
            f"/profiles/{pid}",
            {
                "name": "Renamed",
                "entry-0-server_type": "HTTP",
                "entry-0-url": "http://three.example.test/j100",
                "entry-1-was": "0",
                "entry-1-server_type": "HTTPS",
                "entry-1-url": "https://user:****@prov.example.test/j100",
                "entry-2-url": "",
            },
        )
        assert status == 400 and "type the whole URL again" in page
        async with server.opened.ctx.store.transaction() as s:
            stored = await s.get(Profile, pid)
            assert stored is not None and stored.entries[0]["url"] == secret_url and len(stored.entries) == 2
        # a bad URL: the API's refusal next to the form, what was typed kept
        status, page, _ = await portal.post(
            f"/profiles/{pid}",
            {
                "name": "Renamed",
                "entry-0-was": "0",
                "entry-0-server_type": "HTTPS",
                "entry-0-url": "ftp://nope.test/x",
                "entry-0-group": "3",
            },
        )
        assert status == 422 and 'role="alert"' in page and "ftp://nope.test/x" in page
        assert (await customer.get(f"/profiles/{pid}")).ok()["name"] == "Renamed"

        await portal.get("/sites")
        status, _, location = await portal.post(
            "/sites",
            {"account_id": customer.account_id, "name": "Uses it", "profile_id": str(pid), "entry": "1", "pin": ""},
        )
        assert status == 303
        status, page, _ = await portal.post(f"/profiles/{pid}/delete", {})
        assert status == 409 and "profile-in-use" not in page and "site" in page
        assert (await customer.get(f"/profiles/{pid}")).status == 200
        site_id = int(location.split("/")[2].split("?")[0])
        assert (await portal.post(f"/sites/{site_id}/delete", {}))[0] == 303
        status, _, location = await portal.post(f"/profiles/{pid}/delete", {})
        assert status == 303 and location == "/profiles?done=deleted"
        assert (await customer.get(f"/profiles/{pid}")).status == 404
    finally:
        await portal.close()


async def test_a_customer_renames_a_site_that_uses_its_providers_profile(server: Running, admin: ApiClient) -> None:
    sp, customer, portal = await customer_portal(server, admin)
    try:
        profile = (
            await sp.post("/profiles", {"name": "Provider's", "entries": [{"server_type": "HTTPS", "url": URL}]})
        ).ok()
        site = (
            await sp.post(
                f"/accounts/{customer.account_id}/sites", {"name": "Given", "profile_id": profile["id"], "pin": "0007"}
            )
        ).ok()
        assert (await customer.get(f"/profiles/{profile['id']}")).status == 404  # the customer cannot open it
        status, page = await portal.get(f"/sites/{site['id']}")
        assert status == 200 and "Provider&#39;s" in page and URL in page
        status, page, _ = await portal.post(
            f"/sites/{site['id']}", {"name": "Renamed", "profile_id": str(profile["id"]), "entry": "0", "pin": "0007"}
        )
        assert status == 303, page
        after = (await customer.get(f"/sites/{site['id']}")).ok()
        assert (after["name"], after["profile_id"], after["pin"]) == ("Renamed", profile["id"], "0007")
        # sites of this customer as its provider sees them in the portal
        provider = await signed_in(server.admin_url, sp.login_name, PASSWORD)
        try:
            status, page = await provider.get(f"/sites?account={customer.account_id}")
            assert status == 200 and "Renamed" in page and f'value="{customer.account_id}" selected' in page
        finally:
            await provider.close()
    finally:
        await portal.close()


async def test_a_des_site_page_uploads_its_configuration_zip_and_shows_a_refusal(
    server: Running, admin: ApiClient
) -> None:
    """PRF-5 in the portal: the zip's files are listed after the upload; a file that is no zip is
    refused with the API's sentence and the stored zip stays."""
    import aiohttp

    from tests.integration.test_api_sites import DES, SETTINGS, make_zip, setup

    sp, _, _, site = await setup(admin, DES)
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page = await portal.get(f"/sites/{site['id']}")
        assert status == 200 and "Basic configuration (DES)" in page and "No configuration zip yet" in page
        form = aiohttp.FormData()
        form.add_field("file", make_zip({"46xxsettings.txt": SETTINGS, "logo.png": b"\x89PNG"}),
                       filename="site.zip", content_type="application/zip")
        status, _, location = await portal.post(f"/sites/{site['id']}/config", form)
        assert (status, location) == (303, f"/sites/{site['id']}?done=config")
        status, page = await portal.get(location)
        assert "<code>46xxsettings.txt</code>" in page and "<code>logo.png</code>" in page
        bad = aiohttp.FormData()
        bad.add_field("file", b"not a zip at all", filename="site.zip", content_type="application/zip")
        status, page, _ = await portal.post(f"/sites/{site['id']}/config", bad)
        assert status in (400, 415, 422) and 'role="alert"' in page, page[:500]
        assert (await sp.get(f"/sites/{site['id']}/config")).ok()["members"] == ["46xxsettings.txt", "logo.png"]
    finally:
        await portal.close()
