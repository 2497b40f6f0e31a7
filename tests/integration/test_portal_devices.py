"""The portal's device pages over a real socket (issue 16): search, filter, sort and page through
the devices of one's scope; a device's detail with its timeline; single-device actions through the
API's checks; another customer's device is not found."""

from __future__ import annotations

import html as htmllib
import re

from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.portal_client import signed_in
from tests.integration.test_api_devices import claim, device, fleet, macs_for


def _macs_in(page: str) -> list[str]:
    """The MACs of the table's rows, in the order drawn."""
    return re.findall(r'<a href="/devices/([0-9A-F]{12})"><code>', page)


def _text(page: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_search_filter_sort_and_paging_over_the_device_list(server: Running, admin: ApiClient) -> None:
    macs = macs_for("A4251C", 60)
    devices = [device(m, "J179" if i % 2 else "K175") for i, m in enumerate(macs)]
    await fleet(admin, devices[:55])
    await fleet(admin, devices[55:], approve=False)
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get("/devices")
        assert status == 200 and "60 device(s)" in page
        assert _macs_in(page) == sorted(macs)[:50]  # 50 a page, by MAC
        assert 'rel="next"' in page
        _, page2 = await portal.get("/devices?offset=50")
        assert _macs_in(page2) == sorted(macs)[50:]
        _, found = await portal.get(f"/devices?find={macs[7][:11]}")
        assert set(_macs_in(found)) == {m for m in macs if m.startswith(macs[7][:11])}
        _, by_serial = await portal.get(f"/devices?find={devices[3]['serial']}")
        assert _macs_in(by_serial) == [macs[3]]
        _, k175 = await portal.get("/devices?model=K175")
        assert "30 device(s)" in k175
        _, pending = await portal.get("/devices?state=not_approved")
        assert sorted(_macs_in(pending)) == sorted(macs[55:])
        _, backwards = await portal.get("/devices?sort=-mac")
        assert _macs_in(backwards) == sorted(macs, reverse=True)[:50]
        status, bad = await portal.get("/devices?filter=%7Bnot%20json")
        assert status == 400 and 'role="alert"' in bad  # the API's refusal, next to the form
    finally:
        await portal.close()


async def test_device_detail_shows_identity_and_timeline_and_acts_through_the_api(
    server: Running, admin: ApiClient
) -> None:
    [mac] = await fleet(admin, [device("A4251C000F01")], approve=False)
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get(f"/devices/{mac}")
        assert status == 200 and "Enrollment timeline" in page
        text = _text(page)
        assert "Imported" in text and "Approved pending" in text
        status, _, location = await portal.post(f"/devices/{mac}/do", {"do": "approve"})
        assert status == 303 and "done=" in location
        _, page = await portal.get(f"/devices/{mac}")
        assert "Approved pending" not in _text(page)
        assert (await admin.get(f"/devices/{mac}")).ok()["approved"] is True
        status, _, _ = await portal.post(f"/devices/{mac}/do", {"do": "release"}, csrf=False)
        assert status == 403
    finally:
        await portal.close()


async def test_a_customer_sees_only_its_own_devices(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    mine, theirs = await fleet(admin, [device("A4251C00AA01"), device("A4251C00AA02")])
    (await claim(sp, mine)).ok()
    other = await admin.new_account("service_provider")
    (await claim(other, theirs)).ok()
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        _, page = await portal.get("/devices")
        assert _macs_in(page) == [mine]
        status, page = await portal.get(f"/devices/{theirs}")
        assert status == 404 and theirs not in _macs_in(page)
        status, _, _ = await portal.post(f"/devices/{theirs}/do", {"do": "deactivate"})
        assert status in (404, 409)
        assert (await admin.get(f"/devices/{theirs}")).ok()["owner_id"] == other.account_id
    finally:
        await portal.close()


async def test_the_fleet_view_counts_stages_and_shows_the_latest_steps(server: Running, admin: ApiClient) -> None:
    macs = await fleet(admin, [device(m) for m in macs_for("A4251D", 3)], approve=False)
    (await admin.post("/devices/approve", {"macs": macs[:2]})).ok()
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get("/fleet")
        assert status == 200 and 'data-poll="/fleet?"' in page
        rows = {cells[0]: cells[1] for cells in
                (re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S))
                if len(cells) >= 2}
        assert rows["Imported"] == "1" and rows["Approved"] == "2"
        assert all(m in page for m in macs[:2])  # their approval is among the latest steps
    finally:
        await portal.close()


async def test_an_enrolled_device_page_shows_its_site_profile_and_the_redirect_it_was_sent(
    server: Running, admin: ApiClient
) -> None:
    from tests.integration.device_client import Phone, entry, import_phones, new_customer, new_site, zero_touch

    cust = await new_customer(admin)
    site_id = await new_site(cust.sp, cust.id, entry("https://prov.example.com/$MODEL4/"))
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    await zero_touch(cust, [phone], site_id)
    assert (await phone.enroll()).status == 200
    portal = await signed_in(server.admin_url, cust.customer.login_name, PASSWORD)
    try:
        status, page = await portal.get(f"/devices/{phone.mac}")
        text = _text(page)
        assert status == 200 and "device profile" in text and "https://prov.example.com/" in text
        assert "First contact pending" not in text and "Redirected pending" not in text
    finally:
        await portal.close()
