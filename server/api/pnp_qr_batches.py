"""Admin API, PNP-1 QR onboarding: batches of one-time QR codes, the scan that onboards a device,
and batch monitoring by batch number.

Decisions (docs/pnp.md):
- A batch is made by the importing side (`devices.import`: a manufacturer for the devices it
  imported, the platform for any) for approved devices nobody holds yet, named by MAC (`devices`)
  or picked (`count`: the oldest such devices in scope without a live code). A device that is
  not in scope, not approved, already held, or named twice refuses the whole batch (422
  `invalid-devices`, each one listed); nothing is written. The target account and site are
  optional (the creator's ACC-7 scope); the scan may name its own.
- The answer carries each code's payload with its claim token, once; the store keeps the token's
  SHA-256 only, so a lost sheet is replaced by a new batch (a device's codes stay valid until one
  of them is scanned; then the others are revoked).
- A scan (`devices.claim`: the partner on site) parses the payload (422 `invalid-qr-payload`),
  finds the code by the token's hash and checks that the payload's batch, MAC and serial are that
  code's (403 `qr-token-invalid` otherwise: forged or altered), that it was never scanned (409
  `qr-code-used`) nor revoked (409 `qr-code-revoked`); then places the device at the site
  (claim, associate, activate: `pnp.place`). The code is spent first, with a conditional UPDATE,
  so of two scans of one code at once one onboards the device and the other is 409
  `qr-code-used`. A refused scan writes nothing (the spending rolls back with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, update

from server.api.devices import Notices, state_of
from server.api.devices.visibility import normalize_macs, scope_devices
from server.api.pnp_common import ACCOUNT_ID, MAC, PLACE_ACTIONS, SITE_ID, event, store_state, target
from server.api.routing import Api, Req
from server.api.scope import in_subtree, subtree_clause
from server.domain import pnp, pnp_qr
from server.domain.errors import DomainError, conflict, forbidden, invalid, not_found
from server.store.models import Account, Device, QrBatch, QrCode, Site

api = Api()
MAX_CODES = 5000

CREATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "devices": {"type": "array", "items": MAC, "minItems": 1, "maxItems": MAX_CODES},
        "count": {"type": "integer", "minimum": 1, "maximum": MAX_CODES},
        "account_id": ACCOUNT_ID,
        "site_id": SITE_ID,
    },
}
SCAN = {
    "type": "object",
    "required": ["payload"],
    "additionalProperties": False,
    "properties": {
        "payload": {
            "type": "string",
            "minLength": 1,
            "maxLength": pnp_qr.MAX_PAYLOAD,
            "writeOnly": True,
            "description": "the text the QR code carries (enrollab:onboard?v=1&b=…&m=…&s=…&t=…): "
            "holds the one-time claim token, never echoed",
        },
        "account_id": ACCOUNT_ID,
        "site_id": SITE_ID,
    },
}


_COUNTS = {name: {"type": "integer", "minimum": 0} for name in ("total", "scanned", "enrolled", "revoked")}
BATCH_ANSWER = {
    "type": "object",
    "required": ["number", "account_id", "created_by", "created_at", "target", *_COUNTS],
    "properties": {
        "number": {"type": "string", "pattern": "^QR[0-9]{6,12}$", "description": "the batch number"},
        "account_id": {"type": "string"},
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "target": {
            "type": "object",
            "properties": {"account_id": {"type": ["string", "null"]}, "site_id": {"type": ["integer", "null"]}},
        },
        **_COUNTS,
        "codes": {
            "type": "array",
            "description": "creation only: each device's payload with its one-time claim token, shown once",
            "items": {
                "type": "object",
                "required": ["mac", "serial", "payload"],
                "properties": {
                    "mac": {"type": "string"},
                    "serial": {"type": "string"},
                    "model": {"type": "string"},
                    "payload": {"type": "string", "description": "enrollab:onboard?v=1&b=…&m=…&s=…&t=… (docs/pnp.md)"},
                },
            },
        },
    },
}
SCAN_ANSWER = {
    "type": "object",
    "required": ["mac", "serial", "model", "batch", "account_id", "site_id", "zero_touch_ready"],
    "properties": {
        "mac": {"type": "string"},
        "serial": {"type": "string"},
        "model": {"type": "string"},
        "batch": {"type": "string"},
        "account_id": {"type": "string"},
        "site_id": {"type": "integer"},
        "zero_touch_ready": {"type": "boolean"},
    },
}


async def _pick(req: Req, body: dict[str, Any]) -> list[Device]:
    """The batch's devices: named or picked; every refusal at once, before anything is written."""
    stmt = scope_devices(select(Device), req.actor)
    live = select(QrCode.mac).where(QrCode.scanned_at.is_(None), QrCode.revoked_at.is_(None))
    if "devices" in body:
        if "count" in body:
            raise invalid("invalid-body", "give devices or count, not both")
        macs = body["devices"]
        normalized = normalize_macs(macs)
        if len(normalized) != len(macs):
            raise invalid("invalid-devices", "A MAC is named twice in devices.", errors=[])
        found = {d.mac: d for d in await req.session.scalars(stmt.where(Device.mac.in_(normalized)))}
        errors = []
        for i, mac in enumerate(normalized):
            d = found.get(mac)
            reason = (
                "not found in your scope"
                if d is None
                else "not approved (DEV-2)"
                if not d.approved
                else "already held by an account: it needs no onboarding code"
                if d.owner_id is not None
                else None
            )
            if reason:
                errors.append({"pointer": f"/devices/{i}", "message": f"{mac}: {reason}"})
        if errors:
            raise invalid(
                "invalid-devices",
                f"{len(errors)} of the {len(normalized)} devices cannot get a QR code: {errors[0]['message']}.",
                errors=errors[:50],
                error_count=len(errors),
            )
        return [found[m] for m in normalized]
    if "count" not in body:
        raise invalid("invalid-body", "give devices (MACs) or count")
    count = body["count"]
    picked = list(
        await req.session.scalars(
            stmt.where(Device.approved.is_(True), Device.owner_id.is_(None), Device.mac.not_in(live))
            .order_by(Device.created_at, Device.mac)
            .limit(count)
        )
    )
    if len(picked) < count:
        raise invalid(
            "not-enough-devices",
            f"Only {len(picked)} approved devices nobody holds and without a live code are in your scope; "
            f"{count} were asked for.",
            len(picked),
        )
    return picked


@api.route(
    "POST",
    "/pnp/qr-batches",
    summary="Generate a batch of one-time QR onboarding codes (PNP-1); the answer shows each claim token once",
    action="devices.import",
    process="DEVICE",
    body=CREATE,
    status=201,
    tag="pnp",
    responses={"422": {"description": "invalid-devices (errors: [{pointer, message}]), not-enough-devices"}},
    answer=BATCH_ANSWER,
)
async def create_qr_batch(req: Req) -> Any:
    body = req.body
    target_account, target_site = body.get("account_id"), body.get("site_id")
    if target_account is not None and target_site is None:
        raise invalid("site-required", "A batch's target account needs a site (site_id) too.")
    if target_site is not None:
        t = await _creator_target(req, target_account, target_site)
        target_account = t.account_id
    devices = await _pick(req, body)
    batch = QrBatch(
        number="pending",
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        target_account_id=target_account,
        target_site_id=target_site,
        total=len(devices),
        created_at=req.now,
    )
    req.session.add(batch)
    await req.session.flush()
    batch.number = pnp_qr.batch_number(batch.id)
    codes = []
    for d in devices:
        payload = pnp_qr.Payload(batch.number, d.mac, d.serial, pnp_qr.new_token())
        req.session.add(
            QrCode(batch_pk=batch.id, mac=d.mac, serial=d.serial, token_hash=pnp_qr.token_hash(payload.token))
        )
        codes.append({"mac": d.mac, "serial": d.serial, "model": d.model, "payload": payload.text()})
    req.audit_message = f"QR batch {batch.number}: {len(codes)} one-time onboarding codes" + (
        f" for {pnp.place_words(target_account, target_site)}" if target_site else ""
    )
    return {**(await _batch_json(req, batch)), "codes": codes}


async def _creator_target(req: Req, account_id: str | None, site_id: int) -> pnp.Target:
    """The batch's target: in the creator's subtree (ACC-7), a site with a profile."""
    account_id = account_id or req.actor.acting_id
    account = await req.session.get(Account, account_id)
    if account is None or not in_subtree(req.actor, account.path):
        raise not_found("account-not-found", f"no account {account_id} in your hierarchy")
    site = await req.session.get(Site, site_id)
    if site is None or site.account_id != account.id:
        raise not_found("site-not-found", f"account {account.id} has no site {site_id}")
    if site.profile_id is None:
        raise invalid("no-profile", "The site has no profile: its devices could not enroll (PRF-4).", site_id)
    return pnp.Target(req.actor.acting_id, account.id, account.id != req.actor.acting_id, site.id, True)


async def _counts(req: Req, batch_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per batch: total, scanned (= onboarded), enrolled (contacted the server with a redirect since), revoked."""
    out = {pk: {"total": 0, "scanned": 0, "enrolled": 0, "revoked": 0} for pk in batch_pks}
    if not batch_pks:
        return out
    rows = await req.session.execute(
        select(QrCode.batch_pk, QrCode.scanned_at, QrCode.revoked_at, Device.enrolled_at)
        .outerjoin(Device, Device.mac == QrCode.mac)
        .where(QrCode.batch_pk.in_(batch_pks))
    )
    for pk, scanned_at, revoked_at, enrolled_at in rows:
        c = out[pk]
        c["total"] += 1
        if scanned_at is not None:
            c["scanned"] += 1
            if enrolled_at is not None and enrolled_at >= scanned_at:
                c["enrolled"] += 1
        elif revoked_at is not None:
            c["revoked"] += 1
    return out


async def _batch_json(req: Req, batch: QrBatch, counts: dict[str, int] | None = None) -> dict[str, Any]:
    if counts is None:
        counts = (await _counts(req, [batch.id]))[batch.id]
    return {
        "number": batch.number,
        "account_id": batch.account_id,
        "created_by": batch.created_by,
        "created_at": batch.created_at,
        "target": {"account_id": batch.target_account_id, "site_id": batch.target_site_id},
        **counts,
        "total": batch.total,
    }


def _batch_scope(req: Req) -> Any:
    """ACC-7: batches made by an account of the actor's subtree, aimed at one, or with a code
    scanned into one (an on-site partner follows the batch it scans)."""
    inside = select(Account.id).where(subtree_clause(req.actor, Account.path))
    scanned_here = select(QrCode.batch_pk).where(QrCode.account_id.in_(inside))
    return or_(QrBatch.account_id.in_(inside), QrBatch.target_account_id.in_(inside), QrBatch.id.in_(scanned_here))


@api.route(
    "GET",
    "/pnp/qr-batches",
    summary="QR batches of your hierarchy, newest first, with their counts: total, scanned, enrolled (PNP-1)",
    action="devices.read",
    process="DEVICE",
    tag="pnp",
)
async def list_qr_batches(req: Req) -> Any:
    limit, offset = req.page()
    where = _batch_scope(req)
    total = await req.session.scalar(select(func.count()).select_from(QrBatch).where(where))
    rows = list(
        await req.session.scalars(select(QrBatch).where(where).order_by(QrBatch.id.desc()).limit(limit).offset(offset))
    )
    counts = await _counts(req, [b.id for b in rows])
    return {"items": [await _batch_json(req, b, counts[b.id]) for b in rows], "total": int(total or 0)}


async def _batch(req: Req) -> QrBatch:
    number = req.param("number")
    batch = await req.session.scalar(select(QrBatch).where(QrBatch.number == number[:32], _batch_scope(req)))
    if batch is None:
        raise not_found("batch-not-found", f"no QR batch {number[:32]!r} in your hierarchy")
    return batch


@api.route(
    "GET",
    "/pnp/qr-batches/{number}",
    summary="One QR batch by batch number: counts and each device's state (issued, scanned, enrolled, revoked) (PNP-1)",
    action="devices.read",
    process="DEVICE",
    tag="pnp",
    answer=BATCH_ANSWER,
)
async def get_qr_batch(req: Req) -> Any:
    batch = await _batch(req)
    stmt = select(QrCode, Device.enrolled_at).outerjoin(Device, Device.mac == QrCode.mac)
    inside = select(Account.id).where(subtree_clause(req.actor, Account.path))
    made_or_aimed = await req.session.scalar(
        select(func.count())
        .select_from(QrBatch)
        .where(QrBatch.id == batch.id, or_(QrBatch.account_id.in_(inside), QrBatch.target_account_id.in_(inside)))
    )
    if not made_or_aimed:
        # ACC-7: a partner that follows the batch by the codes it scanned sees those codes only; the
        # others' MACs and serials (a serial is a claim's proof, DEV-3) and where they went are not its own.
        stmt = stmt.where(QrCode.account_id.in_(inside))
    rows = await req.session.execute(stmt.where(QrCode.batch_pk == batch.id).order_by(QrCode.id))
    devices = []
    for code, enrolled_at in rows:
        state = "issued"
        if code.scanned_at is not None:
            state = "enrolled" if enrolled_at is not None and enrolled_at >= code.scanned_at else "scanned"
        elif code.revoked_at is not None:
            state = "revoked"
        devices.append(
            {
                "mac": code.mac,
                "serial": code.serial,
                "state": state,
                "scanned_at": code.scanned_at,
                "scanned_by": code.scanned_by,
                "account_id": code.account_id,
                "site_id": code.site_id,
                "enrolled_at": enrolled_at if state == "enrolled" else None,
            }
        )
    return {**(await _batch_json(req, batch)), "devices": devices}


@api.route(
    "POST",
    "/pnp/scan",
    summary="Onboard a device by its scanned QR code (PNP-1): one time; claims, associates with the site, activates",
    action="devices.claim",
    process="DEVICE",
    body=SCAN,
    tag="pnp",
    responses={
        "403": {"description": "qr-token-invalid: no such code (forged) or the payload was altered"},
        "409": {"description": "qr-code-used (scanned before), qr-code-revoked, held-elsewhere"},
        "422": {"description": "invalid-qr-payload, site-required, no-profile"},
    },
    answer=SCAN_ANSWER,
)
async def scan_qr_code(req: Req) -> Any:
    payload = pnp_qr.parse_payload(req.body["payload"])
    code = await req.session.scalar(select(QrCode).where(QrCode.token_hash == pnp_qr.token_hash(payload.token)))
    batch = await req.session.get(QrBatch, code.batch_pk) if code is not None else None
    if (
        code is None
        or batch is None
        or (batch.number, code.mac, code.serial) != (payload.batch, payload.mac, payload.serial)
    ):
        raise forbidden("qr-token-invalid", "This QR code was not issued by this server, or its payload was altered.")
    if code.scanned_at is not None:
        raise conflict(
            "qr-code-used",
            f"This QR code onboarded {code.mac} at {code.scanned_at.isoformat()}; a code works once.",
            code.mac,
        )
    if code.revoked_at is not None:
        raise conflict("qr-code-revoked", f"Another QR code onboarded {code.mac}; this one was revoked then.", code.mac)
    site_id = req.body.get("site_id") or batch.target_site_id
    account_id = req.body.get("account_id") or (batch.target_account_id if "site_id" not in req.body else None)
    if site_id is None:
        raise invalid("site-required", "Name the site to onboard the device into (site_id): its batch names none.")
    t = await target(req, account_id, site_id)
    # Lock the device, then spend the code, then place: a second scan of this device at the same
    # moment (this code or another of its codes) waits on the device's row and then finds its code
    # spent or revoked (409), whoever it would have placed the device for. One lock order for
    # every scan, so two never deadlock; a refusal below rolls the spending back with the rest.
    device = await req.session.scalar(select(Device).where(Device.mac == code.mac).with_for_update())
    if device is None:
        raise not_found("device-not-found", f"the device {code.mac} of this code is no longer imported")
    spent = await req.session.execute(
        update(QrCode)
        .where(QrCode.id == code.id, QrCode.scanned_at.is_(None), QrCode.revoked_at.is_(None))
        .values(scanned_at=req.now, scanned_by=req.actor.login, account_id=t.account_id, site_id=t.site_id)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError(
            "qr-code-used", "This QR code was scanned at the same moment elsewhere; a code works once.", 409
        )
    before = state_of(device)
    after = pnp.place(before, t)
    await req.session.execute(
        update(QrCode)
        .where(QrCode.mac == code.mac, QrCode.id != code.id, QrCode.scanned_at.is_(None), QrCode.revoked_at.is_(None))
        .values(revoked_at=req.now)
        .execution_options(synchronize_session=False)
    )
    store_state(device, after)
    notices = Notices()
    notices.add(before, after, PLACE_ACTIONS, t.actor_account_id)
    await notices.queue(req.session, req.actor.login, req.now)  # NTF-1: Claiming / Associating Device
    event(req, "qr-onboarded", device.mac, before, after)
    req.audit_account = t.account_id
    req.audit_message = (
        f"QR onboarding {device.mac} (batch {batch.number}): "
        f"{pnp.place_words(before.owner_id, before.site_id)} -> {pnp.place_words(t.account_id, t.site_id)}"
    )
    return {
        "mac": device.mac,
        "serial": device.serial,
        "model": device.model,
        "batch": batch.number,
        "account_id": t.account_id,
        "site_id": t.site_id,
        "zero_touch_ready": True,
    }
