"""Device suite: Appendix A "Device Enrollment Services as Provisioning Server" — rules ENR-6 (with
server type `DES` the enrollment server itself serves the site's files) and ENR-2; ENR-4 on the
device's side for the negative check.

The scripted DES redirects with server type `DES` to its own `/device/v1/files/` and serves
`46xxsettings.txt` there; its records show the device fetching over the enrollment's mutual TLS
(the client certificate's CN is the device's MAC). Where Appendix A lists the feature below the
model's "Provisioning URLs" minimum (J139, J159, J189 from 2.0), no redirect can be followed: the
conformance-statement test covers those devices (`observability.py`).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.settings_files import SETTINGS_FILE, settings
from harness.dut import OutcomeResult
from harness.scripted_des import FILES_PATH, ScriptedDES, redirect

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


async def boot_des_redirect(dut: Any, des: ScriptedDES, step: Any) -> Any:
    with step("arrange", evidence={"url": des.files_url, "server_type": "DES"}):
        des.files.update(settings())
        des.script(dut.identity.mac, redirect(des.files_url, "DES"))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return outcome


@pytest.mark.rule("ENR-6", "ENR-2")
@pytest.mark.feature("des-as-provisioning-server")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_settings_from_the_enrollment_server(dut: Any, des: ScriptedDES, step: Any) -> None:
    outcome = await boot_des_redirect(dut, des, step)
    with step("check") as s:
        requests = des.file_requests()
        s.record(requests=[r.to_json() for r in requests])
        served = [r.path for r in requests if r.status == 200 and r.cn == dut.identity.mac]
        assert FILES_PATH + SETTINGS_FILE in served, (
            f"the device did not fetch {SETTINGS_FILE} from the enrollment server (requests: "
            f"{[(r.path, r.status, r.cn) for r in requests]})"
        )
        assert outcome.result is OutcomeResult.PROVISIONED, f"ended {outcome.result} ({outcome.reason})"


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("des-as-provisioning-server")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_des_server_type_refused_without_the_feature(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: a device without the feature (a B199) does not take the enrollment server as its
    provisioning server."""
    outcome = await boot_des_redirect(dut, des, step)
    with step("check") as s:
        requests = des.file_requests()
        s.record(requests=[r.to_json() for r in requests])
        assert requests == [], f"the device fetched DES-hosted files: {[r.path for r in requests]}"
        assert outcome.result is not OutcomeResult.PROVISIONED
