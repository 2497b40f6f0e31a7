"""Device suite: Appendix A "Device group ID" — rule ENR-2 (the redirect carries the profile's
phone group, PRF-1: 0-999) and, for the negative check, ENR-4 on the device's side.

Observed on the wire: the settings file the suite serves (`settings_files.SETTINGS`) branches on
`$GROUP` and requests `group-417.txt` only when the device's GROUP is 417, `group-other.txt`
otherwise. A device with the feature takes the group from its enrollment; one without keeps
GROUP 0. The fault knob `ignore_group` (a device that declares the feature and drops the group)
fails the positive test.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device.settings_files import GROUP, GROUP_FILE, OTHER_GROUP_FILE, SETTINGS_FILE, settings
from harness.fileserver import FileServer
from harness.scripted_des import ScriptedDES, redirect

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


async def boot_with_group(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> FileServer:
    files: FileServer = await file_server(settings(), cert_mode="public")
    with step("arrange", evidence={"url": files.https_url, "group": GROUP}):
        des.script(dut.identity.mac, redirect(files.https_url, group=GROUP))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return files


def settings_requests(files: FileServer) -> list[str]:
    """The paths requested, once the settings file was fetched (else the group cannot be seen)."""
    requested = files.paths()
    assert SETTINGS_FILE in files.paths(status=200), (
        f"the device did not fetch {SETTINGS_FILE}, so its group cannot be seen (requests: {requested})"
    )
    return requested


@pytest.mark.rule("ENR-2", "PRF-1")
@pytest.mark.feature("device-group-id")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_group_from_enrollment_selects_the_settings(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    files = await boot_with_group(dut, des, file_server, step)
    with step("check") as s:
        s.record(requested=files.paths())
        requested = settings_requests(files)
        assert GROUP_FILE in requested and OTHER_GROUP_FILE not in requested, (
            f"the device's $GROUP is not the enrollment's {GROUP} (it requested {requested})"
        )


@pytest.mark.rule("ENR-4")
@pytest.mark.lacks_feature("device-group-id")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_group_ignored_without_the_feature(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    """Negative: GROUP stays 0 on a device without "Device group ID" (a B199, a J100 below 3.0)."""
    files = await boot_with_group(dut, des, file_server, step)
    with step("check") as s:
        s.record(requested=files.paths())
        requested = settings_requests(files)
        assert OTHER_GROUP_FILE in requested and GROUP_FILE not in requested, (
            f"the device applied the enrollment's group {GROUP} it cannot use (it requested {requested})"
        )
