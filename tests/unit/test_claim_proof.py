"""DEV-3 claim proof rules (server/domain/claim_proof.py): label-code form and hashing, and which
combinations prove possession."""

from __future__ import annotations

import pytest

from server.domain.claim_proof import label_code_hash, matches, no_match, normalize_label_code
from server.domain.errors import DomainError

MAC, SERIAL = "A4251B0C3D5E", "21WZ51234567"


def test_label_codes_ignore_blanks_dashes_and_case() -> None:
    assert normalize_label_code(" 7k3p-q9xa ") == normalize_label_code("7K3P\u00a0Q9XA") == "7K3PQ9XA"
    assert label_code_hash(MAC, "7k3p q9xa") == label_code_hash(MAC, "7K3P-Q9XA")


@pytest.mark.parametrize(
    "bad", ["", "abc", "a!bcd", "x" * 33, "ÄBCD", "ABCD\u0085EFGH", "ABCD\tEFGH", "ABCD\x1fEFGH", "ABCıDEFG", "ABCDﬁ"]
)
def test_label_codes_are_4_to_32_letters_and_digits(bad: str) -> None:
    with pytest.raises(DomainError) as err:
        normalize_label_code(bad)
    assert (err.value.status, err.value.error) == (422, "invalid-label-code")
    assert err.value.value is None  # never quoted, malformed or not


def test_a_refused_label_code_names_its_device_not_itself() -> None:
    with pytest.raises(DomainError) as err:
        normalize_label_code("7K3P\x01Q9XA", MAC)
    assert err.value.value == MAC and MAC in err.value.detail and "7K3P" not in str(err.value.to_json())


def test_the_hash_is_salted_by_the_mac() -> None:
    assert label_code_hash(MAC, "ABCD1234") != label_code_hash("A4251B0C3D5F", "ABCD1234")
    assert "ABCD1234" not in label_code_hash(MAC, "ABCD1234")


def test_the_pair_must_name_the_device_found() -> None:
    assert matches(MAC, SERIAL, None, MAC, SERIAL, None, False)
    assert not matches(MAC, SERIAL, None, None, None, None, False)  # nothing found
    assert not matches(MAC, "OTHER", None, MAC, SERIAL, None, False)
    assert not matches(MAC, SERIAL, None, "A4251B0C3D5F", SERIAL, None, False)


def test_a_device_with_a_label_code_needs_it() -> None:
    stored = label_code_hash(MAC, "ABCD1234")
    assert matches(MAC, SERIAL, "abcd-1234", MAC, SERIAL, stored, False)
    assert not matches(MAC, SERIAL, None, MAC, SERIAL, stored, False)
    assert not matches(MAC, SERIAL, "ABCD1235", MAC, SERIAL, stored, False)


def test_a_claimant_requiring_label_codes_cannot_claim_a_device_without_one() -> None:
    assert not matches(MAC, SERIAL, "ABCD1234", MAC, SERIAL, None, True)
    assert matches(MAC, SERIAL, "ABCD1234", MAC, SERIAL, label_code_hash(MAC, "ABCD1234"), True)


def test_every_mismatch_is_one_answer() -> None:
    err = no_match(MAC)
    assert (err.status, err.error) == (404, "device-not-found")
    assert err.detail == no_match(MAC).detail and err.value is None and not err.extra
    assert MAC in err.detail  # the MAC as given; the serial, a proof, is never put in
