"""Device suite: provisioning URLs — Appendix A "Provisioning URLs", "HTTPS provisioning URL",
"HTTP provisioning URL", "Provisioning URL with IP address", "Certificate with provisioning URL".
Rules: ENR-2 (the redirect's URL and root CA), PRF-2 (URL forms, `$MODEL4`/`$MACADDR`
placeholders expanded by the device), ENR-4 on the device's side (it never uses a URL its
firmware cannot).

The harness is the enrollment server (`des`, scripted: it redirects the device to a URL of the
harness's file server) and the file server (`file_server`, whose access log is the evidence:
a refused URL leaves no request there). HTTPS servers use a CA the simulated phones carry as a
built-in public root (`cert_mode="public"`) unless the test is about the root CA that comes with
the enrollment answer. Negative checks send a device exactly what its firmware cannot use — what
a conforming enrollment server never does (ENR-4) — and watch it refuse.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.settings_files import SETTINGS_FILE, model4, settings
from harness.dut import Outcome, OutcomeResult
from harness.fileserver import FileServer
from harness.scripted_des import Answer, ScriptedDES, redirect

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


async def boot_redirected(dut: Any, des: ScriptedDES, step: Any, answer: Answer) -> Outcome:
    """Arrange the scripted answer, boot the device, record both."""
    provisioning = answer[1].get("provisioning") or {}
    with step("arrange", evidence={"answer": {k: v for k, v in provisioning.items() if k != "trust"}}):
        des.script(dut.identity.mac, answer)
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return outcome


def fetched(files: FileServer, scheme: str | None = None) -> list[str]:
    return files.paths(scheme, status=200)


def assert_provisioned_from(outcome: Outcome, files: FileServer, scheme: str, directory: str = "") -> None:
    path = f"{directory}/{SETTINGS_FILE}" if directory else SETTINGS_FILE
    requests = [(r.scheme, r.path, r.status) for r in files.requests]
    assert path in fetched(files, scheme), f"the device did not fetch {path} over {scheme} (requests: {requests})"
    assert outcome.result is OutcomeResult.PROVISIONED, f"ended {outcome.result} ({outcome.reason})"


def assert_refused(outcome: Outcome, files: FileServer) -> None:
    assert files.requests == [], (
        f"the device used a URL its firmware cannot use: {[(r.scheme, r.path) for r in files.requests]}"
    )
    assert outcome.result is not OutcomeResult.PROVISIONED


# -- Provisioning URLs ----------------------------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-2")
@pytest.mark.feature("provisioning-urls")
@pytest.mark.needs("https-provisioning-url")
@pytest.mark.steps("arrange", "boot", "check")
async def test_redirect_url_placeholders_are_expanded(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """The device goes to the redirect's URL with `$MODEL4` and `$MACADDR` expanded (PRF-2: the
    server keeps them for the device) and starts in its directory."""
    directory = f"{model4(dut.identity.model)}/{dut.identity.mac}"
    files = await file_server(settings(directory), cert_mode="public")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url + "$MODEL4/$MACADDR/"))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_provisioned_from(outcome, files, "https", directory)
        outside = [p for p in files.paths() if not p.startswith(directory + "/")]
        assert outside == [], f"requests outside the expanded directory {directory}/: {outside}"


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_url_refused_without_provisioning_urls(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """Negative: a device without "Provisioning URLs" does not follow a redirect."""
    files = await file_server(settings(), cert_mode="public")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


# -- HTTPS ----------------------------------------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-2")
@pytest.mark.feature("https-provisioning-url")
@pytest.mark.needs("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_https_provisioning_url(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """HTTPS: the file server's certificate comes from a CA the device carries as a public root."""
    files = await file_server(settings(), cert_mode="public")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_provisioned_from(outcome, files, "https")
        assert files.paths("http") == [], "the device fell back to plain HTTP"


@pytest.mark.rule("ENR-2")
@pytest.mark.feature("https-provisioning-url")
@pytest.mark.needs("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_https_server_without_a_trusted_root_is_refused(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """HTTPS is verified: a server whose certificate chains to no root the device trusts (a
    private CA, and no root CA in the redirect) gets no request."""
    files = await file_server(settings(), cert_mode="private")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


# -- HTTP -----------------------------------------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-2")
@pytest.mark.feature("http-provisioning-url")
@pytest.mark.needs("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_http_provisioning_url(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """Plain HTTP, server type HTTP."""
    files = await file_server(settings())
    outcome = await boot_redirected(dut, des, step, redirect(files.http_url, "HTTP"))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_provisioned_from(outcome, files, "http")


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("http-provisioning-url")
@pytest.mark.needs("provisioning-urls")
@pytest.mark.steps("arrange", "boot", "check")
async def test_http_url_refused_without_the_feature(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """Negative: an HTTP URL to a device without "HTTP provisioning URL" (e.g. a K165 below
    1.1 SP1) is refused; the file server sees nothing."""
    files = await file_server(settings())
    outcome = await boot_redirected(dut, des, step, redirect(files.http_url, "HTTP"))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


# -- IP-address URLs ------------------------------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-2")
@pytest.mark.feature("provisioning-url-with-ip-address")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_ip_address_url(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """A URL whose host is an IPv4 address (the address the file server listens on; its certificate names it)."""
    files = await file_server(settings(), cert_mode="public")
    outcome = await boot_redirected(dut, des, step, redirect(files.url("https", host=files.host)))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_provisioned_from(outcome, files, "https")


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("provisioning-url-with-ip-address")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_ip_address_url_refused_without_the_feature(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """Negative: an IP-address URL to a device without "Provisioning URL with IP address" (every
    Vantage) is refused."""
    files = await file_server(settings(), cert_mode="public")
    outcome = await boot_redirected(dut, des, step, redirect(files.url("https", host=files.host)))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)


# -- the root CA that comes with the URL ----------------------------------------------------------


@pytest.mark.rule("ENR-2", "PRF-1")
@pytest.mark.feature("certificate-with-provisioning-url")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_root_ca_from_enrollment_is_trusted(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """The redirect's root CA (a private lab CA) lets the device verify the file server."""
    files = await file_server(settings(), cert_mode="private")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url, trust=[files.ca_pem]))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_provisioned_from(outcome, files, "https")


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("certificate-with-provisioning-url")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_root_ca_from_enrollment_ignored_without_the_feature(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """Negative: a device without "Certificate with provisioning URL" does not take the root CA
    from the enrollment answer, so it cannot verify a server only that CA vouches for."""
    files = await file_server(settings(), cert_mode="private")
    outcome = await boot_redirected(dut, des, step, redirect(files.https_url, trust=[files.ca_pem]))
    with step("check") as s:
        s.record(requested=files.paths())
        assert_refused(outcome, files)
