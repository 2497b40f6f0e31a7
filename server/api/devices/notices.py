"""Admin API, devices: the claim and association notifications of one call or job (NTF-1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.api.devices.schemas import NOTIFY_MACS
from server.domain import devices as rules
from server.domain.notifications import NotificationKind
from server.store.notify import queue_notification


class Notices:
    """Collects claimed/associated devices per account and queues one notification each.

    One email per call or job and account, naming up to NOTIFY_MACS devices: a 50 000-device job
    must not queue 50 000 emails.
    """

    def __init__(self) -> None:
        self.claimed: dict[str, list[tuple[str, str, str]]] = {}
        self.associated: dict[tuple[str, int | None], list[tuple[str, str, str]]] = {}
        self.counts: dict[tuple[str, str, int | None], int] = {}

    def add(self, before: rules.DeviceState, after: rules.DeviceState, actions: Sequence[str], actor_id: str) -> None:
        """Note what one device's successful actions mean for the notifications."""
        dev = (after.mac, after.model, after.serial)
        if before.owner_id is None and after.owner_id is not None and {"claim", "sync"} & set(actions):
            self._keep(self.claimed.setdefault(actor_id, []), ("claim", actor_id, None), dev)
        moved = after.owner_id != before.owner_id or after.site_id != before.site_id
        if "associate" in actions and after.owner_id is not None and moved:
            key = (after.owner_id, after.site_id)
            self._keep(self.associated.setdefault(key, []), ("associate", *key), dev)

    def _keep(
        self, bucket: list[tuple[str, str, str]], key: tuple[str, str, int | None], dev: tuple[str, str, str]
    ) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(bucket) < NOTIFY_MACS:
            bucket.append(dev)

    async def queue(self, session: AsyncSession, actor_login: str, at: datetime) -> None:
        for account_id, devs in self.claimed.items():
            total = self.counts[("claim", account_id, None)]
            await queue_notification(
                session,
                account_id,
                NotificationKind.CLAIMING_DEVICE.value,
                facts={
                    **_device_facts(devs, total),
                    "account": account_id,
                    "changed_by": actor_login,
                    "at": at.isoformat(),
                },
            )
        for (account_id, site_id), devs in self.associated.items():
            total = self.counts[("associate", account_id, site_id)]
            await queue_notification(
                session,
                account_id,
                NotificationKind.ASSOCIATING_DEVICE.value,
                facts={
                    **_device_facts(devs, total),
                    "account": account_id,
                    "site": site_id if site_id is not None else "(none)",
                    "changed_by": actor_login,
                    "at": at.isoformat(),
                },
            )


def _device_facts(devs: list[tuple[str, str, str]], total: int) -> dict[str, str]:
    if total == 1:
        mac, model, serial = devs[0]
        return {"mac": mac, "model": model, "serial": serial}
    named = ", ".join(mac for mac, _, _ in devs)
    more = f" and {total - len(devs)} more" if total > len(devs) else ""
    models = sorted({model for _, model, _ in devs})
    return {
        "mac": f"{total} devices: {named}{more}",
        "model": models[0] if len(models) == 1 and not more else "various",
        "serial": "various",
    }


# --- lifecycle calls ------------------------------------------------------------------------------

