"""Observers: what a device did, seen from outside — the harness's file server's request log and
the enrollment server's audit log (LOG-1, ENR-5). A packet capture joins them with the physical lab.

Both give evidence as dicts a report keeps (`evidence.http`, or a step's evidence):
`{"method", "url", "status", "at", "who", …}` — `who` is `file-server`, `device-api` or
`admin-api` (who answered), `at` ISO 8601 UTC.

    files = FileServerObserver(file_server)
    mark = files.mark()
    ...
    files.since(mark, device=dut)        # requests since the mark, from that device's address

    audit = AuditLogObserver(admin, device_url=info["device_url"])
    mark = await audit.mark()
    ...
    await audit.since(mark, mac=dut.identity.mac)   # entries since the mark that name the MAC

Decisions:
- A file-server request belongs to a device by the client address; simulated devices share the
  harness's address, so for them every request counts (one device per test).
- An audit-log mark is the newest entry's id *and* time, so a server clock that differs from the
  harness's does not matter; entries come newest first from `GET /api/v1/logs` and are returned
  oldest first.
- The audit log says SUCCESS/FAIL, not an HTTP status. For an enrollment entry the reference
  server's message carries the answer's `result`, from which the status follows (PROTOCOL §2
  table); otherwise `status` is None and the entry itself is kept under `audit`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.dut import DeviceUnderTest
from harness.fileserver import FileServer, RequestRecord
from harness.tls_gate import Handshake
from simulators.admin_client import AdminClient

__all__ = ["AuditLogObserver", "AuditMark", "FileServerObserver", "enrollment_result"]

# PROTOCOL §2: the HTTP status of each enrollment answer.
RESULT_STATUS = {
    "redirect": 200,
    "upgrade": 200,
    "code_required": 200,
    "code_invalid": 422,
    "locked": 423,
    "rejected": 403,
    "unknown_device": 404,
}
_RESULT = re.compile(r"\]\s+([a-z_]+)\s+\(")
PAGE = 200
MAX_ENTRIES = 5_000


def enrollment_result(entry: dict[str, Any]) -> str | None:
    """The PROTOCOL §2 result an enrollment audit entry records (`redirect`, `code_invalid` …),
    from the reference server's message; None when the message does not say."""
    found = _RESULT.search(str(entry.get("message") or ""))
    return found[1] if found else None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FileServerObserver:
    """The requests a `harness.fileserver.FileServer` recorded, as evidence."""

    who = "file-server"

    def __init__(self, server: FileServer) -> None:
        self.server = server

    def mark(self) -> int:
        return len(self.server.requests)

    def records(self, mark: int = 0, *, device: DeviceUnderTest | None = None) -> list[RequestRecord]:
        found = self.server.requests[mark:]
        address = device.address if device is not None else None
        if address is not None:
            found = [r for r in found if r.client == address]
        return list(found)

    def since(self, mark: int = 0, *, device: DeviceUnderTest | None = None) -> list[dict[str, Any]]:
        return [self.evidence(r) for r in self.records(mark, device=device)]

    def handshake_mark(self) -> int:
        return len(self.server.handshakes)

    def handshakes(self, mark: int = 0, *, device: DeviceUnderTest | None = None) -> list[Handshake]:
        """The TLS handshakes since `mark` (of `device`'s address), completed or refused."""
        found = self.server.handshakes[mark:]
        address = device.address if device is not None else None
        return [h for h in found if address is None or h.client == address]

    def evidence(self, r: RequestRecord) -> dict[str, Any]:
        return {
            "method": r.method,
            "url": self.server.url(r.scheme, path=r.path),
            "status": r.status,
            "at": _iso(r.time),
            "who": self.who,
            "path": r.path,
            "client": r.client,
            "user": r.user,
        }


@dataclass(frozen=True)
class AuditMark:
    """Where the audit log stood: its newest entry (None: empty)."""

    id: Any
    at: str | None


class AuditLogObserver:
    """Audit-log entries since a mark, through the admin API (`GET /api/v1/logs`, LOG-1)."""

    def __init__(self, admin: AdminClient, *, device_url: str = "") -> None:
        self.admin = admin
        self.device_url = device_url.rstrip("/")
        self.start: AuditMark | None = None  # the default mark of `entries`/`since` (set by `begin`)

    async def mark(self) -> AuditMark:
        page = await self.admin.call("GET", "/logs", params={"limit": "1"})
        items = page.get("items") or []
        if not items:
            return AuditMark(None, None)
        return AuditMark(items[0].get("id"), items[0].get("at"))

    async def begin(self) -> AuditLogObserver:
        """Mark now as the default start (the `audit_log` fixture does it when a test begins)."""
        self.start = await self.mark()
        return self

    async def entries(
        self, mark: AuditMark | None = None, *, mac: str | None = None, process: str | None = None
    ) -> list[dict[str, Any]]:
        """The raw entries since `mark` (default: `start`; everything when neither), oldest
        first; `mac` keeps the entries whose message names it, `process` those of one process
        (e.g. ENROLLMENT)."""
        mark = mark if mark is not None else self.start
        conditions = []
        if mac is not None:
            conditions.append({"field": "message", "op": "contains", "value": mac})
        if process is not None:
            conditions.append({"field": "process", "op": "eq", "value": process})
        params: dict[str, str] = {"limit": str(PAGE)}
        if conditions:
            params["q"] = json.dumps({"all": conditions})
        if mark is not None and mark.at:
            params["from"] = str(mark.at)
        found: list[dict[str, Any]] = []
        offset = 0
        while offset < MAX_ENTRIES:
            page = await self.admin.call("GET", "/logs", params={**params, "offset": str(offset)})
            items = page.get("items") or []
            for entry in items:
                if mark is not None and mark.id is not None and entry.get("id") == mark.id:
                    return found[::-1]
                found.append(entry)
            if len(items) < PAGE:
                break
            offset += PAGE
        return found[::-1]

    async def since(
        self, mark: AuditMark | None = None, *, mac: str | None = None, process: str | None = None
    ) -> list[dict[str, Any]]:
        """`entries` as evidence dicts."""
        return [self.evidence(e) for e in await self.entries(mark, mac=mac, process=process)]

    def evidence(self, entry: dict[str, Any]) -> dict[str, Any]:
        process = str(entry.get("process") or "")
        action = str(entry.get("action") or "")
        status: int | None = None
        if process == "ENROLLMENT":
            who = "device-api"
            method = "POST"
            url = f"{self.device_url}/device/v1/enroll" if action == "enroll" else f"{self.device_url} {action}"
            result = enrollment_result(entry)
            if result:
                status = RESULT_STATUS.get(result)
        else:
            who = "admin-api"
            method = action or process
            url = f"{self.admin.base}/logs"
        return {
            "method": method,
            "url": url,
            "status": status,
            "at": _at(entry.get("at")),
            "who": who,
            "audit": entry,
        }


def _at(value: Any) -> str:
    """An entry's time as ISO 8601 with a zone (the reports' form)."""
    text = str(value or "")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
