"""DEV-2..DEV-9, ACO-1: device lifecycle transitions, action sets and the role table."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from server.domain import devices
from server.domain.devices import (
    ACTION_SETS,
    ACTIONS,
    ROLE_ACTIONS,
    ActionContext,
    DeviceState,
    action_sets_for,
    activate,
    associate,
    authorize_actions,
    claim,
    deactivate,
    disassociate,
    may_enroll_with_code,
    release,
    run_actions,
    sync,
    validate_action_set,
    zero_touch_ready,
)
from server.domain.errors import DomainError

SP, RESELLER, CUSTOMER, OTHER = "10000001", "20000002", "30000003", "99999999"
ORDER = {
    "reseller_order_id": "RC-4001-7788",
    "order_id": "AV-2021-000917",
    "shipment_carrier": "DHL",
    "tracking_id": "JD014600006281465123",
    "aco_product_id": "ACO-J179-01",
}
NEW = DeviceState(mac="A4251B0C3D5E", serial="21WZ51234567", model="J179", order=dict(ORDER))
APPROVED = replace(NEW, approved=True)


def owned(owner: str = SP, **changes: Any) -> DeviceState:
    return replace(APPROVED, owner_id=owner, **changes)


def reason(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DomainError) as info:
        call(*args, **kwargs)
    assert info.value.value == APPROVED.mac or info.value.error in {
        "invalid-action-set",
        "action-not-allowed",
    }
    return info.value.error


def assoc(state: DeviceState, actor: str, target: str, **kwargs: Any) -> DeviceState:
    args: dict[str, Any] = {
        "target_is_child": False,
        "target_is_linked_reseller": None,
        "site_id": None,
        "site_has_profile": None,
    }
    args.update(kwargs)
    return associate(state, actor, target, **args)


# --- claim (DEV-2, DEV-3) -----------------------------------------------------------------------------


def test_dev2_claim_needs_approval() -> None:
    assert reason(claim, NEW, SP) == "not-approved"


def test_dev3_claim_moves_ownership_to_the_claimant() -> None:
    state = claim(APPROVED, CUSTOMER)
    assert (state.owner_id, state.previous_owner_id) == (CUSTOMER, None)
    assert state.order == ORDER


def test_dev3_claiming_ones_own_device_is_a_no_op() -> None:
    state = owned(SP)
    assert claim(state, SP) is state


def test_dev3_claiming_a_device_owned_by_someone_else_is_refused() -> None:
    assert reason(claim, owned(OTHER), SP) == "already-claimed"


# --- associate (DEV-4) --------------------------------------------------------------------------------


def test_dev4_associate_needs_approval_and_a_claim() -> None:
    assert reason(assoc, replace(NEW, owner_id=SP), SP, RESELLER, target_is_linked_reseller=True) == "not-approved"
    assert reason(assoc, APPROVED, SP, RESELLER, target_is_linked_reseller=True) == "not-claimed"


def test_dev4_sp_associates_to_a_linked_reseller_and_ownership_moves() -> None:
    state = assoc(owned(SP, activated=True), SP, RESELLER, target_is_linked_reseller=True)
    assert (state.owner_id, state.previous_owner_id) == (RESELLER, SP)
    assert (state.site_id, state.associated, state.activated) == (None, False, False)


def test_acc8_associate_to_an_unlinked_reseller_is_refused() -> None:
    assert reason(assoc, owned(SP), SP, RESELLER, target_is_linked_reseller=False) == "reseller-not-linked"


def test_dev4_a_reseller_target_takes_no_site() -> None:
    error = reason(assoc, owned(SP), SP, RESELLER, target_is_linked_reseller=True, site_id=7, site_has_profile=True)
    assert error == "site-not-allowed"


def test_dev4_associate_with_a_child_customers_site() -> None:
    state = assoc(owned(RESELLER), RESELLER, CUSTOMER, target_is_child=True, site_id=7, site_has_profile=True)
    assert (state.owner_id, state.previous_owner_id, state.site_id, state.associated) == (
        CUSTOMER,
        RESELLER,
        7,
        True,
    )


def test_dev4_associate_with_a_child_customer_without_site_moves_ownership_only() -> None:
    state = assoc(owned(RESELLER), RESELLER, CUSTOMER, target_is_child=True)
    assert (state.owner_id, state.site_id, state.associated) == (CUSTOMER, None, False)


def test_dev4_customer_associates_with_its_own_site() -> None:
    state = assoc(owned(CUSTOMER, previous_owner_id=RESELLER), CUSTOMER, CUSTOMER, site_id=3, site_has_profile=True)
    assert (state.owner_id, state.previous_owner_id, state.site_id, state.associated) == (
        CUSTOMER,
        RESELLER,
        3,
        True,
    )


def test_dev4_associating_with_ones_own_account_needs_a_site() -> None:
    assert reason(assoc, owned(CUSTOMER), CUSTOMER, CUSTOMER) == "site-required"


@pytest.mark.parametrize("has_profile", [False, None])
def test_prf4_dev4_a_site_without_profile_is_refused(has_profile: bool | None) -> None:
    error = reason(assoc, owned(CUSTOMER), CUSTOMER, CUSTOMER, site_id=3, site_has_profile=has_profile)
    assert error == "no-profile"


def test_acc7_associate_outside_the_hierarchy_is_refused() -> None:
    assert reason(assoc, owned(SP), SP, OTHER, target_is_child=False) == "target-not-in-hierarchy"


def test_dev4_a_device_held_by_a_third_account_is_refused() -> None:
    assert reason(assoc, owned(OTHER), SP, CUSTOMER, target_is_child=True) == "not-owner"


def test_dev4_moving_a_childs_device_to_another_of_its_sites_keeps_previous_owner() -> None:
    state = owned(CUSTOMER, previous_owner_id=SP, site_id=1, associated=True, activated=True)
    moved = assoc(state, SP, CUSTOMER, target_is_child=True, site_id=2, site_has_profile=True)
    assert (moved.owner_id, moved.previous_owner_id, moved.site_id, moved.activated) == (
        CUSTOMER,
        SP,
        2,
        False,
    )


def test_dev4_repeating_the_same_association_is_a_no_op() -> None:
    state = owned(CUSTOMER, site_id=3, associated=True, activated=True)
    assert assoc(state, CUSTOMER, CUSTOMER, site_id=3, site_has_profile=True) is state


# --- disassociate, release (DEV-5) ----------------------------------------------------------------------


def test_dev5_disassociate_returns_a_child_accounts_device_and_erases_order_fields() -> None:
    state = owned(CUSTOMER, previous_owner_id=RESELLER, site_id=3, associated=True, activated=True)
    back = disassociate(state, RESELLER)
    assert (back.owner_id, back.previous_owner_id) == (RESELLER, CUSTOMER)
    assert (back.site_id, back.associated, back.activated) == (None, False, False)
    assert back.order == {
        "reseller_order_id": None,
        "order_id": None,
        "shipment_carrier": None,
        "tracking_id": None,
        "aco_product_id": "ACO-J179-01",
    }


def test_dev5_disassociate_refuses_a_device_held_by_oneself_or_nobody() -> None:
    assert reason(disassociate, owned(SP), SP) == "not-held-by-child"
    assert reason(disassociate, APPROVED, SP) == "not-claimed"
    assert reason(disassociate, replace(NEW, owner_id=CUSTOMER), SP) == "not-approved"


def test_dev5_release_returns_the_device_to_the_parent_and_erases_order_fields() -> None:
    state = owned(CUSTOMER, site_id=3, associated=True, activated=True)
    back = release(state, CUSTOMER, RESELLER)
    assert (back.owner_id, back.previous_owner_id, back.site_id, back.activated) == (
        RESELLER,
        CUSTOMER,
        None,
        False,
    )
    assert back.order["order_id"] is None and back.order["aco_product_id"] == "ACO-J179-01"


def test_dev5_a_service_provider_releases_to_the_platform_which_unclaims() -> None:
    back = release(owned(SP), SP, None)
    assert back.owner_id is None
    assert claim(back, OTHER).owner_id == OTHER


def test_dev5_only_the_holder_releases() -> None:
    assert reason(release, owned(CUSTOMER), RESELLER, SP) == "not-owner"
    assert reason(release, APPROVED, RESELLER, SP) == "not-claimed"
    assert reason(release, replace(NEW, owner_id=SP), SP, None) == "not-approved"


# --- activate, deactivate, readiness (DEV-6, DEV-7) -----------------------------------------------------


def test_dev6_activate_and_deactivate_toggle_and_are_idempotent() -> None:
    state = owned(CUSTOMER)
    on = activate(state, CUSTOMER)
    assert on.activated and activate(on, CUSTOMER) is on
    off = deactivate(on, CUSTOMER)
    assert not off.activated and deactivate(off, CUSTOMER) is off


@pytest.mark.parametrize("transition", [activate, deactivate])
def test_dev6_activation_needs_approval_and_a_claim(transition: Any) -> None:
    assert reason(transition, replace(NEW, owner_id=SP), SP) == "not-approved"
    assert reason(transition, APPROVED, SP) == "not-claimed"


def test_dev6_association_comes_before_activation() -> None:
    activated_first = activate(owned(CUSTOMER), CUSTOMER)
    then_associated = assoc(activated_first, CUSTOMER, CUSTOMER, site_id=3, site_has_profile=True)
    assert not zero_touch_ready(then_associated)
    assert zero_touch_ready(activate(then_associated, CUSTOMER))


@pytest.mark.parametrize(
    ("changes", "ready"),
    [
        ({"owner_id": CUSTOMER, "site_id": 3, "associated": True, "activated": True}, True),
        (
            {"owner_id": CUSTOMER, "site_id": 3, "associated": True, "activated": True, "approved": False},
            False,
        ),
        ({"owner_id": None, "site_id": 3, "associated": True, "activated": True}, False),
        ({"owner_id": CUSTOMER, "site_id": None, "associated": False, "activated": True}, False),
        ({"owner_id": CUSTOMER, "site_id": 3, "associated": True, "activated": False}, False),
    ],
)
def test_dev6_zero_touch_needs_claimed_associated_activated(changes: dict[str, Any], ready: bool) -> None:
    assert zero_touch_ready(replace(APPROVED, **changes)) is ready


@pytest.mark.parametrize(
    ("changes", "may"),
    [
        ({}, True),  # unclaimed, not associated, not activated
        ({"owner_id": CUSTOMER, "activated": True}, True),  # not associated, activated
        ({"owner_id": CUSTOMER, "site_id": 3, "associated": True}, True),  # not activated: only with a code
        ({"owner_id": CUSTOMER, "site_id": 3, "associated": True, "activated": True}, False),  # zero-touch
        ({"approved": False}, False),  # DEV-2
    ],
)
def test_dev7_who_may_enroll_with_a_code(changes: dict[str, Any], may: bool) -> None:
    assert may_enroll_with_code(replace(APPROVED, **changes)) is may


# --- sync (ACO-1) ---------------------------------------------------------------------------------------


def test_aco1_sync_claims_and_activates_a_supported_model() -> None:
    state = sync(replace(APPROVED, model="B199"), RESELLER)
    assert (state.owner_id, state.activated) == (RESELLER, True)


def test_aco1_sync_refuses_unsupported_models_and_missing_reseller_order() -> None:
    assert reason(sync, replace(APPROVED, model="K175"), RESELLER) == "aco-unsupported-model"
    no_order = replace(APPROVED, order={**ORDER, "reseller_order_id": None})
    assert reason(sync, no_order, RESELLER) == "missing-reseller-order-id"
    assert reason(sync, owned(OTHER), RESELLER) == "already-claimed"
    assert reason(sync, NEW, RESELLER) == "not-approved"


# --- action sets (DEV-9) ---------------------------------------------------------------------------------

ALLOWED = {
    frozenset({"claim"}),
    frozenset({"claim", "associate"}),
    frozenset({"claim", "activate"}),
    frozenset({"claim", "associate", "activate"}),
    frozenset({"disassociate"}),
    frozenset({"disassociate", "associate"}),
    frozenset({"disassociate", "release"}),
    frozenset({"associate"}),
    frozenset({"associate", "activate"}),
    frozenset({"activate"}),
    frozenset({"deactivate"}),
    frozenset({"sync"}),
    frozenset({"release"}),
}


def test_dev9_action_sets_are_exactly_the_guides() -> None:
    assert {frozenset(s) for s in ACTION_SETS} == ALLOWED
    assert len(ACTION_SETS) == 13


@pytest.mark.parametrize(
    "subset",
    [c for n in range(len(ACTIONS) + 1) for c in itertools.combinations(ACTIONS, n)],
    ids=lambda c: "+".join(c) or "none",
)
def test_dev9_every_subset_of_the_seven_actions(subset: tuple[str, ...]) -> None:
    if frozenset(subset) in ALLOWED:
        for order in itertools.permutations(subset):
            assert validate_action_set(list(order)) == tuple(a for a in ACTIONS if a in subset)
    else:
        assert reason(validate_action_set, list(subset)) == "invalid-action-set"


def test_dev9_canonical_order_puts_ownership_before_placement_before_activation() -> None:
    assert validate_action_set(["Activate", "ASSOCIATE", " claim "]) == ("claim", "associate", "activate")
    assert validate_action_set(["release", "disassociate"]) == ("disassociate", "release")
    assert validate_action_set(["associate", "disassociate"]) == ("disassociate", "associate")


@pytest.mark.parametrize("actions", [["claim", "claim"], ["import"], ["claim", "approve"], [3], []])
def test_dev9_duplicates_unknown_and_empty_refused(actions: list[Any]) -> None:
    assert reason(validate_action_set, actions) == "invalid-action-set"


def test_dev9_role_actions_follow_the_guide() -> None:
    assert {
        "platform": frozenset(),
        "manufacturer": frozenset(),
        "service_provider": frozenset(ACTIONS),
        "reseller": frozenset(ACTIONS),
        "customer": frozenset({"claim", "associate", "activate", "deactivate", "release"}),
    } == ROLE_ACTIONS
    assert {"manufacturer", "platform"} == devices.IMPORT_ROLES
    assert {"platform"} == devices.APPROVE_ROLES


def test_dev9_authorize_actions_per_role() -> None:
    authorize_actions("customer", ("claim", "associate", "activate"))
    authorize_actions("reseller", ("sync",))
    with pytest.raises(DomainError) as info:
        authorize_actions("customer", ("disassociate", "release"))
    assert (info.value.error, info.value.status, info.value.value) == (
        "action-not-allowed",
        403,
        ["disassociate"],
    )
    with pytest.raises(DomainError) as info:
        authorize_actions("manufacturer", ("claim",))
    assert info.value.error == "action-not-allowed"
    with pytest.raises(DomainError) as info:
        authorize_actions("admin", ("claim",))
    assert info.value.error == "unknown-role"


def test_dev9_action_sets_for_a_role_are_the_allowed_sets_it_may_run() -> None:
    customer = action_sets_for("customer")
    assert ("claim", "associate", "activate") in customer
    assert all("disassociate" not in s and "sync" not in s for s in customer)
    assert len(customer) == 9
    assert len(action_sets_for("service_provider")) == 13
    assert action_sets_for("manufacturer") == []


# --- run_actions (DEV-9) ---------------------------------------------------------------------------------


def test_dev9_claim_associate_activate_makes_a_device_zero_touch_ready() -> None:
    ctx = ActionContext(CUSTOMER, RESELLER, target_account_id=CUSTOMER, site_id=3, site_has_profile=True)
    state = run_actions(APPROVED, ["activate", "associate", "claim"], ctx)
    assert zero_touch_ready(state)
    assert (state.owner_id, state.site_id) == (CUSTOMER, 3)


def test_dev9_sp_claims_and_associates_to_a_linked_reseller() -> None:
    ctx = ActionContext(SP, None, target_account_id=RESELLER, target_is_linked_reseller=True)
    state = run_actions(APPROVED, ["claim", "associate"], ctx)
    assert (state.owner_id, state.previous_owner_id) == (RESELLER, SP)


def test_dev9_disassociate_and_associate_moves_a_device_between_children() -> None:
    other_customer = "30000004"
    state = owned(CUSTOMER, site_id=3, associated=True, activated=True)
    ctx = ActionContext(
        RESELLER, SP, target_account_id=other_customer, target_is_child=True, site_id=9, site_has_profile=True
    )
    moved = run_actions(state, ["disassociate", "associate"], ctx)
    assert (moved.owner_id, moved.previous_owner_id, moved.site_id, moved.activated) == (
        other_customer,
        RESELLER,
        9,
        False,
    )


def test_dev9_disassociate_and_release_returns_a_device_to_the_parent() -> None:
    state = owned(CUSTOMER, site_id=3, associated=True)
    back = run_actions(state, ["disassociate", "release"], ActionContext(RESELLER, SP))
    assert (back.owner_id, back.previous_owner_id, back.site_id) == (SP, RESELLER, None)


def test_dev9_sync_and_deactivate_run_alone() -> None:
    synced = run_actions(replace(APPROVED, model="J139"), ["Sync"], ActionContext(RESELLER, SP))
    assert synced.activated
    assert not run_actions(synced, ["deactivate"], ActionContext(RESELLER, SP)).activated


def test_dev10_a_refusal_names_the_failing_action() -> None:
    ctx = ActionContext(CUSTOMER, RESELLER, target_account_id=CUSTOMER, site_id=3, site_has_profile=False)
    with pytest.raises(DomainError) as info:
        run_actions(APPROVED, ["claim", "associate", "activate"], ctx)
    assert (info.value.error, info.value.extra, info.value.value) == (
        "no-profile",
        {"action": "associate"},
        APPROVED.mac,
    )


def test_dev9_associate_needs_a_target() -> None:
    with pytest.raises(DomainError) as info:
        run_actions(owned(SP), ["associate"], ActionContext(SP))
    assert info.value.error == "association-target-required"


def test_dev9_run_actions_refuses_an_invalid_set() -> None:
    with pytest.raises(DomainError) as info:
        run_actions(APPROVED, ["claim", "release"], ActionContext(SP))
    assert info.value.error == "invalid-action-set"
