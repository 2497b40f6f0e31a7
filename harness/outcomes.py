"""How a conformance test ends: the five outcomes (`harness.report.Outcome`) and the rules that
sort exceptions into them.

- pass — the test ran every declared step and every assertion held.
- fail — the device or server under test broke a rule: an `AssertionError` (plain `assert`,
  `pytest.fail`, `pytest.raises` that saw nothing) in the test body or in one of its steps.
- error — the harness or the lab broke, so nothing is known about the device or server: a
  `harness.errors.HarnessError` or any other exception in the test body, any exception while a
  fixture sets up or tears down (no route, file server down, arrangement refused, no driver),
  a test that ended without running all its declared steps, a timeout, or a skip that does not
  say why the test is not applicable (a conformance test never skips silently).
- needs operator — a person had to act at the bench (type an enrollment code on the keypad,
  answer the auto-provisioning prompt, power-cycle a phone by hand) and the run is unattended: a
  `harness.errors.NeedsOperator` raised in the test body, one of its steps or a fixture's set-up
  (the operator prompt raises it without a terminal), or the `operator` marker on a test whose
  device under test is not simulated, in an unattended run. Nothing is known about the device, so
  it is never a pass; and it is no error either, since nothing broke. Carried as a pytest skip
  whose reason starts with `needs operator: `, so junit.xml shows it as skipped with the reason.
  A `NeedsOperator` while a fixture tears down is an error (the test had already ended).
- not applicable — the device's model and firmware lack a feature the test needs (the
  `feature` marker, Appendix A), or the test found so itself and called `not_applicable(reason)`.
  Carried as a pytest skip whose reason starts with `not applicable: `, so junit.xml shows it
  as skipped with the reason.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from harness.errors import NeedsOperator
from harness.report import Outcome

__all__ = ["NA_PREFIX", "OPERATOR_PREFIX", "Outcome", "classify", "not_applicable", "not_applicable_reason"]

NA_PREFIX = "not applicable: "
OPERATOR_PREFIX = "needs operator: "


def not_applicable(reason: str, *, at_test: bool = False) -> NoReturn:
    """End the running test as *not applicable*, saying why (e.g. the device's `explain()`).
    `at_test`: report the test's own location rather than the caller's (for hooks)."""
    __tracebackhide__ = True  # the skip's location is the caller's
    if at_test:
        try:
            raise pytest.skip.Exception(NA_PREFIX + reason, _use_item_location=True)  # as skipif markers do
        except TypeError:  # a pytest without the keyword
            pass
    pytest.skip(NA_PREFIX + reason)


def not_applicable_reason(skip_message: str) -> str | None:
    """The reason of a not-applicable skip, or None for any other skip."""
    text = skip_message.removeprefix("Skipped: ")
    return text[len(NA_PREFIX):] if text.startswith(NA_PREFIX) else None


def classify(exc: BaseException) -> Outcome:
    """The outcome an exception raised by a test body, one of its steps or a fixture's set-up
    stands for (the plugin makes any other exception in a fixture an error)."""
    if isinstance(exc, NeedsOperator):
        return Outcome.NEEDS_OPERATOR
    if isinstance(exc, pytest.skip.Exception):
        return Outcome.NOT_APPLICABLE if not_applicable_reason(str(exc.msg)) is not None else Outcome.ERROR
    if isinstance(exc, pytest.fail.Exception):
        # pytest-timeout's signal method ends a test with pytest.fail("Timeout …"): the bench hung.
        return Outcome.ERROR if str(exc.msg).startswith("Timeout") else Outcome.FAIL
    if isinstance(exc, AssertionError):
        return Outcome.FAIL
    return Outcome.ERROR
