"""Device suite: Appendix A "Avaya issued certificates" — rule ENR-8 (identity certificates by EST,
RFC 7030, for a CSR whose subject matches the device) and ENR-2 (the redirect's identity
instruction); ENR-4 on the device's side for the negative check.

The scripted DES redirects with `identity: {est: <its EST base URL>}` and issues from its device
CA only for a CSR whose CN is the MAC of the client certificate (else it records
`est-subject-mismatch`). ("Certificate with provisioning URL", the root CA that comes with the
URL, is in `test_provisioning_urls.py`.)
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.settings_files import settings
from harness.scripted_des import ScriptedDES, redirect

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


async def boot_with_identity_instruction(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> Any:
    files = await file_server(settings(), cert_mode="public")
    with step("arrange", evidence={"url": files.https_url, "identity": {"est": des.est_url}}):
        des.script(dut.identity.mac, redirect(files.https_url, identity=des.est_url))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return outcome


@pytest.mark.rule("ENR-8", "ENR-2")
@pytest.mark.feature("avaya-issued-certificates")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_identity_certificate_enrolled_by_est(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    await boot_with_identity_instruction(dut, des, file_server, step)
    with step("check") as s:
        requests = des.est_requests()
        s.record(est=[r.to_json() for r in requests])
        enrolls = [r for r in requests if r.path.endswith("/simpleenroll")]
        assert enrolls, "the device did not request an identity certificate (no EST simpleenroll)"
        assert [(r.cn, r.result) for r in enrolls][-1] == (dut.identity.mac, "issued"), (
            f"the device's CSR was not issued: {[(r.cn, r.status, r.result) for r in enrolls]}"
        )


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("avaya-issued-certificates")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_no_identity_certificate_without_the_feature(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    """Negative: a device without "Avaya issued certificates" ignores the identity instruction."""
    await boot_with_identity_instruction(dut, des, file_server, step)
    with step("check") as s:
        requests = des.est_requests()
        s.record(est=[r.to_json() for r in requests])
        assert requests == [], f"the device asked for an identity certificate: {[r.path for r in requests]}"
