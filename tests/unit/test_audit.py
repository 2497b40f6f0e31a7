"""LOG-1, ACC-9: audit entries and the redaction of secrets in their messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from server.domain.audit import MAX_MESSAGE_CHARS, PROCESSES, _redact, make_entry, redact
from server.domain.errors import DomainError

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("url=https://prov:s3cret@files.example.com/x", "url=https://prov:****@files.example.com/x"),
        ("ftp://user:p@ss@host:21/", "ftp://user:****@host:21/"),
        ("http://:onlypass@10.0.0.1", "http://:****@10.0.0.1"),
        ("https://files.example.com:8443/path", "https://files.example.com:8443/path"),
        ("https://user@files.example.com/", "https://user@files.example.com/"),
        ("login ok password=hunter2 for bob", "login ok password=**** for bob"),
        ("otp=123456&next=/home", "otp=****&next=/home"),
        ("token: abc.def.ghi", "token: ****"),
        ('{"new_password": "a b c", "login": "bob"}', '{"new_password": "****", "login": "bob"}'),
        ("client_secret='xyz' api-key=K1", "client_secret='****' api-key=****"),
        ("Site PIN: 1234", "Site PIN: ****"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: ****"),
        ("sent Bearer abcdefgh12345678", "sent Bearer ****"),
        ("spin=3 ping=4 tokens=5 Password changed", "spin=3 ping=4 tokens=5 Password changed"),
        (
            "LoginId: exampleid, ObjectType: com.avaya.des.jp.a.DesAccount",
            "LoginId: exampleid, ObjectType: com.avaya.des.jp.a.DesAccount",
        ),
        (
            "key -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- done",
            "key [private key redacted] done",
        ),
    ],
)
def test_log1_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


_password = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters='"<>'),
    min_size=4,
    max_size=24,
)
_user = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", max_size=10)
_host = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){1,2}(:[0-9]{1,5})?", fullmatch=True)
_scheme = st.sampled_from(["http", "https", "ftp", "sftp", "tftp"])
_around = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@given(scheme=_scheme, user=_user, password=_password, host=_host, before=_around, after=_around)
def test_log1_a_url_password_never_survives(
    scheme: str, user: str, password: str, host: str, before: str, after: str
) -> None:
    surroundings = f"{before} {scheme}://{user}:@{host}/cfg {after}"
    assume(password not in surroundings)
    text = f"{before} {scheme}://{user}:{password}@{host}/cfg {after}"
    redacted = redact(text)
    assert password not in redacted
    assert "****" in redacted


@given(
    key=st.sampled_from(["password", "otp", "token", "new_password", "PASSWORD", "api_key"]),
    sep=st.sampled_from(["=", ": ", " = "]),
    secret=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="&\"'"),
        min_size=4,
        max_size=20,
    ),
)
def test_log1_a_key_value_secret_never_survives(key: str, sep: str, secret: str) -> None:
    assume(secret not in f"action {key}{sep} done")
    assert secret not in redact(f"action {key}{sep}{secret} done")


@given(st.text(max_size=200))
def test_log1_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


# Pieces that make the redaction patterns match, nearly match, or meet at their edges.
_fragments = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "password",
                "PassWord",
                "passwd",
                "pwd",
                "passphrase",
                "secret",
                "client_secret",
                "token",
                "OTP",
                "totp",
                "api_key",
                "Api-Key",
                "apikey",
                "pin",
                "PIN",
                "spin",
                "new_",
                "_x",
                "=",
                ": ",
                " = ",
                ":",
                "'",
                '"',
                "&",
                " ",
                "\n",
                "@",
                "://",
                "https",
                "ftp://u:p@h",
                "Authorization",
                "authorization: ",
                "basic ",
                "Bearer ",
                "bearer ",
                "abcdefgh123",
                "-----BEGIN ",
                "-----BEGIN RSA PRIVATE KEY-----",
                "PRIVATE KEY-----",
                "-----END PRIVATE KEY-----",
                "\u017f",
                "\u212a",
                "\u0130",
                "é",
            ]
        ),
        st.text(alphabet="abz09=: x", max_size=4),
        st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=4),
    ),
    max_size=10,
).map("".join)


@settings(max_examples=1000)
@given(_fragments)
def test_log1_screened_redaction_equals_running_every_pattern(text: str) -> None:
    """Skipping the patterns a message cannot match (the hot path's screening) changes nothing."""
    assert redact(text) == _redact(text, screened=False)


def test_log1_make_entry_redacts_and_normalises() -> None:
    entry = make_entry(
        at=AT,
        process="profile",
        action="UPDATE",
        status=True,
        message="url changed to https://prov:s3cret@files.example.com/",
        account_id="10000001",
        login="alice",
        client_host="192.0.2.10",
    )
    assert entry.process == "PROFILE"
    assert entry.status == "SUCCESS"
    assert "s3cret" not in entry.message
    assert entry.acting_as is None
    assert entry.effective_account_id == "10000001"
    assert entry.to_json()["at"] == "2024-05-01T12:00:00+00:00"
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.message = "x"  # type: ignore[misc]


def test_acc9_switched_account_entries_keep_both_identities() -> None:
    entry = make_entry(
        at=AT,
        process="DEVICE",
        action="CLAIM",
        status="fail",
        account_id="10000001",
        login="sp-admin",
        acting_as="20000002",
    )
    assert (entry.account_id, entry.login, entry.acting_as) == ("10000001", "sp-admin", "20000002")
    assert entry.effective_account_id == "20000002"
    assert entry.status == "FAIL"


def test_acc9_acting_as_oneself_is_no_switch() -> None:
    entry = make_entry(at=AT, process="LOGIN", action="LOGIN", status="SUCCESS", account_id="1", acting_as="1")
    assert entry.acting_as is None


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_log1_every_process_is_accepted(process: str) -> None:
    assert make_entry(at=AT, process=process.lower(), action="X", status="SUCCESS").process == process


@pytest.mark.parametrize(
    "kwargs",
    [
        {"process": "COFFEE"},
        {"status": "OK"},
        {"action": "  "},
        {"at": datetime(2024, 5, 1, 12, 0)},  # noqa: DTZ001 - the naive time is the point
    ],
)
def test_log1_make_entry_refuses_bad_fields(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"at": AT, "process": "DEVICE", "action": "CLAIM", "status": "SUCCESS"}
    args.update(kwargs)
    with pytest.raises(DomainError) as info:
        make_entry(**args)  # type: ignore[arg-type]
    assert info.value.error == "invalid-log-entry"


def test_log1_long_messages_are_cut_after_redaction() -> None:
    entry = make_entry(at=AT, process="JOB", action="RUN", status="SUCCESS", message="x" * 10_000 + " password=abc")
    assert len(entry.message) == MAX_MESSAGE_CHARS
    assert "abc" not in entry.message
