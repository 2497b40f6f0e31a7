"""PNP-1: two scans of one QR code at the same moment, over real sockets (SQLite and, with
ENROLLAB_TEST_DB, PostgreSQL): exactly one onboards the device, the other is 409 `qr-code-used`,
and the device is at the winner's site only; the same for two codes of one device (a reprinted
batch) scanned at once."""

from __future__ import annotations

import asyncio

from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, device_row, entry, import_phones, new_customer, new_site


async def test_pnp1_two_scans_of_one_code_at_once_onboard_once(server: Running, admin: ApiClient) -> None:
    here, there = await new_customer(admin), await new_customer(admin)
    sites = [await new_site(c.sp, c.id, entry()) for c in (here, there)]
    phones = [Phone.make(server) for _ in range(4)]
    await import_phones(admin, phones)
    batch = (await admin.post("/pnp/qr-batches", {"devices": [p.mac for p in phones]})).ok()

    for code in batch["codes"]:
        # One scanner of each hierarchy, each into its own customer's site.
        answers = await asyncio.gather(
            *(
                c.sp.post("/pnp/scan", {"payload": code["payload"], "account_id": c.id, "site_id": site})
                for c, site in zip((here, there), sites, strict=True)
            )
        )
        statuses = sorted(a.status for a in answers)
        assert statuses == [200, 409], [a.body for a in answers]
        winner = next(a for a in answers if a.status == 200)
        loser = next(a for a in answers if a.status == 409)
        assert loser["error"] == "qr-code-used", loser.body
        row = await device_row(server, code["mac"])
        assert (row.owner_id, row.site_id, row.activated) == (winner["account_id"], winner["site_id"], True)

    shown = (await admin.get(f"/pnp/qr-batches/{batch['number']}")).ok()
    assert (shown["total"], shown["scanned"]) == (4, 4)


async def test_pnp1_two_codes_of_one_device_scanned_at_once_onboard_once(server: Running, admin: ApiClient) -> None:
    here, there = await new_customer(admin), await new_customer(admin)
    sites = [await new_site(c.sp, c.id, entry()) for c in (here, there)]
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    macs = [p.mac for p in phones]
    first, reprint = [(await admin.post("/pnp/qr-batches", {"devices": macs})).ok() for _ in range(2)]

    for one, other in zip(first["codes"], reprint["codes"], strict=True):
        answers = await asyncio.gather(
            *(
                c.sp.post("/pnp/scan", {"payload": code["payload"], "account_id": c.id, "site_id": site})
                for c, site, code in zip((here, there), sites, (one, other), strict=True)
            )
        )
        assert sorted(a.status for a in answers) == [200, 409], [a.body for a in answers]
        loser = next(a for a in answers if a.status == 409)
        assert loser["error"] in ("qr-code-used", "qr-code-revoked"), loser.body
        winner = next(a for a in answers if a.status == 200)
        row = await device_row(server, one["mac"])
        assert (row.owner_id, row.site_id) == (winner["account_id"], winner["site_id"])
