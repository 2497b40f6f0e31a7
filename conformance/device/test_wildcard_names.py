"""Device suite: a wildcard in any DNS name of the certificate, not only its first — rule PRF-6
(some devices refuse wildcard certificates), with `test_server_names.py`'s setting: the scripted
DES redirects the device to the harness's file server over HTTPS, whose certificate chains to a
root the device trusts.

The certificate names `other.enrollab.test` first (its common name) and `*.enrollab.test` after
it: the URL's host `files.enrollab.test` is matched by the wildcard only. A firmware that refuses
wildcard certificates (`fixtures/phone-models.json`, through `conformance.device.declared`) must
refuse it — a phone that looked at the common name alone would take it; any other firmware
accepts it (the host matches a SAN that is not the first).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.declared import refuses_wildcards, wildcard_source
from conformance.device.settings_files import settings
from conformance.device.test_server_names import WILDCARD, WRONG_NAME, assert_accepted, assert_refused, boot_against
from harness.scripted_des import ScriptedDES

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


@pytest.mark.rule("PRF-6", "ENR-2")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_wildcard_after_an_exact_common_name(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    refuse = refuses_wildcards(dut.identity.model, dut.identity.firmware)
    why = wildcard_source(dut.identity.model, dut.identity.firmware)
    files = await file_server(settings(), cert_mode="public", cert_names=(WRONG_NAME, WILDCARD))
    outcome = await boot_against(dut, des, step, files, files.https_url)
    with step("check", evidence={"declared": why, "refuses_wildcards": refuse}) as s:
        s.record(requested=files.paths())
        if refuse:
            assert_refused(outcome, files)
        else:
            assert_accepted(outcome, files)
