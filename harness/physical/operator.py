"""An operator at the bench: the harness asks a person to do what it cannot (power-cycle a phone
by hand, type a code on the keypad) — on the controlling terminal, never on a pipe.

A run without a terminal (CI, cron, `nohup`) must never hang waiting for somebody: asking there
is an immediate `NeedsOperator` (a `HarnessError`, id `needs-operator`) saying what a person would have had to do.
"""

from __future__ import annotations

import os

from harness.errors import NeedsOperator

__all__ = ["ask_operator", "has_terminal"]


def _open_tty() -> int | None:
    """The controlling terminal's file descriptor, or None without one (a daemon, CI, setsid)."""
    try:
        return os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None


def has_terminal() -> bool:
    fd = _open_tty()
    if fd is None:
        return False
    os.close(fd)
    return True


def ask_operator(instruction: str, *, done: str = "press Enter when done, or type 'skip'") -> bool:
    """Show `instruction` on the terminal and wait for the operator: True when they did it,
    False when they typed skip (or end of input). No terminal: `NeedsOperator`."""
    fd = None if os.environ.get("ENROLLAB_NO_OPERATOR") else _open_tty()
    if fd is None:
        raise NeedsOperator(f"an operator is needed and there is no terminal: {instruction}")
    os.write(fd, f"\n*** operator: {instruction}\n    {done}: ".encode())
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as tty:
        answer = tty.readline()
    return bool(answer) and answer.strip().lower() not in ("skip", "s", "n", "no")
