"""Errors every layer raises: a stable id, a sentence for a person, the offending value.

The admin API turns a `DomainError` into `{"error": id, "detail": ...}` with its HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DomainError(Exception):
    """A refused request. `error` is a stable kebab-case id, `detail` a sentence."""

    error: str
    detail: str
    status: int = 422
    value: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # HTTP headers of the answer, e.g. Retry-After

    def __str__(self) -> str:
        return f"{self.error}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.value is not None:
            body["value"] = self.value
        body.update(self.extra)
        return body


def invalid(error: str, detail: str, value: Any = None, **extra: Any) -> DomainError:
    """422: the input is well-formed JSON but breaks a rule."""
    return DomainError(error, detail, 422, value, extra)


def bad_request(error: str, detail: str, value: Any = None) -> DomainError:
    return DomainError(error, detail, 400, value)


def forbidden(error: str, detail: str) -> DomainError:
    return DomainError(error, detail, 403)


def not_found(error: str, detail: str) -> DomainError:
    return DomainError(error, detail, 404)


def conflict(error: str, detail: str, value: Any = None) -> DomainError:
    return DomainError(error, detail, 409, value)


def unauthorized(error: str, detail: str) -> DomainError:
    return DomainError(error, detail, 401)


def too_many(error: str, detail: str, retry_after: int) -> DomainError:
    """429 with `Retry-After` (seconds, at least 1): a guessing budget is spent for now."""
    return DomainError(error, detail, 429, headers={"Retry-After": str(max(1, retry_after))})
