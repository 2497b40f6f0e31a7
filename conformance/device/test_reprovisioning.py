"""Device suite: Appendix A "Re-provisioning devices" — rule ENR-7 (a device may run discovery again
at any time; the answer reflects the current state).

The device is enrolled and provisioned from one file server; then its administrator runs
discovery again from the Settings menu (`dut.reprovision()`); the scripted DES now names a second
file server, and the device must enroll again and provision from there. A device without the
feature sends no new enrollment request.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.settings_files import SETTINGS_FILE, settings
from harness.dut import OutcomeResult
from harness.scripted_des import ScriptedDES, redirect, rejected


@pytest.mark.rule("ENR-7")
@pytest.mark.feature("re-provisioning-devices")
@pytest.mark.needs("provisioning-urls", "https-provisioning-url")
@pytest.mark.steps("arrange", "boot", "reprovision", "check")
async def test_reprovisioning_enrolls_again_and_follows_the_new_answer(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    first = await file_server(settings(), cert_mode="public")
    second = await file_server(settings(), cert_mode="public")
    with step("arrange", evidence={"first": first.https_url, "then": second.https_url}):
        des.script(dut.identity.mac, redirect(first.https_url), redirect(second.https_url))
    with step("boot") as s:
        booted = await dut.boot()
        s.record(outcome=booted.to_json())
        assert booted.result is OutcomeResult.PROVISIONED, f"the first enrollment ended {booted.result}"
    with step("reprovision") as s:
        outcome = await dut.reprovision()
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        s.record(enrollments=[r.to_json() for r in des.enrollments()], second=second.paths())
        assert len(des.enrollments(dut.identity.mac)) == 2, "re-provisioning sent no new enrollment request"
        assert SETTINGS_FILE in second.paths(status=200), (
            f"after re-provisioning the device did not fetch its settings from the new server ({second.paths()})"
        )


@pytest.mark.rule("ENR-7")
@pytest.mark.lacks_feature("re-provisioning-devices")
@pytest.mark.steps("arrange", "boot", "reprovision", "check")
async def test_no_reprovisioning_without_the_feature(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: the Settings-menu discovery is not there: no new enrollment request."""
    with step("arrange"):
        des.script(dut.identity.mac, rejected("test-complete"), rejected("test-complete"))
    with step("boot") as s:
        s.record(outcome=(await dut.boot()).to_json())
    before = len(des.enrollments())
    with step("reprovision") as s:
        s.record(outcome=(await dut.reprovision()).to_json())
    with step("check") as s:
        s.record(enrollments=[r.to_json() for r in des.enrollments()])
        assert len(des.enrollments()) == before, "the device ran enrollment discovery again"
