"""Device suite: the conformance statement — Appendix A features a device supports where the suite
cannot watch them (`observability.py`): "Avaya Cloud Office support" everywhere (a server-side
sync, ACO-1), and features whose behaviour needs another feature the device lacks there ("Device
Enrollment Services as Provisioning Server" on J139/J159/J189 below their "Provisioning URLs"
minimum; "Re-trigger after firmware upgrade" and "Firmware manager tool" on a B199, which has no
"Firmware upgrade").

As in the Matter harness's PICS checks, the statement itself is Appendix A for the model and
firmware the lab declares; what the device can show is that it IS that model at that firmware:
its enrollment request must name the declared model, firmware, MAC (= its factory certificate's
CN) and serial (ENR-1). The evidence says which behaviour was not exercised and why. Elsewhere
these tests are not applicable: a behavioural test observes the feature (reason given), or the
device lacks it.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.identity_check import identity_evidence, identity_problems
from conformance.device.observability import DECLARED, missing_prerequisites, statement_features
from harness.scripted_des import ScriptedDES, rejected

UNOBSERVABLE_RULES = {
    "ACO-1": "a sync between the enrollment server and the cloud-office system; on the device protocol only the "
    "model and firmware it keys on are seen (checked by test_conformance_statement, ENR-1)",
}

FEATURES = [
    pytest.param(fid, marks=[pytest.mark.feature(fid)], id=fid) for fid in statement_features()
]


def not_exercised(dut: Any, feature: str) -> str:
    if feature in DECLARED:
        return DECLARED[feature]
    missing = missing_prerequisites(dut.supports, feature)
    return "its behaviour needs " + "; ".join(dut.explain(p) for p in missing)


@pytest.mark.rule("ENR-1")
@pytest.mark.statement
@pytest.mark.steps("enroll", "check")
@pytest.mark.parametrize("feature", FEATURES)
async def test_conformance_statement(feature: str, dut: Any, des: ScriptedDES, step: Any) -> None:
    mac = dut.identity.mac
    des.script(mac, rejected("test-complete"))
    with step("enroll", evidence={"statement": dut.explain(feature), "not_exercised": not_exercised(dut, feature)}):
        outcome = await dut.boot()
    with step("check") as s:
        s.record(outcome=outcome.to_json())
        requests = des.enrollments(mac)
        assert requests, "the device sent no enrollment request, so it cannot be identified"
        s.record(**identity_evidence(dut, requests[0]))
        assert identity_problems(dut, requests[0]) == []
