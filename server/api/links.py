"""Admin API: account linking between a service provider and a reseller (ACC-8).

A service provider asks a reseller, named by its BP link ID, to link; the reseller approves or
rejects. Only a linked reseller receives devices from that provider (DEV-4, checked by the
devices API through `server.store.links.is_linked`).

Decisions:
- The reseller need not lie in the provider's subtree: linking exists precisely to reach a
  reseller the provider did not create. The BP link ID is what the provider must know; a wrong
  one answers 404 `unknown-bp-link-id`, the same for a missing, disabled or non-reseller account.
- A pair with a pending or approved request cannot ask again (409 `link-exists`); after a
  rejection it can.
- "Account Linking" notifications (NTF-1) go to the reseller when asked, and to both accounts
  when the reseller decides.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import aliased

from server.api.routing import Api, Reply, Req
from server.domain.errors import conflict, not_found
from server.domain.notifications import NotificationKind
from server.domain.permissions import PLATFORM
from server.store import links as store
from server.store.models import Account, LinkRequest
from server.store.notify import queue_notification

api = Api()

REQUEST = {
    "type": "object",
    "required": ["bp_link_id"],
    "additionalProperties": False,
    "properties": {"bp_link_id": {"type": "string", "minLength": 1, "maxLength": 64}},
}
_Provider = aliased(Account)
_Reseller = aliased(Account)


def _link_json(link: LinkRequest, provider: Account, reseller: Account) -> dict[str, Any]:
    return {
        "id": link.id,
        "provider_id": provider.id,
        "provider_name": provider.name,
        "reseller_id": reseller.id,
        "reseller_name": reseller.name,
        "bp_link_id": reseller.bp_link_id,
        "status": link.status,
        "created_at": link.created_at,
        "decided_at": link.decided_at,
    }


async def _notify(req: Req, accounts: list[Account], provider: Account, reseller: Account, status: str) -> None:
    for acc in accounts:
        await queue_notification(
            req.session,
            acc.id,
            NotificationKind.ACCOUNT_LINKING.value,
            facts={
                "provider": f"{provider.name} ({provider.id})",
                "reseller": f"{reseller.name} ({reseller.id})",
                "status": status,
                "at": req.now.isoformat(),
            },
        )


@api.route(
    "POST",
    "/link-requests",
    summary="Ask a reseller, by its BP link ID, to link (ACC-8)",
    action="links.request",
    process="LINK",
    body=REQUEST,
    status=201,
)
async def request_link(req: Req) -> Any:
    bp = req.body["bp_link_id"]
    reseller = await req.session.scalar(
        select(Account).where(Account.bp_link_id == bp, Account.type == "reseller", Account.enabled.is_(True))
    )
    if reseller is None:
        raise not_found("unknown-bp-link-id", f"no reseller has the BP link ID {bp!r}")
    provider = await req.session.get(Account, req.actor.acting_id)
    assert provider is not None
    existing = await store.live_request(req.session, provider.id, reseller.id)
    if existing is not None:
        raise conflict(
            "link-exists",
            f"a {existing.status.lower()} linking request {existing.id} to reseller {reseller.id} exists",
            existing.id,
        )
    link = LinkRequest(provider_id=provider.id, reseller_id=reseller.id, status=store.PENDING, created_at=req.now)
    req.session.add(link)
    await req.session.flush()
    await _notify(req, [reseller], provider, reseller, "sent and awaits the reseller's answer")
    req.audit_message = f"linking request {link.id} to reseller {reseller.id} (BP link ID {bp})"
    return Reply(_link_json(link, provider, reseller), 201)


@api.route(
    "GET",
    "/link-requests",
    summary="Linking requests: a provider's sent ones, a reseller's received ones (ACC-8)",
    action="links.read",
    process="LINK",
    query=(("status", "PENDING, APPROVED or REJECTED"),),
)
async def list_links(req: Req) -> Any:
    limit, offset = req.page()
    cond = []
    if req.actor.role != PLATFORM:
        me = req.actor.acting_id
        cond.append(or_(LinkRequest.provider_id == me, LinkRequest.reseller_id == me))
    if status := req.query("status"):
        cond.append(LinkRequest.status == status.upper())
    total = await req.session.scalar(select(func.count()).select_from(LinkRequest).where(*cond))
    rows = await req.session.execute(
        select(LinkRequest, _Provider, _Reseller)
        .join(_Provider, _Provider.id == LinkRequest.provider_id)
        .join(_Reseller, _Reseller.id == LinkRequest.reseller_id)
        .where(*cond)
        .order_by(LinkRequest.created_at.desc(), LinkRequest.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return {"items": [_link_json(link, p, r) for link, p, r in rows], "total": total}


async def _decide(req: Req, status: str) -> Any:
    link = await req.session.get(LinkRequest, req.int_param("id"))
    # Another reseller's request is invisible (ACC-7): 404, like a missing one.
    if link is None or link.reseller_id != req.actor.acting_id:
        raise not_found("link-request-not-found", f"no linking request {req.param('id')} addressed to you")
    # Conditional update: of an approve and a reject racing, exactly one decides.
    decided = await req.session.execute(
        update(LinkRequest)
        .where(LinkRequest.id == link.id, LinkRequest.status == store.PENDING)
        .values(status=status, decided_at=req.now)
        .execution_options(synchronize_session=False)
    )
    if decided.rowcount != 1:  # type: ignore[attr-defined]
        await req.session.refresh(link)
        raise conflict("link-request-decided", f"linking request {link.id} is already {link.status}", link.status)
    await req.session.refresh(link)
    provider = await req.session.get(Account, link.provider_id)
    reseller = await req.session.get(Account, link.reseller_id)
    assert provider is not None and reseller is not None
    await _notify(req, [provider, reseller], provider, reseller, status.lower())
    req.audit_message = f"linking request {link.id} from provider {provider.id} {status.lower()}"
    return _link_json(link, provider, reseller)


@api.route(
    "POST",
    "/link-requests/{id}/approve",
    summary="Approve a linking request (ACC-8; the reseller)",
    action="links.decide",
    process="LINK",
)
async def approve_link(req: Req) -> Any:
    return await _decide(req, store.APPROVED)


@api.route(
    "POST",
    "/link-requests/{id}/reject",
    summary="Reject a linking request (ACC-8; the reseller)",
    action="links.decide",
    process="LINK",
)
async def reject_link(req: Req) -> Any:
    return await _decide(req, store.REJECTED)
