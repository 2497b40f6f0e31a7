"""PNP-1 plug-and-play onboarding through the admin API, as docs/pnp.md fixes the contract:
pre-registered devices enroll on first contact; QR batches of one-time codes are scanned on site
to onboard devices and are monitored by batch number; a reprovisioned device keeps its identity
and gets the new site's profile at its next enrollment; a replaced device's certificate no longer
enrolls while its replacement takes its place.

Bad input — a malformed payload, a forged or reused claim token, a replacement MAC that exists —
each gets a clear 4xx and nothing is written. Driven from outside only (probe devices speak the
device protocol over mutual TLS; the QR payload is parsed here from its documented format), so
any server implementing the contract can be tested."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from conformance.server.client import Org, Probe, expect_error, import_probes, new_org, zero_touch

pytestmark = pytest.mark.rule("PNP-1")

OTHER_URL = "https://other.enrollab.test/$MODEL4/"


def _payload_fields(payload: str) -> dict[str, str]:
    """docs/pnp.md: `enrollab:onboard?v=1&b=<batch>&m=<MAC>&s=<serial>&t=<token>`."""
    scheme, _, query = payload.partition("?")
    assert scheme == "enrollab:onboard", payload
    fields = {k: v[0] for k, v in parse_qs(query, strict_parsing=True).items()}
    assert set(fields) == {"v", "b", "m", "s", "t"} and fields["v"] == "1", fields
    return fields


async def _second_site(org: Org, url: str = OTHER_URL) -> int:
    profile = await org.sp.call(
        "POST",
        "/profiles",
        {"name": f"conf-pnp-{org.site_id}-b", "entries": [{"server_type": "HTTPS", "url": url, "group": 0}]},
    )
    site = await org.sp.call(
        "POST",
        f"/accounts/{org.customer_id}/sites",
        {"name": f"conf-pnp-site-{org.site_id}-b", "profile_id": profile["id"]},
    )
    return int(site["id"])


async def _holder(org: Org, probe: Probe) -> tuple[Any, Any, Any]:
    device = await org.sp.call("GET", f"/devices/{probe.mac}")
    return device["owner_id"], device["site_id"], device["activated"]


async def test_a_preregistered_device_enrolls_on_first_contact(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        answer = await org.sp.call(
            "POST",
            "/pnp/registrations",
            {
                "account_id": org.customer_id,
                "site_id": org.site_id,
                "devices": [{"mac": probe.mac, "serial": probe.serial}],
            },
        )
        assert [r["outcome"] for r in answer["results"]] == ["ready"], answer
        reply = await probe.enroll()
        assert reply.status == 200 and reply.result == "redirect", reply.body


async def test_qr_codes_onboard_once_and_batches_are_monitored(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        probes = [Probe.make(enrollment_server) for _ in range(3)]
        await import_probes(admin, probes)
        batch = await admin.call(
            "POST",
            "/pnp/qr-batches",
            {"devices": [p.mac for p in probes], "account_id": org.customer_id, "site_id": org.site_id},
        )
        assert batch["total"] == 3 and batch["scanned"] == 0, batch
        payloads = {c["mac"]: c["payload"] for c in batch["codes"]}
        for probe in probes:
            fields = _payload_fields(payloads[probe.mac])
            assert (fields["m"], fields["s"], fields["b"]) == (probe.mac, probe.serial, batch["number"])
            assert len(fields["t"]) >= 22, "a claim token of at least 128 bits"

        onboarded = await org.sp.call("POST", "/pnp/scan", {"payload": payloads[probes[0].mac]})
        assert onboarded["mac"] == probes[0].mac and onboarded["site_id"] == org.site_id, onboarded
        reply = await probes[0].enroll()
        assert reply.status == 200 and reply.result == "redirect", reply.body

        untouched = [await _holder(org, probes[0])]
        await expect_error(org.sp.call("POST", "/pnp/scan", {"payload": payloads[probes[0].mac]}), 409, "qr-code-used")
        forged = payloads[probes[1].mac].rsplit("&t=", 1)[0] + "&t=" + "Q" * 32
        await expect_error(org.sp.call("POST", "/pnp/scan", {"payload": forged}), 403, "qr-token-invalid")
        for bad in ("enrollab:onboard?v=1&m=zz", "https://example.com/", "enrollab:onboard?" + "x" * 600):
            await expect_error(org.sp.call("POST", "/pnp/scan", {"payload": bad}), 422)
        assert [await _holder(org, probes[0])] == untouched
        for probe in probes[1:]:  # nothing was written: nobody in the hierarchy holds them
            await expect_error(org.sp.call("GET", f"/devices/{probe.mac}"), 404)

        shown = await admin.call("GET", f"/pnp/qr-batches/{batch['number']}")
        assert (shown["total"], shown["scanned"], shown["enrolled"]) == (3, 1, 1), shown
        states = {d["mac"]: d["state"] for d in shown["devices"]}
        assert states == {probes[0].mac: "enrolled", probes[1].mac: "issued", probes[2].mac: "issued"}
        listed = await org.sp.call("GET", "/pnp/qr-batches")
        assert batch["number"] in [b["number"] for b in listed["items"]]


async def test_a_reprovisioned_device_keeps_its_identity_and_gets_the_new_profile(enrollment_server: Any) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        other_site = await _second_site(org)
        probe = Probe.make(enrollment_server)
        await import_probes(admin, [probe])
        await zero_touch(org, [probe])
        first = await probe.enroll()
        assert first.result == "redirect" and first["provisioning"]["url"] != OTHER_URL, first.body

        moved = await org.sp.call(
            "POST", f"/pnp/devices/{probe.mac}/reprovision", {"account_id": org.customer_id, "site_id": other_site}
        )

        assert (moved["mac"], moved["serial"]) == (probe.mac, probe.serial)
        assert moved["thumbprint"].replace(":", "").upper() == probe.creds.thumbprint.replace(":", "").upper()
        last = moved["pnp"]["history"][-1]
        assert last["kind"] == "reprovisioned" and last["from"]["site_id"] == org.site_id
        assert last["to"] == {"account_id": org.customer_id, "site_id": other_site}
        reply = await probe.enroll()  # the same factory certificate
        assert reply.status == 200 and reply["provisioning"]["url"] == OTHER_URL, reply.body


async def test_a_replaced_device_no_longer_enrolls_and_its_replacement_takes_its_place(
    enrollment_server: Any,
) -> None:
    async with enrollment_server.admin() as admin:
        org = await new_org(admin)
        old, new, taken = (Probe.make(enrollment_server) for _ in range(3))
        await import_probes(admin, [old, taken])
        await zero_touch(org, [old])
        assert (await old.enroll()).result == "redirect"
        body = {"new_mac": new.mac, "new_serial": new.serial, "new_certificate": new.creds.cert_pem.decode()}

        # a replacement MAC that exists already: refused, nothing written
        clash = {"new_mac": taken.mac, "new_serial": taken.serial, "new_certificate": taken.creds.cert_pem.decode()}
        await expect_error(org.sp.call("POST", f"/pnp/devices/{old.mac}/replace", clash), 409, "device-exists")
        assert (await old.enroll()).result == "redirect"

        answer = await org.sp.call("POST", f"/pnp/devices/{old.mac}/replace", body)

        assert answer["new"]["owner_id"] == org.customer_id and answer["new"]["site_id"] == org.site_id, answer
        assert answer["new"]["pnp"]["replaces"] == old.mac and answer["old"]["pnp"]["replaced_by"] == new.mac
        refused = await old.enroll()
        assert refused.status == 403 and refused["reason"] == "certificate-denied", refused.body
        reply = await new.enroll()
        assert reply.status == 200 and reply.result == "redirect", reply.body
        shown = await org.sp.call("GET", f"/pnp/devices/{old.mac}")
        assert shown["pnp"]["replaced_by"] == new.mac
