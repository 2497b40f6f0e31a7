"""Discovery: the auto-provisioning prompt, the network's offer, the enrollment request and its
answer (research §11; PROTOCOL §2), and the phone's own check of a typed code (ENR-3).

Decisions:
- Prompt (research §11.2-§11.5): "Yes" uses only the enrollment server; "No" asks the network
  (DHCP SSON option 242 / LLDP) and, when it names no server, shows manual server entry;
  no answer for the model's `prompt_seconds` (60 s, on the phone's clock) asks the network and
  then the enrollment server, as the 2019 guide's flow diagram does.
- Without a network layer attached the network names nothing.
- A typed code is taken only when it is all ASCII digits and its length is one the firmware
  takes: 8 needs `nec8`; 12 needs `nec12` or `pec12` (a phone cannot tell an NEC-12 from a PEC
  by its digits). Anything else is refused on the phone, recorded, and never sent.
- An answer is read from its JSON `result` (PROTOCOL §2) and status; a body that is not JSON, or a
  `result` the table does not have, is a protocol error with the server's `error` id if it gave
  one (e.g. 503 `busy` after the retries, 400 `invalid-body`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulators.clock import Clock
from simulators.network import NetworkLayer, NetworkServer

__all__ = ["ANSWERS", "Answer", "PromptAnswer", "code_problem", "network_server", "parse_answer", "prompt"]

ENROLL_PATH = "/device/v1/enroll"
ANSWERS = frozenset({"redirect", "upgrade", "code_required", "code_invalid", "locked", "rejected", "unknown_device"})


class PromptAnswer(StrEnum):
    """What the person at the phone does with "Do you want to activate Auto Provisioning now"."""

    YES = "yes"
    NO = "no"
    TIMEOUT = "timeout"


async def prompt(answer: PromptAnswer, seconds: float, clock: Clock) -> PromptAnswer:
    """The prompt: answered at once, or nothing happens for `seconds` on `clock`."""
    if answer is PromptAnswer.TIMEOUT:
        await clock.sleep(seconds)
    return answer


async def network_server(network: NetworkLayer | None) -> NetworkServer | None:
    """The provisioning server the network offers, or None (also when there is no network layer)."""
    if network is None:
        return None
    return (await network.offer()).server


def code_problem(code: str, formats: tuple[str, ...] | list[str]) -> str | None:
    """ENR-3 on the phone: why it refuses to send `code`, or None (module docstring)."""
    if not code or not code.isascii() or not code.isdigit():
        return "code-not-numeric"
    if len(code) == 8:
        return None if "nec8" in formats else "code-length-not-supported"
    if len(code) == 12:
        return None if ("nec12" in formats or "pec12" in formats) else "code-length-not-supported"
    return "code-length-not-supported"


def code_kind(code: str) -> str:
    return "8-digit" if len(code) == 8 else "12-digit"


@dataclass(frozen=True, slots=True)
class Answer:
    """One enrollment answer: HTTP status, `result` (None when the body is not one of PROTOCOL
    §2's), the body, and the server's error id for non-protocol answers."""

    status: int
    result: str | None
    body: dict[str, Any]
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """What an event records about the answer (no PEMs, no URLs with passwords)."""
        out: dict[str, Any] = {"status": self.status, "result": self.result}
        for key in ("reason", "attempts_left", "retry_after", "formats"):
            if key in self.body:
                out[key] = self.body[key]
        if self.error:
            out["error"] = self.error
        return out


def parse_answer(status: int, raw: bytes) -> Answer:
    """Read an enrollment answer (module docstring)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return Answer(status, None, {}, "invalid-answer")
    if not isinstance(body, dict):
        return Answer(status, None, {}, "invalid-answer")
    result = body.get("result")
    if isinstance(result, str) and result in ANSWERS:
        return Answer(status, result, body)
    error = body.get("error")
    return Answer(status, None, body, error if isinstance(error, str) else f"http-{status}")
