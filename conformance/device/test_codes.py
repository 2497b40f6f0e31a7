"""Device suite: enrollment codes — Appendix A "8-digit numeric enrollment code", "12-digit numeric
enrollment code", "Provisioning enrollment code". Rules: ENR-3 (a device that is not arranged is
asked for a code and its answer is checked by EC and LCK rules), EC-1 (NEC of 8 or 12 digits),
EC-6 (PEC: account ID + PIN, 12 digits), LCK-2 (a locked device is refused every code).

The scripted DES answers `code_required`, then judges the code the device sends (it sees the
digits; its records keep only their length). The person at the phone is `User(codes=[…])`: the
codes typed, in order. Negative checks offer a format the firmware cannot take: the device must
refuse the code on its own and never send it. A device cannot tell a PEC from a 12-digit NEC by its
digits, so "Provisioning enrollment code" has no negative check on the device (a device with
12-digit NECs sends a PEC too; the server offers `pec12` only where the device supports it).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.dut import Outcome, OutcomeResult, User
from harness.scripted_des import Answer, ScriptedDES, code_invalid, code_required, locked, rejected

# Every test here has the person at the phone type codes: on a physical phone that is somebody at
# the keypad (unattended, these tests end "needs operator" there).
pytestmark = pytest.mark.operator("type the enrollment codes the phone asks for on its keypad")

NEC8 = "40172635"
NEC8_WRONG = "40172636"
NEC12 = "730156284917"
PEC = "31415926" + "0042"  # an 8-digit account ID (ACC-3) and the site's PIN (SIT-1)


def judge(expected: str, received: list[str | None]) -> Any:
    """The DES's handler: the right code ends the test, anything else is `code_invalid`."""

    def answer(body: dict[str, Any]) -> Answer:
        received.append(body.get("code"))
        return rejected("test-complete") if body.get("code") == expected else code_invalid(2)

    return answer


async def boot_with_codes(dut: Any, des: ScriptedDES, step: Any, formats: list[str], codes: list[str],
                          then: Any) -> Outcome:
    with step("arrange", evidence={"offered": formats, "typed": [f"{len(c)} digits" for c in codes]}):
        des.script(dut.identity.mac, code_required(formats))
        des.handle(dut.identity.mac, then)
    with step("boot") as s:
        outcome = await dut.boot(User(codes=codes))
        s.record(outcome=outcome.to_json())
    return outcome


def sent_codes(des: ScriptedDES) -> list[str]:
    """The masked codes of the enrollment requests that carried one."""
    return [r.body["code"] for r in des.enrollments() if r.body and r.body.get("code") is not None]


# -- 8 digits ---------------------------------------------------------------------------------------


@pytest.mark.rule("ENR-3", "EC-1")
@pytest.mark.feature("8-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_8_digit_code_is_sent(dut: Any, des: ScriptedDES, step: Any) -> None:
    received: list[str | None] = []
    outcome = await boot_with_codes(dut, des, step, ["nec8"], [NEC8], judge(NEC8, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert received == [NEC8], f"the device did not send the 8-digit code typed ({len(received)} requests)"
        assert (str(outcome.result), outcome.reason) == ("rejected", "test-complete")


@pytest.mark.rule("ENR-3")
@pytest.mark.feature("8-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_code_invalid_lets_the_user_type_again(dut: Any, des: ScriptedDES, step: Any) -> None:
    """`code_invalid` with attempts left: the device asks again and sends the next code typed."""
    received: list[str | None] = []
    await boot_with_codes(dut, des, step, ["nec8"], [NEC8_WRONG, NEC8], judge(NEC8, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert received == [NEC8_WRONG, NEC8], "the device did not send the second code after code_invalid"


@pytest.mark.rule("LCK-2")
@pytest.mark.feature("8-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_locked_device_sends_no_more_codes(dut: Any, des: ScriptedDES, step: Any) -> None:
    """`locked`: the device stops, although the user has another code."""
    outcome = await boot_with_codes(dut, des, step, ["nec8"], [NEC8_WRONG, NEC8], lambda body: locked(1800))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert len(sent_codes(des)) == 1, f"the device kept sending codes after locked: {sent_codes(des)}"
        assert outcome.result is OutcomeResult.LOCKED, f"ended {outcome.result} ({outcome.reason})"


@pytest.mark.rule("ENR-3", "ENR-4")
@pytest.mark.lacks_feature("8-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_8_digit_code_not_sent_without_the_feature(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: asked for an 8-digit code it cannot take, the device sends none."""
    received: list[str | None] = []
    await boot_with_codes(dut, des, step, ["nec8"], [NEC8], judge(NEC8, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert sent_codes(des) == [], "the device sent a code its firmware cannot take"


# -- 12 digits --------------------------------------------------------------------------------------


@pytest.mark.rule("ENR-3", "EC-1")
@pytest.mark.feature("12-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_12_digit_code_is_sent(dut: Any, des: ScriptedDES, step: Any) -> None:
    received: list[str | None] = []
    outcome = await boot_with_codes(dut, des, step, ["nec12"], [NEC12], judge(NEC12, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert received == [NEC12], f"the device did not send the 12-digit code typed ({len(received)} requests)"
        assert (str(outcome.result), outcome.reason) == ("rejected", "test-complete")


@pytest.mark.rule("ENR-3", "ENR-4")
@pytest.mark.lacks_feature("12-digit-numeric-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_12_digit_code_refused_on_the_device(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: a device without 12-digit codes (a B199) refuses one locally and never sends it."""
    received: list[str | None] = []
    await boot_with_codes(dut, des, step, ["nec12"], [NEC12], judge(NEC12, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert sent_codes(des) == [], "the device sent a 12-digit code its firmware cannot take"


# -- PEC --------------------------------------------------------------------------------------------


@pytest.mark.rule("ENR-3", "EC-6")
@pytest.mark.feature("provisioning-enrollment-code")
@pytest.mark.steps("arrange", "boot", "check")
async def test_provisioning_enrollment_code_is_sent(dut: Any, des: ScriptedDES, step: Any) -> None:
    """A PEC (account ID + PIN) is typed and sent as the 12 digits it is."""
    received: list[str | None] = []
    outcome = await boot_with_codes(dut, des, step, ["pec12"], [PEC], judge(PEC, received))
    with step("check") as s:
        s.record(sent=sent_codes(des))
        assert received == [PEC], f"the device did not send the PEC typed ({len(received)} requests)"
        assert (str(outcome.result), outcome.reason) == ("rejected", "test-complete")
