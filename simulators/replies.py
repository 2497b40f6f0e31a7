"""What a phone's HTTP(S) request answers, whichever TLS engine carried it (`simulators.transport`
for Python's ssl, `simulators.mtls` for the phone's own certificate): a `Reply`, or a
`TransportError` with a stable reason id."""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["VERIFY_REASONS", "Reply", "TransportError"]

# OpenSSL X509_V_ERR_* codes a phone tells apart; any other verification failure is
# `server-certificate-untrusted`.
VERIFY_REASONS = {
    9: "server-certificate-not-yet-valid",
    10: "server-certificate-expired",
    62: "server-certificate-name-mismatch",
    64: "server-certificate-name-mismatch",
}


class TransportError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive (a `multidict.CIMultiDict`)
    body: bytes

    def json(self) -> Any:
        return _json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()
