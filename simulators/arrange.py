"""Arrange a fleet on an enrollment server through its admin API (PROTOCOL §3), as an
administrator would before the phones are unboxed.

One fleet (or shard) gets its own service provider, customer and site, so fleets never meet:
1. the platform administrator imports the phones with their factory-certificate thumbprints
   (DEV-1, in batches) and approves them (DEV-2);
2. a new service provider creates a customer, a profile whose one entry points at the fleet's
   provisioning file server (PRF-1, group `group`), a site with that profile and a PIN (SIT-1),
   and an 8-digit NEC for as many phones as will type it (EC-1);
3. the zero-touch share is claimed (by MAC and serial number, DEV-3), associated with the site
   and activated in one bulk job (DEV-9, DEV-6). The code shares stay unclaimed (DEV-7): they
   enroll with the NEC or the PEC (account ID + PIN, EC-6); the wrong-code share types codes
   that are neither.

Everything is checked: a rejected import row (a MAC this server already holds, say) stops the
run with the rows' reasons rather than booting phones whose outcome would be meaningless.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.admin_client import AdminClient, AdminError

__all__ = ["ArrangeError", "Arranged", "PhoneRow", "arrange"]

IMPORT_BATCH = 5_000
APPROVE_BATCH = 5_000


class ArrangeError(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error, self.detail = error, detail


@dataclass(frozen=True, slots=True)
class PhoneRow:
    mac: str
    serial: str
    model: str
    thumbprint: str
    arrangement: str


@dataclass
class Arranged:
    """What the phones' users need and what the report shows."""

    service_provider: str
    customer: str
    site_id: int
    nec: str | None
    pec: str
    lockout_attempts: int
    lockout_minutes: int
    counts: dict[str, int] = field(default_factory=dict)


async def arrange(
    admin: AdminClient,
    phones: Sequence[PhoneRow],
    *,
    provisioning_url: str,
    label: str,
    group: int = 0,
    root_ca_pem: str | None = None,
) -> Arranged:
    counts: dict[str, int] = {}
    for phone in phones:
        counts[phone.arrangement] = counts.get(phone.arrangement, 0) + 1
    await _import(admin, phones, label)
    for batch in _batches([p.mac for p in phones], APPROVE_BATCH):
        await admin.call("POST", "/devices/approve", {"macs": batch})

    tag = secrets.token_hex(3)
    sp_id, sp = await admin.new_administered_account(
        "service_provider", f"{label} provider", f"fleet-{label}-{tag}@enrollab.test"
    )
    customer = await sp.call("POST", "/accounts", {"type": "customer", "name": f"{label} customer"})
    entry: dict[str, Any] = {
        "server_type": "HTTPS" if provisioning_url.startswith("https:") else "HTTP",
        "url": provisioning_url,
        "identity_certificates": False,
        "group": group,
    }
    if root_ca_pem:
        entry["root_ca_pem"] = root_ca_pem
    profile = await sp.call("POST", "/profiles", {"name": f"{label} phones", "entries": [entry]})
    pin = f"{secrets.randbelow(10_000):04d}"
    site = await sp.call(
        "POST", f"/accounts/{customer['id']}/sites", {"name": f"{label} site", "profile_id": profile["id"], "pin": pin}
    )
    nec = None
    if counts.get("nec"):
        answer = await sp.call(
            "POST", f"/sites/{site['id']}/nec", {"length": 8, "total_devices": counts["nec"], "expiry": None}
        )
        nec = str(answer["code"])
    pec = str((await sp.call("GET", f"/sites/{site['id']}/pec"))["code"])
    # DEV-3: a claim job names each phone with the serial printed on its box (the proof of possession).
    zero_touch = [{"mac": p.mac, "serial": p.serial} for p in phones if p.arrangement == "zero-touch"]
    if zero_touch:
        job = await sp.call(
            "POST",
            "/jobs",
            {
                "name": f"{label} zero-touch",
                "actions": ["claim", "associate", "activate"],
                "account_id": customer["id"],
                "site_id": site["id"],
                "devices": zero_touch,
            },
        )
        done = await sp.wait_job(int(job["id"]))
        if done["status"] != "COMPLETE":
            raise ArrangeError("arrange-job-failed", f"the zero-touch job {job['id']} ended {done['status']}: {done}")
    lockout = await admin.call("GET", "/settings/lockout")
    return Arranged(
        service_provider=sp_id,
        customer=str(customer["id"]),
        site_id=int(site["id"]),
        nec=nec,
        pec=pec,
        lockout_attempts=int(lockout["attempts"]),
        lockout_minutes=int(lockout["minutes"]),
        counts=counts,
    )


async def _import(admin: AdminClient, phones: Sequence[PhoneRow], label: str) -> None:
    for batch in _batches(list(phones), IMPORT_BATCH):
        rows = [{"mac": p.mac, "serial": p.serial, "model": p.model, "thumbprint": p.thumbprint} for p in batch]
        try:
            job = await admin.call("POST", "/devices/import", {"devices": rows})
        except AdminError as exc:
            raise ArrangeError("import-refused", f"the server refused the fleet's import: {exc}") from None
        if job.get("status") == "IN PROGRESS":
            job = await admin.wait_job(int(job["id"]))
        rejected = (job.get("summary") or {}).get("rejected", 0)
        if rejected or job.get("status") != "COMPLETE":
            details = await admin.call("GET", f"/jobs/{job['id']}", params={"limit": "5", "status": "FAIL"})
            reasons = "; ".join(
                f"row {r.get('row')}: {r.get('field')} {r.get('reason')}" for r in details["results"]["items"]
            )
            raise ArrangeError(
                "import-rejected",
                f"{rejected} of {len(rows)} phones were not imported ({reasons or job.get('status')}). "
                "A MAC or serial this server already holds usually means the same --seed ran here before: "
                "use another --seed or a fresh server.",
            )


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
