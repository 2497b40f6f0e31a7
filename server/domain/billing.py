"""FF-1 billing: every direct addition is one billable entry of its company, in the UTC month it
was made — "adding providers, even momentarily, will affect your company's billing" (seed).

Decisions:
- The count is over the ledger (`billing_ledger`), never over live devices: a device added and
  deleted at once still counts; added, deleted and added again counts twice.
- An update (a merge with `v`) and a two-step fill are not billed; only direct additions.
- A month is written `YYYY-MM` (months 01-12, years 2000-9999); it spans [first day 00:00 UTC,
  first day of the next month 00:00 UTC).
- The CSV is opened in spreadsheets, so a cell that would start a formula there (`=`, `+`, `-`,
  `@`, a tab or a carriage return: a login such as `-2+3@x.io` is a valid e-mail) is written
  with a leading `'` (OWASP's CSV-injection advice); the JSON keeps the value as it is.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from server.domain.errors import invalid

ACCOUNT_ID = re.compile(r"[0-9]{8}")  # a billed account, as every account id
_MONTH = re.compile(r"(?P<year>[2-9][0-9]{3})-(?P<month>0[1-9]|1[0-2])")
CSV_COLUMNS = ("account_id", "month", "mac", "kind", "via", "added_by", "added_at", "present")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def parse_month(text: str | None) -> tuple[datetime, datetime]:
    """`YYYY-MM` as its [start, end) in UTC, or 422 `invalid-month`."""
    found = _MONTH.fullmatch(text or "") if isinstance(text, str) and text.isascii() else None
    if found is None:
        raise invalid("invalid-month", "month must be YYYY-MM (e.g. 2026-12)", (text or "")[:20] or None)
    year, month = int(found["year"]), int(found["month"])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return start, end


def month_of(at: datetime) -> str:
    """The billing month (`YYYY-MM`, UTC) of an addition made at `at`."""
    return at.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class Addition:
    """One billable direct addition, as the ledger keeps it; `present`: the device still exists."""

    account_id: str
    month: str
    mac: str
    kind: str
    via: str
    added_by: str
    added_at: datetime
    present: bool


@dataclass(frozen=True)
class Report:
    account_id: str
    month: str
    items: tuple[Addition, ...]

    @property
    def direct_additions(self) -> int:
        return len(self.items)

    @property
    def devices(self) -> int:
        return len({a.mac for a in self.items})

    @property
    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.items:
            counts[a.kind] = counts.get(a.kind, 0) + 1
        return dict(sorted(counts.items()))


def report(account_id: str, month: str, additions: Iterable[Addition]) -> Report:
    """FF-1: the account's billable additions of the month, oldest first."""
    items = tuple(sorted((a for a in additions if a.account_id == account_id and a.month == month),
                         key=lambda a: a.added_at))
    return Report(account_id, month, items)


def report_json(r: Report) -> dict[str, object]:
    return {
        "account_id": r.account_id,
        "month": r.month,
        "direct_additions": r.direct_additions,
        "devices": r.devices,
        "by_kind": r.by_kind,
        "items": [_row(a) for a in r.items],
    }


def _row(a: Addition) -> dict[str, object]:
    return {
        "account_id": a.account_id,
        "month": a.month,
        "mac": a.mac,
        "kind": a.kind,
        "via": a.via,
        "added_by": a.added_by,
        "added_at": a.added_at.isoformat(),
        "present": a.present,
    }


def report_csv(r: Report, columns: Sequence[str] = CSV_COLUMNS) -> str:
    """The report as CSV: a header row of `CSV_COLUMNS`, one row per addition (`present` true/false)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for a in r.items:
        row = _row(a)
        writer.writerow([csv_cell(row[c]) for c in columns])
    return out.getvalue()


def csv_cell(value: object) -> str:
    """One CSV cell: booleans as true/false, text that a spreadsheet would run as a formula
    neutralised with a leading `'` (module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
