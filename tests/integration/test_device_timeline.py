"""Issue 16 (S15): device status report-back over real sockets — a simulated phone (its own factory
certificate, mutual TLS) is imported, approved, claimed, enrolls and gets its identity certificate
by EST; its timeline shows each step in order, with the profile URL sent; another customer's
administrator gets 404; `GET /fleet/status` counts move as phones enroll and its cursor gives only
what is new."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7

from server.domain.timeline import PATH, STAGES
from server.runner import Running
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, entry, import_phones, nec, new_customer, new_site, zero_touch
from tests.integration.test_device_est import CSR_TYPE, openssl_csr

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
PROFILE_URL = "https://prov.example.com/phones/"


def steps_of(timeline: dict) -> dict[str, dict]:
    return {s["step"]: s for s in timeline["steps"]}


@needs_openssl
async def test_a_phone_timeline_from_import_to_identity_certificate(
    server: Running, admin: ApiClient, clock: FakeClock, tmp_path: Path
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    clock.advance(minutes=1)
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(PROFILE_URL, identity_certificates=True))
    await zero_touch(cust, [phone], site)
    path = f"/devices/{phone.mac}/timeline"

    before = (await cust.sp.get(path)).ok()
    assert [s["step"] for s in before["steps"]] == list(PATH)
    assert before["stage"] == "activated"
    pending = [s["step"] for s in before["steps"] if s["status"] == "pending"]
    assert pending == ["first_contact", "redirected", "identity_issued", "last_seen"]
    assert all(s["at"] is None for s in before["steps"] if s["status"] == "pending")

    clock.advance(minutes=1)
    redirect = await phone.enroll()
    assert redirect.status == 200 and redirect["result"] == "redirect"
    clock.advance(minutes=1)
    answer = await phone.request(
        "POST", redirect["identity"]["est"] + "/simpleenroll", data=openssl_csr(tmp_path, phone.mac), headers=CSR_TYPE
    )
    assert answer.status == 200, answer.body
    (issued,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer.raw))

    timeline = (await cust.sp.get(path)).ok()
    assert [s["step"] for s in timeline["steps"]] == list(PATH)
    assert all(s["status"] == "done" for s in timeline["steps"]), timeline["steps"]
    times = [s["at"] for s in timeline["steps"]]
    assert times == sorted(times)  # ISO 8601 UTC strings sort as times
    assert timeline["stage"] == "identity_issued" and timeline["failures"] == []
    step = steps_of(timeline)
    assert step["approved"]["detail"]["login"] == "admin"
    assert step["claimed"]["detail"]["account_id"] == cust.id
    assert step["claimed"]["detail"]["login"] == cust.sp.login_name
    assert step["associated"]["detail"]["site_id"] == site
    assert step["redirected"]["detail"]["profile_url"] == redirect["provisioning"]["url"]
    assert step["redirected"]["detail"]["profile_url"].startswith("https://prov.example.com/")
    assert step["identity_issued"]["detail"]["serial"] == format(issued.serial_number, "x")
    assert step["identity_issued"]["detail"]["not_after"] == issued.not_valid_after_utc.isoformat()
    assert step["last_seen"]["at"] == step["identity_issued"]["at"]
    assert step["first_contact"]["at"] == step["redirected"]["at"]

    # The customer sees its own device's timeline; another customer's administrator does not.
    assert (await cust.customer.get(path)).ok()["stage"] == "identity_issued"
    stranger = await new_customer(admin)
    for outsider in (stranger.sp, stranger.customer):
        refused = await outsider.get(path)
        assert (refused.status, refused["error"]) == (404, "device-not-found")
        assert (await outsider.get(f"/devices/{phone.mac}")).status == 404  # as GET /devices/{mac}


async def test_failures_and_a_claim_by_enrollment_code_are_on_the_timeline(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(PROFILE_URL))
    code = await nec(cust.sp, site)

    assert (await phone.enroll())["result"] == "code_required"
    clock.advance(seconds=30)
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    assert (await phone.enroll(wrong))["result"] == "code_invalid"
    clock.advance(seconds=30)
    assert (await phone.enroll(code))["result"] == "redirect"

    timeline = (await cust.customer.get(f"/devices/{phone.mac}/timeline")).ok()
    step = steps_of(timeline)
    assert timeline["stage"] == "redirected"
    assert step["claimed"]["detail"]["via"] == "enrollment-code"
    assert step["claimed"]["detail"]["account_id"] == cust.id
    assert step["associated"]["detail"]["site_id"] == site
    assert step["identity_issued"]["status"] == "pending"
    assert step["first_contact"]["at"] < step["redirected"]["at"]  # it first asked for a code
    (failure,) = timeline["failures"]
    assert failure["step"] == "wrong_code" and failure["ok"] is False
    assert failure["detail"]["result"] == "code_invalid"
    assert code not in str(failure) and wrong not in str(failure)  # never a code's digits
    assert [e["step"] for e in timeline["history"]] == [
        "approved", "first_contact", "code_requested", "wrong_code", "claimed", "associated", "activated", "redirected",
    ]


async def test_fleet_status_counts_move_and_the_cursor_gives_only_what_is_new(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(PROFILE_URL))
    await zero_touch(cust, phones, site)
    other = await new_customer(admin)
    stranger = Phone.make(server)
    await import_phones(admin, [stranger])
    await zero_touch(other, [stranger], await new_site(other.sp, other.id, entry(PROFILE_URL)))

    first = (await cust.sp.get("/fleet/status")).ok()
    assert set(first["counts"]["by_stage"]) == set(STAGES)
    assert first["counts"]["total"] == 3 and first["counts"]["by_stage"]["activated"] == 3
    assert {c["mac"] for c in first["changes"]} == {p.mac for p in phones}  # approved … activated
    assert {c["step"] for c in first["changes"]} == {"approved", "claimed", "associated", "activated"}
    cursor = first["cursor"]

    clock.advance(minutes=1)
    assert (await phones[0].enroll())["result"] == "redirect"
    assert (await stranger.enroll())["result"] == "redirect"  # another hierarchy's phone

    poll = (await cust.sp.get("/fleet/status", after=str(cursor))).ok()
    assert [(c["mac"], c["step"]) for c in poll["changes"]] == [
        (phones[0].mac, "first_contact"), (phones[0].mac, "redirected"),
    ]
    assert poll["changes"][1]["detail"]["profile_url"].startswith("https://prov.example.com/")
    assert poll["counts"]["by_stage"]["redirected"] == 1 and poll["counts"]["by_stage"]["activated"] == 2
    assert poll["more"] is False and poll["cursor"] > cursor

    again = (await cust.sp.get("/fleet/status", after=str(poll["cursor"]), counts="false")).ok()
    assert again["changes"] == [] and again["cursor"] == poll["cursor"] and "counts" not in again

    for phone in phones[1:]:
        assert (await phone.enroll())["result"] == "redirect"
    small = (await cust.sp.get("/fleet/status", after=str(poll["cursor"]), limit="3")).ok()
    assert len(small["changes"]) == 3 and small["more"] is True
    assert small["counts"] == poll["counts"]  # counted again at most every 2 s per scope; the changes are live
    clock.advance(seconds=3)
    rest = (await cust.sp.get("/fleet/status", after=str(small["cursor"]))).ok()
    assert len(rest["changes"]) == 1 and rest["more"] is False
    assert rest["counts"]["by_stage"]["redirected"] == 3 and rest["counts"]["counted_at"] > poll["counts"]["counted_at"]

    # Narrowed: the site, an account of the subtree; outside it 404; the other customer sees its own.
    by_site = (await cust.customer.get("/fleet/status", site_id=str(site))).ok()
    assert by_site["counts"]["total"] == 3
    assert (await cust.sp.get("/fleet/status", account_id=cust.id)).ok()["counts"]["total"] == 3
    outside = await cust.sp.get("/fleet/status", account_id=other.id)
    assert (outside.status, outside["error"]) == (404, "account-not-found")
    theirs = (await other.customer.get("/fleet/status")).ok()
    assert theirs["counts"]["total"] == 1
    assert {c["mac"] for c in theirs["changes"]} == {stranger.mac}
    bad = await cust.sp.get("/fleet/status", after="-1")
    assert (bad.status, bad["error"]) == (400, "invalid-after")
