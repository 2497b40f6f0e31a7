"""How often failure notices go out (server/domain/failure_notices.py, issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.domain.errors import DomainError
from server.domain.failure_notices import NoticeLimiter, NoticePolicy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACC, MAC = "12345678", "A4251B0C3D5E"


def test_one_notice_per_device_and_reason_per_window() -> None:
    limiter = NoticeLimiter(NoticePolicy(minutes=60, per_account=20))
    assert limiter.admit(ACC, MAC, "no-profile", T0) is not None
    assert limiter.admit(ACC, MAC, "no-profile", T0 + timedelta(minutes=59)) is None
    assert limiter.admit(ACC, MAC, "disabled-account", T0 + timedelta(minutes=1)) is not None  # a new reason
    assert limiter.admit("87654321", MAC, "no-profile", T0) is not None  # another recipient
    assert limiter.admit(ACC, MAC, "no-profile", T0 + timedelta(minutes=60)) is not None
    assert limiter.held_back == 1


def test_an_account_gets_at_most_per_account_notices_per_window() -> None:
    limiter = NoticeLimiter(NoticePolicy(minutes=60, per_account=3))
    admitted = [limiter.admit(ACC, f"A4251B00000{i}", "locked", T0 + timedelta(minutes=i)) for i in range(5)]
    assert [a is not None for a in admitted] == [True, True, True, False, False]
    last = admitted[2]
    assert last is not None and "This is notice 3" in last.note
    # A window after the oldest, one more goes through.
    assert limiter.admit(ACC, "A4251B000009", "locked", T0 + timedelta(minutes=60)) is not None
    assert limiter.admit(ACC, "A4251B00000A", "locked", T0 + timedelta(minutes=60)) is None


def test_a_released_notice_is_admitted_again() -> None:
    limiter = NoticeLimiter(NoticePolicy(minutes=60, per_account=1))
    first = limiter.admit(ACC, MAC, "locked", T0)
    assert first is not None
    limiter.release(first)  # not written: the attempt is decided again
    again = limiter.admit(ACC, MAC, "locked", T0)
    assert again is not None and again.previous is None


@pytest.mark.parametrize("bad", [{"minutes": 0}, {"minutes": 10_081}, {"per_account": 0}, {"minutes": "60"}])
def test_the_policy_is_bounded(bad: dict[str, object]) -> None:
    with pytest.raises(DomainError) as err:
        NoticePolicy(**bad)  # type: ignore[arg-type]
    assert err.value.error == "invalid-notice-policy"
