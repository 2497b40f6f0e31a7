"""The portal's audit log over a real socket: filters, paging newest first, CSV export, ACC-7."""

from __future__ import annotations

import csv
import html
import io
import json
import re

from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.portal_client import Portal, signed_in

_ROW = re.compile(
    r'<tr>\s*<td>[^<]*</td>\s*<td>([A-Z]+)</td>\s*<td class="hide-narrow"><code>([^<]*)</code></td>'
    r".*?<td>([^<]*)</td>\s*</tr>",
    re.S,
)


def _entries(page: str) -> list[tuple[str, str, str]]:
    """(process, action, message) of each entry row of the log page, top to bottom."""
    return [(p, a, html.unescape(m)) for p, a, m in _ROW.findall(page)]


async def _download(portal: Portal, path: str) -> tuple[int, str, str, str]:
    async with portal.http.get(portal.base + path) as r:
        return r.status, r.headers.get("Content-Type", ""), r.headers.get("Content-Disposition", ""), await r.text()


async def test_the_csv_download_holds_the_rows_of_the_filtered_page(server: Running, admin: ApiClient) -> None:
    for n in range(3):
        (await admin.post("/accounts", {"type": "service_provider", "name": f"Logged SP {n}"})).ok()
    assert (await admin.call("PATCH", "/accounts/00000000", {"name": "Logged nowhere"})).status == 404  # FAIL
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        query = "process=ACCOUNT&status=SUCCESS&message=Logged"
        status, page = await portal.get(f"/logs?{query}")
        assert status == 200
        shown = _entries(page)
        assert [m for _, _, m in shown] == [f"created service_provider account {a} 'Logged SP {n}'"
                                            for n, a in reversed(await _ids(admin))]  # newest first
        link = html.unescape(re.search(r'href="(/logs/export\.csv[^"]*)"', page).group(1))  # type: ignore[union-attr]
        assert all(part in link for part in query.split("&"))  # the page's own filters
        status, ctype, disposition, text = await _download(portal, link)
        assert status == 200 and ctype.startswith("text/csv")
        assert disposition.startswith("attachment;") and ".csv" in disposition
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["process"], r["action"], r["message"]) for r in rows] == shown
        assert all(r["status"] == "SUCCESS" and r["login"] == "admin" for r in rows)
        # the refused call is in the log as FAIL, and in neither the filtered page nor the file
        status, page = await portal.get("/logs?status=FAIL&process=ACCOUNT")
        failed = _entries(page)
        assert failed and all(entry not in shown for entry in failed)
    finally:
        await portal.close()


async def _ids(admin: ApiClient) -> list[tuple[int, str]]:
    items = (await admin.get("/accounts", name="Logged SP")).ok()["items"]
    return sorted((int(a["name"].rsplit(" ", 1)[1]), a["id"]) for a in items)


async def test_the_log_is_paged_newest_first_and_a_bad_filter_is_explained(server: Running, admin: ApiClient) -> None:
    for n in range(5):
        (await admin.post("/accounts", {"type": "service_provider", "name": f"Paged {n}"})).ok()
    portal = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
    try:
        status, page = await portal.get("/logs?message=Paged&limit=2")
        assert status == 200 and "1–2 of 5" in page
        assert [m.rsplit("'", 2)[1] for _, _, m in _entries(page)] == ["Paged 4", "Paged 3"]
        nxt = html.unescape(re.search(r'rel="next" href="([^"]*)"', page).group(1))  # type: ignore[union-attr]
        status, page = await portal.get(nxt)
        assert [m.rsplit("'", 2)[1] for _, _, m in _entries(page)] == ["Paged 2", "Paged 1"]
        # the API's own filter format, ANDed with the form's fields
        q = json.dumps({"any": [{"field": "message", "op": "ends_with", "value": "'Paged 0'"}]})
        status, page = await portal.get("/logs?" + "&".join([f"q={q}", "process=ACCOUNT"]).replace("+", "%2B"))
        assert [m.rsplit("'", 2)[1] for _, _, m in _entries(page)] == ["Paged 0"]
        status, page = await portal.get("/logs?q=not-json")
        assert status == 400 and "invalid-filter" in page and 'value="not-json"' in page
        status, page = await portal.get("/logs?from=yesterday")
        assert status == 400 and "invalid-time" in page
    finally:
        await portal.close()


async def test_a_customer_sees_only_its_subtrees_entries_on_the_page_and_in_the_file(
    server: Running, admin: ApiClient
) -> None:
    sp = await admin.new_account("service_provider")
    mine = await sp.new_account("customer", name="Log Mine")
    theirs = await sp.new_account("customer", name="Log Theirs")
    (await mine.call("PATCH", f"/accounts/{mine.account_id}", {"sap_id": "MINE-1"})).ok()
    (await theirs.call("PATCH", f"/accounts/{theirs.account_id}", {"sap_id": "THEIRS-1"})).ok()
    portal = await signed_in(server.admin_url, mine.login_name, PASSWORD)
    try:
        status, page = await portal.get("/logs")
        assert status == 200 and mine.login_name in page and "sap_id" in page
        assert theirs.login_name not in page and theirs.account_id not in page
        status, page = await portal.get(f"/logs?account_id={theirs.account_id}")
        assert status == 200 and "0–0 of 0" in page
        status, _, _, text = await _download(portal, "/logs/export.csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and {r["account_id"] for r in rows} == {mine.account_id}
        assert theirs.login_name not in text
        # the platform sees both
        platform = await signed_in(server.admin_url, "admin", ADMIN_PASSWORD)
        try:
            status, page = await platform.get("/logs?message=sap_id")
            assert mine.account_id in page and theirs.account_id in page
        finally:
            await platform.close()
    finally:
        await portal.close()
