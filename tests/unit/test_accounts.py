"""ACC-1..6, ACC-10: account types, creation rights, IDs, updates, deletion, two-factor switches."""

from __future__ import annotations

import pytest

from server.domain.accounts import (
    AccountType,
    check_may_create,
    check_may_set_children_two_factor,
    check_patch,
    deletion_order,
    is_account_id,
    login_refusal,
    new_account_id,
    owner_after_deletion,
    parent_of_new_account,
    parse_account_type,
    two_factor_required,
    validate_account_name,
)
from server.domain.errors import DomainError

P, M, SP, R, C = (
    AccountType.PLATFORM,
    AccountType.MANUFACTURER,
    AccountType.SERVICE_PROVIDER,
    AccountType.RESELLER,
    AccountType.CUSTOMER,
)
ALLOWED = {(P, M), (P, SP), (P, R), (P, C), (SP, R), (SP, C), (R, C)}


def test_acc1_account_type_values() -> None:
    assert [t.value for t in AccountType] == [
        "platform",
        "manufacturer",
        "service_provider",
        "reseller",
        "customer",
    ]


@pytest.mark.parametrize("creator", [M, SP, R, C])
def test_acc1_only_platform_creates_service_providers(creator: AccountType) -> None:
    with pytest.raises(DomainError) as caught:
        check_may_create(creator, SP)
    assert caught.value.error == "account-type-not-allowed"
    assert caught.value.status == 403
    assert caught.value.value == "service_provider"
    check_may_create(P, SP)


@pytest.mark.parametrize("creator", list(AccountType))
@pytest.mark.parametrize("new", list(AccountType))
def test_acc2_creation_matrix(creator: AccountType, new: AccountType) -> None:
    if (creator, new) in ALLOWED:
        check_may_create(creator, new)
        check_may_create(creator.value, new.value)
    else:
        with pytest.raises(DomainError) as caught:
            check_may_create(creator, new)
        assert caught.value.error == "account-type-not-allowed"


def test_acc2_reseller_creates_customers_never_resellers() -> None:
    check_may_create("reseller", "customer")
    with pytest.raises(DomainError):
        check_may_create("reseller", "reseller")


def test_acc1_unknown_type_refused_as_invalid() -> None:
    with pytest.raises(DomainError) as caught:
        check_may_create("service_provider", "distributor")
    assert caught.value.error == "invalid-account-type"
    assert caught.value.status == 422
    assert caught.value.value == "distributor"
    with pytest.raises(DomainError):
        parse_account_type(None)


def test_acc2_parent_is_creator_except_service_provider_under_platform() -> None:
    assert parent_of_new_account("20000001", "customer", "10000000") == "20000001"
    assert parent_of_new_account("10000000", "service_provider", "10000000") == "10000000"
    assert parent_of_new_account("30000003", SP, "10000000") == "10000000"


def test_acc3_account_id_is_eight_digits_first_nonzero() -> None:
    ids = {new_account_id() for _ in range(200)}
    for account_id in ids:
        assert len(account_id) == 8
        assert account_id.isdigit()
        assert account_id[0] != "0"
        assert is_account_id(account_id)
    assert len(ids) > 190  # random, not a counter


def test_acc3_account_id_retries_while_taken() -> None:
    asked: list[str] = []

    def taken(candidate: str) -> bool:
        asked.append(candidate)
        return len(asked) < 4

    result = new_account_id(taken)
    assert result == asked[-1]
    assert len(asked) == 4


def test_acc3_account_id_gives_up_with_conflict() -> None:
    with pytest.raises(DomainError) as caught:
        new_account_id(lambda _: True)
    assert caught.value.error == "account-id-exhausted"
    assert caught.value.status == 409


@pytest.mark.parametrize("value", ["01234567", "1234567", "123456789", "1234567a", 12345678, None])
def test_acc3_account_id_shape_refused(value: object) -> None:
    assert not is_account_id(value)


def test_acc4_type_change_refused() -> None:
    with pytest.raises(DomainError) as caught:
        check_patch({"type": "reseller", "name": "X"})
    assert caught.value.error == "account-type-immutable"
    assert caught.value.value == "reseller"
    with pytest.raises(DomainError):
        check_patch({"type": "reseller"}, current_type="customer")


def test_acc4_same_type_echoed_back_is_accepted_and_dropped() -> None:
    assert check_patch({"type": "customer", "name": " Acme "}, current_type=C) == {"name": "Acme"}


def test_acc4_name_may_change_and_is_trimmed() -> None:
    assert check_patch({"name": "  New Name  ", "contact": "x"}) == {"name": "New Name", "contact": "x"}


@pytest.mark.parametrize("field", ["id", "parent_id"])
def test_acc2_acc3_id_and_parent_immutable(field: str) -> None:
    with pytest.raises(DomainError) as caught:
        check_patch({field: "12345678"})
    assert caught.value.error == "account-field-immutable"
    assert caught.value.value == field


def test_acc4_bad_name_in_patch_refused() -> None:
    with pytest.raises(DomainError) as caught:
        check_patch({"name": "   "})
    assert caught.value.error == "invalid-account-name"


def test_acc4_account_name_rules() -> None:
    assert validate_account_name("  Acme Corp ") == "Acme Corp"
    assert validate_account_name("x" * 128) == "x" * 128
    for bad in ["", "   ", "x" * 129, "Acme\nCorp", None, 42]:
        with pytest.raises(DomainError) as caught:
            validate_account_name(bad)
        assert caught.value.error == "invalid-account-name"
        assert caught.value.value == bad


def test_acc5_disabled_account_blocks_login() -> None:
    assert login_refusal(True) is None
    assert login_refusal(False) == "disabled-account"


def test_acc6_deletion_is_recursive_and_deepest_first() -> None:
    children = {
        "SP": ["R1", "C0"],
        "R1": ["C1", "C2"],
        "C2": [],
        "OTHER": ["C9"],
    }
    order = deletion_order("SP", children)
    assert set(order) == {"SP", "R1", "C0", "C1", "C2"}
    assert order[-1] == "SP"
    assert order.index("C1") < order.index("R1")
    assert order.index("C2") < order.index("R1")
    assert "C9" not in order


def test_acc6_deletion_of_a_leaf_is_just_the_leaf() -> None:
    assert deletion_order("C1", {"R1": ["C1"]}) == ["C1"]


def test_acc6_deletion_survives_a_cycle_in_bad_data() -> None:
    assert sorted(deletion_order("A", {"A": ["B"], "B": ["A"]})) == ["A", "B"]


def test_acc6_device_returns_to_previous_surviving_owner() -> None:
    history = ["SP", "R1", "C1"]
    assert owner_after_deletion(history, {"C1"}) == "R1"
    assert owner_after_deletion(history, {"C1", "R1"}) == "SP"
    assert owner_after_deletion(history, {"SP", "R1", "C1"}) is None
    assert owner_after_deletion(history, {"OTHER"}) == "C1"


def test_acc10_two_factor_off_by_default() -> None:
    assert two_factor_required([(False, False)]) is False
    assert two_factor_required([]) is False


def test_acc10_own_switch_binds_all_administrators() -> None:
    assert two_factor_required([(True, False), (False, False)]) is True


def test_acc10_service_provider_switches_it_on_for_its_resellers() -> None:
    reseller_chain = [(False, False), (False, True), (False, False)]
    assert two_factor_required(reseller_chain) is True


def test_acc10_children_switch_binds_direct_children_only() -> None:
    customer_of_reseller = [(False, False), (False, False), (False, True)]
    assert two_factor_required(customer_of_reseller) is False


def test_acc10_parent_own_switch_does_not_bind_children() -> None:
    assert two_factor_required([(False, False), (True, False)]) is False


def test_acc10_user_may_opt_in_without_company_switch() -> None:
    assert two_factor_required([(False, False)], user_opt_in=True) is True


def test_acc10_only_service_provider_or_platform_sets_children_switch() -> None:
    check_may_set_children_two_factor("service_provider")
    check_may_set_children_two_factor(P)
    for kind in (R, C, M):
        with pytest.raises(DomainError) as caught:
            check_may_set_children_two_factor(kind)
        assert caught.value.error == "two-factor-children-not-allowed"
        assert caught.value.status == 403
