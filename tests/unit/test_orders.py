"""DEP-1 rules: the batch schema and its JSON pointers, each device's outcome, the response
document, and the Fernet envelope (wrong key, truncated ciphertext)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from cryptography.fernet import Fernet

from server.domain import order_envelope, orders
from server.domain.devices import DeviceState
from server.domain.errors import DomainError

SELLER, CUSTOMER, OTHER = "20000001", "30000001", "40000001"
PARTIES = orders.Parties(SELLER, CUSTOMER, True, order_id="SO-1")


def _doc(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "batch_id": "B-1",
        "order_id": "SO-1",
        "customer_account": CUSTOMER,
        "devices": [{"mac": "a4:25:1b:00:00:01", "serial": "SN1", "model": "J179", "request_type": "EN"}],
        **extra,
    }


def _req(kind: str = "EN", serial: str = "SN1", model: str = "J179") -> orders.BatchDevice:
    return orders.BatchDevice(0, "A4251B000001", serial, model, kind)  # type: ignore[arg-type]


def _state(**kw: Any) -> DeviceState:
    return DeviceState(mac="A4251B000001", serial="SN1", model="J179", approved=True, **kw)


def test_a_batch_parses_with_canonical_macs_and_a_stable_digest() -> None:
    batch = orders.parse_batch(_doc())
    assert batch.devices[0].mac == "A4251B000001" and batch.site_id is None
    assert batch.digest == orders.parse_batch(json.loads(json.dumps(_doc()))).digest
    assert batch.digest != orders.parse_batch(_doc(order_id="SO-2")).digest


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"version": 2}, "/version"),
        ({"batch_id": "-starts-with-dash"}, "/batch_id"),
        ({"customer_account": "1234"}, "/customer_account"),
        ({"site_id": 0}, "/site_id"),
        ({"devices": []}, "/devices"),
        (
            {"devices": [{"mac": "A4251B000001", "serial": "SN1", "model": "J179", "request_type": "XX"}]},
            "/devices/0/request_type",
        ),
        (
            {"devices": [{"mac": "A4251B00000Z", "serial": "SN1", "model": "J179", "request_type": "EN"}]},
            "/devices/0/mac",
        ),
        (
            {"devices": [{"mac": "A4251B000001", "serial": "S N", "model": "J179", "request_type": "RE"}]},
            "/devices/0/serial",
        ),
        ({"devices": [{"mac": "A4251B000001", "serial": "SN1", "request_type": "RE"}]}, "/devices/0"),
        ({"surprise": True}, ""),
    ],
)
def test_every_schema_error_names_its_json_pointer(change: dict[str, Any], pointer: str) -> None:
    with pytest.raises(DomainError) as caught:
        orders.parse_batch({**_doc(), **change})
    err = caught.value
    assert err.error == "invalid-batch" and err.status == 422
    assert pointer in [e["pointer"] for e in err.extra["errors"]], err.extra
    assert (pointer or "/") in err.detail


def test_a_refused_serial_is_never_quoted() -> None:
    device = {"mac": "A4251B000001", "serial": "SECRET SERIAL", "model": "J179", "request_type": "EN"}
    with pytest.raises(DomainError) as caught:
        orders.parse_batch(_doc(devices=[device]))
    assert "SECRET" not in json.dumps(caught.value.to_json())
    assert caught.value.extra["errors"][0]["pointer"] == "/devices/0/serial"


def test_pointers_escape_tilde_and_slash() -> None:
    assert orders.pointer(["a/b", "c~d", 3]) == "/a~1b/c~0d/3"
    assert orders.pointer([]) == ""


def test_many_errors_are_counted_and_capped() -> None:
    devices = [{"mac": "x", "serial": "SN1", "model": "J179", "request_type": "EN"}] * 80
    with pytest.raises(DomainError) as caught:
        orders.parse_batch(_doc(devices=devices))
    assert caught.value.extra["error_count"] == 80 and len(caught.value.extra["errors"]) == orders.MAX_ERRORS


def test_enrol_an_unclaimed_device_moves_it_to_the_customer_with_the_order_id() -> None:
    out = orders.decide(_req(), _state(), PARTIES, duplicate=False)
    assert out.outcome == "enrolled" and out.state is not None
    assert out.state.owner_id == CUSTOMER and out.state.previous_owner_id == SELLER
    assert out.state.order["order_id"] == "SO-1" and not out.state.activated


def test_enrol_from_the_sellers_stock_with_a_site_activates() -> None:
    parties = orders.Parties(SELLER, CUSTOMER, True, site_id=7, site_has_profile=True, order_id="SO-1")
    out = orders.decide(_req(), _state(owner_id=SELLER), parties, duplicate=False)
    assert out.outcome == "enrolled" and out.state is not None
    assert (out.state.owner_id, out.state.site_id, out.state.associated, out.state.activated) == (
        CUSTOMER,
        7,
        True,
        True,
    )


def test_already_enrolled_changes_nothing_and_a_new_site_moves_it() -> None:
    assert orders.decide(_req(), _state(owner_id=CUSTOMER), PARTIES, False).outcome == "already-enrolled"
    parties = orders.Parties(SELLER, CUSTOMER, True, site_id=8, site_has_profile=True)
    at_other_site = _state(owner_id=CUSTOMER, site_id=7, associated=True, activated=True)
    moved = orders.decide(_req(), at_other_site, parties, False)
    assert moved.outcome == "enrolled" and moved.state is not None and moved.state.site_id == 8


@pytest.mark.parametrize(
    ("state", "asked", "outcome"),
    [
        (None, _req(), "unknown-device"),
        (_state(), _req(serial="SN2"), "unknown-device"),  # a wrong serial tells no more than no device
        (_state(), _req(model="K175"), "invalid"),
        (_state(owner_id=OTHER), _req(), "held-elsewhere"),
        (DeviceState(mac="A4251B000001", serial="SN1", model="J179"), _req(), "not-approved"),
        (_state(owner_id=SELLER), _req("RE"), "not-enrolled"),
        (_state(), _req("RE"), "not-enrolled"),  # an RE for a device never enrolled
    ],
)
def test_per_device_refusals(state: DeviceState | None, asked: orders.BatchDevice, outcome: str) -> None:
    out = orders.decide(asked, state, PARTIES, duplicate=False)
    assert out.outcome == outcome and out.state is None and out.detail


def test_return_gives_the_device_back_to_the_seller_and_erases_the_order_fields() -> None:
    held = _state(owner_id=CUSTOMER, site_id=7, associated=True, activated=True, order={"order_id": "SO-1"})
    out = orders.decide(_req("RE"), held, PARTIES, False)
    assert out.outcome == "released" and out.state is not None
    assert (out.state.owner_id, out.state.site_id, out.state.activated, out.state.order["order_id"]) == (
        SELLER,
        None,
        False,
        None,
    )


def test_an_unusable_customer_and_a_duplicate_are_per_device_outcomes() -> None:
    gone = orders.Parties(SELLER, CUSTOMER, False)
    assert orders.decide(_req(), _state(), gone, False).outcome == "unknown-customer"
    dup = orders.decide(_req(), _state(), PARTIES, True)
    assert dup.outcome == "invalid" and dup.detail and dup.detail.startswith("duplicate-in-batch")
    batch = orders.parse_batch(_doc(devices=[_doc()["devices"][0], {**_doc()["devices"][0], "mac": "A4251B000001"}]))
    assert orders.duplicates(batch.devices) == {1}


def test_the_response_document_validates_and_counts_outcomes() -> None:
    answered = [
        orders.Answered("A4251B000001", "SN1", "J179", "EN", "enrolled", None),
        orders.Answered("A4251B000002", "SN2", "J179", "RE", "not-enrolled", "nothing to return"),
    ]
    doc = orders.response_document("B-1", "SO-1", CUSTOMER, None, datetime(2026, 1, 1, tzinfo=UTC), answered)
    jsonschema.validate(doc, orders.schema("dep-response"), format_checker=jsonschema.FormatChecker())
    assert doc["status"] == "FAIL" and doc["summary"] == {"enrolled": 1, "not-enrolled": 1}
    assert "detail" not in doc["devices"][0]
    assert orders.status_of(["enrolled", "released", "already-enrolled"]) == "COMPLETE"


def test_the_envelope_round_trips_and_validates() -> None:
    key = order_envelope.new_key()
    sealed = order_envelope.seal_json(_doc(), key, "dep-batch")
    jsonschema.validate(sealed, orders.schema("dep-envelope"))
    assert json.loads(order_envelope.open_envelope(sealed, key)) == _doc()
    # What a third party writes from the documentation alone opens too (no key id needed).
    theirs = {"envelope": "fernet", "ciphertext": Fernet(key.encode()).encrypt(b'{"a": 1}').decode()}
    assert order_envelope.open_envelope(theirs, key) == b'{"a": 1}'


def _refusal(envelope: dict[str, Any], key: str | None) -> str:
    with pytest.raises(DomainError) as caught:
        order_envelope.open_envelope(envelope, key)
    assert caught.value.status == 422
    return caught.value.error


def test_wrong_keys_truncations_and_tampering_are_refused() -> None:
    key, other = order_envelope.new_key(), order_envelope.new_key()
    sealed = order_envelope.seal_json(_doc(), key, "dep-batch")
    assert _refusal(sealed, other) == "wrong-key"  # by key id
    assert _refusal({**sealed, "key_id": order_envelope.key_id(other)}, other) == "wrong-key"  # by HMAC
    no_id = {k: v for k, v in sealed.items() if k != "key_id"}
    assert _refusal(no_id, other) == "wrong-key"
    token = sealed["ciphertext"]
    for cut in (len(token) - 1, len(token) - 4, len(token) // 2, 10, 0):
        assert _refusal({**no_id, "ciphertext": token[:cut]}, key) == "ciphertext-truncated", cut
    flipped = token[:60] + ("A" if token[60] != "A" else "B") + token[61:]
    assert _refusal({**no_id, "ciphertext": flipped}, key) in ("wrong-key", "ciphertext-truncated")
    assert _refusal(sealed, None) == "no-key"


def test_a_key_file_that_is_no_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(DomainError) as caught:
        order_envelope.check_key("my secret passphrase")
    assert caught.value.error == "invalid-key" and "passphrase" not in str(caught.value.to_json())
    key = order_envelope.new_key()
    assert order_envelope.check_key(key + "\n") == key
