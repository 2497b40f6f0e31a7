"""ENR-1 on the device's side: a device authenticates by its factory certificate and says who it
is in every enrollment request — model, firmware, MAC (equal to the certificate's CN) and serial
(PROTOCOL §1, §2). The server's decisions (ENR-4, FW-4, SIT-3, ACO-1) rest on that report, so a
device that misreports its firmware (fault knob `report_firmware`) fails here."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.identity_check import identity_evidence, identity_problems
from harness.scripted_des import ScriptedDES, rejected


@pytest.mark.rule("ENR-1")
@pytest.mark.steps("enroll", "check")
async def test_enrollment_request_identifies_the_device(dut: Any, des: ScriptedDES, step: Any) -> None:
    mac = dut.identity.mac
    des.script(mac, rejected("test-complete"))
    with step("enroll") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        requests = des.enrollments(mac)
        assert requests, "the device sent no enrollment request to the enrollment server"
        s.record(**identity_evidence(dut, requests[0]))
        assert identity_problems(dut, requests[0]) == []
        assert (str(outcome.result), outcome.reason) == ("rejected", "test-complete"), (
            "the device did not act on the enrollment answer it got")
