"""EC-1..8: enrollment-code expiry, generation, PEC composition and usability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.codes import (
    UNSET,
    Expiry,
    ExpiryUnit,
    NecState,
    add_months,
    check_nec_allowed,
    classify_code,
    code_usable,
    expires_at,
    generate_nec,
    new_nec,
    parse_expiry,
    pec_for,
    regenerate_nec,
    split_pec,
    update_nec,
    validate_total,
)
from server.domain.errors import DomainError

T0 = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


def never_taken(_: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("hours", 1),
        ("hours", 72),
        ("days", 1),
        ("days", 90),
        ("weeks", 1),
        ("weeks", 12),
        ("months", 1),
        ("months", 3),
    ],
)
def test_ec1_expiry_bounds_accepted(unit: str, value: int) -> None:
    expiry = Expiry(unit, value)  # type: ignore[arg-type]
    assert expiry.unit is ExpiryUnit(unit)
    assert expiry.to_dict() == {"unit": unit, "value": value}


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("hours", 0),
        ("hours", 73),
        ("days", 91),
        ("weeks", 13),
        ("months", 4),
        ("months", 0),
        ("days", -1),
        ("days", "2"),
        ("days", 2.0),
        ("days", True),
        ("years", 1),
        ("minutes", 30),
        (None, 1),
    ],
)
def test_ec1_expiry_outside_ranges_refused(unit: object, value: object) -> None:
    with pytest.raises(DomainError) as caught:
        Expiry(unit, value)  # type: ignore[arg-type]
    assert caught.value.error == "invalid-expiry"
    assert caught.value.status == 422


def test_ec1_expiry_beyond_three_months_refused() -> None:
    with pytest.raises(DomainError) as caught:
        parse_expiry({"unit": "months", "value": 4})
    assert caught.value.error == "invalid-expiry"
    assert caught.value.value == 4


def test_ec1_parse_expiry_never_and_shape() -> None:
    assert parse_expiry(None) is None
    assert parse_expiry({"unit": "weeks", "value": 2}) == Expiry(ExpiryUnit.WEEKS, 2)
    for bad in [{"unit": "weeks"}, {"unit": "weeks", "value": 2, "extra": 1}, "2 weeks", []]:
        with pytest.raises(DomainError) as caught:
            parse_expiry(bad)
        assert caught.value.error == "invalid-expiry"


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        (Expiry(ExpiryUnit.HOURS, 72), T0 + timedelta(hours=72)),
        (Expiry(ExpiryUnit.DAYS, 2), T0 + timedelta(days=2)),
        (Expiry(ExpiryUnit.WEEKS, 2), T0 + timedelta(weeks=2)),
        (Expiry(ExpiryUnit.MONTHS, 1), datetime(2025, 4, 10, 9, 30, tzinfo=UTC)),
        (Expiry(ExpiryUnit.MONTHS, 3), datetime(2025, 6, 10, 9, 30, tzinfo=UTC)),
        (None, None),
    ],
)
def test_ec1_expires_at(expiry: Expiry | None, expected: datetime | None) -> None:
    assert expires_at(expiry, T0) == expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2025, 1, 31, tzinfo=UTC), 1, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2024, 11, 30, tzinfo=UTC), 3, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2025, 12, 15, tzinfo=UTC), 1, datetime(2026, 1, 15, tzinfo=UTC)),
        (datetime(2025, 3, 31, tzinfo=UTC), 3, datetime(2025, 6, 30, tzinfo=UTC)),
    ],
)
def test_ec1_months_are_calendar_months_with_day_clamped(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected
    assert expires_at(Expiry(ExpiryUnit.MONTHS, months), start) == expected


def test_ec1_ninety_days_capped_at_three_months() -> None:
    start = datetime(2025, 1, 31, tzinfo=UTC)
    # 90 days would be 1 May; three calendar months end on 30 April.
    assert expires_at(Expiry(ExpiryUnit.DAYS, 90), start) == datetime(2025, 4, 30, tzinfo=UTC)
    assert expires_at(Expiry(ExpiryUnit.DAYS, 90), T0) == T0 + timedelta(days=90)


@given(
    expiry=st.sampled_from(
        [
            Expiry(ExpiryUnit(unit), v)
            for unit, (lo, hi) in {
                "hours": (1, 72),
                "days": (1, 90),
                "weeks": (1, 12),
                "months": (1, 3),
            }.items()
            for v in (lo, hi, (lo + hi) // 2)
        ]
    ),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_ec1_no_expiry_beyond_three_months(expiry: Expiry, start: datetime) -> None:
    end = expires_at(expiry, start)
    assert end is not None
    assert start < end <= add_months(start, 3)


def test_ec1_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expires_at(Expiry(ExpiryUnit.HOURS, 1), datetime(2025, 1, 1))


@given(length=st.sampled_from([8, 12]))
def test_ec1_generated_nec_has_length_and_digits(length: int) -> None:
    code = generate_nec(length, never_taken)
    assert len(code) == length
    assert code.isascii() and code.isdigit()
    assert classify_code(code) == f"nec{length}"


def test_ec8_generated_codes_are_random() -> None:
    codes = {generate_nec(12, never_taken) for _ in range(100)}
    assert len(codes) == 100
    eights = {generate_nec(8, never_taken) for _ in range(100)}
    assert len({c[0] for c in eights}) > 3  # every digit position is random, the first included


def test_ec8_generation_retries_while_code_is_live() -> None:
    seen: list[str] = []

    def taken(code: str) -> bool:
        seen.append(code)
        return len(seen) <= 2

    code = generate_nec(8, taken)
    assert code == seen[-1]
    assert len(seen) == 3


def test_ec8_generation_gives_up_with_conflict() -> None:
    with pytest.raises(DomainError) as caught:
        generate_nec(8, lambda _: True)
    assert caught.value.error == "code-space-exhausted"
    assert caught.value.status == 409


@pytest.mark.parametrize("length", [0, 6, 10, 16, "8", True, None])
def test_ec1_only_8_or_12_digits(length: object) -> None:
    with pytest.raises(DomainError) as caught:
        generate_nec(length, never_taken)  # type: ignore[arg-type]
    assert caught.value.error == "invalid-code-length"
    assert caught.value.value == length


def test_ec2_nec_needs_site_with_profile() -> None:
    check_nec_allowed(True)
    with pytest.raises(DomainError) as caught:
        check_nec_allowed(False)
    assert caught.value.error == "site-without-profile"
    assert caught.value.status == 409


def test_ec6_pec_is_account_id_plus_pin() -> None:
    assert pec_for("12345678", "0042") == "123456780042"
    assert classify_code("123456780042") == "pec12"
    assert split_pec("123456780042") == ("12345678", "0042")


def test_ec6_site_without_pin_has_no_pec() -> None:
    with pytest.raises(DomainError) as caught:
        pec_for("12345678", None)
    assert caught.value.error == "site-without-pin"


@pytest.mark.parametrize(
    ("account_id", "pin", "error"),
    [
        ("02345678", "0042", "invalid-account-id"),
        ("1234567", "0042", "invalid-account-id"),
        ("12345678", "42", "invalid-pin"),
        ("12345678", "abcd", "invalid-pin"),
    ],
)
def test_ec6_pec_parts_validated(account_id: str, pin: str, error: str) -> None:
    with pytest.raises(DomainError) as caught:
        pec_for(account_id, pin)
    assert caught.value.error == error


@given(account=st.integers(10_000_000, 99_999_999), pin=st.integers(0, 9999))
def test_ec8_nec12_never_equals_a_pec(account: int, pin: int) -> None:
    pec = pec_for(str(account), f"{pin:04d}")
    assert classify_code(pec) == "pec12"
    assert classify_code(generate_nec(12, never_taken)) == "nec12"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("12345678", "nec8"),
        ("00000000", "nec8"),
        ("012345678901", "nec12"),
        ("123456789012", "pec12"),
        ("1234567", None),
        ("1234567890", None),
        ("1234567890123", None),
        ("1234-5678", None),
        ("１２３４５６７８", None),
        ("", None),
        (12345678, None),
        (None, None),
    ],
)
def test_ec1_ec6_classify_code_by_shape(code: object, kind: str | None) -> None:
    assert classify_code(code) == kind


def test_ec6_split_pec_refuses_nec() -> None:
    with pytest.raises(DomainError) as caught:
        split_pec("012345678901")
    assert caught.value.error == "invalid-code"


def state(total: int = 10, enrolled: int = 0, expiry: Expiry | None = Expiry(ExpiryUnit.HOURS, 2)) -> NecState:
    return NecState("12345678", total, enrolled, expiry, T0)


def test_ec1_code_usable_before_expiry() -> None:
    assert code_usable(state(), T0 + timedelta(hours=2) - timedelta(microseconds=1)) is None


def test_ec1_code_expired_at_expiry_instant() -> None:
    assert code_usable(state(), T0 + timedelta(hours=2)) == "expired"


def test_ec3_code_used_up_when_total_reached() -> None:
    assert code_usable(state(total=3, enrolled=2), T0) is None
    assert code_usable(state(total=3, enrolled=3), T0) == "used-up"
    assert code_usable(state(total=3, enrolled=4), T0) == "used-up"


def test_ec1_never_expiring_code_stays_usable() -> None:
    assert code_usable(state(expiry=None), T0 + timedelta(days=3650)) is None


def test_ec1_expired_reported_before_used_up() -> None:
    assert code_usable(state(total=1, enrolled=1), T0 + timedelta(days=1)) == "expired"


@pytest.mark.parametrize("total", [1, 100_000])
def test_ec1_total_bounds(total: int) -> None:
    assert validate_total(total) == total


@pytest.mark.parametrize("total", [0, -1, 100_001, True, "5", 1.0, None])
def test_ec1_total_outside_bounds_refused(total: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_total(total)
    assert caught.value.error == "invalid-total"
    assert caught.value.value == total


def test_ec1_new_nec_starts_empty() -> None:
    nec = new_nec(12, 50, Expiry(ExpiryUnit.DAYS, 7), T0, never_taken)
    assert (nec.total, nec.enrolled, nec.started_at) == (50, 0, T0)
    assert nec.expires_at == T0 + timedelta(days=7)
    assert classify_code(nec.code) == "nec12"


def test_ec4_update_total_keeps_code_count_and_clock() -> None:
    before = state(total=10, enrolled=4)
    after = update_nec(before, T0 + timedelta(hours=1), total=20)
    assert (after.code, after.enrolled, after.total, after.started_at) == (before.code, 4, 20, T0)


def test_ec4_update_expiry_restarts_clock() -> None:
    later = T0 + timedelta(hours=1, minutes=30)
    after = update_nec(state(), later, expiry=Expiry(ExpiryUnit.HOURS, 1))
    assert after.expires_at == later + timedelta(hours=1)
    assert code_usable(after, later + timedelta(minutes=59)) is None


def test_ec4_update_to_never_expire() -> None:
    after = update_nec(state(), T0, expiry=None)
    assert after.expires_at is None


def test_ec4_total_below_enrolled_makes_code_used_up() -> None:
    after = update_nec(state(total=10, enrolled=6), T0, total=5)
    assert code_usable(after, T0) == "used-up"


def test_ec4_update_without_changes_is_identity() -> None:
    before = state()
    assert update_nec(before, T0 + timedelta(hours=1), total=UNSET, expiry=UNSET) == before


def test_ec4_update_validates_total() -> None:
    with pytest.raises(DomainError) as caught:
        update_nec(state(), T0, total=0)
    assert caught.value.error == "invalid-total"


def test_ec5_regenerate_new_code_same_settings_count_kept_clock_restarts() -> None:
    before = state(total=10, enrolled=7)
    later = T0 + timedelta(hours=5)
    assert code_usable(before, later) == "expired"
    after = regenerate_nec(before, 12, later, lambda c: c == before.code)
    assert after.code != before.code
    assert len(after.code) == 12
    assert (after.total, after.enrolled, after.expiry) == (10, 7, before.expiry)
    assert after.expires_at == later + timedelta(hours=2)
    assert code_usable(after, later) is None
