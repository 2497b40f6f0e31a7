"""LCK rules: platform lockout settings and wrong codes over the device protocol."""

from __future__ import annotations

import asyncio

import pytest

from conformance.server.client import Probe, expect_error, import_probes, nec, new_org, zero_touch

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
