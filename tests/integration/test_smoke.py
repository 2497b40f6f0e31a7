"""The server starts on a real socket, answers /info, and the platform administrator can log in."""

from tests.integration.client import ApiClient


async def test_info_needs_no_login(api: ApiClient) -> None:
    ans = await api.get("/info")
    assert ans.status == 200
    assert ans["name"] == "enrollab" and ans["version"]


async def test_admin_logs_in(admin: ApiClient) -> None:
    me = await admin.get(f"/accounts/{admin.account_id}")
    assert me.ok()["type"] == "platform"
