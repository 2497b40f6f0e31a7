"""Device suite: after a firmware upgrade the device can do what its new version can — Appendix
A "Device group ID" gained with "Firmware upgrade" and "Re-trigger after firmware upgrade".
Rules: FW-6 (discovery runs again after the upgrade, decided by the version installed), ENR-2
(the redirect's phone group is taken where the firmware supports it).

A device whose declared version lacks "Device group ID" (a K165 below 3.0) is redirected with
group 417 and keeps GROUP 0; it is reset, told to upgrade to the newest release that has the
feature (and re-triggers), and redirected the same way again: now its settings request
`group-417.txt`. What it can use is decided by the version it runs, not the one it booted
with: a phone that kept its old firmware's answers (the mutation tier's `Capabilities.supports`
memo keyed without the version, docs/mutation.md) fails here. Not applicable where the device
gains nothing of it: it has the group already, cannot upgrade, or no release adds it with
re-trigger.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device import releases
from conformance.device.settings_files import GROUP, GROUP_FILE, OTHER_GROUP_FILE, SETTINGS_FILE, settings
from fixtures.features import FeatureMatrix
from harness.fileserver import FileServer
from harness.outcomes import not_applicable
from harness.scripted_des import ScriptedDES, redirect, rejected, upgrade

GROUP_FEATURE = "device-group-id"
RETRIGGER = "re-trigger-after-firmware-upgrade"
PROVISIONING = ("provisioning-urls", "https-provisioning-url")


def gaining_release(model: str, firmware: str) -> str | None:
    """The newest release that adds "Device group ID" to `firmware` and re-triggers after the
    upgrade (so the device enrolls again by itself), keeping what the redirect needs; None if
    none does or the declared version has the group already."""
    matrix = FeatureMatrix.load()
    if matrix.supports(model, firmware, GROUP_FEATURE):
        return None
    needed = (GROUP_FEATURE, RETRIGGER, *PROVISIONING)
    newer = [r for r in releases.releases(model) if matrix.supports(model, r, GROUP_FEATURE)]
    return next((r for r in reversed(newer) if all(matrix.supports(model, r, f) for f in needed)), None)


def group_files(files: FileServer) -> list[str]:
    requested = files.paths()
    assert SETTINGS_FILE in files.paths(status=200), (
        f"the device did not fetch {SETTINGS_FILE}, so its group cannot be seen (requests: {requested})"
    )
    return [p for p in requested if p in (GROUP_FILE, OTHER_GROUP_FILE)]


@pytest.mark.rule("FW-6", "ENR-2")
@pytest.mark.needs("firmware-upgrade", *PROVISIONING)
@pytest.mark.steps("arrange", "boot", "upgrade", "check")
async def test_group_taken_after_an_upgrade_that_adds_it(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    model, declared = dut.identity.model, dut.identity.firmware
    version = gaining_release(model, declared)
    if version is None:
        matrix = FeatureMatrix.load()
        why = matrix.explain(model, declared, GROUP_FEATURE)
        if matrix.supports(model, declared, GROUP_FEATURE):
            not_applicable(f"the device has the group already ({why})")
        not_applicable(f"no release adds {matrix.label(GROUP_FEATURE)} with re-trigger after the upgrade ({why})")
    mac = dut.identity.mac
    with step("arrange", evidence={"group": GROUP, "version": version}) as s:
        before: FileServer = await file_server(settings(), cert_mode="public")
        after: FileServer = await file_server(settings(), cert_mode="public")
        firmware = des.firmware(model, version)
        s.record(firmware=firmware, before=before.https_url, after=after.https_url)
        des.script(mac, redirect(before.https_url, group=GROUP))
    with step("boot") as s:
        first = await dut.boot()
        s.record(outcome=first.to_json())
    with step("upgrade") as s:
        dut.factory_reset()
        des.script(mac, upgrade(firmware), redirect(after.https_url, group=GROUP))
        des.handle(mac, lambda body: rejected("test-complete"))
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        s.record(before=before.paths(), after=after.paths(), requests=[r.to_json() for r in des.requests])
        assert group_files(before) == [OTHER_GROUP_FILE], (
            f"at {declared} (no {GROUP_FEATURE}) the device applied the enrollment's group {GROUP}: "
            f"it requested {before.paths()}"
        )
        assert des.firmware_downloads(mac), "the device did not download the image"
        reported = [str(r.body.get("firmware")) for r in des.enrollments() if r.body]
        assert reported[-1:] == [version], (
            f"after the upgrade the device did not enroll again as {version} (it reported {reported})"
        )
        assert group_files(after) == [GROUP_FILE], (
            f"at {version} (with {GROUP_FEATURE}) the device did not take the enrollment's group {GROUP}: "
            f"it requested {after.paths()}"
        )
