"""Device suite: which server certificate names a device accepts — rules PRF-6 (some devices
refuse wildcard certificates) and ENR-2 (the device goes to the redirect's URL, verified: research
§7, `TLSSRVRID` 1, identity matching per RFC 2818 §3.1).

The scripted DES redirects the device to the harness's file server over HTTPS; the file server's
certificate comes from a CA the device carries as a public root (`cert_mode="public"`), so the
only thing that varies is the names the certificate carries (`cert_names`, the DNS SANs;
`cert_addresses`, the IP SANs):

| certificate names                    | URL host            | expected                          |
|--------------------------------------|---------------------|-----------------------------------|
| `*.enrollab.test` (matches the host) | files.enrollab.test | refused where the firmware        |
|                                      |                     | refuses wildcards, else accepted  |
| `files.enrollab.test` (exact)        | files.enrollab.test | accepted                          |
| `other.enrollab.test` (wrong)        | files.enrollab.test | refused                           |
| IP SAN only (the server's address)   | the address         | accepted (IP-address URLs)        |
| DNS name only, no IP SAN             | the address         | refused (IP-address URLs)         |

Which firmware refuses wildcards is the declaration in `fixtures/phone-models.json`, read by
`conformance.device.declared` (not by the simulators' code). A refused certificate leaves no
request in the file server's access log: the evidence is the wire.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.declared import refuses_wildcards, wildcard_source
from conformance.device.settings_files import SETTINGS_FILE, settings
from harness.dut import Outcome, OutcomeResult
from harness.fileserver import FileServer
from harness.outcomes import not_applicable
from harness.scripted_des import ScriptedDES, redirect
from harness.session import FILES_HOST

PROVISIONING = ("provisioning-urls", "https-provisioning-url")
WILDCARD = "*." + FILES_HOST.split(".", 1)[1]
WRONG_NAME = "other." + FILES_HOST.split(".", 1)[1]


async def boot_against(dut: Any, des: ScriptedDES, step: Any, files: FileServer, url: str) -> Outcome:
    """Redirect the device to `url` on `files`, boot it, record the certificate's names."""
    names = {"dns": files.certificates.dns_names(), "ip": files.certificates.ip_names()}
    with step("arrange", evidence={"url": url, "certificate": names}):
        des.script(dut.identity.mac, redirect(url))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return outcome


def assert_accepted(outcome: Outcome, files: FileServer) -> None:
    requests = [(r.scheme, r.path, r.status) for r in files.requests]
    assert SETTINGS_FILE in files.paths("https", status=200), (
        f"the device refused a server certificate that names the host (requests: {requests}; "
        f"ended {outcome.result}: {outcome.reason})"
    )
    assert outcome.result is OutcomeResult.PROVISIONED, f"ended {outcome.result} ({outcome.reason})"


def assert_refused(outcome: Outcome, files: FileServer) -> None:
    assert files.requests == [], (
        f"the device sent requests to a server whose certificate it must refuse: "
        f"{[(r.scheme, r.path) for r in files.requests]}"
    )
    assert outcome.result is not OutcomeResult.PROVISIONED


def wildcard_expectation(dut: Any, refuse: bool) -> str:
    """The declared behaviour, or not applicable when the test checks the other one."""
    why = wildcard_source(dut.identity.model, dut.identity.firmware)
    if refuses_wildcards(dut.identity.model, dut.identity.firmware) is not refuse:
        not_applicable(why)
    return why


# -- wildcards (PRF-6) ----------------------------------------------------------------------------


@pytest.mark.rule("PRF-6")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_wildcard_certificate_refused_where_the_firmware_refuses(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """A firmware that refuses wildcard certificates refuses `*.enrollab.test` although it matches
    the host (and the certificate chains to a root the device trusts)."""
    why = wildcard_expectation(dut, refuse=True)
    files = await file_server(settings(), cert_mode="public", cert_names=(WILDCARD,))
    outcome = await boot_against(dut, des, step, files, files.https_url)
    with step("check", evidence={"declared": why}) as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


@pytest.mark.rule("PRF-6", "ENR-2")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_wildcard_certificate_accepted_where_the_firmware_accepts(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """A firmware without the wildcard refusal accepts `*.enrollab.test` for files.enrollab.test
    (BLOCK_CERTIFICATE_WILDCARDS defaults to 0 on J100, research §7)."""
    why = wildcard_expectation(dut, refuse=False)
    files = await file_server(settings(), cert_mode="public", cert_names=(WILDCARD,))
    outcome = await boot_against(dut, des, step, files, files.https_url)
    with step("check", evidence={"declared": why}) as s:
        s.record(requested=files.paths())
        assert_accepted(outcome, files)


# -- exact and wrong names (ENR-2, TLSSRVRID) -----------------------------------------------------


@pytest.mark.rule("ENR-2")
@pytest.mark.feature("https-provisioning-url")
@pytest.mark.needs("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_exact_server_name_is_accepted(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """The host's exact name as DNS SAN (and the server's address as IP SAN, as the J100 guide
    asks for HTTPS provisioning): every device with HTTPS provisioning accepts it."""
    files = await file_server(settings(), cert_mode="public", cert_names=(FILES_HOST,))
    outcome = await boot_against(dut, des, step, files, files.https_url)
    with step("check") as s:
        s.record(requested=files.paths())
        assert_accepted(outcome, files)


@pytest.mark.rule("ENR-2")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_wrong_server_name_is_refused(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """A trusted certificate for another host (`other.enrollab.test`, plus the server's IP
    address) is refused for a URL naming files.enrollab.test."""
    files = await file_server(settings(), cert_mode="public", cert_names=(WRONG_NAME,))
    outcome = await boot_against(dut, des, step, files, files.https_url)
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


# -- IP-address SANs ------------------------------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-2")
@pytest.mark.feature("provisioning-url-with-ip-address")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_ip_address_san_is_accepted_for_an_ip_address_url(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """An IP-address URL and a certificate naming only that address (an IP SAN, no DNS name)."""
    files = await file_server(settings(), cert_mode="public", cert_names=())
    outcome = await boot_against(dut, des, step, files, files.url("https", host=files.host))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_accepted(outcome, files)


@pytest.mark.rule("ENR-2")
@pytest.mark.needs("provisioning-url-with-ip-address", *PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_dns_name_only_is_refused_for_an_ip_address_url(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """An IP-address URL and a certificate with only the DNS name (no IP SAN): the address is not
    the certificate's name, so it is refused."""
    files = await file_server(settings(), cert_mode="public", cert_names=(FILES_HOST,), cert_addresses=())
    outcome = await boot_against(dut, des, step, files, files.url("https", host=files.host))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)
