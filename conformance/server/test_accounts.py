"""ACC and USR rules, observed through the admin API only (PROTOCOL §3)."""

from __future__ import annotations

import re

import pytest

from conformance.server.client import expect_error, new_admin, new_org, tag
from simulators.admin_client import AdminClient, new_password


@pytest.mark.rule("ACC-1", "ACC-2")
async def test_only_the_platform_creates_service_providers_and_resellers_never_create_resellers(
    enrollment_server,  # type: ignore[no-untyped-def]
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        await expect_error(org.sp.call("POST", "/accounts", {"type": "service_provider", "name": f"x-{tag()}"}), 403)
        reseller = await org.sp.call("POST", "/accounts", {"type": "reseller", "name": f"conf-reseller-{tag()}"})
        rt = await new_admin(org.sp, str(reseller["id"]), f"conf-res-{tag()}@enrollab.test")
        await expect_error(rt.call("POST", "/accounts", {"type": "reseller", "name": f"x-{tag()}"}), 403)
        customer = await rt.call("POST", "/accounts", {"type": "customer", "name": f"conf-c-{tag()}"})
        ct = await new_admin(rt, str(customer["id"]), f"conf-cust-{tag()}@enrollab.test")
        await expect_error(ct.call("POST", "/accounts", {"type": "customer", "name": f"x-{tag()}"}), 403)


@pytest.mark.rule("ACC-3", "ACC-4")
async def test_account_ids_are_8_unique_digits_and_the_type_never_changes(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        ids = [org.sp_id, org.customer_id]
        for _ in range(3):
            ids.append(str((await org.sp.call("POST", "/accounts", {"type": "customer", "name": f"c-{tag()}"}))["id"]))
        assert all(re.fullmatch(r"[0-9]{8}", i) for i in ids), ids
        assert len(set(ids)) == len(ids)
        with pytest.raises(Exception):  # noqa: B017 - any refusal: 400/422 from schema or rule
            await org.sp.call("PATCH", f"/accounts/{org.customer_id}", {"type": "reseller"})
        renamed = await org.sp.call("PATCH", f"/accounts/{org.customer_id}", {"name": f"renamed-{tag()}"})
        assert renamed["type"] == "customer"


@pytest.mark.rule("ACC-5")
async def test_a_disabled_account_blocks_its_administrators_logins_and_enabling_restores_them(
    enrollment_server,  # type: ignore[no-untyped-def]
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        login, password = f"conf-u-{tag()}@enrollab.test", new_password()
        temporary = new_password()
        await org.sp.call(
            "POST", "/users", {"account_id": org.customer_id, "login": login, "password": temporary, "email": login}
        )
        user = await AdminClient(admin.base, admin.http).login(login, temporary)
        await user.call("POST", "/auth/password", {"old_password": temporary, "new_password": password})
        await org.sp.call("POST", f"/accounts/{org.customer_id}/disable")
        await expect_error(AdminClient(admin.base, admin.http).login(login, password), 401)
        await org.sp.call("POST", f"/accounts/{org.customer_id}/enable")
        assert (await AdminClient(admin.base, admin.http).login(login, password)).token


@pytest.mark.rule("ACC-7")
async def test_an_administrator_sees_only_its_own_subtree(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        one, other = await new_org(admin), await new_org(admin)
        assert (await one.sp.call("GET", f"/accounts/{one.customer_id}"))["id"] == one.customer_id
        refused = await expect_error(one.sp.call("GET", f"/accounts/{other.customer_id}"), 404)
        assert refused.error
        listed = await one.sp.call("GET", "/accounts", params={"limit": "500"})
        assert other.customer_id not in {a["id"] for a in listed["items"]}


@pytest.mark.rule("USR-1")
async def test_a_password_set_by_someone_else_must_be_changed_first_and_logins_are_unique(
    enrollment_server,  # type: ignore[no-untyped-def]
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        login, temporary = f"conf-u-{tag()}@enrollab.test", new_password()
        await org.sp.call(
            "POST", "/users", {"account_id": org.customer_id, "login": login, "password": temporary, "email": login}
        )
        user = await AdminClient(admin.base, admin.http).login(login, temporary)
        assert user.password_change_required  # type: ignore[attr-defined]
        await expect_error(user.call("GET", f"/accounts/{org.customer_id}"), 403, "password-change-required")
        await expect_error(
            org.sp.call(
                "POST", "/users", {"account_id": org.customer_id, "login": login, "password": temporary, "email": login}
            ),
            409,
        )


@pytest.mark.rule("ACC-7", "LOG-1")
async def test_requests_without_a_token_are_refused(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        anonymous = AdminClient(admin.base, admin.http)
        for path in ("/accounts", "/devices", "/logs", "/settings/lockout"):
            await expect_error(anonymous.call("GET", path), 401)
