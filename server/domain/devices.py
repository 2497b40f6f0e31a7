"""Device lifecycle (DEV-2..DEV-9): claim, associate, disassociate, release, (de)activate, sync.

Every transition takes a frozen `DeviceState` and returns a new one, or raises `DomainError`
whose id is the per-device reason a bulk job reports (DEV-10).

Split of duties: these functions decide on the device's own state and on facts the caller
looked up (is the target a child account, a linked reseller, does the site have a profile).
Whether the actor may see the device at all — its own account or a descendant's (ACC-7) — is
decided when devices are selected, before a transition runs.

Ownership bookkeeping: whenever ownership moves, `previous_owner_id` records the account that
held the device just before, so deleting an account can hand its devices back (ACC-6).
An activation belongs to the association it follows (DEV-6): a change of owner or site clears
`activated`, so a device is zero-touch ready only once activated after its last association.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from server.domain.errors import DomainError

Role = Literal["platform", "manufacturer", "service_provider", "reseller", "customer"]
Action = Literal["claim", "disassociate", "associate", "activate", "deactivate", "sync", "release"]

ROLES: tuple[Role, ...] = ("platform", "manufacturer", "service_provider", "reseller", "customer")
# The order in which a job applies its actions: ownership first, then placement, then activation.
ACTIONS: tuple[Action, ...] = (
    "claim",
    "disassociate",
    "associate",
    "activate",
    "deactivate",
    "sync",
    "release",
)

ACTION_SETS: frozenset[tuple[Action, ...]] = frozenset(
    {
        ("claim",),
        ("claim", "associate"),
        ("claim", "activate"),
        ("claim", "associate", "activate"),
        ("disassociate",),
        ("disassociate", "associate"),
        ("disassociate", "release"),
        ("associate",),
        ("associate", "activate"),
        ("activate",),
        ("deactivate",),
        ("sync",),
        ("release",),
    }
)

# Guide, "Device Enrollment Services account types" and chapter 10. Service providers and
# resellers ("almost the same privileges") do everything, Sync included (ACO distributors).
# Customers: "Associate devices with their own profiles and sites. Activate or deactivate
# devices. Claim or release devices." — no Disassociate (they have no child accounts) and no
# Sync. The platform administrator and manufacturers hold no devices: manufacturers import
# (IMPORT_ROLES), the platform imports and approves (APPROVE_ROLES); neither runs device jobs.
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    "platform": frozenset(),
    "manufacturer": frozenset(),
    "service_provider": frozenset(ACTIONS),
    "reseller": frozenset(ACTIONS),
    "customer": frozenset({"claim", "associate", "activate", "deactivate", "release"}),
}
IMPORT_ROLES: frozenset[Role] = frozenset({"manufacturer", "platform"})
APPROVE_ROLES: frozenset[Role] = frozenset({"platform"})

ORDER_FIELDS = ("reseller_order_id", "order_id", "shipment_carrier", "tracking_id", "aco_product_id")
# The guide lists what Disassociate and Release delete: reseller order ID, Avaya order ID,
# shipment carrier, carrier tracking ID. The ACO product ID is kept (ACO-1: kept and exported).
ERASED_ORDER_FIELDS = ("reseller_order_id", "order_id", "shipment_carrier", "tracking_id")
# Guide, chapter 12: "Avaya J139, J159, J169/J179, Conference Phone B199". The firmware each
# needs is in the feature matrix (Appendix A); the caller checks that.
ACO_MODELS = frozenset({"J139", "J159", "J169", "J179", "B199"})


@dataclass(frozen=True)
class DeviceState:
    """What the lifecycle rules need to know about one device."""

    mac: str
    serial: str
    model: str
    approved: bool = False
    owner_id: str | None = None
    previous_owner_id: str | None = None
    site_id: int | None = None
    associated: bool = False
    activated: bool = False
    order: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionContext:
    """Who runs a job and where Associate sends devices, as the caller looked it up.

    `actor_parent_id` is None for a service provider (its parent is the platform), so its
    Release returns devices to the unclaimed pool. `target_is_child` means "in the actor's
    subtree" (ACC-7); `target_is_linked_reseller` is None when the target is no reseller.
    """

    actor_account_id: str
    actor_parent_id: str | None = None
    target_account_id: str | None = None
    target_is_child: bool = False
    target_is_linked_reseller: bool | None = None
    site_id: int | None = None
    site_has_profile: bool | None = None


def _refused(error: str, detail: str, state: DeviceState, status: int = 409) -> DomainError:
    return DomainError(error, detail, status, state.mac)


# --- preconditions -------------------------------------------------------------------------------


def require_approved(state: DeviceState) -> None:
    """DEV-2: imported devices are usable only once a platform administrator approved them."""
    if not state.approved:
        raise _refused("not-approved", "The device is not approved by a platform administrator yet.", state)


def require_claimed(state: DeviceState) -> None:
    """DEV-3, DEV-6: managing a device (associate, activate, ...) needs it claimed first."""
    if state.owner_id is None:
        raise _refused("not-claimed", "The device is not claimed by any account; claim it first.", state)


# --- transitions ---------------------------------------------------------------------------------


def claim(state: DeviceState, actor_account_id: str) -> DeviceState:
    """DEV-2, DEV-3: an approved, unclaimed device becomes the claimant's; claiming one's own is a no-op."""
    require_approved(state)
    if state.owner_id == actor_account_id:
        return state
    if state.owner_id is not None:
        raise _refused("already-claimed", "The device is already claimed by another account.", state)
    return replace(state, owner_id=actor_account_id, previous_owner_id=None)


def associate(
    state: DeviceState,
    actor_account_id: str,
    target_account_id: str,
    target_is_child: bool,
    target_is_linked_reseller: bool | None,
    site_id: int | None,
    site_has_profile: bool | None,
) -> DeviceState:
    """DEV-4: hand a claimed device to a linked reseller, or to a customer account and its site.

    The device must be held by the actor (or already by the target, to change its site).
    A reseller target must be linked to the actor (ACC-8) and takes no site; any other target
    must be the actor itself or in its subtree (ACC-7). Associating with one's own account
    needs a site. A site needs a profile (PRF-4). Ownership moves to the target.
    """
    require_approved(state)
    require_claimed(state)
    if state.owner_id not in (actor_account_id, target_account_id):
        raise _refused("not-owner", "The device is held by another account; disassociate it first.", state, status=403)
    check_association_target(
        state, actor_account_id, target_account_id, target_is_child, target_is_linked_reseller, site_id
    )
    check_site_profile(state, site_id, site_has_profile)
    if state.owner_id == target_account_id and state.site_id == site_id:
        return state
    moved = state.owner_id != target_account_id
    return replace(
        state,
        owner_id=target_account_id,
        previous_owner_id=state.owner_id if moved else state.previous_owner_id,
        site_id=site_id,
        associated=site_id is not None,
        activated=False,
    )


def check_association_target(
    state: DeviceState,
    actor_account_id: str,
    target_account_id: str,
    target_is_child: bool,
    target_is_linked_reseller: bool | None,
    site_id: int | None,
) -> None:
    """DEV-4, ACC-7, ACC-8: where a device may be associated."""
    if target_account_id == actor_account_id:
        if site_id is None:
            raise _refused(
                "site-required",
                "Associating a device with your own account needs a customer site.",
                state,
                422,
            )
        return
    if target_is_linked_reseller is not None:
        if not target_is_linked_reseller:
            raise _refused(
                "reseller-not-linked",
                "Devices go to a reseller only once it approved a linking request from you.",
                state,
                422,
            )
        if site_id is not None:
            raise _refused("site-not-allowed", "A reseller account has no customer sites.", state, 422)
        return
    if not target_is_child:
        raise _refused(
            "target-not-in-hierarchy",
            "The target account is neither yours nor one of your child accounts.",
            state,
            403,
        )


def check_site_profile(state: DeviceState, site_id: int | None, site_has_profile: bool | None) -> None:
    """DEV-4, PRF-4: a device is associated only with a site that has a profile."""
    if site_id is not None and not site_has_profile:
        raise _refused("no-profile", "The customer site has no profile; give it one first.", state, 422)


def disassociate(state: DeviceState, actor_account_id: str) -> DeviceState:
    """DEV-5: take a device back from a child account; its site, activation and order fields go."""
    require_approved(state)
    require_claimed(state)
    if state.owner_id == actor_account_id:
        raise _refused("not-held-by-child", "The device is held by your own account, not by a child account.", state)
    return _returned(state, new_owner=actor_account_id)


def release(state: DeviceState, actor_account_id: str, actor_parent_id: str | None) -> DeviceState:
    """DEV-5: the holding account gives a device to its parent (None: the platform, i.e. unclaimed).

    Only the holder releases: a device held by a child account is disassociated first, which is
    why Disassociate + Release is an action set.
    """
    require_approved(state)
    require_claimed(state)
    if state.owner_id != actor_account_id:
        raise _refused(
            "not-owner", "Only the account holding the device releases it; disassociate it first.", state, 403
        )
    return _returned(state, new_owner=actor_parent_id)


def _returned(state: DeviceState, *, new_owner: str | None) -> DeviceState:
    # DEV-5: both Disassociate and Release erase the order fields.
    order = {**state.order, **{name: None for name in ERASED_ORDER_FIELDS}}
    return replace(
        state,
        owner_id=new_owner,
        previous_owner_id=state.owner_id,
        site_id=None,
        associated=False,
        activated=False,
        order=order,
    )


def activate(state: DeviceState, actor_account_id: str) -> DeviceState:
    """DEV-6: activate a claimed device (for zero-touch, after its association).

    Activating an unassociated device is allowed: it lifts a code lockout (LCK-2, recorded by
    the caller) and a later code enrollment works either way (DEV-7).
    """
    require_approved(state)
    require_claimed(state)
    return state if state.activated else replace(state, activated=True)


def deactivate(state: DeviceState, actor_account_id: str) -> DeviceState:
    """DEV-6, DEV-7: a deactivated device no longer enrolls zero-touch, only with a code."""
    require_approved(state)
    require_claimed(state)
    return replace(state, activated=False) if state.activated else state


def sync(state: DeviceState, actor_account_id: str) -> DeviceState:
    """ACO-1: claim (if needed) and activate a supported model that carries a reseller order ID.

    The push to the cloud-office system, keyed by the reseller order ID, is the caller's I/O;
    the association is made there, not with one of our sites.
    """
    require_approved(state)
    if state.model.strip().upper() not in ACO_MODELS:
        raise _refused(
            "aco-unsupported-model",
            f"Model {state.model} cannot be synchronised with Avaya Cloud Office.",
            state,
            422,
        )
    if not state.order.get("reseller_order_id"):
        raise _refused("missing-reseller-order-id", "Synchronising needs the device's reseller order ID.", state, 422)
    return activate(claim(state, actor_account_id), actor_account_id)


# --- readiness -----------------------------------------------------------------------------------


def zero_touch_ready(state: DeviceState) -> bool:
    """DEV-6: zero-touch needs approved + claimed + associated with a site + activated."""
    return (
        state.approved
        and state.owner_id is not None
        and state.associated
        and state.site_id is not None
        and state.activated
    )


def may_enroll_with_code(state: DeviceState) -> bool:
    """DEV-7: any approved device that is not zero-touch ready may enroll with a code.

    That covers "not associated, activated or not" and "not activated: only with a code".
    """
    return state.approved and not zero_touch_ready(state)


# --- bulk jobs -----------------------------------------------------------------------------------


def validate_action_set(actions: Sequence[str]) -> tuple[Action, ...]:
    """DEV-9: a job's actions must be one of the allowed sets; returns them in canonical order."""
    chosen: list[Action] = []
    for name in actions:
        action = _action(name)
        if action in chosen:
            raise DomainError("invalid-action-set", f"The action {action} is listed twice.", 422, list(actions))
        chosen.append(action)
    ordered = tuple(sorted(chosen, key=ACTIONS.index))
    if ordered not in ACTION_SETS:
        raise DomainError(
            "invalid-action-set",
            "Allowed action sets: Claim [+Associate] [+Activate]; Disassociate [+Associate | +Release]; "
            "Associate [+Activate]; Activate; Deactivate; Sync; Release.",
            422,
            list(actions),
        )
    return ordered


def _action(name: object) -> Action:
    key = name.strip().lower() if isinstance(name, str) else None
    for action in ACTIONS:
        if action == key:
            return action
    raise DomainError(
        "invalid-action-set", f"{name!r} is not an action; the actions are {', '.join(ACTIONS)}.", 422, name
    )


def authorize_actions(role: str, actions: Sequence[Action]) -> None:
    """DEV-9: which actions exist depends on the role (ROLE_ACTIONS)."""
    allowed = next((actions_ for name, actions_ in ROLE_ACTIONS.items() if name == role), None)
    if allowed is None:
        raise DomainError("unknown-role", f"{role!r} is not a role; the roles are {', '.join(ROLES)}.", 422, role)
    refused = [action for action in actions if action not in allowed]
    if refused:
        raise DomainError(
            "action-not-allowed",
            f"A {role.replace('_', ' ')} administrator cannot run {', '.join(refused)}.",
            403,
            refused,
        )


def action_sets_for(role: Role) -> list[tuple[Action, ...]]:
    """DEV-9: the action sets a role may run (for the portal's choices)."""
    allowed = ROLE_ACTIONS[role]
    return sorted((s for s in ACTION_SETS if set(s) <= allowed), key=lambda s: [ACTIONS.index(a) for a in s])


def run_actions(state: DeviceState, actions: Sequence[str], ctx: ActionContext) -> DeviceState:
    """DEV-9: apply a valid action set to one device, in canonical order.

    The first refusal stops the device; the raised error names the action in `extra["action"]`.
    """
    current = state
    for action in validate_action_set(actions):
        try:
            current = _STEPS[action](current, ctx)
        except DomainError as exc:
            exc.extra.setdefault("action", action)
            raise
    return current


def _associate_step(state: DeviceState, ctx: ActionContext) -> DeviceState:
    if ctx.target_account_id is None:
        raise _refused("association-target-required", "Associate needs a target account.", state, 422)
    return associate(
        state,
        ctx.actor_account_id,
        ctx.target_account_id,
        ctx.target_is_child,
        ctx.target_is_linked_reseller,
        ctx.site_id,
        ctx.site_has_profile,
    )


_STEPS: dict[Action, Callable[[DeviceState, ActionContext], DeviceState]] = {
    "claim": lambda state, ctx: claim(state, ctx.actor_account_id),
    "disassociate": lambda state, ctx: disassociate(state, ctx.actor_account_id),
    "associate": _associate_step,
    "activate": lambda state, ctx: activate(state, ctx.actor_account_id),
    "deactivate": lambda state, ctx: deactivate(state, ctx.actor_account_id),
    "sync": lambda state, ctx: sync(state, ctx.actor_account_id),
    "release": lambda state, ctx: release(state, ctx.actor_account_id, ctx.actor_parent_id),
}
