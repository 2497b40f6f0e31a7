"""Admin API: profiles — provisioning entries for customer sites (PRF-1, PRF-2, PRF-3, PRF-6, LOG-1).

Decisions:
- A profile belongs to the account the administrator acts for (service provider, reseller or
  customer); it is visible (ACC-7) to that account and its ancestors. Sites of the owner's
  customer descendants may use it (see `server/api/sites.py`).
- The stored entry keeps the real provisioning URL (enrollment hands it to devices); every
  answer and audit message shows it with its password replaced by `****` (LOG-1). A PATCH that
  sends back such a redacted URL unchanged at the same index keeps the stored password, so a
  client can round-trip what GET gave it.
- PRF-3: a PATCH changes later enrollments only. Nothing is pushed to devices; enrolled devices
  keep what they got. A PATCH that changes a provisioning URL queues "Provision Changes"
  (NTF-1: "when the provisioning URL has been modified") for the owner account and for every
  account whose sites use the profile.
- A PATCH may not remove an entry that a site uses (409 `entry-in-use`).
- DELETE of a profile that sites use is refused with 409 `profile-in-use` (the guide: "remove a
  profile if it is no longer used"); a site left without a profile could not enroll (PRF-4).
- PRF-6: after the profile is stored, each HTTPS entry's server is asked for its certificate
  (one TLS handshake, no verification, 1 s limit); a wildcard certificate adds the warning
  `wildcard-certificate` to the answer. The probe runs after the commit so no database lock is
  held over network I/O. Unreachable servers give no warning. Names that cannot exist on the
  Internet (RFC 2606/6761: `.test`, `.example`, `.invalid`, `.localhost`, `example.com/net/org`)
  and the documentation networks of RFC 5737 are not probed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from typing import Any

from cryptography import x509
from sqlalchemy import func, select

from server.api.routing import Api, Reply, Req
from server.api.scope import subtree_clause
from server.domain import profiles as rules
from server.domain.errors import conflict, not_found
from server.store.models import Account, Profile, Site
from server.store.notify import queue_notification

api = Api()

CREATE = {
    "type": "object",
    "required": ["name", "entries"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 256},
        # Entry fields are checked by the domain (PRF-1/2) so each refusal has its own error id.
        "entries": {"type": "array", "items": {"type": "object"}},
    },
}
PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": CREATE["properties"],
}

PROBE_TIMEOUT = 1.0
_RESERVED_SUFFIXES = (".test", ".example", ".invalid", ".localhost", ".example.com", ".example.net", ".example.org")
_RESERVED_NAMES = frozenset({"example.com", "example.net", "example.org", "localhost"})
_DOC_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def entry_json(entry: dict[str, Any]) -> dict[str, Any]:
    """One provisioning entry as every answer shows it: URL password redacted (LOG-1)."""
    return {**entry, "url": rules.redact_url(entry["url"])}


def profile_json(p: Profile, site_count: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": p.id,
        "account_id": p.account_id,
        "name": p.name,
        "entries": [entry_json(e) for e in p.entries],
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }
    if site_count is not None:
        body["sites"] = site_count
    return body


def _urls(entries: list[dict[str, Any]]) -> str:
    return ", ".join(rules.redact_url(e["url"]) for e in entries)


async def profile_in_scope(req: Req, profile_id: int) -> tuple[Profile, Account]:
    """ACC-7: the profile when its owner lies in the actor's subtree; 404 otherwise."""
    row = (
        await req.session.execute(
            select(Profile, Account).join(Account, Account.id == Profile.account_id).where(Profile.id == profile_id)
        )
    ).first()
    if row is None or not row.Account.path.startswith(req.actor.acting_path):
        raise not_found("profile-not-found", f"no profile {profile_id} in your hierarchy")
    return row.Profile, row.Account


async def _site_count(req: Req, profile_id: int) -> int:
    count = await req.session.scalar(select(func.count()).select_from(Site).where(Site.profile_id == profile_id))
    return int(count or 0)


async def _check_name_free(req: Req, account_id: str, name: str, own_id: int | None = None) -> None:
    q = select(Profile.id).where(Profile.account_id == account_id, Profile.name == name)
    if own_id is not None:
        q = q.where(Profile.id != own_id)
    if await req.session.scalar(q) is not None:
        raise conflict("profile-name-taken", f"this account already has a profile named '{name}'", name)


def _restore_redacted(raw: list[Any], old: list[dict[str, Any]]) -> list[Any]:
    """A redacted URL sent back unchanged at its index means "keep the stored URL"."""
    restored: list[Any] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and i < len(old):
            stored = old[i]["url"]
            shown = rules.redact_url(stored)
            if shown != stored and item.get("url") == shown:
                item = {**item, "url": stored}
        restored.append(item)
    return restored


# PRF-6 ------------------------------------------------------------------------------------------


def _probe_worthy(parsed: rules.ParsedUrl) -> bool:
    if parsed.scheme != "https":
        return False
    host = parsed.host
    if parsed.is_ip:
        return not any(ipaddress.ip_address(host) in net for net in _DOC_NETS)
    return host not in _RESERVED_NAMES and not host.endswith(_RESERVED_SUFFIXES)


async def _server_certificate(host: str, port: int, is_ip: bool) -> x509.Certificate | None:
    """The certificate an HTTPS server presents, or None when it cannot be reached in time."""
    context = ssl.create_default_context()
    # Only the presented certificate is inspected, never trusted: a private CA is expected here.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=None if is_ip else host),
            PROBE_TIMEOUT,
        )
    except (OSError, TimeoutError, ssl.SSLError, ValueError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der) if der else None
    except ValueError:
        return None
    finally:
        writer.close()


async def _wildcard_warnings(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PRF-6: a warning per HTTPS entry whose server presents a wildcard certificate."""
    targets = []
    for index, entry in enumerate(entries):
        parsed = rules.validate_provisioning_url(entry["url"])
        if _probe_worthy(parsed):
            targets.append((index, parsed))
    certs = await asyncio.gather(*(_server_certificate(p.host, p.port or 443, p.is_ip) for _, p in targets))
    warnings = []
    for (index, parsed), cert in zip(targets, certs, strict=True):
        if cert is not None and rules.wildcard_certificate_warning(parsed, cert):
            warnings.append(
                {
                    "entry": index,
                    "warning": "wildcard-certificate",
                    "detail": f"{parsed.host} presents a wildcard certificate; some devices refuse it: "
                    "use a certificate naming the server's FQDN explicitly (PRF-6)",
                }
            )
    return warnings


def _warn_after_commit(req: Req, answer: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    answer["warnings"] = []

    async def probe() -> None:
        answer["warnings"].extend(await _wildcard_warnings(entries))

    req.after_commit.append(probe)


# Routes -----------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/profiles",
    summary="Create a profile with provisioning entries (PRF-1, PRF-2, PRF-6)",
    action="profiles.write",
    process="PROFILE",
    body=CREATE,
    status=201,
)
async def create_profile(req: Req) -> Any:
    name = rules.validate_profile_name(req.body["name"])
    entries = [e.to_dict() for e in rules.validate_entries(req.body["entries"], now=req.now)]
    account_id = req.actor.acting_id
    await _check_name_free(req, account_id, name)
    profile = Profile(account_id=account_id, name=name, entries=entries, created_at=req.now, updated_at=req.now)
    req.session.add(profile)
    await req.session.flush()
    req.audit_account = account_id
    req.audit_message = f"created profile {profile.id} '{name}' with entries: {_urls(entries)}"
    answer = profile_json(profile, 0)
    _warn_after_commit(req, answer, entries)
    return Reply(answer, 201)


@api.route(
    "GET",
    "/profiles",
    summary="List the profiles of your hierarchy (ACC-7)",
    action="profiles.read",
    process="PROFILE",
    query=(("name", "name contains"), ("account_id", "owner account")),
)
async def list_profiles(req: Req) -> Any:
    limit, offset = req.page()
    cond = [subtree_clause(req.actor, Account.path.expression)]
    if name := req.query("name"):
        cond.append(Profile.name.contains(name, autoescape=True))
    if account_id := req.query("account_id"):
        cond.append(Profile.account_id == account_id)
    base = select(Profile).join(Account, Account.id == Profile.account_id).where(*cond)
    total = await req.session.scalar(select(func.count()).select_from(base.subquery()))
    profiles = list(await req.session.scalars(base.order_by(Profile.id).limit(limit).offset(offset)))
    counts: dict[int | None, int] = {}
    if profiles:
        rows = await req.session.execute(
            select(Site.profile_id, func.count())
            .where(Site.profile_id.in_([p.id for p in profiles]))
            .group_by(Site.profile_id)
        )
        counts = {profile_id: count for profile_id, count in rows}
    return {"items": [profile_json(p, counts.get(p.id, 0)) for p in profiles], "total": total}


@api.route(
    "GET",
    "/profiles/{id}",
    summary="Read a profile (URL passwords redacted)",
    action="profiles.read",
    process="PROFILE",
)
async def get_profile(req: Req) -> Any:
    profile, _ = await profile_in_scope(req, req.int_param("id"))
    return profile_json(profile, await _site_count(req, profile.id))


@api.route(
    "PATCH",
    "/profiles/{id}",
    summary="Update a profile; later enrollments only, enrolled devices keep theirs (PRF-3)",
    action="profiles.write",
    process="PROFILE",
    body=PATCH,
)
async def update_profile(req: Req) -> Any:
    profile, _ = await profile_in_scope(req, req.int_param("id"))
    changed: list[str] = []
    if "name" in req.body:
        name = rules.validate_profile_name(req.body["name"])
        await _check_name_free(req, profile.account_id, name, profile.id)
        profile.name = name
        changed.append("name")
    old_entries = list(profile.entries)
    if "entries" in req.body:
        raw = _restore_redacted(req.body["entries"], old_entries)
        entries = [e.to_dict() for e in rules.validate_entries(raw, now=req.now)]
        used = await req.session.scalar(select(func.max(Site.entry)).where(Site.profile_id == profile.id))
        if used is not None and used >= len(entries):
            raise conflict(
                "entry-in-use",
                f"a site uses entry {used} of this profile; keep at least {used + 1} entries or move the site first",
                used,
            )
        profile.entries = entries
        changed.append("entries")
    profile.updated_at = req.now
    await _notify_url_changes(req, profile, old_entries)
    req.audit_account = profile.account_id
    req.audit_message = f"updated profile {profile.id} '{profile.name}': {', '.join(changed)}" + (
        f"; entries: {_urls(profile.entries)}" if "entries" in changed else ""
    )
    answer = profile_json(profile, await _site_count(req, profile.id))
    if "entries" in changed:
        _warn_after_commit(req, answer, profile.entries)
    return answer


async def _notify_url_changes(req: Req, profile: Profile, old: list[dict[str, Any]]) -> None:
    """NTF-1 "Provision Changes": a provisioning URL of the profile was modified."""
    new = profile.entries
    pairs = []
    for i in range(max(len(old), len(new))):
        before = old[i]["url"] if i < len(old) else None
        after = new[i]["url"] if i < len(new) else None
        if before != after:
            pairs.append((before, after))
    if not pairs:
        return
    accounts = {profile.account_id} | set(
        await req.session.scalars(select(Site.account_id).where(Site.profile_id == profile.id).distinct())
    )
    for account_id in sorted(accounts):
        await queue_notification(
            req.session,
            account_id,
            "provision-changes",
            facts={
                "profile": profile.name,
                "changed_by": req.actor.login,
                "old_url": "; ".join(rules.redact_url(b) if b else "(none)" for b, _ in pairs),
                "new_url": "; ".join(rules.redact_url(a) if a else "(removed)" for _, a in pairs),
                "at": req.now.isoformat(),
            },
        )


@api.route(
    "DELETE",
    "/profiles/{id}",
    summary="Delete a profile no site uses (PRF-4: 409 profile-in-use)",
    action="profiles.write",
    process="PROFILE",
)
async def delete_profile(req: Req) -> Any:
    profile, _ = await profile_in_scope(req, req.int_param("id"))
    count = await _site_count(req, profile.id)
    if count:
        raise conflict(
            "profile-in-use",
            f"{count} site(s) use profile {profile.id}; associate them with another profile first (PRF-4)",
            count,
        )
    await req.session.delete(profile)
    req.audit_account = profile.account_id
    req.audit_message = f"deleted profile {profile.id} '{profile.name}'"
    return {"deleted": profile.id}
