"""ENR, DEV and FW rules observable on the device protocol (PROTOCOL §2)."""

from __future__ import annotations

import pytest

from conformance.server.client import Probe, import_probes, new_org, zero_touch
from conformance.server.unobservable import UNOBSERVABLE

LATEST = "4.1.11.0.9"


@pytest.mark.rule("ENR-1")
async def test_a_device_that_was_not_imported_is_unknown(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    probe = Probe.make(enrollment_server, firmware=LATEST)
    answer = await probe.enroll()
    assert (answer.status, answer.result) == (404, "unknown_device")


@pytest.mark.rule("ENR-1")
async def test_the_body_mac_must_be_the_certificate_cn(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        probe, other = Probe.make(enrollment_server, firmware=LATEST), Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe, other])
        answer = await probe.enroll(mac=other.mac)
        assert answer.status in (403, 404) and answer.result in ("rejected", "unknown_device"), answer.body


@pytest.mark.rule("DEV-2")
async def test_an_imported_device_enrolls_only_once_approved(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe], approve=False)
        answer = await probe.enroll()
        assert (answer.status, answer.result, answer["reason"]) == (403, "rejected", "not-approved")


@pytest.mark.rule("DEV-6", "ENR-2")
async def test_claimed_associated_activated_gets_the_sites_redirect_with_placeholders_kept(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin, "https://prov.enrollab.test/$MODEL4/$MACADDR/", group=7)
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe])
        await zero_touch(org, [probe])
        answer = await probe.enroll()
        assert (answer.status, answer.result) == (200, "redirect"), answer.body
        provisioning = answer["provisioning"]
        assert provisioning["url"] == "https://prov.enrollab.test/$MODEL4/$MACADDR/"
        assert (provisioning["server_type"], provisioning["group"]) == ("HTTPS", 7)


@pytest.mark.rule("ENR-3", "DEV-7")
async def test_a_device_not_arranged_is_asked_for_the_codes_its_firmware_takes(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        cases = {
            ("J179", LATEST): ["nec8", "nec12", "pec12"],
            ("K175", "3.1"): ["nec8", "nec12"],
            ("B199", "1.0.4.0"): ["nec8"],
        }
        probes = {key: Probe.make(enrollment_server, model=key[0], firmware=key[1]) for key in cases}
        await import_probes(admin, list(probes.values()))
        for key, formats in cases.items():
            answer = await probes[key].enroll()
            assert (answer.status, answer.result) == (200, "code_required"), (key, answer.body)
            assert sorted(answer["formats"]) == sorted(formats), key


@pytest.mark.rule("ENR-4")
async def test_an_ip_address_url_is_never_sent_to_a_vantage(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin, "https://192.0.2.10/prov/")
        vantage, j179 = Probe.make(enrollment_server, model="K175", firmware="3.1"), Probe.make(enrollment_server)
        await import_probes(admin, [vantage, j179])
        await zero_touch(org, [vantage, j179])
        refused = await vantage.enroll()
        assert (refused.status, refused.result, refused["reason"]) == (403, "rejected", "unsupported-url")
        assert (await j179.enroll()).result == "redirect"


@pytest.mark.rule("FW-4")
async def test_a_j100_on_1_5_is_told_to_upgrade_by_hand(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        probe = Probe.make(enrollment_server, model="J129", firmware="1.5")
        await import_probes(admin, [probe])
        answer = await probe.enroll()
        assert (answer.status, answer.result, answer["reason"]) == (403, "rejected", "manual-upgrade-required")


@pytest.mark.rule("FW-2", "FW-1")
async def test_an_unclaimed_device_below_latest_is_sent_the_latest_image(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        probe = Probe.make(enrollment_server, model="J179", firmware="4.0.6.0")
        await import_probes(admin, [probe])
        answer = await probe.enroll()
        assert (answer.status, answer.result) == (200, "upgrade"), answer.body
        firmware = answer["firmware"]
        image = await probe.request("GET", firmware["url"])
        assert image.status == 200
        import hashlib

        assert hashlib.sha256(image.body if isinstance(image.body, bytes) else b"").hexdigest().lower() == (
            firmware["sha256"].lower()
        )


@pytest.mark.rule("ENR-5", "LOG-1")
async def test_every_enrollment_attempt_is_logged_with_the_device_and_status(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        probe = Probe.make(enrollment_server, firmware=LATEST)
        await import_probes(admin, [probe], approve=False)
        await probe.enroll()
        q = (
            '{"all": [{"field": "process", "op": "eq", "value": "ENROLLMENT"}, '
            f'{{"field": "message", "op": "contains", "value": "{probe.mac}"}}]}}'
        )
        logs = await admin.call("GET", "/logs", params={"q": q, "limit": "10"})
        assert logs["total"] >= 1, logs
        assert logs["items"][0]["status"] == "FAIL"


UNOBSERVABLE_RULES = dict(UNOBSERVABLE)
