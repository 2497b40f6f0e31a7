"""USR-1, USR-2, USR-4: password hashing and policy, login names, reset tokens, TOTP."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from server.domain.errors import DomainError
from server.domain.passwords import (
    RESET_TOKEN_LIFETIME,
    check_login_name,
    check_password_policy,
    hash_password,
    matching_totp_step,
    new_reset_token,
    new_totp_secret,
    password_is_temporary,
    password_needs_rehash,
    reset_token_matches,
    reset_token_refusal,
    reset_token_usable,
    totp_uri,
    verify_password,
    verify_totp,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_usr1_password_hash_is_argon2id_salted_and_verifies() -> None:
    first = hash_password("Correct horse 1")
    second = hash_password("Correct horse 1")
    assert first.startswith("$argon2id$")
    assert first != second
    assert "Correct horse 1" not in first
    assert verify_password(first, "Correct horse 1")
    assert verify_password(second, "Correct horse 1")
    assert not verify_password(first, "correct horse 1")
    assert not password_needs_rehash(first)


@pytest.mark.parametrize("bad_hash", ["", "plain", "$argon2id$v=19$garbage"])
def test_usr1_malformed_hash_never_verifies(bad_hash: str) -> None:
    assert not verify_password(bad_hash, "anything at all")


@pytest.mark.parametrize("password", ["abcdefghi1", "Abcdefghij", "correct horse", "12345-67890", "ÄÖÜäöüßéèà"])
def test_usr1_password_policy_accepts(password: str) -> None:
    check_password_policy(password)


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Abc12345!", "at least 10"),
        ("abcdefghijkl", "one kind"),
        ("ABCDEFGHIJKL", "one kind"),
        ("123456789012", "one kind"),
        ("!!!!!!!!!!!!", "one kind"),
        ("Aa1" * 86, "longer than 256"),
        (None, "string"),
    ],
)
def test_usr1_weak_password_refused_without_echoing_it(password: object, why: str) -> None:
    with pytest.raises(DomainError) as caught:
        check_password_policy(password)
    assert caught.value.error == "weak-password"
    assert why in caught.value.detail
    assert caught.value.value is None
    if isinstance(password, str):
        assert password not in caught.value.detail


def test_usr1_password_equal_to_login_refused() -> None:
    with pytest.raises(DomainError) as caught:
        check_password_policy("Jane.Doe@Example.com", login="jane.doe@example.com")
    assert caught.value.error == "weak-password"
    check_password_policy("Jane.Doe@Example.com", login="someone.else")


def test_usr1_password_set_by_someone_else_is_temporary() -> None:
    assert password_is_temporary("admin-1", "user-7")
    assert not password_is_temporary("user-7", "user-7")


@pytest.mark.parametrize("login", ["admin", "jane.doe@example.com", "j_doe-2", "abc", "a+tag@mail.example.co.uk"])
def test_usr1_login_name_accepted(login: str) -> None:
    assert check_login_name(login) == login


@pytest.mark.parametrize(
    "login",
    ["ab", "a b", "-admin", ".admin", "x" * 255, "jane@localhost", "jane@@example.com", "jäne", "", None],
)
def test_usr1_login_name_refused(login: object) -> None:
    with pytest.raises(DomainError) as caught:
        check_login_name(login)
    assert caught.value.error == "invalid-login"
    assert caught.value.value == login


def test_usr2_reset_token_random_and_stored_as_digest() -> None:
    token, digest = new_reset_token()
    other = new_reset_token()
    assert token != other.token
    assert len(token) >= 40
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in digest
    assert reset_token_matches(token, digest)
    assert not reset_token_matches(other.token, digest)


def test_usr2_reset_token_expires_after_exactly_five_minutes() -> None:
    assert timedelta(minutes=5) == RESET_TOKEN_LIFETIME
    assert reset_token_usable(T0, None, T0)
    assert reset_token_usable(T0, None, T0 + timedelta(minutes=4, seconds=59, microseconds=999_999))
    assert not reset_token_usable(T0, None, T0 + timedelta(minutes=5))
    assert reset_token_refusal(T0, None, T0 + timedelta(hours=1)) == "reset-token-expired"


def test_usr2_reset_token_works_once() -> None:
    used = T0 + timedelta(minutes=1)
    assert reset_token_refusal(T0, used, T0 + timedelta(minutes=2)) == "reset-token-used"
    assert not reset_token_usable(T0, used, T0 + timedelta(minutes=2))


def test_usr2_reset_token_from_the_future_refused() -> None:
    assert reset_token_refusal(T0, None, T0 - timedelta(seconds=1)) == "reset-token-expired"


def test_usr4_totp_secret_is_160_bit_base32() -> None:
    secret = new_totp_secret()
    assert len(secret) == 32
    assert len(base64.b32decode(secret)) == 20
    assert secret != new_totp_secret()


def test_usr4_totp_current_code_and_one_step_drift_accepted() -> None:
    secret = new_totp_secret()
    totp = pyotp.TOTP(secret)
    now = T0 + timedelta(seconds=10)
    step = totp.timecode(now)
    assert matching_totp_step(secret, totp.at(now), now) == step
    assert matching_totp_step(secret, totp.at(now - timedelta(seconds=30)), now) == step - 1
    assert matching_totp_step(secret, totp.at(now + timedelta(seconds=30)), now) == step + 1


def test_usr4_totp_code_two_steps_old_refused() -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # fixed, so the codes below are known to differ
    totp = pyotp.TOTP(secret)
    now = T0 + timedelta(seconds=10)
    old = totp.at(now - timedelta(seconds=60))
    assert old not in {totp.at(now + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    assert verify_totp(secret, totp.at(now), now)
    assert not verify_totp(secret, old, now)


def test_usr4_totp_code_typed_with_space_accepted() -> None:
    secret = new_totp_secret()
    code = pyotp.TOTP(secret).at(T0)
    assert matching_totp_step(secret, f"{code[:3]} {code[3:]}", T0) is not None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None, 123456])
def test_usr4_totp_malformed_code_refused(code: object) -> None:
    assert matching_totp_step(new_totp_secret(), code, T0) is None


def test_usr4_totp_wrong_code_refused() -> None:
    secret = new_totp_secret()
    totp = pyotp.TOTP(secret)
    valid = {totp.at(T0 + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    assert matching_totp_step(secret, wrong, T0) is None


def test_usr4_totp_uri_for_authenticator_apps() -> None:
    secret = new_totp_secret()
    uri = totp_uri(secret, "jane.doe@example.com")
    assert uri.startswith("otpauth://totp/")
    assert f"secret={secret}" in uri
    assert "issuer=enrollab" in uri
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.now() == pyotp.TOTP(secret).now()
