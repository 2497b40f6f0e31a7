"""What every enrollment rule takes and gives: `RuleContext` (a verified device with a known
model and version, and its current lock) and `Outcome` (one rule's answer, before `finish`
adds the device updates, notifications and audit record).

Decision: firmware versions and provisioning URLs are parsed through bounded LRU caches
(refusals are not kept), and Appendix A is asked with the parsed version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from server.domain.enrollment.decision import Claim, CodeConsumption, LockUpdate, Result
from server.domain.enrollment.facts import DeviceRecord, EnrollmentFacts, SiteFacts
from server.domain.errors import DomainError
from server.domain.firmware import ModelFirmware
from server.domain.identity import Version, normalize_mac
from server.domain.identity import parse_version as _parse_version
from server.domain.lockout import LockState, current_state
from server.domain.profiles import validate_provisioning_url as _validate_provisioning_url

# Pure functions of a string whose answers are immutable, asked on every request for the same few
# values (firmware versions, a site's URL): remembered, within bounds. Refusals are not kept.
parse_version = lru_cache(maxsize=4096)(_parse_version)
validate_provisioning_url = lru_cache(maxsize=4096)(_validate_provisioning_url)


@dataclass(frozen=True)
class Outcome:
    """One rule's answer, before the shared parts (updates, notices, audit) are added."""

    status: int
    result: Result
    body: dict[str, Any]
    reason: str
    message: str
    claim: Claim | None = None
    consume: CodeConsumption | None = None
    lock: LockUpdate | None = None
    code_account: str | None = None
    code_site: int | None = None


def rejected(reason: str, detail: str, **extra: Any) -> Outcome:
    """403 `rejected` with a stable reason id and a sentence (PROTOCOL §2)."""
    return Outcome(403, "rejected", {"reason": reason, "detail": detail}, reason, detail, **extra)


@dataclass(frozen=True)
class RuleContext:
    """A verified device with a known model and version, and its current lock."""

    facts: EnrollmentFacts
    now: datetime
    device: DeviceRecord
    info: ModelFirmware
    version: Version
    stored_lock: LockState

    @property
    def firmware(self) -> str:
        return str(self.version)

    @property
    def lock(self) -> LockState:
        return current_state(self.stored_lock, self.now)

    @property
    def own_site(self) -> SiteFacts | None:
        """The device's own site, when the store found it."""
        site = self.facts.site
        return site if site is not None and self.device.site_id is not None and site.id == self.device.site_id else None

    def supports(self, feature: str) -> bool:
        try:
            return bool(self.facts.capabilities.supports(self.info.name, self.version, feature))
        except (KeyError, ValueError):  # a model or feature the matrix does not know: not supported
            return False

    def explain(self, feature: str) -> str:
        try:
            return str(self.facts.capabilities.explain(self.info.name, self.version, feature))
        except (KeyError, ValueError):
            return f"{self.info.name} {self.firmware}: {feature} not supported"


def canonical_mac(text: str) -> str:
    """A MAC in canonical form when it is one, else the text as given (upper case)."""
    try:
        return normalize_mac(text)
    except DomainError:
        return text.strip().upper() if isinstance(text, str) else str(text)


def aware(moment: datetime) -> datetime:
    """A datetime without a time zone is UTC."""
    return moment if moment.tzinfo is not None and moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)
