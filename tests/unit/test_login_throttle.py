"""`server.domain.login_throttle`: failed-login limits per address and per login name (issue 13),
on a clock the tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.login_throttle import (
    FAILED,
    NEITHER,
    SUCCEEDED,
    TRUST_DAYS,
    Attempt,
    BackOff,
    LoginGate,
    LoginThrottlePolicy,
    Refusal,
)
from server.domain.throttle import Budget

T0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
WIDE = Budget(100_000, 1)  # an address budget that never answers, to watch the per-login rule alone


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def gate(per_address: Budget = WIDE, **back_off: int) -> LoginGate:
    return LoginGate(LoginThrottlePolicy(per_address, BackOff(**back_off)))


def fail(g: LoginGate, login: str, address: str, when: datetime) -> None:
    attempt = g.begin(login, address, when)
    assert isinstance(attempt, Attempt), attempt
    g.end(attempt, FAILED, when)


def refusal(g: LoginGate, login: str, address: str, when: datetime) -> Refusal | None:
    """The refusal of a try at `when`, or None (the try is let through and ended as NEITHER)."""
    attempt = g.begin(login, address, when)
    if isinstance(attempt, Refusal):
        return attempt
    g.end(attempt, NEITHER, when)
    return None


def test_per_login_free_failures_then_waits_doubling_up_to_the_cap() -> None:
    g = gate(free=3, base_seconds=2, cap_seconds=10)
    for i in range(3):  # each from another address: the per-login rule counts the name
        assert refusal(g, "alice", f"10.0.0.{i}", at(0)) is None
        fail(g, "alice", f"10.0.0.{i}", at(0))
    waits = []
    now = 0.0
    for i in range(5):
        refused = refusal(g, "alice", "10.0.1.1", at(now))
        assert refused is not None and refused.which == "per-login"
        waits.append(refused.retry_after)
        now += refused.retry_after
        assert refusal(g, "alice", "10.0.1.1", at(now - 0.5)) is not None  # not a moment early
        fail(g, "alice", f"10.0.2.{i}", at(now))
    assert waits == [2, 4, 8, 10, 10]  # base 2 s doubling, never past the 10 s cap
    assert refusal(g, "bob", "10.0.1.1", at(now)) is None  # other names are not held


def test_a_quiet_login_is_forgotten_after_reset_minutes() -> None:
    g = gate(free=2, base_seconds=60, cap_seconds=600, reset_minutes=30)
    for s in (0, 1):
        fail(g, "alice", "10.0.0.1", at(s))
    assert refusal(g, "alice", "10.0.0.2", at(2)) is not None
    assert refusal(g, "alice", "10.0.0.2", at(61)) is None  # the wait is over: one try
    fail(g, "alice", "10.0.0.2", at(61))
    assert refusal(g, "alice", "10.0.0.2", at(62)) == Refusal(119, "per-login")  # 2 min after the 3rd
    # 30 minutes after the last failure the name starts again at 0: two free failures
    fail(g, "alice", "10.0.0.2", at(61 + 1800))
    fail(g, "alice", "10.0.0.2", at(61 + 1801))
    assert refusal(g, "alice", "10.0.0.2", at(61 + 1802)) == Refusal(59, "per-login")  # 1 min after the 2nd


def test_per_address_budget_counts_every_name_tried_from_the_address() -> None:
    g = gate(Budget(3, 10), free=1000)
    for i, s in enumerate((0, 60, 120)):
        fail(g, f"user{i}", "198.51.100.7", at(s))
    refused = refusal(g, "someone-else", "198.51.100.7", at(130))
    assert refused == Refusal(600 - 130, "per-address")
    assert refusal(g, "someone-else", "198.51.100.8", at(130)) is None  # another address is not held
    assert refusal(g, "user0", "198.51.100.7", at(600)) is None  # the oldest failure left the window


def test_a_success_trusts_its_address_and_resets_nothing_for_the_attacker() -> None:
    g = gate(free=3, base_seconds=60, cap_seconds=900)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    for i in range(10):  # an attacker from many addresses drives alice into the back-off
        attempt = g.begin("alice", f"203.0.113.{i}", at(i * 1000))
        if isinstance(attempt, Attempt):
            g.end(attempt, FAILED, at(i * 1000))
    assert refusal(g, "alice", "203.0.113.99", at(9000)) is not None  # new addresses wait
    # alice from where she logged in before is not held by the back-off at all
    mine = g.begin("alice", "192.0.2.10", at(9000))
    assert isinstance(mine, Attempt) and mine.exempt
    g.end(mine, SUCCEEDED, at(9000))
    # and her success gave the attacker nothing back: still backing off
    assert refusal(g, "alice", "203.0.113.99", at(9000)) is not None


def test_an_address_spending_its_budget_still_lets_in_the_names_trusted_there() -> None:
    g = gate(Budget(3, 10), free=3)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    for i in range(3):  # someone behind the same address (NAT) sprays other names
        fail(g, f"user{i}", "192.0.2.10", at(i))
    assert refusal(g, "user9", "192.0.2.10", at(5)) == Refusal(595, "per-address")
    mine = g.begin("alice", "192.0.2.10", at(5))
    assert isinstance(mine, Attempt) and mine.exempt
    g.end(mine, FAILED, at(5))  # her own failures count in the address's budget all the same
    assert refusal(g, "user0", "192.0.2.10", at(300)) == Refusal(301, "per-address")  # failures at 1, 2, 5 s


def test_a_trusted_address_that_fails_free_times_itself_backs_off_like_any_other() -> None:
    g = gate(free=3, base_seconds=60, cap_seconds=900)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    for s in range(3):
        fail(g, "alice", "192.0.2.10", at(s))
    refused = refusal(g, "alice", "192.0.2.10", at(3))
    assert refused is not None and refused.which == "per-login" and refused.retry_after <= 60


def test_trust_ends_after_trust_days() -> None:
    g = gate(free=1, base_seconds=3600, cap_seconds=3600, reset_minutes=43_200)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    days = TRUST_DAYS * 86_400
    fail(g, "alice", "203.0.113.1", at(days - 10))
    assert refusal(g, "alice", "192.0.2.10", at(days - 5)) is None  # still trusted
    assert refusal(g, "alice", "192.0.2.10", at(days)) is not None  # trust over: the back-off applies


def test_tries_in_flight_count_so_a_burst_cannot_pass_the_budget() -> None:
    g = gate(free=3, base_seconds=5, cap_seconds=60)
    burst = [g.begin("alice", f"10.0.0.{i}", at(0)) for i in range(10)]
    let_through = [a for a in burst if isinstance(a, Attempt)]
    assert len(let_through) == 3  # the free failures, no more, while their hashes are computed
    for attempt in let_through:
        g.end(attempt, FAILED, at(0))
    assert refusal(g, "alice", "10.0.1.1", at(5)) is None  # the wait after the 3rd failure is over
    first = g.begin("alice", "10.0.1.1", at(5))
    assert isinstance(first, Attempt)
    assert isinstance(g.begin("alice", "10.0.1.2", at(5)), Refusal)  # one try at a time while backing off
    g.end(first, FAILED, at(5))
    # the address budget counts its tries in flight too
    a = gate(Budget(2, 10), free=1000)
    tries = [a.begin(f"u{i}", "198.51.100.7", at(0)) for i in range(4)]
    assert [isinstance(t, Attempt) for t in tries] == [True, True, False, False]


def test_only_failures_count() -> None:
    g = gate(Budget(2, 10), free=2)
    for _ in range(10):  # a right password refused for another reason (otp-required, disabled account)
        attempt = g.begin("alice", "10.0.0.1", at(0))
        assert isinstance(attempt, Attempt)
        g.end(attempt, NEITHER, at(0))
    assert g.figures(at(0))["failed_logins"] == 0


def test_a_changed_back_off_starts_its_counts_again_and_keeps_trust() -> None:
    g = gate(free=1, base_seconds=600, cap_seconds=600)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    fail(g, "alice", "203.0.113.1", at(1))
    assert refusal(g, "alice", "203.0.113.2", at(2)) is not None
    g.apply(LoginThrottlePolicy(WIDE, BackOff(free=2, base_seconds=600, cap_seconds=600)))
    assert refusal(g, "alice", "203.0.113.2", at(2)) is None
    fail(g, "alice", "203.0.113.1", at(3))
    fail(g, "alice", "203.0.113.1", at(4))
    attempt = g.begin("alice", "192.0.2.10", at(5))
    assert isinstance(attempt, Attempt) and attempt.exempt


def test_figures() -> None:
    g = gate(Budget(2, 10), free=2, base_seconds=60, cap_seconds=60)
    fail(g, "alice", "10.0.0.1", at(0))
    fail(g, "alice", "10.0.0.1", at(1))
    assert isinstance(g.begin("alice", "10.0.0.2", at(2)), Refusal)  # per login
    assert isinstance(g.begin("bob", "10.0.0.1", at(2)), Refusal)  # per address
    assert g.figures(at(2)) == {
        "failed_logins": 2,
        "refused": 2,
        "refused_per_address": 1,
        "refused_per_login": 1,
        "addresses_refused_now": 1,
        "logins_backing_off_now": 1,
    }


def test_memory_is_bounded() -> None:
    g = LoginGate(LoginThrottlePolicy(WIDE, BackOff(free=1000)), max_keys=50)
    for i in range(500):
        fail(g, f"user{i}", f"10.0.{i // 250}.{i % 250}", at(i))
    assert len(g._logins) <= 50


@pytest.mark.parametrize(
    "body",
    [
        {"per_login": {"free": 0}},
        {"per_login": {"base_seconds": 0}},
        {"per_login": {"base_seconds": 60, "cap_seconds": 30}},
        {"per_login": {"reset_minutes": 10**9}},
        {"per_login": {"free": True}},
        {"per_address": {"failures": 0, "minutes": 10}},
    ],
)
def test_policy_ranges(body: dict[str, dict[str, int]]) -> None:
    with pytest.raises(DomainError) as refused:
        LoginThrottlePolicy.from_json(body)
    assert refused.value.error in ("invalid-login-throttle", "invalid-budget")


def test_policy_json_round_trip_and_partial_values() -> None:
    policy = LoginThrottlePolicy.from_json({"per_login": {"cap_seconds": 60}})
    assert policy.per_login == BackOff(cap_seconds=60) and policy.per_address == LoginThrottlePolicy().per_address
    assert LoginThrottlePolicy.from_json(policy.to_json()) == policy
    assert LoginThrottlePolicy.from_json(None) == LoginThrottlePolicy()


@settings(max_examples=200, deadline=None)
@given(
    attacks=st.lists(
        st.tuples(st.integers(0, 8), st.floats(0, 5000), st.booleans(), st.sampled_from(["alice", "bob", "carol"])),
        min_size=1,
        max_size=80,
    ),
    free=st.integers(1, 6),
    cap=st.integers(1, 1800),
    budget=st.integers(1, 30),
)
def test_no_attack_locks_the_user_out(
    attacks: list[tuple[int, float, bool, str]], free: int, cap: int, budget: int
) -> None:
    """Whatever an attacker does (fail or just try, any names, from other addresses or for other
    names from hers), the user at an address she logged in from is never held, and every refusal
    anyone gets says to come back within the cap or the address window."""
    window = 600
    g = gate(Budget(budget, window // 60), free=free, base_seconds=1, cap_seconds=cap)
    ok = g.begin("alice", "192.0.2.10", at(0))
    assert isinstance(ok, Attempt)
    g.end(ok, SUCCEEDED, at(0))
    now = 0.0
    for address, gap, failing, name in attacks:
        now += gap
        source = "192.0.2.10" if address == 8 else f"203.0.113.{address}"
        if source == "192.0.2.10" and name == "alice":  # her own address and name: that is her
            continue
        attempt = g.begin(name, source, at(now))
        if isinstance(attempt, Refusal):
            assert 1 <= attempt.retry_after <= max(cap, window)
        else:
            g.end(attempt, FAILED if failing else NEITHER, at(now))
        mine = g.begin("alice", "192.0.2.10", at(now))
        assert isinstance(mine, Attempt) and mine.exempt
        g.end(mine, NEITHER, at(now))


def test_workers_each_allow_their_share_of_the_address_budget() -> None:
    """Two worker processes (issue 17) let one address fail 20 times together, not 40."""
    gates = [LoginGate(LoginThrottlePolicy(Budget(20, 10), BackOff(free=1000)), share=2) for _ in range(2)]
    allowed = 0
    for i in range(60):
        g = gates[i % 2]
        if refusal(g, f"user{i}", "198.51.100.7", at(i)) is None:
            fail(g, f"user{i}", "198.51.100.7", at(i))
            allowed += 1
    assert allowed == 20
