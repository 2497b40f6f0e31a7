"""The portal's webhook pages over a real socket (issue 16): register with the secret shown once,
the delivery log of a ping, another hierarchy's webhook not found, CSRF."""

from __future__ import annotations

import re

from server.runner import Running
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.portal_client import signed_in


async def test_register_shows_the_secret_once_and_the_log_lists_a_ping(server: Running, admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, sp.login_name, PASSWORD)
    try:
        status, page, _ = await portal.post(
            "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": "device.enrolled", "description": "lab"}
        )
        assert status == 201 and "shown only on this page" in page
        secret = re.search(r'<code class="secret wrap">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
        [hook] = (await sp.get("/webhooks")).ok()["items"]
        status, page = await portal.get(f"/webhooks/{hook['id']}")
        assert status == 200 and secret not in page and "Delivery log" in page
        status, _, location = await portal.post(f"/webhooks/{hook['id']}/do", {"do": "ping"})
        assert status == 303
        _, page = await portal.get(location)
        assert "ping" in page and "dlv_" in page
        _, listing = await portal.get("/webhooks")
        assert secret not in listing and "http://127.0.0.1:9/hook" in listing
        status, _, _ = await portal.post(f"/webhooks/{hook['id']}/do", {"do": "delete"}, csrf=False)
        assert status == 403 and (await sp.get(f"/webhooks/{hook['id']}")).status == 200
    finally:
        await portal.close()


async def test_another_hierarchy_cannot_open_or_change_a_webhook(server: Running, admin: ApiClient) -> None:
    owner = await admin.new_account("service_provider")
    hook = (await owner.post("/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["job.finished"]})).ok()
    stranger = await admin.new_account("service_provider")
    portal = await signed_in(server.admin_url, stranger.login_name, PASSWORD)
    try:
        status, _ = await portal.get(f"/webhooks/{hook['id']}")
        assert status == 404
        status, _, _ = await portal.post(f"/webhooks/{hook['id']}/do", {"do": "delete"})
        assert status == 404
        assert (await owner.get(f"/webhooks/{hook['id']}")).status == 200
    finally:
        await portal.close()
