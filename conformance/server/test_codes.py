"""EC rules: numeric and provisioning enrollment codes, set up over the admin API and used over
the device protocol — including EC-3 under concurrency."""

from __future__ import annotations

import asyncio
import re

import pytest

from conformance.server.client import Probe, expect_error, import_probes, nec, new_org
from simulators.admin_client import AdminError

LATEST = "4.1.11.0.9"  # J179's latest: no FW-2 upgrade before the code is looked at


@pytest.mark.rule("EC-1", "EC-2")
async def test_nec_lengths_expiry_limits_and_a_profile_first(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        code = await org.sp.call(
            "POST",
            f"/sites/{org.site_id}/nec",
            {"length": 8, "total_devices": 5, "expiry": {"unit": "days", "value": 90}},
        )
        assert re.fullmatch(r"[0-9]{8}", code["code"]) and code["expires_at"]
        longer = await org.sp.call("POST", f"/sites/{org.site_id}/nec/regenerate", {"length": 12})
        assert re.fullmatch(r"[0-9]{12}", longer["code"])
        # One code per site: a second POST is a conflict, not a second code.
        await expect_error(
            org.sp.call("POST", f"/sites/{org.site_id}/nec", {"length": 8, "total_devices": 5, "expiry": None}), 409
        )
        other = await new_org(admin)
        for expiry in ({"unit": "months", "value": 4}, {"unit": "hours", "value": 73}, {"unit": "weeks", "value": 13}):
            await expect_error(
                other.sp.call(
                    "POST", f"/sites/{other.site_id}/nec", {"length": 8, "total_devices": 5, "expiry": expiry}
                ),
                422,
            )
        await expect_error(
            other.sp.call("POST", f"/sites/{other.site_id}/nec", {"length": 10, "total_devices": 5, "expiry": None}),
            422,
        )
        # EC-2: a site without a profile gets no code — or cannot exist without one at all.
        try:
            bare = await org.sp.call("POST", f"/accounts/{org.customer_id}/sites", {"name": "no profile yet"})
        except AdminError as exc:
            assert exc.status in (400, 422), exc
        else:
            refused = await expect_error(
                org.sp.call("POST", f"/sites/{bare['id']}/nec", {"length": 8, "total_devices": 5, "expiry": None}),
                409,
            )
            assert refused.error


@pytest.mark.rule("EC-3", "EC-7")
async def test_100_concurrent_enrollments_on_a_code_for_10_enroll_exactly_10(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probes = [Probe.make(enrollment_server, firmware=LATEST) for _ in range(100)]
        await import_probes(admin, probes)
        code = await nec(org, total=10)
        answers = await asyncio.gather(*(p.enroll(code) for p in probes))
        redirects = [a for a in answers if a.result == "redirect"]
        assert len(redirects) == 10, sorted({(a.status, a.result) for a in answers})
        assert {(a.status, a.result) for a in answers if a.result != "redirect"} == {(422, "code_invalid")}
        state = await org.sp.call("GET", f"/sites/{org.site_id}/nec")
        assert state["enrolled"] == 10
        # EC-7: each enrolled device is claimed by the site's account, associated and activated.
        winner = next(p for p, a in zip(probes, answers, strict=True) if a.result == "redirect")
        device = await org.sp.call("GET", f"/devices/{winner.mac}")
        assert (device["owner_id"], device["site_id"], device["activated"]) == (org.customer_id, org.site_id, True)


@pytest.mark.rule("EC-6")
async def test_the_pec_is_account_id_plus_pin_and_enrolls(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        pec = (await org.sp.call("GET", f"/sites/{org.site_id}/pec"))["code"]
        assert pec == org.pec and len(pec) == 12
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe])
        answer = await probe.enroll(pec)
        assert (answer.status, answer.result) == (200, "redirect"), answer.body


@pytest.mark.rule("EC-5", "EC-8")
async def test_regenerating_gives_a_new_code_keeps_the_count_and_the_old_code_stops(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        first = await nec(org, total=5)
        probes = [Probe.make(enrollment_server, firmware=LATEST) for _ in range(2)]
        await import_probes(admin, probes)
        assert (await probes[0].enroll(first)).result == "redirect"
        regenerated = await org.sp.call("POST", f"/sites/{org.site_id}/nec/regenerate", {"length": 12})
        assert regenerated["code"] != first and len(regenerated["code"]) == 12
        assert regenerated["enrolled"] == 1
        assert (await probes[1].enroll(first)).result == "code_invalid"
        assert (await probes[1].enroll(regenerated["code"])).result == "redirect"
