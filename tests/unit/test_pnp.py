"""PNP-1 rules without I/O: placing a device (pre-registration, QR scan), the registration outcome,
reprovisioning (identity kept), replacement (the old one released), and the QR payload format
with its one-time token."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.domain import claim_proof, pnp, pnp_qr
from server.domain.devices import DeviceState, zero_touch_ready
from server.domain.errors import DomainError

SP, CUSTOMER, OTHER = "10000001", "10000002", "10000003"
TO_CUSTOMER = pnp.Target(SP, CUSTOMER, True, 7, True)
FRESH = DeviceState(mac="A4251B000001", serial="SN1", model="J179", approved=True)


def test_place_claims_associates_and_activates_an_unclaimed_device() -> None:
    placed = pnp.place(FRESH, TO_CUSTOMER)
    assert (placed.owner_id, placed.site_id, placed.associated, placed.activated) == (CUSTOMER, 7, True, True)
    assert placed.previous_owner_id == SP and zero_touch_ready(placed)
    assert pnp.place(placed, TO_CUSTOMER) == placed  # already there: unchanged


@pytest.mark.parametrize(
    ("state", "target", "error"),
    [
        (replace(FRESH, approved=False), TO_CUSTOMER, "not-approved"),
        (replace(FRESH, owner_id=OTHER), TO_CUSTOMER, "held-elsewhere"),
        (FRESH, replace(TO_CUSTOMER, site_has_profile=False), "no-profile"),
        (FRESH, replace(TO_CUSTOMER, account_is_child=False), "target-not-in-hierarchy"),
    ],
)
def test_place_refusals_are_the_dev_rules(state: DeviceState, target: pnp.Target, error: str) -> None:
    with pytest.raises(DomainError) as refused:
        pnp.place(state, target)
    assert refused.value.error == error


def test_registration_outcomes() -> None:
    proof = pnp.Proof("SN1")
    assert pnp.register_outcome(None, proof, None, TO_CUSTOMER)[0] == "pending"
    assert pnp.register_outcome(replace(FRESH, approved=False), proof, None, TO_CUSTOMER)[0] == "pending"
    assert pnp.register_outcome(FRESH, pnp.Proof("SN2"), None, TO_CUSTOMER)[0] == "not-proven"
    assert pnp.register_outcome(replace(FRESH, owner_id=OTHER), proof, None, TO_CUSTOMER)[0] == "held-elsewhere"
    assert pnp.register_outcome(FRESH, proof, None, TO_CUSTOMER) == ("ready", None)
    assert pnp.register_outcome(pnp.place(FRESH, TO_CUSTOMER), proof, None, TO_CUSTOMER)[0] == "already-placed"


def test_a_registration_that_claims_proves_possession_like_a_claim() -> None:
    """DEV-3: the device's label code where it has one; none at all under a policy requiring one."""
    code = claim_proof.label_code_hash(FRESH.mac, "LB12CD34")
    wrong = claim_proof.label_code_hash(FRESH.mac, "LB99ZZ99")
    assert pnp.proves_possession(FRESH, pnp.Proof("SN1", code), code)
    assert not pnp.proves_possession(FRESH, pnp.Proof("SN1"), code)
    assert not pnp.proves_possession(FRESH, pnp.Proof("SN1", wrong), code)
    assert not pnp.proves_possession(FRESH, pnp.Proof("SN2", code), code)
    assert not pnp.proves_possession(FRESH, pnp.Proof("SN1", code_required=True), None)
    held = replace(FRESH, owner_id=CUSTOMER)  # no claim: holding it is the proof, the serial still counts
    assert pnp.proves_possession(held, pnp.Proof("SN1"), code)
    assert not pnp.proves_possession(held, pnp.Proof("SN2"), code)
    assert pnp.register_outcome(FRESH, pnp.Proof("SN1"), code, TO_CUSTOMER)[0] == "not-proven"


def test_reprovision_keeps_identity_and_order_fields_and_activates_at_the_new_site() -> None:
    at_a = replace(pnp.place(FRESH, TO_CUSTOMER), order={"order_id": "SO-1", "reseller_order_id": "R-1"})
    to_b = pnp.Target(SP, OTHER, True, 9, True)
    moved = pnp.reprovision(at_a, to_b, owner_in_scope=True)
    assert (moved.mac, moved.serial, moved.model, moved.order) == (at_a.mac, at_a.serial, at_a.model, at_a.order)
    assert (moved.owner_id, moved.previous_owner_id, moved.site_id, moved.activated) == (OTHER, CUSTOMER, 9, True)
    with pytest.raises(DomainError) as same:
        pnp.reprovision(moved, to_b, owner_in_scope=True)
    assert same.value.error == "already-placed" and same.value.status == 409


@pytest.mark.parametrize(
    ("state", "in_scope", "error"),
    [(FRESH, True, "not-claimed"), (replace(FRESH, owner_id=OTHER), False, "not-owner")],
)
def test_reprovision_refusals(state: DeviceState, in_scope: bool, error: str) -> None:
    with pytest.raises(DomainError) as refused:
        pnp.reprovision(state, TO_CUSTOMER, owner_in_scope=in_scope)
    assert refused.value.error == error


def test_replacement_moves_the_place_and_releases_the_old_device() -> None:
    old = replace(pnp.place(FRESH, TO_CUSTOMER), order={"order_id": "SO-1", "aco_product_id": "ACO-1"})
    swap = pnp.replace_device(old, "A4251B000099", "SN99", None, owner_in_scope=True)
    assert (swap.new.mac, swap.new.serial, swap.new.model) == ("A4251B000099", "SN99", "J179")
    assert (swap.new.owner_id, swap.new.site_id, swap.new.activated, swap.new.order) == (CUSTOMER, 7, True, old.order)
    assert zero_touch_ready(swap.new) and not zero_touch_ready(swap.old)
    assert (swap.old.owner_id, swap.old.previous_owner_id, swap.old.site_id) == (None, CUSTOMER, None)
    assert swap.old.order == {"order_id": None, "aco_product_id": "ACO-1", "reseller_order_id": None,
                              "shipment_carrier": None, "tracking_id": None}  # fmt: skip
    assert pnp.replaced_reason("A4251B000099") == "replaced by A4251B000099"
    with pytest.raises(DomainError) as same:
        pnp.replace_device(old, old.mac, "SN99", None, owner_in_scope=True)
    assert same.value.error == "same-device"
    with pytest.raises(DomainError) as unclaimed:
        pnp.replace_device(FRESH, "A4251B000099", "SN99", None, owner_in_scope=True)
    assert unclaimed.value.error == "not-claimed"


def test_place_words_for_the_audit_log() -> None:
    assert pnp.place_words(CUSTOMER, 7) == f"account {CUSTOMER} site 7"
    assert pnp.place_words(None, None) == "nobody"


# --- the QR payload --------------------------------------------------------------------------------


def test_payload_round_trip_and_token() -> None:
    token = pnp_qr.new_token()
    assert len(token) == 32 and token != pnp_qr.new_token()
    payload = pnp_qr.Payload("QR000017", "A4251B0C3D5E", "21WZ51234567", token)
    text = payload.text()
    assert text.startswith("enrollab:onboard?v=1&b=QR000017&m=A4251B0C3D5E&s=21WZ51234567&t=")
    assert text.isascii() and len(text) < 120
    assert pnp_qr.parse_payload(text) == payload
    assert pnp_qr.token_hash(token) != token and len(pnp_qr.token_hash(token)) == 64
    lower = text.replace("A4251B0C3D5E", "a4:25:1b:0c:3d:5e")
    assert pnp_qr.parse_payload(lower).mac == "A4251B0C3D5E"  # PROTOCOL §1 forms normalised


_GOOD = pnp_qr.Payload("QR000001", "A4251B000001", "SN1", "T" * 32).text()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "enrollab:onboard",
        "https://example.com/?v=1",
        _GOOD.replace("v=1", "v=2"),
        _GOOD.replace("b=QR000001", "b=X1"),
        _GOOD.replace("m=A4251B000001", "m=zz"),
        _GOOD.replace("s=SN1", "s=-bad"),
        _GOOD.replace("T" * 32, "short"),
        _GOOD + "&x=1",
        _GOOD + "&m=A4251B000002",
        _GOOD.replace("&s=SN1", ""),
        _GOOD + "é",
        _GOOD + "&" + "y" * 600,
        "enrollab:onboard?garbage",
    ],
)
def test_malformed_payloads_are_refused_without_quoting_the_token(text: str) -> None:
    with pytest.raises(DomainError) as refused:
        pnp_qr.parse_payload(text)
    assert refused.value.error == "invalid-qr-payload" and refused.value.status == 422
    assert "TTTT" not in refused.value.detail


def test_codes_and_sheet_are_drawn() -> None:
    payload = pnp_qr.parse_payload(_GOOD)
    assert pnp_qr.png(payload).startswith(b"\x89PNG")
    assert b"<svg" in pnp_qr.svg(payload)
    sheet = pnp_qr.sheet_html("QR000001", [payload, replace(payload, serial="S<script>")])
    assert sheet.count("data:image/png;base64,") == 2
    assert "<script>" not in sheet and "S&lt;script&gt;" in sheet  # escaped by Jinja2
