"""Which Appendix A features the device suite can observe on which device, and how the rest are
declared — one table, read by the tests' markers and by the conformance-statement test.

Decisions:
- A behavioural test of feature F watches the device on the wire (the scripted DES's and the file
  server's records). Some observations need a second feature too: a group only shows in the
  settings a device fetches from a provisioning URL it can use, a re-trigger only after an
  upgrade. `PREREQUISITES[F]` lists them; a behavioural test carries `needs(*PREREQUISITES[F])`
  and is *not applicable* (reason "not observable on this device: …") where one is missing.
- Where Appendix A says the device supports F but the suite cannot observe it there —
  a prerequisite is missing (J139/J159/J189 below their "Provisioning URLs" minimum list "Device
  Enrollment Services as Provisioning Server" from 2.0; a B199 has "Re-trigger after firmware
  upgrade" and "Firmware manager tool" without "Firmware upgrade"), or F is a server-side
  feature the device protocol never shows (`DECLARED`: "Avaya Cloud Office support", ACO-1) —
  the conformance-statement test (`test_conformance_statement.py`) checks what the device can
  show: that it identifies itself exactly as the lab declares (model, firmware, MAC = its
  certificate's CN, serial), so the Appendix A column the statement rests on is the right one.
  Its evidence says the behaviour itself was not exercised.
- "Firmware manager tool" is partly observable: its device side is installing exactly the
  version the server selected, also one that is not the latest (SIT-3); that is tested where
  the device has "Firmware upgrade", declared elsewhere.
- Negative checks carry `lacks_feature(F)` (applicable only where the device lacks F) and
  `needs(...)` for what they need to observe the refusal; they name no feature in the report,
  so the device x feature matrix stays Appendix A's pass / n/a pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from fixtures.features import FeatureMatrix

__all__ = ["DECLARED", "PREREQUISITES", "missing_prerequisites", "observable", "statement_features"]

PROVISIONING = ("provisioning-urls", "https-provisioning-url")

PREREQUISITES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "provisioning-urls": ("https-provisioning-url",),
    "re-provisioning-devices": PROVISIONING,
    "https-provisioning-url": ("provisioning-urls",),
    "firmware-upgrade": (),
    "http-provisioning-url": ("provisioning-urls",),
    "provisioning-url-with-ip-address": PROVISIONING,
    "certificate-with-provisioning-url": PROVISIONING,
    "8-digit-numeric-enrollment-code": (),
    "12-digit-numeric-enrollment-code": (),
    "re-trigger-after-firmware-upgrade": ("firmware-upgrade",),
    "device-group-id": PROVISIONING,
    "avaya-issued-certificates": PROVISIONING,
    "provisioning-enrollment-code": (),
    "firmware-manager-tool": ("firmware-upgrade",),
    "avaya-cloud-office-support": (),
    "des-as-provisioning-server": PROVISIONING,
})

# Server-side features: nothing of them travels on the device protocol beyond the identity.
DECLARED: Mapping[str, str] = MappingProxyType({
    "avaya-cloud-office-support": (
        "ACO-1 is a sync between the enrollment server and the cloud-office system keyed by the "
        "device's model and firmware; the device's part is reporting them truthfully"
    ),
})


def missing_prerequisites(supports: Callable[[str], bool], feature: str) -> list[str]:
    """The prerequisites of `feature` the device lacks (`supports` is `dut.supports`)."""
    return [p for p in PREREQUISITES[feature] if not supports(p)]


def observable(supports: Callable[[str], bool], feature: str) -> bool:
    """Whether a behavioural test observes `feature` on a device (that supports it)."""
    return feature not in DECLARED and not missing_prerequisites(supports, feature)


def statement_features(matrix: FeatureMatrix | None = None) -> list[str]:
    """The features some model supports somewhere without the suite observing it there: the
    declared ones, and those with a prerequisite whose minimum is later (or N/A) for a model."""
    matrix = matrix or FeatureMatrix.load()
    found = []
    for fid in matrix.features:
        if fid in DECLARED:
            found.append(fid)
            continue
        for model in matrix.models():
            minimum = matrix.minimum(model, fid)
            if minimum is None:
                continue
            later = [p for p in PREREQUISITES[fid] if (m := matrix.minimum(model, p)) is None or m > minimum]
            if later:
                found.append(fid)
                break
    return found
