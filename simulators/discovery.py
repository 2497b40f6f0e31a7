"""Discovery: DES_STAT and the route it sets, the auto-provisioning prompt, the network's offer,
the enrollment request and its answer (research §11; PROTOCOL §2), and the phone's own check of a
typed code (ENR-3).

Decisions:
- DES_STAT (research §11.6, template S2:L8757-8770) is the network offer's (e.g. option 242
  "…,DES_STAT=0") over the phone's settings (a settings file applied earlier) over the default 2:
  option 242 "supersede[s] … any other previously set values" [doc S31]. A value other than
  0-3 is ignored (the next source counts) [inf]. Where the firmware has no value 3 (the model's
  `des.force_from`, `simulators.capabilities`), 3 acts as 2 [inf].
- The route a phone without a configured server takes (`route`; the model data decides, not its
  name):
  - DES_STAT 0 or 1 -> `des-disabled`: no prompt, no DES; the network's server, else manual entry.
  - 2 -> `prompt`: the prompt (below); but where the network named a server and the model has
    `network_server_skips_des` (Vantage) -> `network-server`: no prompt, no DES, the network's
    server ("DES is not activated if a server was received from DHCP, LLDP …" [tpl S2:L8757-8770]).
  - 3 without `force_overrides_network` (J100 R4.0.0.0+) -> `network-first`: no prompt; the
    network's server, else DES — a prompt timeout without the wait [inf: the web UI calls 3 "Force
    enable on DES prompt timeout", S25].
  - 3 with `force_overrides_network` (Vantage R2.1+) -> `des-first`: no prompt; DES even when the
    network named a server [tpl]; that server only when DES leaves the phone without one (no
    redirect, or one it refused) [inf].
- Prompt (research §11.2-§11.5): "Yes" uses only the enrollment server (a network server is
  ignored); "No" asks the network (DHCP SSON option 242 / LLDP) and, when it names no server,
  shows manual server entry; no answer for the model's `prompt_seconds` (60 s, on the phone's
  clock) asks the network and then the enrollment server, as the 2019 guide's flow diagram does.
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
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulators.capabilities import DesPolicy
from simulators.clock import Clock
from simulators.network import NetworkLayer, NetworkServer

__all__ = [
    "ANSWERS",
    "DES_STAT_DEFAULT",
    "Answer",
    "DesStat",
    "PromptAnswer",
    "Route",
    "code_problem",
    "des_stat",
    "network_server",
    "parse_answer",
    "prompt",
    "route",
]

ENROLL_PATH = "/device/v1/enroll"
ANSWERS = frozenset({"redirect", "upgrade", "code_required", "code_invalid", "locked", "rejected", "unknown_device"})


DES_STAT_DEFAULT = 2
DES_STAT_FORCE = 3
_DES_STAT_VALUES = {"0": 0, "1": 1, "2": 2, "3": 3}


@dataclass(frozen=True, slots=True)
class DesStat:
    """The DES_STAT a phone goes by, where it came from (`network`, `settings`, `default`), and the
    values it ignored on the way as (value, source)."""

    value: int
    source: str
    ignored: tuple[tuple[str, str], ...] = ()


def des_stat(network: Mapping[str, str], settings: Mapping[str, str]) -> DesStat:
    """research §11.6: the network's DES_STAT over the settings' over the default (module docstring)."""
    ignored: list[tuple[str, str]] = []
    for source, params in (("network", network), ("settings", settings)):
        raw = params.get("DES_STAT")
        if raw is None:
            continue
        value = _DES_STAT_VALUES.get(raw.strip())
        if value is not None:
            return DesStat(value, source, tuple(ignored))
        ignored.append((raw, source))
    return DesStat(DES_STAT_DEFAULT, "default", tuple(ignored))


class Route(StrEnum):
    """How a phone without a configured server looks for one (the module docstring's table)."""

    PROMPT = "prompt"
    DES_DISABLED = "des-disabled"
    NETWORK_SERVER = "network-server"
    NETWORK_FIRST = "network-first"
    DES_FIRST = "des-first"


def route(des_stat: int, policy: DesPolicy, network_server: bool) -> Route:
    """research §11.6: the route for an effective DES_STAT (3 only where the firmware has it)."""
    if des_stat in (0, 1):
        return Route.DES_DISABLED
    if des_stat == DES_STAT_FORCE:
        return Route.DES_FIRST if policy.force_overrides_network else Route.NETWORK_FIRST
    if network_server and policy.network_server_skips_des:
        return Route.NETWORK_SERVER
    return Route.PROMPT


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
