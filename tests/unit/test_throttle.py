"""`server.domain.throttle`: failure budgets in a sliding window (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.domain.errors import DomainError
from server.domain.throttle import Budget, FailureBudget, GuessGate, GuessingPolicy

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_refused_at_the_budget_and_free_when_the_oldest_failure_leaves_the_window() -> None:
    budget = FailureBudget(Budget(3, 10))
    for s in (0, 60, 120):
        assert budget.retry_after("a", at(s)) is None
        budget.record("a", at(s))
    assert budget.retry_after("a", at(121)) == 600 - 121  # until the failure at 0 is 10 minutes old
    assert budget.retry_after("a", at(599.5)) == 1
    assert budget.retry_after("a", at(600)) is None  # exactly one more failure allowed now
    budget.record("a", at(600))
    assert budget.retry_after("a", at(600)) == 60
    assert budget.retry_after("b", at(600)) is None  # keys are independent


def test_nothing_but_time_clears_a_count() -> None:
    budget = FailureBudget(Budget(2, 1))
    budget.record("a", at(0))
    budget.record("a", at(1))
    assert budget.count("a", at(30)) == 2  # no call resets it; successes are not even reported
    assert budget.count("a", at(61)) == 0
    assert budget.retry_after("a", at(61)) is None


def test_memory_is_bounded() -> None:
    budget = FailureBudget(Budget(5, 10), max_keys=100)
    for i in range(1000):
        budget.record(f"10.0.{i // 256}.{i % 256}", at(i))
        budget.record("hot", at(i))  # the recently failing key stays
    assert budget.count("hot", at(1000)) == 5
    assert budget.count("10.0.0.0", at(1000)) == 0  # long evicted
    assert len(budget._failures) <= 100


@pytest.mark.parametrize("failures, minutes", [(0, 10), (100_001, 10), (5, 0), (5, 1441)])
def test_budget_ranges(failures: int, minutes: int) -> None:
    with pytest.raises(DomainError) as err:
        Budget(failures, minutes)
    assert err.value.error == "invalid-budget"


def test_policy_json_round_trip_and_defaults() -> None:
    policy = GuessingPolicy(Budget(7, 3), Budget(70, 30))
    assert GuessingPolicy.from_json(policy.to_json()) == policy
    assert GuessingPolicy.from_json(None) == GuessingPolicy()
    assert GuessingPolicy.from_json({"global": {"failures": 9, "minutes": 2}}).everyone == Budget(9, 2)


def test_gate_checks_the_address_then_everyone_and_counts() -> None:
    gate = GuessGate(GuessingPolicy(Budget(2, 10), Budget(3, 10)))
    gate.failed("a", at(0))
    gate.failed("a", at(1))
    assert gate.check("a", at(2)) == (599 - 1, "per-address")
    assert gate.check("b", at(2)) is None
    gate.failed("b", at(3))
    assert gate.check("c", at(4)) == (596, "global")
    assert gate.figures(at(4)) == {"wrong_codes": 3, "refused": 2, "refused_global": 1,
                                   "addresses_refused_now": 1, "global_failures_in_window": 3}
    gate.apply(GuessingPolicy(Budget(2, 10), Budget(50, 10)))  # a new global budget starts afresh
    assert gate.check("c", at(5)) is None and gate.check("a", at(5)) is not None


def test_workers_each_allow_their_share_of_the_budget() -> None:
    """`enrollab serve --workers N` (issue 17): each process counts alone, so each allows failures ÷ N
    (rounded up, at least 1) and N processes together about the budget, not N times it."""
    assert Budget(30, 10).shared(1) == Budget(30, 10)
    assert Budget(30, 10).shared(2) == Budget(15, 10)
    assert Budget(1000, 10).shared(3) == Budget(334, 10)
    assert Budget(2, 5).shared(4) == Budget(1, 5)
    gates = [GuessGate(GuessingPolicy(Budget(30, 10), Budget(1000, 10)), share=2) for _ in range(2)]
    allowed = 0
    for i in range(100):  # one address's wrong codes, spread over both workers as the kernel would
        g = gates[i % 2]
        if g.check("198.51.100.7", at(i)) is None:
            g.failed("198.51.100.7", at(i))
            allowed += 1
    assert allowed == 30
    gates[0].apply(GuessingPolicy(Budget(10, 10), Budget(1000, 10)))  # a new platform policy is shared too
    assert gates[0].per_address.budget == Budget(5, 10)
