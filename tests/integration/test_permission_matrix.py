"""ACC-7, ACC-1/2, DEV-4/5, DEV-9: every account role × every admin call, expected allow or deny.

Two halves: the policy (the role table equals the expectation written here from SPEC.md and
the guide), and the enforcement (over a real socket, every route answers 403 `forbidden-role`
exactly to the roles the table denies, and something else to the roles it allows).
"""

from __future__ import annotations

import re

import pytest

from server.api.app import route_table
from server.domain.permissions import ALLOWED, ROLES
from tests.integration.client import ApiClient

# What each role may do, restated from SPEC.md (rule IDs) and the guide's role descriptions.
EVERYONE = {
    "accounts.read",
    "accounts.update",
    "accounts.two_factor",  # ACC-4, ACC-10
    "accounts.manufacturers",  # issue 13: an account's manufacturer-CA allow-list (its subtree, ACC-7)
    "users.create",
    "users.read",
    "users.update",
    "users.delete",  # USR-1
    "devices.read",
    "jobs.read",
    "settings.read",
    "families.read",  # LCK-1 read-only to all, FW-1
    "notifications.read",
    "notifications.write",
    "logs.read",  # NTF-1, LOG-1
    "dashboard.read",  # issue 13: devices by state and guessing figures of its subtree
    "webhooks.read",
    "webhooks.manage",  # issue 16: signed webhooks for its subtree (ACC-7)
}
PARTNER = EVERYONE | {
    "accounts.firmware",  # FW-3
    "profiles.write",
    "profiles.read",
    "sites.write",
    "sites.read",
    "codes.write",
    "codes.read",  # PRF, SIT, EC
    "devices.claim",
    "devices.associate_site",
    "devices.activate",
    "devices.release",  # DEV-3..6
    "devices.unlock",  # LCK-2: devices its hierarchy holds (ACC-7)
    "accounts.claim_policy",  # DEV-3: label codes required in its claims (issue 13)
    "labels.write",
    "labels.read",
    "jobs.create",  # DEV-8, DEV-9
    "fleet.slots",
    "fleet.direct_add",
    "billing.read",  # FF-1: slots, direct additions, the billing report of its subtree
}
EXPECTED: dict[str, set[str]] = {
    "platform": EVERYONE
    | {
        "accounts.create",
        "accounts.delete",
        "accounts.enable",  # ACC-1 (creates service providers)
        "accounts.firmware",
        "accounts.switch_approve",  # FW-3, ACC-9
        "profiles.read",
        "sites.read",
        "codes.read",
        "labels.read",
        "devices.import",
        "devices.approve",  # DEV-1, DEV-2
        "settings.write",
        "families.write",
        "links.read",  # LCK-1, FW-1
        "certificates.read",
        "certificates.deny",  # issue 13: the factory-certificate deny-list
        "devices.unlock",  # LCK-2 (issue 13): a locked device that types codes is unclaimed
        "devices.label_codes",  # DEV-3 claim proof: the importer adds label codes
        "accounts.claim_policy",
        "orders.systems",
        "orders.submit",
        "orders.read",  # DEP-1: order systems of any seller account
        "fleet.slots",
        "fleet.direct_add",
        "billing.read",  # FF-1
    },
    "manufacturer": EVERYONE | {"devices.import", "devices.label_codes"},  # DEV-1, DEV-3 claim proof
    "service_provider": PARTNER
    | {
        "accounts.create",
        "accounts.delete",
        "accounts.enable",  # ACC-2, ACC-5, ACC-6
        "accounts.switch",  # ACC-9
        "devices.associate",
        "devices.disassociate",
        "devices.sync",  # DEV-4, DEV-5, ACO-1
        "links.request",
        "links.read",  # ACC-8
        "orders.systems",
        "orders.submit",
        "orders.read",  # DEP-1: sellers register order systems and act for them
    },
    "reseller": PARTNER
    | {
        "accounts.create",
        "accounts.delete",
        "accounts.enable",  # ACC-2 (customers only)
        "devices.associate",
        "devices.disassociate",
        "devices.sync",
        "links.decide",
        "links.read",  # ACC-8
        "orders.systems",
        "orders.submit",
        "orders.read",  # DEP-1
    },
    "customer": PARTNER,  # ACC-2: creates no accounts
}


def test_acc7_role_table_matches_the_spec() -> None:
    """The server's role table is exactly the policy above, action by action."""
    actual = {role: {a for a, roles in ALLOWED.items() if role in roles} for role in ROLES}
    for role in ROLES:
        assert actual[role] == EXPECTED[role], (
            f"{role}: extra {sorted(actual[role] - EXPECTED[role])}, missing {sorted(EXPECTED[role] - actual[role])}"
        )


def test_every_admin_route_names_a_known_action() -> None:
    for r in route_table():
        assert r["action"] is None or r["action"] in ALLOWED, r


def _fill(path: str) -> str:
    samples = {"mac": "A4251B000001", "model": "J179", "id": "99999999"}
    return re.sub(r"\{(\w+)\}", lambda m: samples.get(m.group(1), "99999999"), path)


@pytest.fixture
async def actors(admin: ApiClient) -> dict[str, ApiClient]:
    manufacturer = await admin.new_account("manufacturer")
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    customer = await sp.new_account("customer")
    return {
        "platform": admin,
        "manufacturer": manufacturer,
        "service_provider": sp,
        "reseller": reseller,
        "customer": customer,
    }


async def test_acc7_every_role_times_every_call(actors: dict[str, ApiClient], api: ApiClient) -> None:
    """Over the socket: denied roles get 403 forbidden-role; allowed roles never do."""
    routes = [r for r in route_table() if r["action"] is not None]
    # Calls that end the caller's own session run last.
    routes.sort(key=lambda r: (r["path"].endswith("/auth/logout"), r["path"].endswith("/auth/switch")))
    assert len(routes) >= 20
    mismatches = []
    for role, client in actors.items():
        for r in routes:
            path = _fill(r["path"]).removeprefix("/api/v1")
            ans = await client.call(r["method"], path, None if r["method"] == "GET" else {})
            denied = ans.status == 403 and isinstance(ans.body, dict) and ans.body.get("error") == "forbidden-role"
            expected_denied = r["action"] not in EXPECTED[role]
            if denied != expected_denied or ans.status in (401, 500):
                mismatches.append(f"{role:16} {r['method']:6} {r['path']}: {ans.status} {ans.body}")
    assert not mismatches, "\n".join(mismatches)


async def test_acc7_no_token_no_access(api: ApiClient) -> None:
    for r in route_table():
        if r["action"] is None:
            continue
        ans = await api.call(
            r["method"], _fill(r["path"]).removeprefix("/api/v1"), None if r["method"] == "GET" else {}
        )
        assert ans.status == 401 and ans.body["error"] == "auth-required", (r, ans)
