"""Who may call which admin action: the role table (ACC-1, ACC-2, ACC-7, DEV-4/5, DEV-9).

A role is the type of the account an administrator acts for. This table answers "may this role
ever do this"; whether the target lies in the actor's subtree (ACC-7) is checked per call.
"""

from __future__ import annotations

from server.domain.errors import forbidden

PLATFORM = "platform"
MANUFACTURER = "manufacturer"
SP = "service_provider"
RESELLER = "reseller"
CUSTOMER = "customer"

ROLES: tuple[str, ...] = (PLATFORM, MANUFACTURER, SP, RESELLER, CUSTOMER)
# DEP-1: an order system's API token acts for its account in this role, which is no account type:
# it may submit and read its batches and nothing else.
ORDER_SYSTEM = "order_system"
_ALL = frozenset(ROLES)
_PARTNERS = frozenset({SP, RESELLER, CUSTOMER})
_CREATORS = frozenset({PLATFORM, SP, RESELLER})

# action -> roles allowed. Every authenticated admin route names exactly one of these (public ones: none).
ALLOWED: dict[str, frozenset[str]] = {
    # accounts (ACC-1/2: which type may be created is decided by accounts.check_may_create)
    "accounts.create": _CREATORS,
    "accounts.read": _ALL,
    "accounts.update": _ALL,
    "accounts.delete": _CREATORS,
    "accounts.enable": _CREATORS,
    "accounts.firmware": frozenset({PLATFORM, SP, RESELLER, CUSTOMER}),
    "accounts.two_factor": _ALL,
    "accounts.claim_policy": _PARTNERS | {PLATFORM},  # DEV-3: label codes required in claims (issue 13)
    "accounts.switch_approve": frozenset({PLATFORM}),  # ACC-9
    "accounts.switch": frozenset({SP}),  # ACC-9
    # administrators (USR)
    "users.create": _ALL,
    "users.read": _ALL,
    "users.update": _ALL,
    "users.delete": _ALL,
    # profiles, sites, codes (PRF, SIT, EC): the guide gives these to SP, reseller and customer
    "profiles.write": _PARTNERS,
    "profiles.read": _PARTNERS | {PLATFORM},
    "sites.write": _PARTNERS,
    "sites.read": _PARTNERS | {PLATFORM},
    "codes.write": _PARTNERS,
    "codes.read": _PARTNERS | {PLATFORM},
    # devices (DEV)
    "devices.import": frozenset({PLATFORM, MANUFACTURER}),  # DEV-1
    "devices.approve": frozenset({PLATFORM}),  # DEV-2
    "devices.read": _ALL,
    "devices.claim": _PARTNERS,  # DEV-3
    "devices.label_codes": frozenset({PLATFORM, MANUFACTURER}),  # DEV-3 claim proof: the importer adds them
    "devices.associate": frozenset({SP, RESELLER}),  # DEV-4 (customers associate to their sites via jobs too)
    "devices.associate_site": _PARTNERS,
    "devices.activate": _PARTNERS,  # DEV-6
    # LCK-2 (issue 13): lifting a code lockout; the platform for any device (a device that types
    # codes is unclaimed, so no partner holds it), a partner for devices its subtree holds (ACC-7)
    "devices.unlock": _PARTNERS | {PLATFORM},
    "devices.disassociate": frozenset({SP, RESELLER}),  # DEV-5
    "devices.release": _PARTNERS,  # DEV-5
    "devices.sync": frozenset({SP, RESELLER}),  # ACO-1
    "labels.write": _PARTNERS,
    "labels.read": _PARTNERS | {PLATFORM},
    "jobs.create": _PARTNERS,
    "jobs.read": _ALL,
    # platform settings and catalog (LCK-1, FW-1, SIT-3 N)
    "settings.read": _ALL,
    "settings.write": frozenset({PLATFORM}),
    # factory-certificate trust (issue 13): the deny-list is the platform's; allow-lists are per account
    "certificates.read": frozenset({PLATFORM}),
    "certificates.deny": frozenset({PLATFORM}),
    "accounts.manufacturers": _ALL,
    "families.read": _ALL,
    "families.write": frozenset({PLATFORM}),
    # notifications, log, linking
    "notifications.read": _ALL,
    "notifications.write": _ALL,
    "logs.read": _ALL,
    "dashboard.read": _ALL,  # issue 13: devices by state and guessing figures of one's subtree (ACC-7)
    "links.request": frozenset({SP}),  # ACC-8
    "links.decide": frozenset({RESELLER}),  # ACC-8
    "links.read": frozenset({PLATFORM, SP, RESELLER}),
    # DEP-1 order-driven enrollment: the accounts that sell devices register order systems; batches
    # are submitted and read by the order system's token, or by an administrator for one in scope
    "orders.systems": frozenset({PLATFORM, SP, RESELLER}),
    "orders.submit": frozenset({PLATFORM, SP, RESELLER, ORDER_SYSTEM}),
    "orders.read": frozenset({PLATFORM, SP, RESELLER, ORDER_SYSTEM}),
    # FF-1 two-step slots and direct additions: the accounts that hold devices (and the platform,
    # for any of them); billing reports: the platform for all, an account for its subtree (ACC-7)
    "fleet.slots": _PARTNERS | {PLATFORM},
    "fleet.direct_add": _PARTNERS | {PLATFORM},
    "billing.read": _PARTNERS | {PLATFORM},
    # signed webhooks (issue 16): every account may register receivers for its own subtree (ACC-7)
    "webhooks.read": _ALL,
    "webhooks.manage": _ALL,
}


def allowed(role: str, action: str) -> bool:
    """ACC-7 and the role rules: may `role` ever perform `action`?"""
    try:
        return role in ALLOWED[action]
    except KeyError:
        raise KeyError(f"unknown admin action {action!r}") from None


def check(role: str, action: str) -> None:
    """Raise 403 `forbidden-role` when `role` may not perform `action` (ACC-7)."""
    if not allowed(role, action):
        raise forbidden("forbidden-role", f"a {role.replace('_', ' ')} administrator may not do {action}")
