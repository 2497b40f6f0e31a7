"""Claim jobs prove possession like a single claim (DEV-3, PROTOCOL §3, issue 13).

Decisions:
- A claim job names each device by its MAC *and* the serial number printed on its box, with
  the label code where the device has one or the claimant's policy requires one — in
  `POST /jobs` as `devices: [{mac, serial, label_code?}]`, in `POST /jobs/upload` as the
  `mac`, `serial` and `label_code` columns. `macs` alone (or a file without a serial column)
  is 422 `claim-needs-serial`: a MAC is on every network the phone ever joined.
- The proofs are checked when the job is created, inside the request, by the same rule as
  `POST /devices/claim` (`claim_proof.matches`): the job then stores only the proven MACs — no
  serial, no label code, not even a hash, is kept in the job, so `GET /jobs/{id}`, its export
  and the audit log cannot show them. The devices are claimed later by the runner as before.
- No oracle: a device that is unknown and one whose serial or label code is wrong (or missing)
  end with the same FAIL result, `device-not-found` with the same detail (`not_proven`, which
  names the MAC only; the serial is not echoed into a result others of the hierarchy read). A
  device that vanished before the runner reached it reads the same.
- Budget: each unproven device is one failure of the claiming account's budget
  (`throttle.CLAIM_PROOF`, `ServerContext.claims`, shared with single claims). A job asked while
  the budget is spent is refused whole, 429 `too-many-attempts` with `Retry-After`, and nothing
  is stored. If the budget runs out while the job's devices are checked, every later device ends
  FAIL `too-many-attempts` without being tried, the right ones too (otherwise one job could
  carry any number of guesses); the devices before keep their outcome and the job is accepted.
- What the input alone decides tells nothing about a device and costs no budget: a row
  without a MAC or serial (`missing-field`), a malformed label code (`invalid-label-code`), a
  MAC an earlier entry already names (`duplicate-device`), a missing label code under a policy
  requiring one (`label-code-required`; in a `POST /jobs` body the whole request is refused
  with it, before any look-up, as a single claim is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select

from server.api.devices.claim import label_code_required_for
from server.api.jobs.selection_file import LOOKUP_CHUNK, FileRow
from server.api.routing import Req
from server.domain import claim_proof
from server.domain.errors import DomainError, invalid
from server.store.models import Device

__all__ = ["PROOF", "claim_needs_serial", "not_proven", "prove_claims"]

# Stored in a claim job's params: its MACs were proven when it was created (`runner`, `recovery`).
PROOF = "mac+serial"

NEEDS_SERIAL = (
    "A claim job names each device by its MAC and the serial number printed on its box (DEV-3): "
    "send devices: [{mac, serial, label_code?}] instead of macs (label_code where the device has one "
    "or your account requires one), or upload a CSV file with mac, serial and label_code columns."
)


def claim_needs_serial() -> DomainError:
    return invalid("claim-needs-serial", NEEDS_SERIAL)


def not_proven(mac: str) -> DomainError:
    """DEV-3: a claim job's one result for an unknown device and for a wrong or missing proof:
    the single claim's answer (`claim_proof.no_match`), naming the MAC only."""
    return claim_proof.no_match(mac)


def _too_many(wait: int) -> str:
    return (
        "Too many claims with a wrong MAC, serial number or label code by your account; this device was "
        f"not tried. Try again in {wait} s."
    )


def _input_problem(r: FileRow, code_required: bool) -> FileRow:
    """What the row alone says (no look-up, no budget): missing MAC or serial, bad label code."""
    if r.mac is None:
        # The serial is not put in the result: a claim's serial is a proof, not a name.
        return replace(r, serial=None).refused("mac", "missing-field", "A claim needs the device's MAC.")
    if r.serial is None:
        return r.refused("serial", "missing-field", "A claim needs the serial number printed on the device's box.")
    if r.label_code is None:
        if code_required:
            return r.refused("label_code", "label-code-required", claim_proof.label_code_required().detail)
        return r
    try:
        return replace(r, label_code=claim_proof.normalize_label_code(r.label_code, r.mac))
    except DomainError as err:
        return replace(r, label_code=None).refused("label_code", err.error, err.detail)  # the code is not echoed


async def prove_claims(req: Req, rows: Sequence[FileRow]) -> tuple[list[str], dict[str, int], list[FileRow]]:
    """DEV-3: the MACs whose claim is proven (in order), each one's file row, and the refused
    rows (module docstring). Each unproven device is recorded in the claimant's budget."""
    claimant = req.actor.acting_id
    code_required = await label_code_required_for(req.session, claimant)
    checked = [r if r.reason is not None else _input_problem(r, code_required) for r in rows]
    wanted = list(dict.fromkeys(r.mac for r in checked if r.reason is None and r.mac is not None))
    found: dict[str, tuple[str, str | None]] = {}
    # Claim looks devices up globally: unclaimed devices belong to no hierarchy yet.
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        stmt = select(Device.mac, Device.serial, Device.label_code_hash).where(Device.mac.in_(chunk))
        found.update((mac, (serial, code_hash)) for mac, serial, code_hash in await req.session.execute(stmt))
    macs: list[str] = []
    row_of: dict[str, int] = {}
    named: dict[str, str] = {}  # MAC -> where it was first named, for duplicates
    refused: list[FileRow] = []
    for index, r in enumerate(checked, start=1):
        if r.reason is None:
            mac = r.mac
            assert mac is not None
            if mac in named:
                r = r.refused("mac", "duplicate-device", f"{named[mac]} already names device {mac}")
            else:
                named[mac] = f"row {r.row}" if r.row is not None else f"entry {index}"
                r = _prove(req, claimant, r, found.get(mac), code_required)
        if r.reason is not None:
            # Neither proof is kept: a refused row is named by its MAC or row number, never its serial.
            refused.append(replace(r, label_code=None, serial=None))
            continue
        assert r.mac is not None
        macs.append(r.mac)
        if r.row is not None:
            row_of[r.mac] = r.row
    return macs, row_of, refused


def _prove(req: Req, claimant: str, r: FileRow, device: tuple[str, str | None] | None, code_required: bool) -> FileRow:
    assert r.mac is not None and r.serial is not None
    wait = req.ctx.claims.retry_after(claimant, req.now)
    if wait is not None:  # spent: not tried, whatever the device
        return r.refused(None, "too-many-attempts", _too_many(wait))
    serial, code_hash = device if device is not None else (None, None)
    proven = claim_proof.matches(
        r.mac, r.serial, r.label_code, r.mac if device else None, serial, code_hash, code_required
    )
    if not proven or device is None:
        req.ctx.claims.record(claimant, req.now)
        err = not_proven(r.mac)
        return r.refused(None, err.error, err.detail)
    return r
