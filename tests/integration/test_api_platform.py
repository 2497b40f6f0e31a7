"""Platform settings and the device-family catalog over the admin API: LCK-1, FW-1, SIT-3 (N)."""

from __future__ import annotations

import fixtures
from tests.integration.client import ApiClient


async def _partners(admin: ApiClient) -> list[ApiClient]:
    sp = await admin.new_account("service_provider")
    return [
        await admin.new_account("manufacturer"),
        sp,
        await sp.new_account("reseller"),
        await sp.new_account("customer"),
    ]


async def test_lck1_defaults_are_readable_by_every_role(admin: ApiClient) -> None:
    for client in [admin, *await _partners(admin)]:
        assert (await client.get("/settings/lockout")).ok() == {"attempts": 3, "minutes": 30}


async def test_lck1_lockout_settings_are_read_only_to_every_account(admin: ApiClient) -> None:
    for client in await _partners(admin):
        ans = await client.call("PUT", "/settings/lockout", {"attempts": 10, "minutes": 5})
        assert ans.status == 403 and ans["error"] == "forbidden-role", client.login_name
    assert (await admin.get("/settings/lockout")).ok() == {"attempts": 3, "minutes": 30}


async def test_lck1_platform_changes_lockout_and_accounts_see_it(admin: ApiClient) -> None:
    assert (await admin.call("PUT", "/settings/lockout", {"attempts": 5})).ok() == {"attempts": 5, "minutes": 30}
    assert (await admin.call("PUT", "/settings/lockout", {"minutes": 45})).ok() == {"attempts": 5, "minutes": 45}
    sp = await admin.new_account("service_provider")
    assert (await sp.get("/settings/lockout")).ok() == {"attempts": 5, "minutes": 45}


async def test_lck1_lockout_values_are_validated(admin: ApiClient) -> None:
    for body, error in (
        ({"attempts": 0}, "invalid-lockout-attempts"),
        ({"attempts": 21}, "invalid-lockout-attempts"),
        ({"minutes": 0}, "invalid-lockout-minutes"),
        ({"minutes": 1441}, "invalid-lockout-minutes"),
        ({"attempts": "5"}, "invalid-body"),
        ({"attempts": 2.5}, "invalid-body"),
        ({}, "invalid-body"),
        ({"attempts": 3, "lockout": 1}, "invalid-body"),
    ):
        ans = await admin.call("PUT", "/settings/lockout", body)
        assert ans.status == 422 and ans["error"] == error, (body, ans.body)
    assert (await admin.get("/settings/lockout")).ok() == {"attempts": 3, "minutes": 30}


async def test_fw1_catalog_lists_every_model_to_every_role(admin: ApiClient) -> None:
    shipped = fixtures.load_json("firmware-catalog.json")["models"]
    customer = (await _partners(admin))[-1]
    listing = (await customer.get("/device-families", limit="1000")).ok()
    assert listing["total"] == len(shipped)
    by_model = {item["model"]: item for item in listing["items"]}
    assert set(by_model) == set(shipped)
    j179 = by_model["J179"]
    assert (j179["minimum"], j179["latest"], j179["releases"], j179["last_n"]) == (
        shipped["J179"]["minimum"],
        shipped["J179"]["latest"],
        shipped["J179"]["releases"],
        shipped["J179"]["last_n"],
    )


async def test_fw1_catalog_pages(admin: ApiClient) -> None:
    first = (await admin.get("/device-families", limit="2")).ok()
    second = (await admin.get("/device-families", limit="2", offset="2")).ok()
    assert len(first["items"]) == 2 and len(second["items"]) == 2
    assert not {i["model"] for i in first["items"]} & {i["model"] for i in second["items"]}


async def test_fw1_one_model_and_an_unknown_one(admin: ApiClient) -> None:
    assert (await admin.get("/device-families/J179")).ok()["model"] == "J179"
    ans = await admin.get("/device-families/X999")
    assert ans.status == 404 and ans["error"] == "unknown-model"


async def test_fw1_platform_changes_minimum_and_n(admin: ApiClient) -> None:
    """FW-1: the platform updates the minimum version; SIT-3: and N, the releases a site may pick."""
    model = (await admin.get("/device-families/J179")).ok()
    new_minimum = model["releases"][-3]
    ans = (await admin.call("PUT", "/device-families/J179", {"minimum": new_minimum, "last_n": 3})).ok()
    assert ans["minimum"] == new_minimum and ans["last_n"] == 3
    assert ans["releases"] == model["releases"] and ans["latest"] == model["latest"]  # untouched fields kept
    sp = await admin.new_account("service_provider")
    seen = (await sp.get("/device-families/J179")).ok()
    assert (seen["minimum"], seen["last_n"]) == (new_minimum, 3)


async def test_fw1_platform_publishes_a_new_release_as_latest(admin: ApiClient) -> None:
    model = (await admin.get("/device-families/J179")).ok()
    releases = [*model["releases"], "9.9.9"]
    ans = (await admin.call("PUT", "/device-families/J179", {"releases": releases, "latest": "9.9.9"})).ok()
    assert ans["latest"] == "9.9.9" and ans["releases"][-1] == "9.9.9"


async def test_fw1_only_the_platform_writes_the_catalog(admin: ApiClient) -> None:
    before = (await admin.get("/device-families/J179")).ok()
    for client in await _partners(admin):
        ans = await client.call("PUT", "/device-families/J179", {"last_n": 2})
        assert ans.status == 403 and ans["error"] == "forbidden-role"
    assert (await admin.get("/device-families/J179")).ok() == before


async def test_fw1_inconsistent_catalog_changes_are_refused(admin: ApiClient) -> None:
    model = (await admin.get("/device-families/J179")).ok()
    for body, error in (
        ({"latest": "99.0"}, "invalid-firmware-catalog"),  # not one of the releases
        ({"minimum": "99.0"}, "invalid-firmware-catalog"),  # above latest
        ({"minimum": "four"}, "invalid-firmware-catalog"),  # not a version
        ({"releases": ["4.0", "3.0"], "latest": "4.0", "minimum": "3.0"}, "invalid-firmware-catalog"),  # unordered
        ({"last_n": 0}, "invalid-firmware-catalog"),
        ({"family": "Vantage"}, "invalid-body"),  # a model's identity is not editable
        ({}, "invalid-body"),
    ):
        ans = await admin.call("PUT", "/device-families/J179", body)
        assert ans.status == 422 and ans["error"] == error, (body, ans.body)
    assert (await admin.get("/device-families/J179")).ok() == model
    unknown = await admin.call("PUT", "/device-families/X999", {"last_n": 2})
    assert unknown.status == 404 and unknown["error"] == "unknown-model"


async def test_log1_settings_changes_are_logged(admin: ApiClient) -> None:
    (await admin.call("PUT", "/settings/lockout", {"attempts": 4})).ok()
    (await admin.call("PUT", "/device-families/J179", {"last_n": 4})).ok()
    q = (
        '{"any": [{"field": "action", "op": "eq", "value": "put_lockout"},'
        ' {"field": "action", "op": "eq", "value": "put_family"}]}'
    )
    entries = (await admin.get("/logs", q=q)).ok()["items"]
    assert [(e["action"], e["status"], e["login"]) for e in entries] == [
        ("put_family", "SUCCESS", "admin"),
        ("put_lockout", "SUCCESS", "admin"),
    ]
    assert "attempts 3 -> 4" in entries[1]["message"]
