"""FF-1 billing without I/O: months in UTC, one billable entry per direct addition, the CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.domain import billing
from server.domain.errors import DomainError


def addition(mac: str, at: datetime, account: str = "12345678", kind: str = "J179", present: bool = True
             ) -> billing.Addition:
    return billing.Addition(account, billing.month_of(at), mac, kind, "rest", "admin", at, present)


def test_ff1_a_month_spans_its_utc_days() -> None:
    assert billing.parse_month("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert billing.parse_month("2026-02")[1] == datetime(2026, 3, 1, tzinfo=UTC)
    # 23:30 on 30 November in UTC-2 is already December in UTC
    assert billing.month_of(datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2)))) == "2026-12"


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "0000-01", "1999-12", "26-11", "2026-1", "2026/11",
                                  "2026-11-01", " 2026-11", "garbage", "", None, "２０２６-11"])
def test_ff1_a_month_that_is_no_yyyy_mm_is_refused(text: str | None) -> None:
    with pytest.raises(DomainError) as refused:
        billing.parse_month(text)
    assert refused.value.error == "invalid-month" and refused.value.status == 422


def test_ff1_every_addition_counts_in_its_month_deleted_or_not_again_or_not() -> None:
    nov = datetime(2026, 11, 23, 9, tzinfo=UTC)
    entries = [
        addition("A4251B000001", nov, present=False),  # added and deleted at once
        addition("A4251B000001", nov + timedelta(minutes=1)),  # added again: billed again
        addition("A4251B000002", nov + timedelta(minutes=2), kind="K175"),
        addition("A4251B000003", nov + timedelta(days=8)),  # December
        addition("A4251B000004", nov, account="87654321"),  # another account
    ]
    report = billing.report("12345678", "2026-11", entries)
    assert report.direct_additions == 3 and report.devices == 2 and report.by_kind == {"J179": 2, "K175": 1}
    assert [a.mac for a in report.items] == ["A4251B000001", "A4251B000001", "A4251B000002"]
    assert billing.report("12345678", "2026-12", entries).direct_additions == 1
    assert billing.report("12345678", "2027-01", entries).direct_additions == 0


def test_ff1_the_csv_has_the_documented_columns_and_one_row_per_addition() -> None:
    nov = datetime(2026, 11, 23, 9, tzinfo=UTC)
    report = billing.report("12345678", "2026-11", [addition("A4251B000001", nov, present=False)])
    rows = list(csv.reader(io.StringIO(billing.report_csv(report))))
    assert rows[0] == list(billing.CSV_COLUMNS)
    assert rows[1] == ["12345678", "2026-11", "A4251B000001", "J179", "rest", "admin", nov.isoformat(), "false"]
    assert billing.report_json(report)["direct_additions"] == 1


@pytest.mark.parametrize("login", ["=HYPERLINK(\"http://x.test\")", "+SUM(A1)@x.io", "-2+3@x.io", "@SUM(A1)",
                                   "\tcmd", "\rcmd"])
def test_ff1_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_neutralised(login: str) -> None:
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    entry = billing.Addition("12345678", "2026-11", "A4251B000001", "J179", "rest", login, at, True)
    report = billing.report("12345678", "2026-11", [entry])
    (row,) = list(csv.DictReader(io.StringIO(billing.report_csv(report))))
    assert row["added_by"] == "'" + login and row["present"] == "true"
    assert billing.report_json(report)["items"][0]["added_by"] == login  # JSON: the value itself
