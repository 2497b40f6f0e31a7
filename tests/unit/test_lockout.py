"""LCK-1..3: wrong-code lockout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.lockout import (
    LockoutPolicy,
    LockState,
    after_activation,
    after_success,
    after_wrong_code,
    current_state,
    is_locked,
    retry_after_seconds,
)

T0 = datetime(2025, 5, 5, 8, 0, tzinfo=UTC)
POLICY = LockoutPolicy()


def test_lck1_defaults_three_attempts_thirty_minutes() -> None:
    assert (POLICY.attempts, POLICY.minutes) == (3, 30)
    assert POLICY.duration == timedelta(minutes=30)


@pytest.mark.parametrize(("attempts", "minutes"), [(1, 1), (20, 1440)])
def test_lck1_policy_bounds_accepted(attempts: int, minutes: int) -> None:
    assert LockoutPolicy(attempts, minutes).attempts == attempts


@pytest.mark.parametrize(
    ("attempts", "minutes", "error"),
    [
        (0, 30, "invalid-lockout-attempts"),
        (21, 30, "invalid-lockout-attempts"),
        (True, 30, "invalid-lockout-attempts"),
        ("3", 30, "invalid-lockout-attempts"),
        (3, 0, "invalid-lockout-minutes"),
        (3, 1441, "invalid-lockout-minutes"),
        (3, 2.5, "invalid-lockout-minutes"),
    ],
)
def test_lck1_policy_outside_bounds_refused(attempts: object, minutes: object, error: str) -> None:
    with pytest.raises(DomainError) as caught:
        LockoutPolicy(attempts, minutes)  # type: ignore[arg-type]
    assert caught.value.error == error


def test_lck2_third_wrong_code_locks_and_already_answers_locked() -> None:
    first = after_wrong_code(LockState(), POLICY, T0)
    assert (first.attempts_left, first.locked) == (2, False)
    second = after_wrong_code(first.state, POLICY, T0 + timedelta(seconds=5))
    assert (second.attempts_left, second.locked) == (1, False)
    third_at = T0 + timedelta(seconds=10)
    third = after_wrong_code(second.state, POLICY, third_at)
    assert (third.attempts_left, third.locked) == (0, True)
    assert third.state.locked_until == third_at + timedelta(minutes=30)
    assert is_locked(third.state, third_at)


def test_lck2_single_attempt_policy_locks_at_first_wrong_code() -> None:
    outcome = after_wrong_code(LockState(), LockoutPolicy(attempts=1, minutes=5), T0)
    assert outcome.locked
    assert outcome.state.locked_until == T0 + timedelta(minutes=5)


def test_lck2_wrong_code_while_locked_does_not_extend_lock() -> None:
    locked = LockState(3, T0 + timedelta(minutes=30))
    outcome = after_wrong_code(locked, POLICY, T0 + timedelta(minutes=10))
    assert outcome.locked
    assert outcome.attempts_left == 0
    assert outcome.state == locked


def test_lck2_lock_lifts_when_time_passed_and_counter_restarts() -> None:
    locked = LockState(3, T0 + timedelta(minutes=30))
    assert is_locked(locked, T0 + timedelta(minutes=30) - timedelta(microseconds=1))
    assert not is_locked(locked, T0 + timedelta(minutes=30))
    assert current_state(locked, T0 + timedelta(minutes=30)) == LockState()
    outcome = after_wrong_code(locked, POLICY, T0 + timedelta(minutes=31))
    assert (outcome.attempts_left, outcome.locked) == (2, False)
    assert outcome.state == LockState(1, None)


def test_lck2_right_code_resets_counter() -> None:
    assert after_success() == LockState()
    state = after_wrong_code(after_wrong_code(LockState(), POLICY, T0).state, POLICY, T0).state
    assert state.failed == 2
    restarted = after_wrong_code(after_success(), POLICY, T0)
    assert restarted.attempts_left == 2


def test_lck2_activation_lifts_lock() -> None:
    locked = LockState(3, T0 + timedelta(minutes=30))
    state = after_activation()
    assert not is_locked(state, T0)
    assert state.failed == 0
    assert is_locked(locked, T0)


def test_lck2_retry_after_seconds() -> None:
    locked = LockState(3, T0 + timedelta(minutes=30))
    assert retry_after_seconds(locked, T0) == 1800
    assert retry_after_seconds(locked, T0 + timedelta(minutes=29, seconds=59, milliseconds=200)) == 1
    assert retry_after_seconds(locked, T0 + timedelta(minutes=10, milliseconds=500)) == 1200
    assert retry_after_seconds(locked, T0 + timedelta(minutes=30)) == 0
    assert retry_after_seconds(LockState(2, None), T0) == 0


@given(
    attempts=st.integers(1, 20),
    gaps=st.lists(st.integers(0, 120), min_size=1, max_size=60),
)
def test_lck3_never_more_than_l_tries_before_lock(attempts: int, gaps: list[int]) -> None:
    """Within one lockout window, exactly L wrong codes are evaluated; every later one is refused."""
    policy = LockoutPolicy(attempts=attempts, minutes=1440)
    state, now, evaluated = LockState(), T0, 0
    for gap in gaps:
        now += timedelta(seconds=gap)  # all within a day: the lock never expires here
        was_locked = is_locked(state, now)
        outcome = after_wrong_code(state, policy, now)
        if not was_locked:
            evaluated += 1
        assert outcome.locked == (evaluated >= attempts)
        assert outcome.attempts_left == max(attempts - evaluated, 0)
        state = outcome.state
    assert evaluated == min(len(gaps), attempts)
