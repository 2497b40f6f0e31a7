"""DEV-3 claims through the admin API, as PROTOCOL §3 fixes them (issue 13): `POST /devices/claim`
{`mac`, `serial`} — both, the serial printed on the box being the proof of possession (SPEC.md's
"by MAC, serial number, or both" let anyone who saw a MAC on the network take the phone). A wrong
pair must tell nothing an unknown device would not, and wrong pairs must run into a budget. A bulk
claim job (`POST /jobs` with `claim`) is no way around the proof: by MACs alone it claims nothing.

Driven from outside only, so any server implementing PROTOCOL.md can be tested."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.server.client import Org, Probe, expect_error, import_probes, new_org, tag
from simulators.admin_client import AdminError

# How many wrong pairs a claimant may send before the server must push back. PROTOCOL.md names no
# number; a hundred wrong serials for one account within a test is no typing mistake.
GUESSES = 100


async def _claim(org: Org, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """One claim as the service provider, with the answer's status, headers and body."""
    sp = org.sp
    headers = {"Authorization": f"Bearer {sp.token}"}
    async with sp.http.post(sp.base + "/devices/claim", json=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def _colons(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2)).lower()


@pytest.mark.rule("DEV-3")
async def test_a_claim_with_the_mac_and_the_serial_moves_the_device_to_the_claimant(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        await org.sp.call("POST", "/devices/claim", {"mac": _colons(probe.mac), "serial": probe.serial})
        device = await org.sp.call("GET", f"/devices/{probe.mac}")
        assert device["owner_id"] == org.sp_id, device


@pytest.mark.rule("DEV-3", "PROTOCOL-3")
async def test_a_claim_without_the_serial_or_without_the_mac_is_refused(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        for half in ({"mac": probe.mac}, {"serial": probe.serial}):
            await expect_error(org.sp.call("POST", "/devices/claim", half), 422)
        await expect_error(org.sp.call("GET", f"/devices/{probe.mac}"), 404)  # still nobody's


@pytest.mark.rule("DEV-3")
async def test_a_wrong_pair_answers_exactly_like_an_unknown_device(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        first, second = Probe.make(enrollment_server), Probe.make(enrollment_server)
        await import_probes(admin, [first, second])
        unknown = Probe.make(enrollment_server)  # never imported
        tries = {
            "unknown device": (unknown.mac, unknown.serial),
            "known MAC, wrong serial": (first.mac, unknown.serial),
            "wrong MAC, known serial": (unknown.mac, first.serial),
            "MAC and serial of two devices": (first.mac, second.serial),
        }
        answers = {name: await _claim(org, {"mac": mac, "serial": serial}) for name, (mac, serial) in tries.items()}
        status, _, body = answers.pop("unknown device")
        assert 400 <= status < 500 and isinstance(body, dict), (status, body)
        for name, (other_status, _, other) in answers.items():
            assert other_status == status, f"{name}: {other_status} vs {status} for an unknown device"
            assert isinstance(other, dict) and sorted(other) == sorted(body), f"{name}: {other} vs {body}"
            assert other.get("error") == body.get("error"), f"{name}: {other} vs {body}"
        for probe in (first, second):
            await expect_error(org.sp.call("GET", f"/devices/{probe.mac}"), 404)


@pytest.mark.rule("DEV-3")
async def test_wrong_pairs_run_into_a_budget_answered_429_with_retry_after(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        refused = None
        for i in range(GUESSES):
            status, headers, body = await _claim(org, {"mac": probe.mac, "serial": f"GUESS{i:06d}"})
            if status == 429:
                refused = (i, headers, body)
                break
            assert 400 <= status < 500, (i, status, body)
        assert refused is not None, f"{GUESSES} wrong serials for one MAC were all answered; no 429"
        tries, headers, body = refused
        assert tries >= 1 and int(headers.get("Retry-After", "0")) >= 1, (tries, headers, body)
        assert isinstance(body, dict) and body.get("error"), body
        # The right pair waits too (the budget is checked before anything is looked up) ...
        status, _, _ = await _claim(org, {"mac": probe.mac, "serial": probe.serial})
        assert status == 429
        # ... and another account's claims are not held back by this one's guesses.
        neighbour = await new_org(admin)
        await neighbour.sp.call("POST", "/devices/claim", {"mac": probe.mac, "serial": probe.serial})


@pytest.mark.rule("DEV-3", "DEV-9", "PROTOCOL-3")
async def test_a_claim_job_without_proof_claims_nothing(enrollment_server) -> None:  # type: ignore[no-untyped-def]
    """A claim job naming devices by MAC alone (PROTOCOL §3's `macs`) must not take them: the server
    may refuse the job (4xx) or run it, but afterwards the device is still nobody's."""
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        body = {"name": f"claim by MAC {tag()}", "actions": ["claim"], "macs": [probe.mac]}
        try:
            job = await org.sp.call("POST", "/jobs", body)
        except AdminError as exc:
            assert 400 <= exc.status < 500 and exc.status != 429, (exc.status, exc.error)
        else:
            done = await org.sp.wait_job(int(job["id"]), timeout=60)
            assert done["status"] != "COMPLETE", f"a claim job by MAC alone completed: {done}"
        await expect_error(org.sp.call("GET", f"/devices/{probe.mac}"), 404)  # still nobody's
        # The right proof still claims it (the refusal was about the proof, not the device).
        await org.sp.call("POST", "/devices/claim", {"mac": probe.mac, "serial": probe.serial})
        assert (await org.sp.call("GET", f"/devices/{probe.mac}"))["owner_id"] == org.sp_id
