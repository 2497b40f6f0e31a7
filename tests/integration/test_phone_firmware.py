"""Firmware with simulated phones against the reference server (FW-2, FW-3, FW-6): download,
SHA-256 check, reboot into the new version, and discovery again only where "Re-trigger after
firmware upgrade" is supported at the new version."""

from __future__ import annotations

import io
import zipfile

from simulators.firmware import REBOOT_SECONDS
from simulators.phone import Faults, OutcomeResult, User
from tests.integration.device_client import LATEST_J, entry, nec, new_site
from tests.integration.test_phone_lab import (
    FILES_HOST,
    SETTINGS,
    UPGRADE_J100,
    Lab,
    event,
    lab,
    names,
    provisioning_files,
)

__all__ = ["lab"]


async def test_fw2_fw6_upgrade_reboot_and_retrigger_then_code_entry(lab: Lab) -> None:
    """FW-2: unclaimed J179 4.0.6.0 and K175 2.0 are sent the latest image; both re-trigger
    discovery at the new version (FW-6), are asked for a code and enroll with the NEC. A CU360
    (Firmware upgrade N/A) below latest is not upgraded."""
    files = await lab.files(provisioning_files("J179", "K175"))
    cust = await lab.customer()
    url = f"https://{FILES_HOST}:{files.https_port}/$MODEL4/"
    site = await new_site(cust.sp, cust.id, entry(url, root_ca_pem=files.ca_pem.decode()))
    code = await nec(cust.sp, site)
    j179 = lab.phone("J179", "4.0.6.0", user=User(codes=[code]))
    k175 = lab.phone("K175", "2.0", user=User(codes=[code]))
    cu360 = lab.phone("CU360", "11.3.0.40", user=User(codes=[]))
    await lab.import_phones([j179, k175, cu360])
    started = lab.clock.now()

    outcomes = [await p.boot() for p in (j179, k175, cu360)]

    assert [(o.result, o.firmware) for o in outcomes] == [
        ("provisioned", LATEST_J),
        ("provisioned", "3.1"),
        ("manual-entry", "11.3.0.40"),
    ]
    sequence = [n for n in names(j179) if n in ("firmware-download", "firmware-verified", "reboot", "booted",
                                                   "re-trigger", "code-typed", "redirect")]
    assert sequence == ["firmware-download", "firmware-verified", "reboot", "booted", "re-trigger", "code-typed",
                        "redirect"]
    assert event(j179, "reboot") == {"from": "4.0.6.0", "to": LATEST_J}
    reported = [e.detail["firmware"] for e in j179.events if e.name == "enroll-request"]
    assert reported == ["4.0.6.0", LATEST_J, LATEST_J]
    reboot, booted = (next(e for e in j179.events if e.name == n) for n in ("reboot", "booted"))
    assert booted.at - reboot.at == REBOOT_SECONDS and lab.clock.now() - started >= 2 * REBOOT_SECONDS
    assert booted.state == "booting" and reboot.state == "rebooting"
    assert "firmware-download" not in names(cu360)


async def test_fw6_no_retrigger_at_the_new_version_leaves_the_phone_idle(lab: Lab) -> None:
    """FW-6: K175 re-triggers only from 2.0. With the catalog's latest K175 set to 1.1SP1, an
    unclaimed K175 at 1.1 is upgraded to 1.1SP1, reboots, and does not run discovery again."""
    (await lab.admin.call("PUT", "/device-families/K175", {"latest": "1.1SP1"})).ok()
    phone = lab.phone("K175", "1.1", user=User(codes=["12345678"]))
    await lab.import_phones([phone])

    outcome = await phone.boot()

    assert (outcome.result, outcome.reason, outcome.firmware) == (
        "upgraded-no-retrigger",
        "re-trigger-not-supported",
        "1.1SP1",
    )
    assert phone.state == "idle" and phone.firmware == "1.1SP1"
    assert "needs 2.0" in event(phone, "no-re-trigger")["explain"]
    assert [e.name for e in phone.events].count("enroll-request") == 1


async def test_fw_corrupted_download_fails_the_upgrade_and_keeps_the_version(lab: Lab) -> None:
    phone = lab.phone("J179", "4.0.6.0", faults=Faults(corrupt_firmware=True))
    await lab.import_phones([phone])

    outcome = await phone.boot()

    assert (outcome.result, outcome.reason, outcome.firmware) == (
        "upgrade-failed",
        "firmware-checksum-mismatch",
        "4.0.6.0",
    )
    assert "reboot" not in names(phone)


def des_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("46xxsettings.txt", SETTINGS)
        archive.writestr("J100Supgrade.txt", UPGRADE_J100)
    return buffer.getvalue()


async def test_fw3_firmware_in_a_des_redirect_then_retrigger_and_provision(lab: Lab) -> None:
    """FW-3, ENR-2: with the customer's firmware switch on, a claimed J179 at 4.1.3.0 on a DES
    site gets a redirect carrying the latest image; it upgrades, re-triggers discovery (FW-6), is
    redirected again without firmware and fetches its files from the server (ENR-6)."""
    phone = lab.phone("J179", "4.1.3.0")
    await lab.import_phones([phone])
    cust = await lab.customer()
    site = await new_site(cust.sp, cust.id, entry("https://des.example.com/", server_type="DES"))
    (await cust.sp.call("PUT", f"/sites/{site}/config", data=des_zip(), content_type="application/zip")).ok()
    (await cust.sp.call("PUT", f"/accounts/{cust.id}/firmware-upgrade", {"enabled": True})).ok()
    await lab.activate(cust, [phone], site)

    outcome = await phone.boot()

    assert outcome.result is OutcomeResult.PROVISIONED and outcome.firmware == LATEST_J
    redirects = [e.detail["firmware"] for e in phone.events if e.name == "redirect"]
    assert redirects == [LATEST_J, None]
    assert outcome.fetched == ["device/v1/files/J100Supgrade.txt", "device/v1/files/46xxsettings.txt"]
