"""ACC-8: account links between a service provider and a reseller, as the device rules need them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.store.models import LinkRequest

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
# A pair with one of these may not ask again: it is either waiting for an answer or linked.
LIVE = (PENDING, APPROVED)


async def is_linked(session: AsyncSession, provider_id: str, reseller_id: str) -> bool:
    """ACC-8, DEV-4: has `reseller_id` approved a linking request from `provider_id`?

    Only a linked reseller receives devices from that provider.
    """
    found = await session.scalar(
        select(LinkRequest.id)
        .where(
            LinkRequest.provider_id == provider_id,
            LinkRequest.reseller_id == reseller_id,
            LinkRequest.status == APPROVED,
        )
        .limit(1)
    )
    return found is not None


async def live_request(session: AsyncSession, provider_id: str, reseller_id: str) -> LinkRequest | None:
    """ACC-8: the pending or approved request between the pair, if any."""
    return await session.scalar(
        select(LinkRequest)
        .where(
            LinkRequest.provider_id == provider_id,
            LinkRequest.reseller_id == reseller_id,
            LinkRequest.status.in_(LIVE),
        )
        .order_by(LinkRequest.id.desc())
        .limit(1)
    )
