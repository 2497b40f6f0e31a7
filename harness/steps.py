"""Declared steps (as in the Matter test harness): a test lists its steps up front with
`@pytest.mark.steps("arrange", "enroll", "check")` and records each as it runs:

    with step("enroll", evidence={"url": url}) as s:
        outcome = await dut.boot()
        s.evidence["outcome"] = outcome.to_json()

A step ends `pass`, `fail` (an assertion broke in it) or `error` (anything else raised in it);
the exception goes on, so the test ends the same way. A step that finds the test not applicable
(`harness.outcomes.not_applicable`) is not kept: the test's reason says why.

A test that ends without having run every declared step is an *error*, not a pass (the plugin
checks `missing()` when the test is over); running a step that was not declared is an error at
once (a typo must not let a declared step go missing unnoticed). Without a `steps` marker any
step name is allowed and none is required.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.outcomes import Outcome, classify

__all__ = ["Step", "StepRecorder"]


@dataclass
class Step:
    name: str
    evidence: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    duration: float = 0.0
    message: str | None = None

    def record(self, **evidence: Any) -> None:
        """Add evidence (JSON values; anything else is written as its str())."""
        self.evidence.update(evidence)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "outcome": str(self.outcome or Outcome.ERROR),
            "evidence": self.evidence,
            "duration": round(self.duration, 4),
        }
        if self.message:
            out["message"] = self.message
        return out


class StepRecorder:
    """The `step` fixture: records the steps of one test (module docstring)."""

    def __init__(self, declared: Sequence[str] = ()) -> None:
        self.declared = tuple(declared)
        self.steps: list[Step] = []

    @contextmanager
    def __call__(self, name: str, evidence: Mapping[str, Any] | None = None) -> Iterator[Step]:
        if self.declared and name not in self.declared:
            raise HarnessError(
                "undeclared-step", f"step {name!r} is not one of the declared steps {list(self.declared)}", name
            )
        current = Step(name, dict(evidence or {}))
        self.steps.append(current)
        started = time.perf_counter()
        try:
            yield current
        except BaseException as exc:
            outcome = classify(exc)
            if outcome is Outcome.NOT_APPLICABLE:
                self.steps.remove(current)
            else:
                current.outcome = outcome
                current.message = f"{type(exc).__name__}: {exc}".strip()
            raise
        else:
            current.outcome = Outcome.PASS
        finally:
            current.duration = time.perf_counter() - started

    def missing(self) -> list[str]:
        """Declared steps that did not run (or did not finish)."""
        ran = {s.name for s in self.steps if s.outcome is not None}
        return [name for name in self.declared if name not in ran]

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]
