"""ENR-1..7, EC, LCK, FW, DEV-2/6/7, PRF-4, ACC-5: the device's enrollment decision (PROTOCOL §2).

Facts are built by small factories; the firmware catalog and the feature matrix are the real
fixtures (`Catalog.load()`, `FeatureMatrix.load()`). A stub `Capabilities` is used only where
Appendix A has no such device (e.g. one that can upgrade below its enrollment minimum).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.features import FeatureMatrix
from server.domain.codes import Expiry, ExpiryUnit, NecState
from server.domain.enrollment.decide import decide_enrollment
from server.domain.enrollment.decision import Claim, CodeConsumption, Decision, LockUpdate
from server.domain.enrollment.facts import (
    AccountFacts,
    Capabilities,
    CertificateFacts,
    CodeMatch,
    DeviceRecord,
    EnrollmentFacts,
    FirmwareImage,
    RequestFacts,
    SiteFacts,
)
from server.domain.firmware import Catalog
from server.domain.lockout import LockoutPolicy
from server.domain.profiles import ProfileEntry, ServerType

Account = AccountFacts
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CATALOG = Catalog.load()
MATRIX = FeatureMatrix.load()
_CAPS: Capabilities = MATRIX  # the real matrix satisfies the protocol (checked by mypy)

MAC = "A4251B0C3D5E"
OTHER_MAC = "A4251B0C3D5F"
SERIAL = "21WZ51234567"
THUMB = "3F" * 32
OWNER = "20000001"  # customer account of site 7
OTHER = "30000002"  # another customer account, site 8
SITE = 7
PIN = "4321"
PEC = OWNER + PIN
NEC8 = "73915024"
NEC12 = "084421907356"
EST = "https://des.example.com:8443/.well-known/est/"
URL = "https://prov.example.com/j100/$MODEL4/"
ROOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUSimulatedRootCa\n-----END CERTIFICATE-----\n"
LATEST = "4.1.11.0.9"
CODE_USAGE = "enrollment-code-usage"
FAILURE = "device-enrollment-failure"


def image(model: str, version: str) -> FirmwareImage:
    url = f"https://des.example.com:8443/device/v1/firmware/{model}/{version}"
    return FirmwareImage(url, hashlib.sha256(url.encode()).hexdigest().upper())


def entry(
    url: str = URL,
    server_type: ServerType = ServerType.HTTPS,
    *,
    identity: bool = False,
    root_ca: str | None = None,
    group: int = 0,
) -> ProfileEntry:
    return ProfileEntry(server_type, url, identity, root_ca, group)


def site(
    site_id: int = SITE,
    account: str = OWNER,
    profile: ProfileEntry | None = None,
    *,
    pin: str | None = PIN,
    firmware: str | None = None,
    enabled: bool = True,
    no_profile: bool = False,
) -> SiteFacts:
    chosen = None if no_profile else profile or entry()
    return SiteFacts(site_id, account, enabled, pin, chosen, firmware)


def unclaimed(model: str = "J179", **changes: Any) -> DeviceRecord:
    record = DeviceRecord(MAC, SERIAL, model, THUMB, approved=True, first_contact=True)
    return replace(record, **changes)


def ready(model: str = "J179", site_id: int = SITE, owner: str = OWNER, **changes: Any) -> DeviceRecord:
    """DEV-6: claimed + associated + activated (contacted before, not pre-claimed)."""
    record = unclaimed(model, owner_id=owner, site_id=site_id, associated=True, activated=True, first_contact=False)
    return replace(record, **changes)


def nec(code: str = NEC8, total: int = 10, enrolled: int = 0, expiry: Expiry | None = None) -> NecState:
    return NecState(code, total, enrolled, expiry, NOW - timedelta(hours=1))


def nec_match(state: NecState | None = None, the_site: SiteFacts | None = None, **account: Any) -> CodeMatch:
    the_site = the_site or site()
    return CodeMatch(the_site, Account(the_site.account_id, **account), state or nec())


def pec_match(the_site: SiteFacts | None = None, account_id: str = OWNER, **account: Any) -> CodeMatch:
    return CodeMatch(the_site or site(), Account(account_id, **account))


def facts(
    model: str = "J179",
    firmware: str = LATEST,
    *,
    device: DeviceRecord | None = None,
    code: str | None = None,
    owner: Account | None = None,
    the_site: SiteFacts | None = None,
    match: CodeMatch | None = None,
    caps: Capabilities = MATRIX,
    policy: LockoutPolicy | None = None,
    images: Any = image,
    mac: str = MAC,
    cn: str = MAC,
    thumbprint: str = THUMB,
    est: str | None = EST,
) -> EnrollmentFacts:
    """One request of `model` at `firmware`; by default an approved, unclaimed device."""
    record = device if device is not None else unclaimed(model)
    if owner is None and record.owner_id is not None:
        owner = Account(record.owner_id)
    if the_site is None and record.site_id is not None:
        the_site = site(record.site_id, record.owner_id or OWNER)
    return EnrollmentFacts(
        request=RequestFacts(model, firmware, mac, SERIAL, code, "10.20.30.40"),
        certificate=CertificateFacts(cn, thumbprint, f"CN={cn},serialNumber={SERIAL},O=Avaya"),
        device=record,
        owner=owner,
        site=the_site,
        code_match=match,
        policy=policy or LockoutPolicy(),
        catalog=CATALOG,
        capabilities=caps,
        est_base_url=est,
        firmware_images=images,
    )


def decide(f: EnrollmentFacts, now: datetime = NOW) -> Decision:
    return decide_enrollment(f, now)


def reason(d: Decision) -> str:
    assert (d.status, d.result) == (403, "rejected"), d.body
    return str(d.body["reason"])


class StubCaps:
    """Appendix A with some features forced on or off (for devices the guide does not have)."""

    def __init__(self, **forced: bool) -> None:
        self.forced = {name.replace("_", "-"): value for name, value in forced.items()}

    def supports(self, model: str, firmware: str, feature: str) -> bool:
        return self.forced.get(feature, MATRIX.supports(model, firmware, feature))

    def explain(self, model: str, firmware: str, feature: str) -> str:
        if feature in self.forced:
            return f"{model} {firmware}: {feature} forced {'on' if self.forced[feature] else 'off'}"
        return MATRIX.explain(model, firmware, feature)


# --- PROTOCOL §2: one test per row -----------------------------------------------------------------


def test_protocol_redirect_row() -> None:
    d = decide(facts(device=ready()))
    assert (d.status, d.result) == (200, "redirect")
    assert d.body == {
        "result": "redirect",
        "provisioning": {"url": URL, "server_type": "HTTPS", "group": 0, "trust": []},
        "firmware": None,
        "identity": None,
    }
    assert d.audit.status == "SUCCESS" and d.audit.reason == "zero-touch"


def test_protocol_upgrade_row() -> None:
    d = decide(facts(firmware="4.0.6.0"))
    assert (d.status, d.result) == (200, "upgrade")
    assert d.body == {
        "result": "upgrade",
        "firmware": {"version": LATEST, "url": image("J179", LATEST).url, "sha256": image("J179", LATEST).sha256},
        "reason": "unclaimed-latest",
    }


def test_protocol_code_required_row() -> None:
    d = decide(facts())
    assert (d.status, d.body) == (200, {"result": "code_required", "formats": ["nec8", "nec12", "pec12"]})


def test_protocol_code_invalid_row() -> None:
    d = decide(facts(code="11112222"))
    assert (d.status, d.body) == (422, {"result": "code_invalid", "attempts_left": 2})


def test_protocol_locked_row() -> None:
    d = decide(facts(code="11112222", device=unclaimed(failed_attempts=2)))
    assert (d.status, d.body) == (423, {"result": "locked", "retry_after": 30 * 60})


def test_protocol_rejected_row() -> None:
    d = decide(facts(device=unclaimed(approved=False)))
    assert d.status == 403
    assert d.body == {
        "result": "rejected",
        "reason": "not-approved",
        "detail": "The device is not approved by a platform administrator yet.",
    }


def test_protocol_unknown_device_row() -> None:
    f = replace(facts(), device=None)
    d = decide(f)
    assert (d.status, d.body) == (404, {"result": "unknown_device"})
    assert d.device_updates is None and d.notify == () and d.audit.status == "FAIL"


# --- ENR-1 ------------------------------------------------------------------------------------------


def test_enr1_certificate_of_another_device_rejected_and_nobody_mailed() -> None:
    d = decide(facts(device=ready(), cn=OTHER_MAC))
    assert reason(d) == "certificate-mismatch"
    assert d.device_updates is None  # the caller is not the device: its record is left alone
    # Issue 13: one certificate could mail the owner of every MAC it names; the audit entry stays.
    assert d.notify == () and d.audit.account_id == OWNER


def test_enr1_thumbprint_differs_is_unknown_device() -> None:
    d = decide(facts(thumbprint="AA" * 32))
    assert (d.status, d.result, d.audit.reason) == (404, "unknown_device", "thumbprint-mismatch")
    assert d.device_updates is None


def test_enr1_device_without_imported_thumbprint_is_unknown() -> None:
    d = decide(facts(device=unclaimed(thumbprint=None)))
    assert (d.status, d.audit.reason) == (404, "no-thumbprint")


def test_enr1_mac_and_thumbprint_compare_in_canonical_form() -> None:
    colons = ":".join(THUMB.lower()[i : i + 2] for i in range(0, 64, 2))
    d = decide(facts(mac="a4:25:1b:0c:3d:5e", thumbprint=colons))
    assert d.result == "code_required"
    assert d.audit.mac == MAC


# --- DEV-2, ACC-5 -----------------------------------------------------------------------------------


def test_dev2_unapproved_device_rejected_even_when_ready() -> None:
    assert reason(decide(facts(device=ready(approved=False)))) == "not-approved"


def test_acc5_disabled_owner_account_rejected() -> None:
    d = decide(facts(device=ready(), owner=Account(OWNER, enabled=False)))
    assert reason(d) == "disabled-account"
    assert d.notify[0].kind == FAILURE


def test_acc5_disabled_site_account_rejected() -> None:
    d = decide(facts(device=ready(), the_site=site(enabled=False)))
    assert reason(d) == "disabled-account"


def test_acc5_code_of_disabled_account_rejected_not_counted_nor_consumed() -> None:
    d = decide(facts(code=NEC8, match=nec_match(enabled=False)))
    assert reason(d) == "disabled-account"
    assert d.consume_code is None
    assert d.device_updates is not None and d.device_updates.lock is None and d.device_updates.claim is None


# --- FW-4, FW-2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", [unclaimed("J179"), ready("J179")], ids=["unclaimed", "claimed"])
def test_fw4_j179_at_1_5_needs_manual_upgrade(device: DeviceRecord) -> None:
    d = decide(facts("J179", "1.5", device=device, code=NEC8, match=nec_match()))
    assert reason(d) == "manual-upgrade-required"
    assert d.body["detail"] == "manual upgrade to 2.0 and factory reset required"
    assert d.consume_code is None


@pytest.mark.parametrize(
    ("model", "firmware"),
    [("J139", "2.0"), ("K165", "1.0"), ("B199", "1.0.0"), ("CU360", "11.2.0.30")],
)
def test_fw4_below_minimum_without_firmware_upgrade_refused(model: str, firmware: str) -> None:
    # Appendix A: nobody below the "Provisioning URLs" release supports "Firmware upgrade".
    d = decide(facts(model, firmware))
    assert reason(d) == "firmware-too-old"
    assert "below the minimum version" in d.body["detail"]


def test_fw4_fw2_unclaimed_below_minimum_upgraded_to_latest() -> None:
    d = decide(facts("J139", "2.0", caps=StubCaps(firmware_upgrade=True)))
    assert (d.result, d.body["reason"], d.body["firmware"]["version"]) == ("upgrade", "below-minimum", LATEST)


def test_fw4_fw3_claimed_below_minimum_with_switch_off_refused() -> None:
    d = decide(facts("J139", "2.0", device=ready("J139"), caps=StubCaps(firmware_upgrade=True)))
    assert reason(d) == "firmware-too-old"
    assert "FW-3" in d.body["detail"]


def test_fw4_fw3_claimed_below_minimum_with_switch_on_gets_site_setting() -> None:
    f = facts(
        "J139",
        "2.0",
        device=ready("J139"),
        owner=Account(OWNER, firmware_upgrade=True),
        the_site=site(firmware="4.1.3.0"),
        caps=StubCaps(firmware_upgrade=True),
    )
    d = decide(f)
    assert (d.result, d.body["firmware"]["version"]) == ("upgrade", "4.1.3.0")


def test_fw4_without_image_refused() -> None:
    d = decide(facts("J139", "2.0", caps=StubCaps(firmware_upgrade=True), images={}))
    assert reason(d) == "firmware-unavailable"


def test_fw2_unclaimed_below_latest_upgraded_before_its_code_is_looked_at() -> None:
    d = decide(facts(firmware="4.0.6.0", code="11112222"))
    assert d.result == "upgrade"
    assert d.consume_code is None
    assert d.device_updates is not None and d.device_updates.lock is None  # not counted as wrong


def test_fw2_image_lookup_as_mapping() -> None:
    d = decide(facts(firmware="4.0.6.0", images={LATEST: ("https://files.example.com/j.bin", "ab" * 32)}))
    assert d.body["firmware"] == {"version": LATEST, "url": "https://files.example.com/j.bin", "sha256": "ab" * 32}


def test_fw2_unclaimed_below_latest_without_image_proceeds() -> None:
    assert decide(facts(firmware="4.0.6.0", images={})).result == "code_required"


def test_fw2_model_without_firmware_upgrade_not_upgraded() -> None:
    # B199: Appendix A "Firmware upgrade N/A"; 1.0.3.0 is below the catalog's latest 1.0.4.0.
    d = decide(facts("B199", "1.0.3.0"))
    assert d.body == {"result": "code_required", "formats": ["nec8"]}


def test_fw2_j179_at_2_0_1_neither_upgrades_nor_takes_codes() -> None:
    # Appendix A: J179 enrolls from 2.0, but firmware upgrade and codes need 3.0.
    d = decide(facts("J179", "2.0.1"))
    assert reason(d) == "codes-not-supported"
    assert "needs 3.0" in d.body["detail"]


def test_fw2_does_not_apply_to_claimed_devices() -> None:
    assert decide(facts(firmware="4.0.6.0", device=ready())).body["firmware"] is None


# --- FW-3, FW-5 in the redirect ---------------------------------------------------------------------


def _fw_facts(server_type: ServerType, **device: Any) -> EnrollmentFacts:
    return facts(
        firmware="4.1.3.0",
        device=ready(**device),
        owner=Account(OWNER, firmware_upgrade=True),
        the_site=site(profile=entry(server_type=server_type), firmware="latest"),
    )


def test_fw3_switch_off_sends_no_firmware() -> None:
    f = replace(_fw_facts(ServerType.DES), owner=Account(OWNER))
    assert decide(f).body["firmware"] is None


def test_fw3_des_server_switch_on_sends_site_setting_version() -> None:
    d = decide(_fw_facts(ServerType.DES))
    assert d.body["firmware"] == {"version": LATEST, **image("J179", LATEST)._asdict()}


def test_fw3_pinned_earlier_release_is_sent_too() -> None:
    f = _fw_facts(ServerType.DES)
    pinned = site(profile=entry(server_type=ServerType.DES), firmware="4.1.1.0.7")
    f = replace(f, request=replace(f.request, firmware=LATEST), site=pinned)
    assert decide(f).body["firmware"]["version"] == "4.1.1.0.7"


def test_fw3_already_at_the_chosen_version_gets_none() -> None:
    f = _fw_facts(ServerType.DES)
    f = replace(f, request=replace(f.request, firmware=LATEST))
    assert decide(f).body["firmware"] is None


def test_fw5_non_des_later_contact_gets_no_firmware_and_audit_says_why() -> None:
    d = decide(_fw_facts(ServerType.HTTPS))
    assert d.result == "redirect" and d.body["firmware"] is None
    assert "FW-5" in d.audit.message


def test_fw5_non_des_first_contact_of_pre_claimed_device_gets_firmware() -> None:
    d = decide(_fw_facts(ServerType.HTTPS, first_contact=True, pre_claimed=True))
    assert d.body["firmware"]["version"] == LATEST


def test_fw5_first_contact_of_a_device_that_was_not_pre_claimed_gets_none() -> None:
    assert decide(_fw_facts(ServerType.HTTPS, first_contact=True, pre_claimed=False)).body["firmware"] is None


def test_fw_redirect_firmware_left_out_where_model_cannot_upgrade() -> None:
    f = facts(
        "B199",
        "1.0.3.0",
        device=ready("B199"),
        owner=Account(OWNER, firmware_upgrade=True),
        the_site=site(firmware="latest"),
    )
    assert decide(f).body["firmware"] is None


# --- DEV-6, ENR-2, PRF-4 ----------------------------------------------------------------------------


def test_enr2_redirect_carries_full_url_group_trust_identity() -> None:
    secret_url = "https://prov:S3cret@prov.example.com:8443/cfg/$MODEL4/$MACADDR/"
    profile = entry(secret_url, ServerType.HTTPS, identity=True, root_ca=ROOT_PEM, group=42)
    d = decide(facts(device=ready(), the_site=site(profile=profile)))
    assert d.body["provisioning"] == {"url": secret_url, "server_type": "HTTPS", "group": 42, "trust": [ROOT_PEM]}
    assert d.body["identity"] == {"est": EST}
    assert "S3cret" not in d.audit.message and "prov:****@" in d.audit.message
    assert d.device_updates is not None and d.device_updates.enrolled_at == NOW


def test_enr2_des_server_type_redirect() -> None:
    des = "https://des.example.com:8443/device/v1/files/"
    d = decide(facts(device=ready(), the_site=site(profile=entry(des, ServerType.DES))))
    assert d.body["provisioning"]["server_type"] == "DES"


def test_prf4_ready_device_at_site_without_profile_rejected() -> None:
    d = decide(facts(device=ready(), the_site=site(no_profile=True)))
    assert reason(d) == "no-profile"
    assert d.notify[0].facts["reason"] == "no-profile"


def test_dev6_ready_device_without_site_facts_rejected() -> None:
    f = replace(facts(device=ready()), site=None)
    assert reason(decide(f)) == "no-site"


@pytest.mark.parametrize(
    "changes",
    [{"activated": False}, {"associated": False, "site_id": None}, {"owner_id": None, "associated": False}],
    ids=["not-activated", "not-associated", "not-claimed"],
)
def test_dev6_dev7_not_ready_device_is_asked_for_a_code(changes: dict[str, Any]) -> None:
    assert decide(facts(device=ready(**changes))).result == "code_required"


def test_dev6_ready_device_ignores_a_code_and_a_leftover_lock() -> None:
    d = decide(facts(device=ready(failed_attempts=3, locked_until=NOW + timedelta(minutes=5)), code="11112222"))
    assert d.result == "redirect"
    assert d.device_updates is not None and d.device_updates.lock is None


# --- ENR-4 ------------------------------------------------------------------------------------------

HTTP_URL = "http://prov.example.com/vantage/"


def test_enr4_k165_at_1_1_refuses_http_url() -> None:
    d = decide(facts("K165", "1.1", device=ready("K165"), the_site=site(profile=entry(HTTP_URL, ServerType.HTTP))))
    assert reason(d) == "unsupported-url"
    assert d.body["detail"] == "K165 1.1: HTTP provisioning URL needs 1.1SP1 (ENR-4)"
    assert [(n.kind, n.facts["reason"]) for n in d.notify] == [(FAILURE, "unsupported-url")]


def test_enr4_k165_at_1_1sp1_takes_http_url() -> None:
    d = decide(facts("K165", "1.1SP1", device=ready("K165"), the_site=site(profile=entry(HTTP_URL, ServerType.HTTP))))
    assert d.result == "redirect" and d.body["provisioning"]["url"] == HTTP_URL


def test_enr4_k175_never_takes_an_ip_address_url() -> None:
    profile = entry("https://10.10.10.10:443/vantage/")
    d = decide(facts("K175", "3.0", device=ready("K175"), the_site=site(profile=profile)))
    assert reason(d) == "unsupported-url"
    assert "N/A" in d.body["detail"]


def test_enr4_ip_address_url_fine_for_j179() -> None:
    profile = entry("http://10.10.10.10/j100/")
    assert decide(facts(device=ready(), the_site=site(profile=profile))).result == "redirect"


def test_enr4_des_server_refused_where_not_supported() -> None:
    profile = entry("https://des.example.com/device/v1/files/", ServerType.DES)
    d = decide(facts("B199", "1.0.4.0", device=ready("B199"), the_site=site(profile=profile)))
    assert reason(d) == "unsupported-url"
    assert "Device Enrollment Services as Provisioning Server" in d.body["detail"]


def test_enr4_no_provisioning_urls_at_all_refused() -> None:
    d = decide(facts(device=ready(), caps=StubCaps(provisioning_urls=False)))
    assert reason(d) == "unsupported-url"


def test_enr4_group_sent_as_zero_without_device_group_id() -> None:
    # B199: "Device group ID" N/A.
    d = decide(facts("B199", "1.0.4.0", device=ready("B199"), the_site=site(profile=entry(group=12))))
    assert d.body["provisioning"]["group"] == 0
    assert "group 12" in d.audit.message and "left out" in d.audit.message


def test_enr4_root_ca_left_out_below_its_release() -> None:
    # K165: "Certificate with provisioning URL" from 2.0.
    profile = entry(root_ca=ROOT_PEM)
    d = decide(facts("K165", "1.1SP1", device=ready("K165"), the_site=site(profile=profile)))
    assert d.body["provisioning"]["trust"] == []
    assert "root CA" in d.audit.message
    assert decide(facts("K165", "2.0", device=ready("K165"), the_site=site(profile=profile))).body["provisioning"][
        "trust"
    ] == [ROOT_PEM]


@pytest.mark.parametrize(
    ("model", "firmware", "asks", "expected"),
    [
        ("J179", "4.0.1", True, {"est": EST}),
        ("J179", "4.0.0", True, None),  # Avaya issued certificates from 4.0.1
        ("K175", "2.0.5", True, None),  # from 2.1
        ("K175", "2.1", True, {"est": EST}),
        ("B199", "1.0.4.0", True, {"est": EST}),
        ("J179", LATEST, False, None),  # the profile does not ask
    ],
)
def test_enr2_enr4_identity_only_where_asked_and_supported(
    model: str, firmware: str, asks: bool, expected: dict[str, str] | None
) -> None:
    f = facts(model, firmware, device=ready(model), the_site=site(profile=entry(identity=asks)))
    d = decide(f)
    assert d.result == "redirect"
    assert d.body["identity"] == expected
    assert ("identity certificate (" in d.audit.message) == (asks and expected is None)


# --- ENR-3, DEV-7, EC -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "firmware", "formats"),
    [
        ("J179", "3.0", ["nec8", "nec12"]),
        ("J179", "4.0.4", ["nec8", "nec12", "pec12"]),
        ("K175", "3.0", ["nec8", "nec12"]),
        ("B199", "1.0.1", ["nec8"]),
        ("CU360", "11.3.0.40", ["nec8", "nec12", "pec12"]),
    ],
)
def test_enr3_code_formats_follow_appendix_a(model: str, firmware: str, formats: list[str]) -> None:
    assert decide(facts(model, firmware, device=unclaimed(model, owner_id=OWNER))).body["formats"] == formats


def test_enr3_no_code_format_rejected() -> None:
    # K165 1.1: Provisioning URLs yes, codes only from 2.0.
    assert reason(decide(facts("K165", "1.1", device=unclaimed("K165", owner_id=OWNER)))) == "codes-not-supported"


def test_enr3_empty_code_is_no_code() -> None:
    assert decide(facts(code="")).result == "code_required"


def test_ec7_valid_nec_claims_associates_activates_and_redirects() -> None:
    d = decide(facts(code=NEC8, match=nec_match()))
    assert d.result == "redirect" and d.body["provisioning"]["url"] == URL
    assert d.consume_code == CodeConsumption(SITE, "nec8", NEC8)
    assert d.device_updates is not None
    assert d.device_updates.claim == Claim(OWNER, SITE)
    assert d.device_updates.lock == LockUpdate(0, None)
    assert [(n.kind, n.facts["account_id"], n.facts["site"]) for n in d.notify] == [(CODE_USAGE, OWNER, str(SITE))]
    assert d.audit.reason == "code-enrolled" and d.audit.account_id == OWNER
    assert NEC8 not in d.audit.message


def test_ec7_valid_12_digit_nec() -> None:
    d = decide(facts(code=NEC12, match=nec_match(nec(NEC12))))
    assert d.result == "redirect" and d.consume_code == CodeConsumption(SITE, "nec12", NEC12)


def test_ec6_cu360_enrolls_with_a_pec_without_consuming_anything() -> None:
    d = decide(facts("CU360", "11.4.0.20", code=PEC, match=pec_match()))
    assert d.result == "redirect"
    assert d.consume_code is None
    assert d.device_updates is not None and d.device_updates.claim == Claim(OWNER, SITE)
    assert PIN not in d.audit.message and all(PEC not in str(n.facts) for n in d.notify)


@pytest.mark.parametrize(
    "match",
    [
        None,
        pec_match(site(pin="1234")),  # the PIN is another
        pec_match(site(pin=None)),  # the site has no PIN
        pec_match(account_id=OTHER),  # the code's first 8 digits name another account
        pec_match(site(account=OTHER)),  # the site belongs to another account
    ],
    ids=["nothing-found", "wrong-pin", "no-pin", "other-account", "site-of-other-account"],
)
def test_ec6_wrong_pec_is_a_wrong_code(match: CodeMatch | None) -> None:
    d = decide(facts("CU360", "11.4.0.20", code=PEC, match=match))
    assert (d.status, d.body) == (422, {"result": "code_invalid", "attempts_left": 2})


def test_ec6_pec_never_expires() -> None:
    d = decide(facts("CU360", "11.4.0.20", code=PEC, match=pec_match()), NOW + timedelta(days=3650))
    assert d.result == "redirect"


def test_ec_b199_cannot_take_a_12_digit_nec() -> None:
    d = decide(facts("B199", "1.0.4.0", code=NEC12, match=nec_match(nec(NEC12))))
    assert (d.status, d.body["attempts_left"], d.audit.reason) == (422, 2, "unsupported-code-format")
    assert d.consume_code is None


def test_ec_k175_cannot_take_a_pec() -> None:
    d = decide(facts("K175", "3.1", code=PEC, match=pec_match()))
    assert (d.result, d.audit.reason) == ("code_invalid", "unsupported-code-format")


def test_ec3_used_up_nec_is_invalid() -> None:
    d = decide(facts(code=NEC8, match=nec_match(nec(total=5, enrolled=5))))
    assert (d.result, d.audit.reason) == ("code_invalid", "used-up-code")
    assert d.consume_code is None


def test_ec1_expired_nec_is_invalid() -> None:
    f = facts(code=NEC8, match=nec_match(nec(expiry=Expiry(ExpiryUnit.HOURS, 2))))
    assert decide(f, NOW + timedelta(minutes=59)).result == "redirect"
    d = decide(f, NOW + timedelta(hours=1))
    assert (d.result, d.audit.reason) == ("code_invalid", "expired-code")


@pytest.mark.parametrize("code", ["1234567", "1234-5678", "abcdefgh", "1234567890123"])
def test_ec_malformed_code_is_a_wrong_code(code: str) -> None:
    d = decide(facts(code=code))
    assert (d.result, d.audit.reason) == ("code_invalid", "malformed-code")


def test_ec_nec_of_another_value_is_wrong() -> None:
    d = decide(facts(code="73915025", match=nec_match()))
    assert (d.result, d.audit.reason) == ("code_invalid", "wrong-code")


def test_ec7_code_of_another_account_for_a_claimed_device_rejected() -> None:
    device = unclaimed(owner_id=OTHER)
    d = decide(facts(device=device, owner=Account(OTHER), code=NEC8, match=nec_match()))
    assert reason(d) == "claimed-elsewhere"
    assert d.consume_code is None and d.device_updates is not None and d.device_updates.lock is None
    assert sorted(n.facts["account_id"] for n in d.notify) == [OWNER, OTHER]


def test_ec7_code_of_the_holding_account_moves_the_device_to_the_code_site() -> None:
    device = ready(activated=False, site_id=8)
    the_site = site(8)
    d = decide(facts(device=device, the_site=the_site, code=NEC8, match=nec_match()))
    assert d.result == "redirect"
    assert d.device_updates is not None and d.device_updates.claim == Claim(OWNER, SITE)


def test_prf4_right_code_for_site_without_profile_rejected_not_consumed() -> None:
    d = decide(facts(code=NEC8, match=nec_match(the_site=site(no_profile=True))))
    assert reason(d) == "no-profile"
    assert d.consume_code is None and d.device_updates is not None and d.device_updates.claim is None
    assert [n.facts["account_id"] for n in d.notify] == [OWNER]  # the code's account hears of it


def test_enr4_refusal_after_a_valid_code_does_not_consume_it() -> None:
    the_site = site(profile=entry("https://10.1.2.3/vantage/"))
    d = decide(facts("K175", "3.1", code=NEC8, match=nec_match(the_site=the_site)))
    assert reason(d) == "unsupported-url"
    assert d.consume_code is None
    assert d.device_updates is not None and d.device_updates.claim is None and d.device_updates.lock is None


def test_ec7_fw3_after_a_code_the_code_account_decides_firmware_on_des() -> None:
    des = site(profile=entry("https://des.example.com/device/v1/files/", ServerType.DES), firmware="latest")
    d = decide(facts(firmware="4.1.3.0", images=image, code=NEC8, match=nec_match(the_site=des, firmware_upgrade=True)))
    assert d.result == "upgrade"  # FW-2 first: an unclaimed device goes to latest before its code counts
    f = facts(firmware="4.1.3.0", caps=StubCaps(firmware_upgrade=False), code=NEC8)
    f = replace(f, code_match=nec_match(the_site=des, firmware_upgrade=True))
    d = decide(f)
    assert d.result == "redirect" and d.body["firmware"] is None  # the model cannot upgrade: left out
    assert "firmware 4.1.11.0.9 (" in d.audit.message


def test_ec7_fw3_after_a_code_on_des_the_code_account_setting_is_sent() -> None:
    des = site(profile=entry("https://des.example.com/device/v1/files/", ServerType.DES), firmware="4.1.3.0")
    d = decide(facts(code=NEC8, match=nec_match(the_site=des, firmware_upgrade=True)))
    assert d.result == "redirect" and d.body["firmware"]["version"] == "4.1.3.0"


def test_ec7_fw5_after_a_code_on_non_des_a_formerly_unclaimed_device_gets_none() -> None:
    https = site(firmware="4.1.3.0")
    d = decide(facts(code=NEC8, match=nec_match(the_site=https, firmware_upgrade=True)))
    assert d.result == "redirect" and d.body["firmware"] is None
    assert "FW-5" in d.audit.message


# --- LCK ----------------------------------------------------------------------------------------


def _apply(record: DeviceRecord, d: Decision) -> DeviceRecord:
    """What the store writes (serially: the conditional updates always match)."""
    if d.device_updates is None or d.device_updates.lock is None:
        return record
    lock = d.device_updates.lock
    assert lock.expected_failed in (None, record.failed_attempts)
    return replace(record, failed_attempts=lock.failed, locked_until=lock.locked_until)


def test_lck2_lth_wrong_code_locks_and_says_so() -> None:
    record = unclaimed()
    answers = []
    for _ in range(3):
        d = decide(facts(device=record, code="11112222"))
        answers.append((d.status, d.body))
        record = _apply(record, d)
    assert answers == [
        (422, {"result": "code_invalid", "attempts_left": 2}),
        (422, {"result": "code_invalid", "attempts_left": 1}),
        (423, {"result": "locked", "retry_after": 1800}),
    ]
    assert record.failed_attempts == 3 and record.locked_until == NOW + timedelta(minutes=30)


def test_lck2_locked_device_with_the_right_code_refused() -> None:
    record = unclaimed(failed_attempts=3, locked_until=NOW + timedelta(minutes=10))
    d = decide(facts(device=record, code=NEC8, match=nec_match()))
    assert (d.status, d.body) == (423, {"result": "locked", "retry_after": 600})
    assert d.consume_code is None and d.device_updates is not None
    assert d.device_updates.claim is None and d.device_updates.lock is None  # the lock is not extended
    assert d.notify == ()  # unclaimed and no code account named: nobody to tell


def test_lck2_locked_device_without_code_told_it_is_locked() -> None:
    record = unclaimed(owner_id=OWNER, failed_attempts=3, locked_until=NOW + timedelta(seconds=1.5))
    d = decide(facts(device=record))
    assert d.body == {"result": "locked", "retry_after": 2}
    assert [n.facts["account_id"] for n in d.notify] == [OWNER]


def test_lck2_lock_lifts_when_its_time_has_passed() -> None:
    record = unclaimed(failed_attempts=3, locked_until=NOW)
    d = decide(facts(device=record, code=NEC8, match=nec_match()))
    assert d.result == "redirect"
    assert d.device_updates is not None and d.device_updates.lock == LockUpdate(0, None)
    d = decide(facts(device=record))
    assert d.result == "code_required"
    assert d.device_updates is not None and d.device_updates.lock == LockUpdate(0, None)


def test_lck2_after_the_lock_the_count_starts_again() -> None:
    record = unclaimed(failed_attempts=3, locked_until=NOW - timedelta(seconds=1))
    d = decide(facts(device=record, code="11112222"))
    assert d.body == {"result": "code_invalid", "attempts_left": 2}
    assert d.device_updates is not None and d.device_updates.lock == LockUpdate(1, None, expected_failed=3)


def test_lck1_policy_of_one_attempt_locks_at_once() -> None:
    d = decide(facts(code="11112222", policy=LockoutPolicy(1, 5)))
    assert d.body == {"result": "locked", "retry_after": 300}


def test_lck2_right_code_resets_the_counter() -> None:
    d = decide(facts(device=unclaimed(failed_attempts=2), code=NEC8, match=nec_match()))
    assert d.device_updates is not None and d.device_updates.lock == LockUpdate(0, None)


_events = st.lists(
    st.one_of(
        st.sampled_from(["11112222", "012345678901", "987654321098", "12", "xyz"]),
        st.integers(min_value=1, max_value=45),  # minutes pass
    ),
    max_size=40,
)


@given(attempts=st.integers(min_value=1, max_value=6), events=_events)
def test_lck2_no_sequence_of_wrong_codes_gets_more_than_l_tries(attempts: int, events: list[str | int]) -> None:
    policy = LockoutPolicy(attempts, 30)
    record, now, counted = unclaimed("CU360"), NOW, 0
    for event in events:
        if isinstance(event, int):
            now += timedelta(minutes=event)
            continue
        was_locked = record.locked_until is not None and now < record.locked_until
        if record.locked_until is not None and not was_locked:
            counted = 0  # the lock's time has passed
        d = decide_enrollment(facts("CU360", "11.4.0.20", device=record, code=event, policy=policy), now)
        assert d.result in ("code_invalid", "locked")
        if was_locked:
            assert d.result == "locked" and d.device_updates is not None and d.device_updates.lock is None
        else:
            counted += 1
            assert counted <= attempts
            assert (d.result == "locked") == (counted == attempts)
            if d.result == "code_invalid":
                assert d.body["attempts_left"] == attempts - counted
        record = _apply(record, d)


@given(attempts=st.integers(min_value=1, max_value=5), concurrent=st.integers(min_value=1, max_value=12))
def test_lck3_concurrent_wrong_codes_never_get_more_than_l_tries(attempts: int, concurrent: int) -> None:
    """All requests read the same record; the store writes each lock update only while the
    counter is still what the decision read, and re-decides the losers on fresh facts."""
    policy = LockoutPolicy(attempts, 30)
    record = unclaimed()
    snapshot = record
    pending = [decide(facts(device=snapshot, code="11112222", policy=policy)) for _ in range(concurrent)]
    counted = 0
    while pending:
        d = pending.pop(0)
        lock = d.device_updates.lock if d.device_updates else None
        if lock is None:
            continue
        if lock.expected_failed is not None and lock.expected_failed != record.failed_attempts:
            pending.append(decide(facts(device=record, code="11112222", policy=policy)))
            continue
        record = replace(record, failed_attempts=lock.failed, locked_until=lock.locked_until)
        counted += 1
    assert counted == min(concurrent, attempts)
    assert record.failed_attempts == min(concurrent, attempts)


@given(total=st.integers(min_value=1, max_value=5), devices=st.integers(min_value=1, max_value=10))
def test_ec3_concurrent_use_never_enrolls_one_more_than_the_total(total: int, devices: int) -> None:
    """The store's `UPDATE … WHERE enrolled < total`; a failed update re-decides on fresh facts."""
    state = nec(total=total)
    enrolled_devices = 0
    first = [decide(facts(code=NEC8, match=nec_match(state))) for _ in range(devices)]
    for d in first:
        while d.consume_code is not None:
            if state.enrolled < state.total:
                state = replace(state, enrolled=state.enrolled + 1)
                enrolled_devices += 1
                break
            d = decide(facts(code=NEC8, match=nec_match(state)))
        else:
            assert d.result == "code_invalid" and d.audit.reason == "used-up-code"
    assert enrolled_devices == min(total, devices) == state.enrolled


# --- ENR-5, ENR-7, NTF ------------------------------------------------------------------------------


def test_enr5_audit_record_fields() -> None:
    d = decide(facts(device=ready(), code=NEC8))
    a = d.audit
    assert (a.process, a.action, a.mac, a.client_host, a.status) == (
        "ENROLLMENT",
        "enroll",
        MAC,
        "10.20.30.40",
        "SUCCESS",
    )
    assert a.subject == f"CN={MAC},serialNumber={SERIAL},O=Avaya"
    assert a.message.startswith(f"J179 {LATEST}: redirected to ")
    assert a.account_id == OWNER


def test_enr5_wrong_code_audit_has_no_digits_of_the_code() -> None:
    d = decide(facts(code="55556666", match=nec_match()))
    assert d.audit.status == "FAIL" and "55556666" not in d.audit.message
    assert "nec8" in d.audit.message


def test_enr5_model_the_device_claims_differs_from_import_is_logged() -> None:
    f = facts(device=ready())
    f = replace(f, request=replace(f.request, model="J169"))
    d = decide(f)
    assert d.result == "redirect" and "'J169'" in d.audit.message


def test_enr7_same_facts_same_answer() -> None:
    f = facts(device=ready(), the_site=site(profile=entry(identity=True, root_ca=ROOT_PEM, group=3)))
    assert decide(f) == decide(f)


def test_enr7_rediscovery_reflects_a_changed_profile() -> None:
    f = facts(device=ready())
    assert decide(f).body["provisioning"]["url"] == URL
    changed = replace(f, site=site(profile=entry("https://new.example.com/$MODEL4/")))
    assert decide(changed).body["provisioning"]["url"] == "https://new.example.com/$MODEL4/"


def test_ntf1_refusal_of_unclaimed_device_notifies_nobody() -> None:
    assert decide(facts(code="11112222")).notify == ()


def test_ntf1_failure_notice_facts() -> None:
    d = decide(facts(device=ready(), the_site=site(no_profile=True)))
    (notice,) = d.notify
    assert notice.kind == FAILURE
    assert {k: notice.facts[k] for k in ("account_id", "mac", "model", "firmware", "reason", "client_host")} == {
        "account_id": OWNER,
        "mac": MAC,
        "model": "J179",
        "firmware": LATEST,
        "reason": "no-profile",
        "client_host": "10.20.30.40",
    }


def test_device_updates_record_contact_and_firmware() -> None:
    d = decide(facts(firmware="4.1.3.0", device=ready()))
    assert d.device_updates is not None
    assert (d.device_updates.last_contact, d.device_updates.firmware) == (NOW, "4.1.3.0")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("model", "J999", "unknown-model"), ("firmware", "latest", "invalid-firmware")],
)
def test_fw1_unknown_model_or_firmware_rejected(field: str, value: str, expected: str) -> None:
    f = facts(device=ready())
    if field == "model":
        f = replace(f, device=ready(model=value))
    else:
        f = replace(f, request=replace(f.request, firmware=value))
    assert reason(decide(f)) == expected


# --- never raises -----------------------------------------------------------------------------------

_STATUS = {
    "redirect": 200,
    "upgrade": 200,
    "code_required": 200,
    "code_invalid": 422,
    "locked": 423,
    "rejected": 403,
    "unknown_device": 404,
}
_BODY_KEYS = {
    "redirect": {"result", "provisioning", "firmware", "identity"},
    "upgrade": {"result", "firmware", "reason"},
    "code_required": {"result", "formats"},
    "code_invalid": {"result", "attempts_left"},
    "locked": {"result", "retry_after"},
    "rejected": {"result", "reason", "detail"},
    "unknown_device": {"result"},
}
_MODELS = [*CATALOG.models(), "700513892", "X999"]
_VERSIONS = sorted({str(v) for m in CATALOG.models() for v in CATALOG.releases(m)}) + ["1.1 SP1", "banana", ""]
_URLS = [
    URL,
    HTTP_URL,
    "https://user:pw@10.0.0.1:8443/$MACADDR/",
    "http://192.168.1.10/",
    "https://des.example.com/device/v1/files/",
    "ftp://bad",
]
_codes = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from([NEC8, NEC12, PEC]),
    st.from_regex(r"[0-9]{8}|[0-9]{12}", fullmatch=True).filter(lambda c: c not in (OWNER, OTHER)),
    st.text(max_size=14),
)
_times = st.one_of(st.none(), st.integers(min_value=-3000, max_value=3000).map(lambda s: NOW + timedelta(seconds=s)))
_entries = st.one_of(
    st.none(),
    st.builds(
        ProfileEntry,
        st.sampled_from(list(ServerType)),
        st.sampled_from(_URLS),
        st.booleans(),
        st.sampled_from([None, ROOT_PEM]),
        st.integers(min_value=0, max_value=999),
    ),
)
_settings = st.sampled_from([None, "same-as-account", "latest", "off", "4.1.3.0", "3.1", "9.9", "junk"])
_accounts = st.builds(Account, st.sampled_from([OWNER, OTHER]), st.booleans(), st.booleans(), _settings)
_sites = st.builds(
    SiteFacts,
    st.sampled_from([SITE, 8]),
    st.sampled_from([OWNER, OTHER]),
    st.booleans(),
    st.sampled_from([None, PIN, "0000"]),
    _entries,
    _settings,
)
_necs = st.builds(
    NecState,
    st.sampled_from([NEC8, NEC12, "11112222"]),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=0, max_value=4),
    st.sampled_from([None, Expiry(ExpiryUnit.HOURS, 1), Expiry(ExpiryUnit.DAYS, 2)]),
    st.sampled_from([NOW - timedelta(hours=2), NOW - timedelta(minutes=5), datetime(2026, 11, 23, 8, 30)]),
)
_devices = st.builds(
    DeviceRecord,
    st.sampled_from([MAC, OTHER_MAC]),
    st.just(SERIAL),
    st.sampled_from(_MODELS),
    st.sampled_from([THUMB, THUMB.lower(), None, "00" * 32]),
    approved=st.booleans(),
    owner_id=st.sampled_from([None, OWNER, OTHER]),
    site_id=st.sampled_from([None, SITE, 8]),
    associated=st.booleans(),
    activated=st.booleans(),
    failed_attempts=st.integers(min_value=0, max_value=6),
    locked_until=_times,
    first_contact=st.booleans(),
    pre_claimed=st.booleans(),
)


def _all(value: bool) -> Capabilities:
    class Fixed:
        def supports(self, model: str, firmware: str, feature: str) -> bool:
            return value

        def explain(self, model: str, firmware: str, feature: str) -> str:
            return f"{model} {firmware}: {feature} {'on' if value else 'off'}"

    return Fixed()


_facts = st.builds(
    EnrollmentFacts,
    request=st.builds(
        RequestFacts,
        st.sampled_from(_MODELS),
        st.sampled_from(_VERSIONS),
        st.sampled_from([MAC, "a4-25-1b-0c-3d-5e", OTHER_MAC, "not a mac"]),
        st.just(SERIAL),
        _codes,
        st.sampled_from([None, "10.0.0.9"]),
    ),
    certificate=st.builds(
        CertificateFacts, st.sampled_from([MAC, OTHER_MAC, "x"]), st.sampled_from([THUMB, THUMB.lower(), "AB"])
    ),
    device=st.one_of(st.none(), _devices),
    owner=st.one_of(st.none(), _accounts),
    site=st.one_of(st.none(), _sites),
    code_match=st.one_of(st.none(), st.builds(CodeMatch, _sites, _accounts, st.one_of(st.none(), _necs))),
    policy=st.builds(LockoutPolicy, st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=60)),
    catalog=st.just(CATALOG),
    capabilities=st.sampled_from([MATRIX, _all(True), _all(False), StubCaps(firmware_upgrade=True)]),
    est_base_url=st.sampled_from([None, EST]),
    firmware_images=st.sampled_from([{}, image, {LATEST: image("J179", LATEST)}]),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(f=_facts, offset=st.integers(min_value=-10_000, max_value=10_000))
def test_decision_never_raises_and_always_maps_onto_protocol(f: EnrollmentFacts, offset: int) -> None:
    d = decide_enrollment(f, NOW + timedelta(seconds=offset))
    assert d.status == _STATUS[d.result]
    assert set(d.body) == _BODY_KEYS[d.result] and d.body["result"] == d.result
    json.dumps(d.body)
    if d.result == "redirect":
        assert set(d.body["provisioning"]) == {"url", "server_type", "group", "trust"}
        assert 0 <= d.body["provisioning"]["group"] <= 999
        assert d.body["provisioning"]["server_type"] in ("DES", "HTTPS", "HTTP")
    if d.result == "code_invalid":
        assert 1 <= d.body["attempts_left"] < f.policy.attempts
    if d.result == "locked":
        assert d.body["retry_after"] >= 1
    assert d.audit.process == "ENROLLMENT" and d.audit.status in ("SUCCESS", "FAIL")
    code = f.request.code
    if code and len(code) >= 8 and code.isdigit():
        assert code not in d.audit.message
        assert all(code not in value for n in d.notify for value in n.facts.values())
    if d.consume_code is not None:
        assert d.result == "redirect" and d.device_updates is not None and d.device_updates.claim is not None


_lookups: list[Callable[[str, str], FirmwareImage | None]] = [image, lambda model, version: None]


@pytest.mark.parametrize("lookup", _lookups, ids=["found", "missing"])
def test_fw_image_lookup_callable(lookup: Callable[[str, str], FirmwareImage | None]) -> None:
    d = decide(facts(firmware="4.0.6.0", images=lookup))
    assert d.result == ("upgrade" if lookup is image else "code_required")
