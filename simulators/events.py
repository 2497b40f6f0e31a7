"""What a simulated phone did: one `Event` per transition or step, in order, with a timestamp.

An event is (time on the phone's clock, MAC, state entered or current, a stable kebab-case
name, a detail dict of JSON values). `to_json()` gives the form reports and JSONL results use:
`{"at": "2026-11-23T09:00:00.000Z", "t": 1795424400.0, "mac", "state", "event", "detail"}`.
The names a phone emits are listed in `simulators.phone` (its docstring is the event sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.clock import iso

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    mac: str
    state: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "t": self.at, "mac": self.mac, "state": self.state, "event": self.name,
                "detail": self.detail}

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{iso(self.at)} {self.mac} [{self.state}] {self.name}{' ' + extra if extra else ''}"
