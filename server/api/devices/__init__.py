"""Admin API: devices — one module per group of actions: `importing` (DEV-1, DEV-2), `listing`
(search, export, read: DEV-10, DEV-11), `claim` (DEV-3 claim proof), `lifecycle` (associate,
(de)activate, disassociate, release, unlock: DEV-4..6, LCK-2); shared: `schemas`, `presentation`,
`visibility` (ACC-7), `lifecycle_state`, `notices` (NTF-1).

Decisions:
- An import runs in the request: the valid rows are inserted in one transaction together with
  a `Job` (kind `import`) that lists every refused row (file, row, field, reason). The job is
  COMPLETE when no row was refused and FAIL when any was — the valid rows are imported either
  way. A whole-file refusal (format, encoding, size, empty) raises and writes nothing.
- Imported devices are unapproved (DEV-2) and unclaimed; `imported_by` is the importing account.
- A lifecycle call on several MACs answers one result per MAC (`SUCCESS`, or `FAIL` with the
  rule's reason) and commits the successes as one transaction. When every MAC failed the call
  is refused as a whole (the error of the failures, the per-MAC results in `results`), so a
  single-device call reads like any other refused request and its FAIL lands in the log.
- ACC-7 scope of devices: the platform sees every device, a manufacturer the devices it
  imported, any other account the devices held by an account of its subtree. A device outside
  the scope answers `not-found`, exactly like a missing one. Claiming looks devices up
  globally: an unclaimed device belongs to no subtree yet.
- Labels in a search (`label` field) and in answers are those of accounts in the actor's subtree.
- Activating a device also lifts a code lockout (LCK-2). `POST /devices/unlock` lifts it without
  activating: the platform for any device (a device that types codes is unclaimed, so no partner
  holds it), a partner for devices its hierarchy holds; audited with the lock state it found.
- `POST /devices/associate` needs `devices.associate_site`; handing devices to another account
  (a child, a linked reseller) also needs `devices.associate`, so a customer associates with its
  own sites only.
- Notifications (NTF-1): one "Claiming Device" per call or job for the claimant, one
  "Associating Device" per receiving account and site, naming up to NOTIFY_MACS devices.
"""

from __future__ import annotations

from server.api.devices import claim, importing, lifecycle, listing
from server.api.devices.lifecycle import (
    _load,
    action_context,
    all_failed,
    apply_actions,
    context_json,
    parent_for_release,
    run_lifecycle,
)
from server.api.devices.lifecycle_state import state_of, write_back
from server.api.devices.listing import EXPORT_FIELDS
from server.api.devices.notices import Notices
from server.api.devices.presentation import device_json, export_response, job_json, result, to_csv
from server.api.devices.schemas import ASSOCIATE, CHUNK, CLAIM, DEVICE_COLUMNS, MACS, STATE_COLUMNS
from server.api.devices.visibility import (
    device_fields,
    device_filter,
    label_scope,
    labels_of,
    normalize_macs,
    scope_devices,
)
from server.api.routing import Api

__all__ = [
    "ASSOCIATE", "CHUNK", "CLAIM", "DEVICE_COLUMNS", "EXPORT_FIELDS", "MACS", "STATE_COLUMNS", "Notices",
    "_load", "action_context", "all_failed", "api", "apply_actions", "context_json", "device_fields",
    "device_filter", "device_json", "export_response", "job_json", "label_scope", "labels_of",
    "normalize_macs", "parent_for_release", "result", "run_lifecycle", "scope_devices", "state_of",
    "to_csv", "write_back",
]

# The routes in the order the single module had them (the OpenAPI document's order).
api = Api()
api.routes = [*importing.api.routes, *listing.api.routes, *claim.api.routes, *lifecycle.api.routes]
