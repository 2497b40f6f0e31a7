"""harness.outcomes: which outcome an exception stands for, needs operator included (issue 14)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError, NeedsOperator
from harness.outcomes import OPERATOR_PREFIX, Outcome, classify
from harness.physical.operator import ask_operator
from harness.steps import StepRecorder


def test_needs_operator_is_its_own_outcome_not_an_error() -> None:
    exc = NeedsOperator("type the enrollment code on the keypad")
    assert isinstance(exc, HarnessError) and exc.error == "needs-operator"
    assert classify(exc) is Outcome.NEEDS_OPERATOR
    assert classify(HarnessError("file-server-down", "down")) is Outcome.ERROR
    assert Outcome.NEEDS_OPERATOR.value == "needs_operator" and Outcome.NEEDS_OPERATOR.label == "needs operator"
    assert OPERATOR_PREFIX == "needs operator: "


def test_the_operator_prompt_without_a_terminal_is_needs_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLAB_NO_OPERATOR", "1")
    with pytest.raises(NeedsOperator) as caught:
        ask_operator("answer Yes at the auto-provisioning prompt")
    assert classify(caught.value) is Outcome.NEEDS_OPERATOR
    assert "answer Yes at the auto-provisioning prompt" in caught.value.detail


def test_a_step_that_needs_an_operator_records_so_and_the_exception_goes_on() -> None:
    step = StepRecorder(("arrange", "type code"))
    with step("arrange"):
        pass
    with pytest.raises(NeedsOperator), step("type code"):
        raise NeedsOperator("type 40172635 on the keypad")
    assert [(s["name"], s["outcome"]) for s in step.to_json()] == [("arrange", "pass"), ("type code", "needs_operator")]
    assert step.missing() == []
