"""LCK rules: platform lockout settings and wrong codes over the device protocol."""

from __future__ import annotations

import asyncio

import pytest

from conformance.server.client import Probe, expect_error, import_probes, nec, new_org, zero_touch
from simulators.admin_client import AdminError

LATEST = "4.1.11.0.9"


@pytest.mark.rule("LCK-1")
async def test_lockout_settings_are_readable_by_accounts_and_writable_by_the_platform_only(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        policy = await org.sp.call("GET", "/settings/lockout")
        assert policy["attempts"] >= 1 and policy["minutes"] >= 1
        await expect_error(org.sp.call("PUT", "/settings/lockout", {"attempts": 9}), 403)
        assert await admin.call("GET", "/settings/lockout") == policy


@pytest.mark.rule("LCK-2")
async def test_the_lth_wrong_code_locks_a_right_code_is_refused_while_locked_and_activation_lifts_it(
    enrollment_server,  # type: ignore[no-untyped-def]
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        limit = (await admin.call("GET", "/settings/lockout"))["attempts"]
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe])
        code = await nec(org, total=5)
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        answers = [await probe.enroll(wrong) for _ in range(limit)]
        assert [a.result for a in answers] == ["code_invalid"] * (limit - 1) + ["locked"]
        assert [a["attempts_left"] for a in answers[:-1]] == list(range(limit - 1, 0, -1))
        assert answers[-1].status == 423 and answers[-1]["retry_after"] > 0
        right = await probe.enroll(code)
        assert (right.status, right.result) == (423, "locked")
        await zero_touch(org, [probe])  # activation by an administrator lifts the lock
        assert (await probe.enroll()).result == "redirect"


@pytest.mark.rule("LCK-2", "EC-7")
async def test_the_platform_lifts_the_lockout_of_an_unclaimed_device_and_the_right_code_then_enrolls_and_claims(
    enrollment_server,  # type: ignore[no-untyped-def]
) -> None:
    """DES ch.4: a locked device "can be manually activated". One that types codes is unclaimed,
    so no account holds it: the platform administrator lifts its lock (`POST /devices/unlock`)."""
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        limit = (await admin.call("GET", "/settings/lockout"))["attempts"]
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe])
        code = await nec(org, total=5)
        wrong = f"{(int(code) + 3) % 10**8:08d}"
        answers = [await probe.enroll(wrong) for _ in range(limit)]
        assert answers[-1].result == "locked", [a.body for a in answers]
        try:
            lifted = await admin.call("POST", "/devices/unlock", {"macs": [probe.mac]})
        except AdminError as exc:
            pytest.fail(
                f"LCK-2: the platform administrator cannot lift the lockout of an unclaimed device: "
                f"POST /api/v1/devices/unlock answered {exc.status} {exc.error}: {exc.detail}"
            )
        assert [(r["mac"], r["status"]) for r in lifted["results"]] == [(probe.mac, "SUCCESS")], lifted
        answer = await probe.enroll(code)
        assert (answer.status, answer.result) == (200, "redirect"), answer.body
        device = await org.sp.call("GET", f"/devices/{probe.mac}")
        assert (device["owner_id"], device["site_id"], device["activated"]) == (org.customer_id, org.site_id, True)
        assert device["locked"] is False


@pytest.mark.rule("LCK-3")
async def test_20_concurrent_wrong_codes_count_exactly_the_limit(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        limit = (await admin.call("GET", "/settings/lockout"))["attempts"]
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe])
        code = await nec(org, total=5)
        wrong = f"{(int(code) + 7) % 10**8:08d}"
        answers = await asyncio.gather(*(probe.enroll(wrong) for _ in range(20)))
        counted = [a for a in answers if a.result == "code_invalid"] + [
            a for a in answers if a.result == "locked" and a.status == 423
        ]
        assert len(counted) == 20
        invalid = sorted(a["attempts_left"] for a in answers if a.result == "code_invalid")
        # Each of the first L-1 wrong codes left a distinct count; everything after is "locked".
        assert invalid == list(range(1, limit)), invalid
        assert sum(1 for a in answers if a.result == "locked") == 20 - (limit - 1)
