"""FF-1 rules without I/O: add versus update by the version field, optimistic concurrency, and
which reporting device may fill which slot."""

from __future__ import annotations

import pytest

from server.domain import fleet_freedom as ff
from server.domain.errors import DomainError


def test_ff1_without_a_version_it_adds_with_one_it_updates() -> None:
    added = ff.parse_merge({"id": "a4-25-1b-00-00-01", "kind": "J179", "company": "12345678"})
    updated = ff.parse_merge({"id": "A4251B000001", "kind": "J179", "company": "12345678", "v": 3})
    assert added.mode == ff.ADD and added.mac == "A4251B000001" and added.version is None
    assert updated.mode == ff.UPDATE and updated.version == 3


def test_ff1_the_reporting_id_is_a_mac() -> None:
    with pytest.raises(DomainError) as refused:
        ff.parse_merge({"id": "IMEI-3567", "kind": "J179", "company": "12345678"})
    assert refused.value.error == "invalid-mac" and refused.value.status == 422


def test_ff1_the_current_version_gives_the_next_a_stale_one_is_refused_naming_the_current() -> None:
    assert ff.check_version(4, 4) == 5
    with pytest.raises(DomainError) as stale:
        ff.check_version(5, 4)
    assert stale.value.error == "stale-version" and stale.value.status == 409
    assert stale.value.to_json()["current_v"] == 5 and "version 5" in stale.value.detail


def test_ff1_adding_what_exists_names_the_version_only_of_a_direct_addition() -> None:
    assert ff.exists_error("A4251B000001", 2).to_json()["current_v"] == 2
    assert "current_v" not in ff.exists_error("A4251B000001", None).to_json()


def test_ff1_a_slot_names_its_device_by_exactly_one_of_mac_and_serial() -> None:
    assert ff.slot_target("a4:25:1b:00:00:01", None) == ("A4251B000001", None)
    assert ff.slot_target(None, "SN1") == (None, "SN1")
    for mac, serial in ((None, None), ("A4251B000001", "SN1")):
        with pytest.raises(DomainError) as refused:
            ff.slot_target(mac, serial)
        assert refused.value.error == "slot-target"


SP_PATH = "/00000001/11111111/"
SLOT = ff.SlotView("J179", None, "SN1", "/00000001/11111111/22222222/", creator_path=SP_PATH)
BY_MAC = ff.SlotView("J179", "A4251B000001", None, SLOT.account_path, creator_path=SP_PATH)
DEVICE = ff.ReportingDevice("A4251B000001", "SN1", "J179", None)
HELD_ABOVE = ff.ReportingDevice("A4251B000001", "SN1", "J179", SP_PATH)


@pytest.mark.parametrize(
    ("slot", "device", "reason"),
    [
        (SLOT, DEVICE, None),
        (SLOT, ff.ReportingDevice("A4251B000001", "SN2", "J179", None), "slot-other-device"),
        (ff.SlotView("J179", "A4251B000009", None, SLOT.account_path), DEVICE, "slot-other-device"),
        (SLOT, ff.ReportingDevice("A4251B000001", "SN1", "K175", None), "slot-model-mismatch"),
        # held by the slot's account or an account above it: it may move down; elsewhere: not
        (SLOT, ff.ReportingDevice("A4251B000001", "SN1", "J179", "/00000001/11111111/"), None),
        (SLOT, ff.ReportingDevice("A4251B000001", "SN1", "J179", SLOT.account_path), None),
        (SLOT, ff.ReportingDevice("A4251B000001", "SN1", "J179", "/00000001/33333333/"), "slot-owner-conflict"),
        # moving it down is the creator's act (ACC-7): a customer's slot takes no device of its reseller
        (ff.SlotView("J179", None, "SN1", SLOT.account_path, creator_path=SLOT.account_path), HELD_ABOVE,
         "slot-owner-conflict"),
        (ff.SlotView("J179", None, "SN1", SLOT.account_path, creator_path=None), HELD_ABOVE, "slot-owner-conflict"),
        (BY_MAC, HELD_ABOVE, None),
        # held by nobody, filling is a claim (DEV-3): by the serial, without a label code
        (BY_MAC, DEVICE, "slot-claim-proof"),
        (SLOT, ff.ReportingDevice("A4251B000001", "SN1", "J179", None, has_label_code=True), "slot-claim-proof"),
        (ff.SlotView("J179", None, "SN1", SLOT.account_path, label_code_required=True), DEVICE, "slot-claim-proof"),
        (ff.SlotView("J179", None, "SN1", SLOT.account_path, account_enabled=False), DEVICE, "disabled-account"),
        (ff.SlotView("J179", None, "SN1", SLOT.account_path, site_has_profile=False), DEVICE,
         "site-without-profile"),
    ],
)
def test_ff1_which_device_fills_which_slot(slot: ff.SlotView, device: ff.ReportingDevice, reason: str | None) -> None:
    refusal = ff.fill_refusal(slot, device)
    assert (refusal[0] if refusal else None) == reason
