"""Account types, who creates whom, account IDs, names and two-factor switches (ACC-1..6, ACC-10).

Decisions:
- One `platform` root account holds the platform administrators (the guide's "Avaya
  administrators"). It is created once at first start, never through the API.
- `manufacturer` accounts are created by the platform; their administrators import devices
  (DEV-1). They create no accounts.
- The platform also creates reseller and customer accounts: the guide's sign-up flow has an
  Avaya administrator accept requests for any account type. Their parent is the platform.
- An account's own two-factor switch binds every administrator of that account; the
  "children" switch (ACC-10: a service provider switching it on for its resellers) binds the
  direct child accounts of the account that holds it, not deeper descendants. Who may set the
  children switch is `check_may_set_children_two_factor`. Without a company-level switch an
  individual administrator may still opt in (the guide: "you can enable this option for
  specific accounts").
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from server.domain import confusables
from server.domain.errors import DomainError, conflict, invalid


class AccountType(StrEnum):
    PLATFORM = "platform"
    MANUFACTURER = "manufacturer"
    SERVICE_PROVIDER = "service_provider"
    RESELLER = "reseller"
    CUSTOMER = "customer"


_TYPE_VALUES = frozenset(t.value for t in AccountType)

# ACC-1/ACC-2 as data: creator type -> the types it may create.
_MAY_CREATE: Mapping[AccountType, frozenset[AccountType]] = {
    AccountType.PLATFORM: frozenset(
        {
            AccountType.MANUFACTURER,
            AccountType.SERVICE_PROVIDER,
            AccountType.RESELLER,
            AccountType.CUSTOMER,
        }
    ),
    AccountType.SERVICE_PROVIDER: frozenset({AccountType.RESELLER, AccountType.CUSTOMER}),
    AccountType.RESELLER: frozenset({AccountType.CUSTOMER}),
    AccountType.CUSTOMER: frozenset(),
    AccountType.MANUFACTURER: frozenset(),
}


def parse_account_type(value: object) -> AccountType:
    """ACC-1: one of the known account types, else `invalid-account-type`."""
    if isinstance(value, str) and value in _TYPE_VALUES:
        return AccountType(value)
    raise invalid(
        "invalid-account-type",
        "The account type must be one of: " + ", ".join(t.value for t in AccountType) + ".",
        value=value,
    )


def check_may_create(creator_type: AccountType | str, new_type: AccountType | str) -> None:
    """ACC-1/ACC-2: only the platform creates service providers; a service provider creates
    resellers and customers; a reseller creates customers only; a customer creates none.

    Nobody creates a platform account. Refusal: 403 `account-type-not-allowed`.
    """
    creator = parse_account_type(creator_type)
    new = parse_account_type(new_type)
    if new not in _MAY_CREATE[creator]:
        raise DomainError(
            "account-type-not-allowed",
            f"A {creator.value} account cannot create a {new.value} account.",
            403,
            new.value,
        )


def parent_of_new_account(creator_account_id: str, new_type: AccountType | str, platform_account_id: str) -> str:
    """ACC-2: a new account's parent is its creator's account; a service provider's is the platform."""
    if parse_account_type(new_type) is AccountType.SERVICE_PROVIDER:
        return platform_account_id
    return creator_account_id


_ACCOUNT_ID = re.compile(r"[1-9][0-9]{7}")
_ACCOUNT_ID_TRIES = 32


def new_account_id(taken: Callable[[str], bool] | None = None) -> str:
    """ACC-3: a random 8-digit account ID whose first digit is not zero.

    The non-zero first digit keeps the ID 8 digits wherever it is handled as a number, and
    lets a 12-digit PEC (account ID + PIN, EC-6) be told from a 12-digit NEC (codes.py).
    `taken` (the store's uniqueness check) makes this retry; uniqueness itself is enforced
    by the store's unique index.
    """
    for _ in range(_ACCOUNT_ID_TRIES):
        candidate = str(10_000_000 + secrets.randbelow(90_000_000))
        if taken is None or not taken(candidate):
            return candidate
    raise conflict(
        "account-id-exhausted",
        f"No free account ID found in {_ACCOUNT_ID_TRIES} random tries.",
    )


def is_account_id(value: object) -> bool:
    """ACC-3: the shape of an account ID (8 digits, first not zero)."""
    return isinstance(value, str) and _ACCOUNT_ID.fullmatch(value) is not None


_NAME_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_account_name(name: object) -> str:
    """ACC-4: an account name (which may change) is 1-128 characters after trimming, no
    control characters. Returns the trimmed name."""
    if not isinstance(name, str):
        raise invalid("invalid-account-name", "The account name must be a string.", value=name)
    trimmed = name.strip()
    if not trimmed:
        raise invalid("invalid-account-name", "The account name must not be empty.", value=name)
    if len(trimmed) > _NAME_MAX:
        raise invalid(
            "invalid-account-name",
            f"The account name is {len(trimmed)} characters long; the limit is {_NAME_MAX}.",
            value=name,
        )
    if _CONTROL.search(trimmed):
        raise invalid("invalid-account-name", "The account name contains a control character.", value=name)
    return confusables.check_name(trimmed, "account")


_IMMUTABLE_FIELDS = frozenset({"id", "parent_id"})


def check_patch(fields: Mapping[str, Any], *, current_type: AccountType | str | None = None) -> dict[str, Any]:
    """ACC-4: an account update may change the name (and other details) but never the type;
    ACC-2/ACC-3: nor the ID or the parent.

    A `type` equal to `current_type` is accepted (clients that send the whole object back);
    any other `type` is `account-type-immutable`. Returns the fields with the name trimmed.
    """
    cleaned = dict(fields)
    if "type" in cleaned:
        same = current_type is not None and cleaned["type"] == parse_account_type(current_type).value
        if not same:
            raise invalid(
                "account-type-immutable",
                "The account type cannot be changed; create a new account instead.",
                value=cleaned["type"],
            )
        del cleaned["type"]
    immutable = sorted(_IMMUTABLE_FIELDS & cleaned.keys())
    if immutable:
        raise invalid(
            "account-field-immutable",
            f"The field '{immutable[0]}' of an account cannot be changed.",
            value=immutable[0],
        )
    if "name" in cleaned:
        cleaned["name"] = validate_account_name(cleaned["name"])
    return cleaned


def login_refusal(account_enabled: bool) -> str | None:
    """ACC-5: a disabled account's administrators cannot log in (reason `disabled-account`)."""
    return None if account_enabled else "disabled-account"


def deletion_order(account_id: str, children: Mapping[str, Sequence[str]]) -> list[str]:
    """ACC-6: the accounts deleted with `account_id` (itself and, recursively, the accounts its
    administrators created), deepest first so that no account outlives its parent.

    `children` maps an account ID to the IDs of the accounts created under it.
    """
    order: list[str] = []
    seen: set[str] = set()
    # Iterative post-order: account trees can be deep and recursion limits are not a rule.
    stack: list[tuple[str, bool]] = [(account_id, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            order.append(current)
            continue
        if current in seen:
            continue
        seen.add(current)
        stack.append((current, True))
        for child in reversed(children.get(current, ())):
            stack.append((child, False))
    return order


def owner_after_deletion(owner_history: Sequence[str], deleted: Iterable[str]) -> str | None:
    """ACC-6: a device held by a deleted account returns to the account that held it before.

    `owner_history` lists the device's owners oldest first, the current owner last. Owners
    that are being deleted too are skipped; None means no surviving previous owner (the
    device becomes unclaimed).
    """
    gone = set(deleted)
    for owner in reversed(owner_history):
        if owner not in gone:
            return owner
    return None


class TwoFactorSwitches(NamedTuple):
    """ACC-10 switches of one account: `own` binds its administrators, `children` its child accounts."""

    own: bool = False
    children: bool = False


def two_factor_required(chain: Sequence[tuple[bool, bool]], *, user_opt_in: bool = False) -> bool:
    """ACC-10/USR-4: does a login to the first account of `chain` need a TOTP code?

    `chain` is the account's own (own_flag, children_flag) followed by its parent's, its
    grandparent's, ... Required when the account's own switch is on, when its parent switched
    it on for its children, or when the administrator opted in. Off by default.
    """
    if not chain:
        return user_opt_in
    own_flag = chain[0][0]
    parent_children_flag = len(chain) > 1 and chain[1][1]
    return bool(own_flag or parent_children_flag or user_opt_in)


def check_may_set_children_two_factor(account_type: AccountType | str) -> None:
    """ACC-10: only a service provider (or the platform) switches 2FA on for its child accounts."""
    kind = parse_account_type(account_type)
    if kind not in (AccountType.SERVICE_PROVIDER, AccountType.PLATFORM):
        raise DomainError(
            "two-factor-children-not-allowed",
            f"A {kind.value} account cannot switch two-factor authentication on for other accounts.",
            403,
            kind.value,
        )
