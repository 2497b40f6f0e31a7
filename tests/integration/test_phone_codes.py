"""Code entry and the refusals (ENR-1, ENR-3, EC-6, EC-7, LCK-2, DEV-2) with simulated phones
against the reference server over real mutual-TLS sockets."""

from __future__ import annotations

from harness.fileserver import FileServer
from simulators.phone import OutcomeResult, User
from tests.integration.device_client import device_row, entry, nec, new_site
from tests.integration.test_phone_lab import FILES_HOST, Lab, event, lab, names, provisioning_files

__all__ = ["lab"]


async def code_site(lab: Lab, files: FileServer, *, pin: str | None = None) -> tuple[str, int, str]:
    """A customer with a site whose profile points at `files` (its CA as root CA): (account id,
    site id, the site's 8-digit NEC)."""
    cust = await lab.customer()
    url = f"https://{FILES_HOST}:{files.https_port}/$MODEL4/"
    provisioning = entry(url, server_type="HTTPS", root_ca_pem=files.ca_pem.decode())
    site = await new_site(cust.sp, cust.id, provisioning, **({"pin": pin} if pin else {}))
    return cust.id, site, await nec(cust.sp, site)


async def test_enr3_ec7_nec8_typed_on_the_phone_provisions_it(lab: Lab) -> None:
    """ENR-3, EC-7: an imported, unclaimed J179 is asked for a code; the user's NEC enrolls it."""
    files = await lab.files(provisioning_files("J179"))
    _, site, code = await code_site(lab, files)
    phone = lab.phone("J179", user=User(codes=[code]))
    await lab.import_phones([phone])

    outcome = await phone.boot()

    assert outcome.result is OutcomeResult.PROVISIONED
    assert event(phone, "code-prompt")["formats"] == ["nec8", "nec12", "pec12"]
    assert event(phone, "code-typed") == {"kind": "8-digit"}
    answers = [e.detail["result"] for e in phone.events if e.name == "enroll-answer"]
    assert answers == ["code_required", "redirect"]
    assert code not in str([e.to_json() for e in phone.events])  # codes never reach the log
    row = await device_row(lab.server, phone.mac)
    assert row.activated and row.site_id == site


async def test_ec6_pec_on_a_cu360_and_a_pec_a_vantage_cannot_use(lab: Lab) -> None:
    """EC-6, 'Provisioning enrollment code' (CU360 from 11.3.0.40, N/A on Vantage): the CU360's PEC
    enrolls it; a K175 takes 12 digits (it has NEC-12) but the server counts a PEC as a wrong code
    for it, and with no more codes the phone ends `code-invalid`."""
    files = await lab.files(provisioning_files("CU36", "K175"))
    account, _, _ = await code_site(lab, files, pin="0420")
    cu360 = lab.phone("CU360", "11.4.0.20", user=User(codes=[account + "0420"]))
    k175 = lab.phone("K175", "3.1", user=User(codes=[account + "0420"]))
    await lab.import_phones([cu360, k175])

    enrolled, refused = await cu360.boot(), await k175.boot()

    assert event(cu360, "code-typed") == {"kind": "12-digit"}
    assert [e.detail["result"] for e in cu360.events if e.name == "enroll-answer"] == ["code_required", "redirect"]
    assert enrolled.result is OutcomeResult.PROVISIONED
    assert event(k175, "code-prompt")["formats"] == ["nec8", "nec12"]
    assert (refused.result, refused.detail) == ("code-invalid", {"attempts_left": 2})


async def test_lck2_wrong_codes_lock_the_phone_at_the_servers_limit(lab: Lab) -> None:
    """LCK-2: the third wrong code answers `locked` (limit and time from the server's policy)."""
    phone = lab.phone("J179", user=User(codes=["00000001", "00000002", "00000003", "00000004"]))
    await lab.import_phones([phone])
    await lab.customer()

    outcome = await phone.boot()

    assert (outcome.result, outcome.detail) == ("locked", {"retry_after": 1800})
    answers = [(e.detail["status"], e.detail["result"]) for e in phone.events if e.name == "enroll-answer"]
    assert answers == [(200, "code_required"), (422, "code_invalid"), (422, "code_invalid"), (423, "locked")]
    assert [e.detail["attempts_left"] for e in phone.events if e.name == "code-refused-by-server"] == [2, 1]
    assert phone.state == "failed"
    assert (await device_row(lab.server, phone.mac)).locked_until is not None


async def test_enr3_codes_the_firmware_cannot_take_are_refused_on_the_phone(lab: Lab) -> None:
    """ENR-3 on the phone, '12-digit numeric enrollment code' (N/A on B199): the B199 refuses a
    12-digit entry and letters itself — nothing is sent, nothing counted — then sends the NEC."""
    files = await lab.files(provisioning_files("B199"))
    _, _, code = await code_site(lab, files)
    phone = lab.phone("B199", "1.0.4.0", user=User(codes=["123456789012", "1234abcd", code]))
    await lab.import_phones([phone])

    assert (await phone.boot()).result is OutcomeResult.PROVISIONED
    refusals = [e.detail for e in phone.events if e.name == "code-refused"]
    assert refusals == [
        {"reason": "code-length-not-supported", "length": 12},
        {"reason": "code-not-numeric", "length": 8},
    ]
    assert event(phone, "code-prompt")["formats"] == ["nec8"]
    assert [e.detail["result"] for e in phone.events if e.name == "enroll-answer"] == ["code_required", "redirect"]
    assert (await device_row(lab.server, phone.mac)).failed_attempts == 0


async def test_enr3_cancelled_code_entry_goes_to_manual_server_entry(lab: Lab) -> None:
    """research §11.3: cancelling code entry prompts for the configuration server; without one
    typed the phone waits there (`manual-entry`); with one it provisions from it."""
    files = await lab.files(provisioning_files("J179"))
    waiting = lab.phone("J179", user=User(codes=[]))
    typed = lab.phone("J179", user=User(codes=[], cancel_to_manual=f"http://{FILES_HOST}:{files.http_port}/J179"))
    await lab.import_phones([waiting, typed])

    idle, manual = await waiting.boot(), await typed.boot()

    assert (idle.result, idle.reason) == ("manual-entry", "code-entry-cancelled")
    assert waiting.state == "manual-entry" and names(waiting)[-4:] == ["code-cancelled", "manual-entry",
                                                                       "provisioning-source", "outcome"]
    assert manual.result is OutcomeResult.PROVISIONED
    assert manual.fetched == ["J179/J100Supgrade.txt", "J179/46xxsettings.txt"]
    assert event(typed, "manual-server-entered")["url"].startswith("http://files.enrollab.test:")


async def test_enr1_unknown_and_dev2_not_approved_phones(lab: Lab) -> None:
    """ENR-1: a phone that was never imported is `unknown-device`; DEV-2: an imported phone not
    yet approved is `rejected` / `not-approved`."""
    stranger, pending = lab.phone("J179"), lab.phone("K175", "3.1")
    await lab.import_phones([pending], approve=False)

    unknown, rejected = await stranger.boot(), await pending.boot()

    assert (unknown.result, unknown.reason) == ("unknown-device", None)
    assert (rejected.result, rejected.reason) == ("rejected", "not-approved")
    assert rejected.detail["detail"]
    assert stranger.state == pending.state == "failed"
