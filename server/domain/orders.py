"""DEP-1: order-driven enrollment batches — the rules, without I/O.

An order system (the upstream sales/order platform of a service provider or reseller) submits a
request batch per sales order: the customer account, and devices to enrol (`EN`) or that the
customer returned (`RE`). Each device is then decided here and its outcome goes into the
response batch. Decisions (docs/orders.md has the whole contract):

- The batch file is checked against `fixtures/schemas/dep-batch.schema.json`; every refusal
  lists each error with its JSON pointer (RFC 6901), and refuses the whole file.
- Per device, never half a device: a device's change and its outcome are one unit; the batch is
  applied device by device, so one device's refusal leaves the others' changes in place.
- EN: an approved device named by its MAC *and* serial (the box's proof, DEV-3) that nobody
  holds, or that the order system's own account holds (its stock), goes to the customer: claim
  by the seller then associate with the customer (DEV-3, DEV-4), and with the batch's site plus
  activation when a site is named (DEV-6). The device's order ID becomes the batch's order ID.
  A device the customer already holds (at that site, activated, when one is named) is
  `already-enrolled` and is not touched.
- RE: a device the customer holds is disassociated back to the order system's account (DEV-5:
  site, activation and order fields erased); one it does not hold is `not-enrolled`, a
  per-device outcome, not a batch failure.
- A MAC+serial pair that names no device is `unknown-device`, whether the MAC is unknown or the
  serial wrong (a wrong pair tells nothing more than an unknown device, as for claims).
- The second mention of a MAC in one batch is `invalid` (`duplicate-in-batch`), so a batch
  cannot enrol and return one device at once in an order nobody can see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, Literal

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

import fixtures
from server.domain import devices as rules
from server.domain import inputs
from server.domain.errors import DomainError, invalid
from server.domain.identity import normalize_mac

RequestType = Literal["EN", "RE"]

# The published schemas (GET /api/v1/schemas/{name}): name -> file under fixtures/schemas/.
SCHEMAS = {
    "dep-batch": "schemas/dep-batch.schema.json",
    "dep-response": "schemas/dep-response.schema.json",
    "dep-envelope": "schemas/dep-envelope.schema.json",
    "device-import": "schemas/device-import.schema.json",
}
MAX_BYTES = 8 * 1024 * 1024  # a 10 000-device batch is about 1 MiB; encrypted, a third more
MAX_ERRORS = 50  # errors listed in one refusal; the count says how many there were

OUTCOMES = (
    "enrolled",
    "already-enrolled",
    "released",
    "unknown-customer",
    "unknown-device",
    "not-approved",
    "held-elsewhere",
    "not-enrolled",
    "invalid",
)
SUCCESSES = frozenset({"enrolled", "already-enrolled", "released"})


@dataclass(frozen=True)
class BatchDevice:
    position: int  # 0-based index in the batch's `devices`
    mac: str  # canonical
    serial: str
    model: str
    request_type: RequestType


@dataclass(frozen=True)
class Batch:
    batch_id: str
    order_id: str
    customer_account: str
    site_id: int | None
    devices: tuple[BatchDevice, ...]
    digest: str  # SHA-256 of the batch's canonical JSON: a replay is the same digest


@dataclass(frozen=True)
class Outcome:
    outcome: str
    detail: str | None = None
    state: rules.DeviceState | None = None  # the device's new state when it changed

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESSES


# --- schemas -------------------------------------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    """A published schema by name; KeyError for an unknown one."""
    document: dict[str, Any] = fixtures.load_json(SCHEMAS[name])
    return document


@cache
def _validator(name: str) -> Draft202012Validator:
    checker = FormatChecker(formats=("date-time",))
    return Draft202012Validator(schema(name), format_checker=checker)


def pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 JSON pointer of a path ('' is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_errors(document: Any, name: str) -> list[dict[str, str]]:
    """Every way `document` breaks schema `name`: [{pointer, message}], in document order."""
    found = sorted(_validator(name).iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    errors = []
    for error in found:
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        if list(error.absolute_path)[-1:] == ["serial"]:
            # DEV-3: a serial number is the box's proof of possession; a refusal never quotes one
            message = "is not a serial number: 1 to 64 ASCII letters, digits and '-', starting with a letter or digit"
        errors.append({"pointer": pointer(error.absolute_path), "message": inputs.storable(message)})
    return errors


def check_schema(document: Any, name: str, error_id: str) -> None:
    """422 `error_id` naming each error's JSON pointer (the first MAX_ERRORS of them)."""
    errors = schema_errors(document, name)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise invalid(
            error_id,
            f"The {name} document breaks its schema at {first['pointer'] or '/'} : {first['message']}{more}.",
            errors=errors[:MAX_ERRORS],
            error_count=len(errors),
        )


def load_document(data: bytes, what: str) -> Any:
    """JSON text under the API's input rules (depth, numbers, text), else 400/422."""
    return inputs.load_json(data, what)


def is_valid(document: Any, name: str) -> bool:
    return jsonschema.Draft202012Validator(schema(name)).is_valid(document)


# --- the batch -----------------------------------------------------------------------------------


def digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def parse_batch(document: Any) -> Batch:
    """A batch document (already decrypted) checked against dep-batch; 422 `invalid-batch` otherwise."""
    check_schema(document, "dep-batch", "invalid-batch")
    devices = tuple(
        BatchDevice(i, normalize_mac(d["mac"]), d["serial"], d["model"], d["request_type"])
        for i, d in enumerate(document["devices"])
    )
    return Batch(
        batch_id=document["batch_id"],
        order_id=document["order_id"],
        customer_account=document["customer_account"],
        site_id=document.get("site_id"),
        devices=devices,
        digest=digest(document),
    )


def duplicates(devices: Sequence[BatchDevice]) -> set[int]:
    """Positions of devices whose MAC an earlier entry of the batch already named."""
    seen: set[str] = set()
    dup: set[int] = set()
    for d in devices:
        if d.mac in seen:
            dup.add(d.position)
        seen.add(d.mac)
    return dup


# --- one device ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parties:
    """Who the batch is between, as the caller looked it up when processing."""

    seller_id: str  # the order system's account
    customer_id: str
    customer_usable: bool  # still a customer in the seller's subtree, enabled
    site_id: int | None = None
    site_has_profile: bool | None = None
    order_id: str | None = None


def decide(request: BatchDevice, state: rules.DeviceState | None, parties: Parties, duplicate: bool) -> Outcome:
    """DEP-1: the outcome of one device of a batch, and its new state when it changes."""
    if duplicate:
        return Outcome("invalid", "duplicate-in-batch: an earlier entry of this batch names the same MAC")
    if state is None or state.serial != request.serial:
        return Outcome("unknown-device", "no imported device has this MAC and serial number")
    if state.model.upper() != request.model.upper():
        return Outcome("invalid", f"model-mismatch: the device is a {state.model}, the batch says {request.model}")
    if not parties.customer_usable:
        return Outcome("unknown-customer", "the customer account is gone, disabled or out of this order system's reach")
    if request.request_type == "RE":
        return _return(state, parties)
    return _enrol(state, parties)


def _enrol(state: rules.DeviceState, p: Parties) -> Outcome:
    if not state.approved:
        return Outcome("not-approved", "the device is not approved by a platform administrator yet (DEV-2)")
    if state.owner_id == p.customer_id and (p.site_id is None or (state.site_id == p.site_id and state.activated)):
        return Outcome("already-enrolled", "the customer already holds this device")
    if state.owner_id not in (None, p.seller_id, p.customer_id):
        return Outcome("held-elsewhere", "another account holds this device")
    try:
        new = state if state.owner_id == p.customer_id else rules.claim(state, p.seller_id)
        new = rules.associate(new, p.seller_id, p.customer_id, True, None, p.site_id, p.site_has_profile)
        if p.site_id is not None:
            new = rules.activate(new, p.seller_id)
    except DomainError as err:
        return Outcome("invalid", f"{err.error}: {err.detail}")
    new = replace(new, order={**new.order, "order_id": p.order_id})
    return Outcome("enrolled", None, new)


def _return(state: rules.DeviceState, p: Parties) -> Outcome:
    if state.owner_id != p.customer_id:
        return Outcome("not-enrolled", "the customer does not hold this device; nothing to return")
    try:
        new = rules.disassociate(state, p.seller_id)
    except DomainError as err:
        return Outcome("invalid", f"{err.error}: {err.detail}")
    return Outcome("released", None, new)


# --- the response --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """One device of a processed batch, as stored."""

    mac: str
    serial: str
    model: str
    request_type: str
    outcome: str
    detail: str | None


def status_of(outcomes: Iterable[str]) -> str:
    return "COMPLETE" if all(o in SUCCESSES for o in outcomes) else "FAIL"


def response_document(
    batch_id: str,
    order_id: str,
    customer_account: str,
    site_id: int | None,
    processed_at: datetime,
    devices: Sequence[Answered],
) -> dict[str, Any]:
    """The response batch (dep-response.schema.json)."""
    summary: dict[str, int] = {}
    for d in devices:
        summary[d.outcome] = summary.get(d.outcome, 0) + 1
    return {
        "version": 1,
        "batch_id": batch_id,
        "order_id": order_id,
        "customer_account": customer_account,
        "site_id": site_id,
        "status": status_of(d.outcome for d in devices),
        "processed_at": processed_at.isoformat(),
        "summary": summary,
        "devices": [
            {
                "mac": d.mac,
                "serial": d.serial,
                "model": d.model,
                "request_type": d.request_type,
                "outcome": d.outcome,
                **({"detail": d.detail} if d.detail else {}),
            }
            for d in devices
        ],
    }
