"""Device suite: firmware — Appendix A "Firmware upgrade", "Re-trigger after firmware upgrade",
"Firmware manager tool". Rules: FW-2/FW-4 (an `upgrade` answer: install, then run discovery
again), FW-6 (after an upgrade, devices with "Re-trigger after firmware upgrade" run discovery
again by themselves), SIT-3/FW-3 (the firmware a site's setting selects — also a previous
release, not only the latest — is what the device installs).

The scripted DES answers `upgrade` with the `firmware` object of its own simulated image
(`/device/v1/firmware/{model}/{version}`, SHA-256 named), then `rejected("test-complete")` to
any later enrollment. Evidence: the image download in the DES's records, the version the device
reports when it enrolls again, and the version it ends up running. Which version is sent is
`releases.py`'s choice, so that the behaviour watched is the declared firmware's.

"Firmware manager tool" is a portal feature (turn upgrades off per model, pick the latest or any
previous release); its device side is installing exactly the release named. On a device without
"Firmware upgrade" (a B199, which Appendix A gives the tool from 1.0.3.0) nothing of it can be
watched: the conformance-statement test covers it, as it covers "Re-trigger after firmware
upgrade" on a B199.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.device import releases
from harness.dut import Outcome
from harness.scripted_des import DesRequest, ScriptedDES, rejected, upgrade

RETRIGGER = "re-trigger-after-firmware-upgrade"


async def boot_with_upgrade(dut: Any, des: ScriptedDES, step: Any, version: str, *, sha256: str | None = None
                            ) -> Outcome:
    firmware = des.firmware(dut.identity.model, version)
    if sha256 is not None:
        firmware["sha256"] = sha256
    with step("arrange", evidence={"firmware": firmware}):
        des.script(dut.identity.mac, upgrade(firmware))
        des.handle(dut.identity.mac, lambda body: rejected("test-complete"))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return outcome


def after_download(des: ScriptedDES) -> list[DesRequest]:
    """The enrollment requests that came after the first image download."""
    requests = des.requests
    first = next((i for i, r in enumerate(requests) if r in des.firmware_downloads()), len(requests))
    return [r for r in requests[first:] if r.is_enrollment]


def reported(requests: list[DesRequest]) -> list[str]:
    return [str(r.body.get("firmware")) for r in requests if r.body]


def records(des: ScriptedDES) -> list[dict[str, Any]]:
    return [r.to_json() for r in des.requests]


def assert_installed(dut: Any, des: ScriptedDES, outcome: Outcome, version: str) -> None:
    downloads = des.firmware_downloads(dut.identity.mac)
    wanted = des.firmware(dut.identity.model, version)["url"].removeprefix(des.url)
    assert [r.path for r in downloads] == [wanted], (
        f"the device did not download the image named ({wanted}); downloads: {[r.path for r in downloads]}"
    )
    assert all(v == version for v in reported(after_download(des))), (
        f"after the upgrade the device reports {reported(after_download(des))}, not {version}"
    )
    assert outcome.firmware == version, f"the device runs {outcome.firmware}, not the {version} it was sent"


# -- Firmware upgrade -------------------------------------------------------------------------------


@pytest.mark.rule("FW-2", "FW-4")
@pytest.mark.feature("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_upgrade_installs_the_named_image(dut: Any, des: ScriptedDES, step: Any) -> None:
    version = releases.latest_or_same(dut.identity.model, dut.identity.firmware)
    outcome = await boot_with_upgrade(dut, des, step, version)
    with step("check") as s:
        s.record(requests=records(des), version=version)
        assert_installed(dut, des, outcome, version)


@pytest.mark.rule("FW-2")
@pytest.mark.feature("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_image_with_a_wrong_sha256_is_not_installed(dut: Any, des: ScriptedDES, step: Any) -> None:
    """The answer's SHA-256 does not match the image: the device keeps its version."""
    declared = dut.identity.firmware
    version = releases.other_than_current(dut.identity.model, declared)
    outcome = await boot_with_upgrade(dut, des, step, version, sha256="0" * 64)
    with step("check") as s:
        s.record(requests=records(des), version=version)
        assert version not in reported(des.enrollments()), "the device runs an image whose SHA-256 did not match"
        assert outcome.firmware == declared, f"the device runs {outcome.firmware}, not its own {declared}"


@pytest.mark.rule("FW-2", "ENR-4")
@pytest.mark.lacks_feature("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_upgrade_ignored_without_the_feature(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: a device without "Firmware upgrade" (CU360, B199, J100 below 3.0) downloads nothing."""
    declared = dut.identity.firmware
    version = releases.other_than_current(dut.identity.model, declared)
    outcome = await boot_with_upgrade(dut, des, step, version)
    with step("check") as s:
        s.record(requests=records(des), version=version)
        assert des.firmware_downloads() == [], "the device downloaded firmware it cannot install"
        assert outcome.firmware == declared, f"the device runs {outcome.firmware}, not its own {declared}"


# -- Re-trigger after firmware upgrade ------------------------------------------------------------


@pytest.mark.rule("FW-6")
@pytest.mark.feature(RETRIGGER)
@pytest.mark.needs("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_discovery_runs_again_after_the_upgrade(dut: Any, des: ScriptedDES, step: Any) -> None:
    version = releases.keeping(dut.identity.model, dut.identity.firmware, [RETRIGGER])
    await boot_with_upgrade(dut, des, step, version)
    with step("check") as s:
        s.record(requests=records(des), version=version)
        again = after_download(des)
        assert des.firmware_downloads(), "the device did not download the image"
        assert again, "after the upgrade the device did not run enrollment discovery again"
        assert reported(again)[0] == version, f"it enrolled again as {reported(again)[0]}, not {version}"


@pytest.mark.rule("FW-6")
@pytest.mark.lacks_feature(RETRIGGER)
@pytest.mark.needs("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_no_discovery_after_the_upgrade_without_re_trigger(dut: Any, des: ScriptedDES, step: Any) -> None:
    """Negative: a device without "Re-trigger after firmware upgrade" (K165/K175 below 2.0)
    installs the image and does not enroll again; the release sent keeps the feature absent."""
    version = releases.keeping(dut.identity.model, dut.identity.firmware, [RETRIGGER])
    await boot_with_upgrade(dut, des, step, version)
    with step("check") as s:
        s.record(requests=records(des), version=version)
        assert des.firmware_downloads(), "the device did not download the image"
        assert after_download(des) == [], "the device ran enrollment discovery again after the upgrade"


# -- Firmware manager tool --------------------------------------------------------------------------


@pytest.mark.rule("SIT-3", "FW-3")
@pytest.mark.feature("firmware-manager-tool")
@pytest.mark.needs("firmware-upgrade")
@pytest.mark.steps("arrange", "boot", "check")
async def test_selected_previous_release_is_installed(dut: Any, des: ScriptedDES, step: Any) -> None:
    """The site's setting picks a previous release, not the latest: the device installs exactly it."""
    version = releases.selected_previous(dut.identity.model, dut.identity.firmware)
    outcome = await boot_with_upgrade(dut, des, step, version)
    with step("check") as s:
        s.record(requests=records(des), version=version, latest=releases.releases(dut.identity.model)[-1])
        assert_installed(dut, des, outcome, version)
