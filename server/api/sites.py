"""Admin API: customer sites — profile entry, PIN, DES configuration zip, firmware per model, and
bulk profile association (SIT-1, SIT-2, SIT-3, PRF-4, PRF-5).

Decisions:
- Sites belong to customer accounts only (`not-a-customer-account`), in the actor's subtree.
- Which profiles a site may use: one owned by the site's own account or by one of its ancestors,
  provided the actor can see it (the owner lies in the actor's subtree, ACC-7). That is the
  guide's flow — a service provider or reseller adds a profile, then creates a customer and its
  sites with it — without letting anyone use a profile they cannot see or one of a sibling.
  A profile outside the actor's subtree is 404 `profile-not-found`; a visible profile of
  another branch is 422 `profile-not-available`.
- `profile_id` may be null: a site without a profile exists (the profile's account was disabled,
  ACC-5) and cannot enroll (PRF-4) nor get an NEC (EC-2). Changing the profile without naming an
  entry selects entry 0.
- A site whose effective provisioning URL changes (other profile or entry) queues "Provision
  Changes" (NTF-1) for the site's account.
- The DES zip (PRF-5) is accepted only while the site's chosen entry has server type DES (409
  `not-des`); a refused zip stores nothing. A later switch away from DES keeps the stored zip
  (unused: files are served with DES only, ENR-6) so switching back needs no new upload.
- DELETE of a site that devices are associated with is refused (409 `site-in-use`): its devices
  would keep an association to nothing.
- Firmware settings (SIT-3) are checked against the catalog as the platform edits it (table
  `device_families`), so a changed release list or N applies at once. `same-as-account` is the
  default and is stored as the absence of a row.
- SIT-2 bulk association runs inside the request (sites are few) and is recorded as a `Job`
  (kind `profile-association`) with one `JobResult` per site. Sites that pass are associated
  even when others fail; the job is then FAIL (COMPLETE when every site passed). The zip for
  DES sites is uploaded per site with `PUT /sites/{id}/config`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from server.api.profiles import profile_in_scope
from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope
from server.domain import sites as rules
from server.domain.errors import DomainError, conflict, invalid, not_found
from server.domain.firmware import Catalog
from server.domain.profiles import redact_url
from server.domain.site_config import MiB, validate_site_zip
from server.store.models import Account, Device, DeviceFamily, Job, JobResult, Profile, Site, SiteFirmware
from server.store.notify import queue_notification

api = Api()

_ANY: dict[str, Any] = {}  # checked by the domain, so each refusal has its own error id
CREATE = {
    "type": "object",
    "required": ["name", "profile_id"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 256},
        "profile_id": {"type": ["integer", "null"], "minimum": 1},
        "entry": _ANY,
        "pin": _ANY,
    },
}
PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": CREATE["properties"],
}
FIRMWARE = {
    "type": "object",
    "required": ["setting"],
    "additionalProperties": False,
    "properties": {"setting": {"type": "string", "maxLength": 32}},
}
BULK = {
    "type": "object",
    "required": ["site_ids", "profile_id"],
    "additionalProperties": False,
    "properties": {
        "site_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1},
        },
        "profile_id": {"type": "integer", "minimum": 1},
        "entry": _ANY,
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
    },
}
MAX_ZIP = 50 * MiB


# Lookups ----------------------------------------------------------------------------------------


async def site_in_scope(req: Req, site_id: int | None = None) -> tuple[Site, Account]:
    """ACC-7: the site when its account lies in the actor's subtree; 404 `site-not-found` otherwise."""
    sid = req.int_param("id") if site_id is None else site_id
    row = (
        await req.session.execute(
            select(Site, Account).join(Account, Account.id == Site.account_id).where(Site.id == sid)
        )
    ).first()
    if row is None or not row.Account.path.startswith(req.actor.acting_path):
        raise not_found("site-not-found", f"no site {sid} in your hierarchy")
    return row.Site, row.Account


async def usable_profile(req: Req, profile_id: int, site_account: Account) -> Profile:
    """SIT-1: a profile the actor sees, owned by the site's account or one of its ancestors."""
    profile, owner = await profile_in_scope(req, profile_id)
    _check_available(profile, owner, site_account)
    return profile


def _check_available(profile: Profile, owner: Account, site_account: Account) -> None:
    if not site_account.path.startswith(owner.path):
        raise invalid(
            "profile-not-available",
            f"profile {profile.id} belongs to account {owner.id}, which is neither account "
            f"{site_account.id} nor one of its ancestors (SIT-1)",
            profile.id,
        )


def site_entry(site: Site, profile: Profile | None) -> dict[str, Any] | None:
    """The provisioning entry the site uses (real URL), or None without a profile (PRF-4)."""
    if profile is None or not 0 <= site.entry < len(profile.entries):
        return None
    return profile.entries[site.entry]


def site_json(site: Site, profile: Profile | None) -> dict[str, Any]:
    entry = site_entry(site, profile)
    return {
        "id": site.id,
        "account_id": site.account_id,
        "name": site.name,
        "profile_id": site.profile_id,
        "entry": site.entry,
        "pin": site.pin,
        # What the site's devices are sent (ENR-2), readable even by a customer that cannot
        # open an ancestor's profile; URL password redacted (LOG-1).
        "provisioning": None
        if entry is None or profile is None
        else {
            "profile_name": profile.name,
            "server_type": entry["server_type"],
            "url": redact_url(entry["url"]),
            "group": entry["group"],
            "identity_certificates": entry["identity_certificates"],
            "root_ca": entry.get("root_ca_pem") is not None,
        },
        "config_members": site.config_members,
        "created_at": site.created_at,
    }


async def _profile_of(req: Req, site: Site) -> Profile | None:
    return await req.session.get(Profile, site.profile_id) if site.profile_id is not None else None


async def _check_unique(req: Req, site: Site, *, name: str | None, pin: str | None) -> None:
    others = select(Site.id).where(Site.account_id == site.account_id)
    if site.id is not None:
        others = others.where(Site.id != site.id)
    if name is not None and await req.session.scalar(others.where(Site.name == name)) is not None:
        raise conflict("site-name-taken", f"account {site.account_id} already has a site named '{name}'", name)
    if pin is not None and await req.session.scalar(others.where(Site.pin == pin)) is not None:
        # EC-6: the PEC is account ID + PIN, so two sites of one account cannot share a PIN.
        raise conflict("pin-taken", f"another site of account {site.account_id} has this PIN (EC-6)")


async def _notify_provision_change(
    req: Req, site: Site, before: dict[str, Any] | None, after: dict[str, Any] | None, profile: Profile | None
) -> None:
    """NTF-1 "Provision Changes": the provisioning URL the site's devices get was modified."""
    old_url = before["url"] if before else None
    new_url = after["url"] if after else None
    if old_url == new_url:
        return
    await queue_notification(
        req.session,
        site.account_id,
        "provision-changes",
        facts={
            "profile": f"{profile.name if profile else '(none)'} (site {site.name})",
            "changed_by": req.actor.login,
            "old_url": redact_url(old_url) if old_url else "(none)",
            "new_url": redact_url(new_url) if new_url else "(none)",
            "at": req.now.isoformat(),
        },
    )


async def _apply_profile(
    req: Req, site: Site, account: Account, profile_id: int | None, entry: object
) -> Profile | None:
    """SIT-1: set the site's profile and entry (entry 0 unless named); None clears it."""
    if profile_id is None:
        if entry not in (None, 0):
            raise invalid("invalid-profile-entry", "a site without a profile has no entry to choose", entry)
        site.profile_id, site.entry = None, 0
        return None
    profile = await usable_profile(req, profile_id, account)
    site.entry = rules.validate_entry_index(entry, len(profile.entries))
    site.profile_id = profile.id
    return profile


# Bulk association (registered before /sites/{id} so the literal path is matched first) ---------


@api.route(
    "POST",
    "/sites/bulk-profile",
    summary="Associate many sites with one profile entry, as a job (SIT-2)",
    action="sites.write",
    process="SITE",
    body=BULK,
    status=201,
)
async def bulk_profile(req: Req) -> Any:
    profile, owner = await profile_in_scope(req, req.body["profile_id"])
    entry = rules.validate_entry_index(req.body.get("entry"), len(profile.entries))
    job = Job(
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        name=req.body.get("name", f"Bulk profile association: {profile.name}"),
        kind="profile-association",
        actions=["profile-association"],
        params={"profile_id": profile.id, "entry": entry, "site_ids": req.body["site_ids"]},
        status="IN PROGRESS",
        summary={},
        created_at=req.now,
    )
    req.session.add(job)
    await req.session.flush()
    results: list[dict[str, Any]] = []
    for sid in req.body["site_ids"]:
        try:
            site, account = await site_in_scope(req, sid)
            if account.type != "customer":
                raise invalid("not-a-customer-account", "sites belong to customer accounts", account.id)
            _check_available(profile, owner, account)
            before = site_entry(site, await _profile_of(req, site))
            site.profile_id, site.entry = profile.id, entry
            await _notify_provision_change(req, site, before, profile.entries[entry], profile)
            result = JobResult(job_id=job.id, subject=str(sid), status="SUCCESS")
        except DomainError as err:
            result = JobResult(job_id=job.id, subject=str(sid), status="FAIL", reason=err.error, detail=err.detail)
        req.session.add(result)
        results.append(
            {"subject": result.subject, "status": result.status, "reason": result.reason, "detail": result.detail}
        )
    failed = sum(r["status"] == "FAIL" for r in results)
    job.status = "FAIL" if failed else "COMPLETE"
    job.summary = {"total": len(results), "succeeded": len(results) - failed, "failed": failed}
    job.finished_at = req.now
    req.audit_message = (
        f"bulk profile association job {job.id}: profile {profile.id} entry {entry} on "
        f"{len(results)} sites, {failed} failed"
    )
    return Reply(
        {
            "id": job.id,
            "name": job.name,
            "kind": job.kind,
            "status": job.status,
            "summary": job.summary,
            "results": results,
        },
        201,
    )


# Sites ------------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/accounts/{id}/sites",
    summary="Add a site to a customer account (SIT-1)",
    action="sites.write",
    process="SITE",
    body=CREATE,
    status=201,
)
async def create_site(req: Req) -> Any:
    account = await account_in_scope(req.session, req.actor, req.param("id"))
    if account.type != "customer":
        raise invalid(
            "not-a-customer-account",
            f"account {account.id} is a {account.type}; sites belong to customer accounts (SIT-1)",
            account.id,
        )
    name = rules.validate_site_name(req.body["name"])
    pin = rules.validate_pin(req.body.get("pin"))
    site = Site(account_id=account.id, name=name, pin=pin, created_at=req.now)
    profile = await _apply_profile(req, site, account, req.body["profile_id"], req.body.get("entry"))
    await _check_unique(req, site, name=name, pin=pin)
    req.session.add(site)
    await req.session.flush()
    req.audit_account = account.id
    req.audit_message = (
        f"created site {site.id} '{name}' in {account.id} with profile {site.profile_id} entry {site.entry}"
        f"{' and a PIN' if pin else ''}"
    )
    return Reply(site_json(site, profile), 201)


@api.route(
    "GET",
    "/accounts/{id}/sites",
    summary="List the sites of a customer account",
    action="sites.read",
    process="SITE",
    query=(("name", "name contains"),),
)
async def list_sites(req: Req) -> Any:
    account = await account_in_scope(req.session, req.actor, req.param("id"))
    limit, offset = req.page()
    cond = [Site.account_id == account.id]
    if name := req.query("name"):
        cond.append(Site.name.contains(name, autoescape=True))
    total = await req.session.scalar(select(func.count()).select_from(Site).where(*cond))
    rows = (
        await req.session.execute(
            select(Site, Profile)
            .outerjoin(Profile, Profile.id == Site.profile_id)
            .where(*cond)
            .order_by(Site.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return {"items": [site_json(r.Site, r.Profile) for r in rows], "total": total}


@api.route("GET", "/sites/{id}", summary="Read a site", action="sites.read", process="SITE")
async def get_site(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    return site_json(site, await _profile_of(req, site))


@api.route(
    "PATCH",
    "/sites/{id}",
    summary="Update a site: name, profile and entry, PIN (SIT-1)",
    action="sites.write",
    process="SITE",
    body=PATCH,
)
async def update_site(req: Req) -> Any:
    site, account = await site_in_scope(req)
    old_profile = await _profile_of(req, site)
    before = site_entry(site, old_profile)
    name = rules.validate_site_name(req.body["name"]) if "name" in req.body else None
    pin = rules.validate_pin(req.body["pin"]) if "pin" in req.body else None
    profile = old_profile
    if "profile_id" in req.body:
        # Naming the current profile again keeps the chosen entry; another profile starts at 0.
        same = req.body["profile_id"] is not None and req.body["profile_id"] == site.profile_id
        entry = req.body.get("entry", site.entry if same else None)
        profile = await _apply_profile(req, site, account, req.body["profile_id"], entry)
    elif "entry" in req.body:
        if old_profile is None:
            raise invalid("invalid-profile-entry", "the site has no profile to choose an entry of", req.body["entry"])
        site.entry = rules.validate_entry_index(req.body["entry"], len(old_profile.entries))
    await _check_unique(req, site, name=name, pin=pin)
    if name is not None:
        site.name = name
    if "pin" in req.body:
        site.pin = pin
    await _notify_provision_change(req, site, before, site_entry(site, profile), profile)
    req.audit_account = site.account_id
    req.audit_message = f"updated site {site.id}: {', '.join(sorted(req.body))}"
    return site_json(site, profile)


@api.route(
    "DELETE", "/sites/{id}", summary="Delete a site no device is associated with", action="sites.write", process="SITE"
)
async def delete_site(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    devices = await req.session.scalar(select(func.count()).select_from(Device).where(Device.site_id == site.id))
    if devices:
        raise conflict(
            "site-in-use", f"{devices} device(s) are associated with site {site.id}; disassociate them first", devices
        )
    await req.session.delete(site)
    req.audit_account = site.account_id
    req.audit_message = f"deleted site {site.id} '{site.name}'"
    return {"deleted": site.id}


# DES configuration (PRF-5) ----------------------------------------------------------------------


@api.route(
    "PUT",
    "/sites/{id}/config",
    summary="Upload the site's basic-configuration zip (server type DES only, PRF-5)",
    action="sites.write",
    process="SITE",
    raw_body=("application/zip", "application/octet-stream"),
    max_body=MAX_ZIP,
)
async def put_site_config(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    entry = site_entry(site, await _profile_of(req, site))
    if entry is None or entry["server_type"] != "DES":
        raise conflict(
            "not-des",
            "a configuration zip is only used when the site's provisioning entry has server type DES (PRF-5)",
            entry["server_type"] if entry else None,
        )
    members = validate_site_zip(req.raw or b"")
    site.config_zip = req.raw
    site.config_members = members
    req.audit_account = site.account_id
    req.audit_message = f"uploaded the configuration zip of site {site.id}: {len(members)} files"
    return {"site_id": site.id, "members": members, "size": len(req.raw or b"")}


@api.route(
    "GET",
    "/sites/{id}/config",
    summary="List the files of the site's configuration zip (PRF-5)",
    action="sites.read",
    process="SITE",
)
async def get_site_config(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    if site.config_zip is None:
        raise not_found("no-config", f"site {site.id} has no configuration zip")
    return {"site_id": site.id, "members": site.config_members or [], "size": len(site.config_zip)}


# Firmware per model (SIT-3) ---------------------------------------------------------------------


async def load_catalog(req: Req) -> Catalog:
    """FW-1: the catalog as the platform edited it (table `device_families`)."""
    models = {row.model: row.data for row in await req.session.scalars(select(DeviceFamily))}
    if not models:
        return Catalog.load()
    return Catalog.from_data({"schema_version": 1, "models": models})


@api.route(
    "PUT",
    "/sites/{id}/firmware/{model}",
    summary="Firmware for one model at a site: same-as-account, latest, off or one of the last N releases (SIT-3)",
    action="sites.write",
    process="SITE",
    body=FIRMWARE,
)
async def put_site_firmware(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    catalog = await load_catalog(req)
    model = catalog.model(req.param("model")).name
    setting = rules.validate_firmware_setting(req.body["setting"], model, catalog)
    await req.session.execute(delete(SiteFirmware).where(SiteFirmware.site_id == site.id, SiteFirmware.model == model))
    if setting != rules.DEFAULT_FIRMWARE_SETTING:
        req.session.add(SiteFirmware(site_id=site.id, model=model, setting=str(setting)))
    req.audit_account = site.account_id
    req.audit_message = f"firmware of {model} at site {site.id} set to {setting}"
    return {"site_id": site.id, "model": model, "setting": str(setting)}


@api.route(
    "GET",
    "/sites/{id}/firmware",
    summary="Firmware settings of a site, per model, with the choices (SIT-3)",
    action="sites.read",
    process="SITE",
)
async def get_site_firmware(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    catalog = await load_catalog(req)
    stored = {
        row.model: row.setting
        for row in await req.session.scalars(select(SiteFirmware).where(SiteFirmware.site_id == site.id))
    }
    items = []
    for model in sorted(catalog.models()):
        info = catalog.model(model)
        items.append(
            {
                "model": model,
                "setting": stored.get(model, str(rules.DEFAULT_FIRMWARE_SETTING)),
                "upgradable": info.upgradable,
                "latest": str(info.latest),
                "offered": [str(v) for v in catalog.last_n_releases(model) if v >= info.minimum],
            }
        )
    return {"items": items, "total": len(items)}
