"""Errors of the harness and the lab: what makes a conformance test end in *error*, not *fail*.

A `HarnessError` says the bench broke — the file server is down, the enrollment server does not
answer, an arrangement through the admin API was refused, a driver is missing — so nothing can
be concluded about the device or server under test. The pytest plugin reports a test that
raises one (or any exception that is no assertion) as `error`; assertion failures are `fail`.

Every error carries a stable kebab-case id (`error`), a sentence for a person (`detail`) and,
where there is one, the offending value (`value`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["HarnessError", "LabError", "NeedsOperator"]


class HarnessError(Exception):
    """The harness or the lab broke (module docstring)."""

    def __init__(self, error: str, detail: str, value: Any = None) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.value = value


class NeedsOperator(HarnessError):
    """A person is needed at the bench (type a code on the keypad, answer the phone's prompt,
    power-cycle it by hand) and the run is unattended: the test ends *needs operator*, a visible
    outcome of its own, never a pass. `detail` says exactly what the person would have done."""

    def __init__(self, detail: str, value: Any = None) -> None:
        super().__init__("needs-operator", detail, value)


class LabError(HarnessError):
    """A lab file that cannot be used, or a lab resource without a driver.

    For a lab file, `where` is `FILE:LINE` (or just `FILE` when no line applies) and `field`
    the path of the offending field (`devices[2].firmware`); `str()` is the one-line form
    `lab.toml:12: devices[2].firmware: '4.x' is not a firmware version`. `problems` lists every
    problem found, the first one being the message.
    """

    def __init__(
        self,
        error: str,
        detail: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        value: Any = None,
        problems: list[str] | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = _one_line(detail, file, line, field)
        super().__init__(error, detail, value)
        self.args = (self.message,)
        self.problems = problems or [self.message]

    def __str__(self) -> str:
        more = len(self.problems) - 1
        return self.message + (f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else "")


def _one_line(detail: str, file: str | None, line: int | None, field: str | None) -> str:
    where = ""
    if file is not None:
        where = f"{file}:{line}: " if line is not None else f"{file}: "
    return f"{where}{field}: {detail}" if field else f"{where}{detail}"
