"""Signed webhooks (issue 16): the signature a receiver can check with the standard library, the
back-off schedule, the URL rule and what an attempt's answer means."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from server.domain import webhooks as rules
from server.domain.errors import DomainError

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    secret, body = rules.new_secret(), b'{"id":"evt_1","type":"device.enrolled"}'
    stamp = int(NOW.timestamp())
    header = rules.signature_header(secret, stamp, body)
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={stamp},v1={expected}"
    assert rules.verify(secret, header, body, NOW)


def test_a_changed_body_another_secret_or_an_old_timestamp_does_not_verify() -> None:
    secret, body = rules.new_secret(), b'{"a":1}'
    stamp = int(NOW.timestamp())
    header = rules.signature_header(secret, stamp, body)
    assert not rules.verify(secret, header, b'{"a":2}', NOW)
    assert not rules.verify(rules.new_secret(), header, body, NOW)
    # A replay later than the window is refused even though its signature is right.
    assert not rules.verify(secret, header, body, NOW + rules.REPLAY_WINDOW + timedelta(seconds=1))
    assert rules.verify(secret, header, body, NOW + rules.REPLAY_WINDOW)
    assert not rules.verify(secret, "v1=" + header.partition("v1=")[2], body, NOW)  # no timestamp
    assert not rules.verify(secret, "t=abc,v1=00", body, NOW)


def test_secrets_and_ids_are_random_and_distinct() -> None:
    secrets = {rules.new_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(s.startswith("whsec_") and len(s) > 40 for s in secrets)
    assert len({rules.new_id("dlv") for _ in range(50)}) == 50


def test_backoff_schedule_then_failed() -> None:
    waits = []
    for attempts in range(1, rules.MAX_ATTEMPTS + 1):
        again = rules.next_attempt(attempts, NOW)
        waits.append(None if again is None else again - NOW)
    assert waits == [
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        None,  # the 7th attempt was the last one
    ]
    assert all(a < b for a, b in zip(waits[:-2], waits[1:-1], strict=True))  # growing


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "delivered"), (204, "delivered"), (299, "delivered"), (410, "gone"), (500, "retry"), (301, "retry"),
     (404, "retry"), (None, "retry")],
)
def test_what_an_answer_means(status: int | None, verdict: str) -> None:
    assert rules.outcome(status) == verdict


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "https://hooks.example.com/enrollab?token=abc",
        "http://[::1]:9000/",
        "http://10.0.0.5/lab",  # private addresses are allowed: a lab tool (module docstring)
    ],
)
def test_urls_taken(url: str) -> None:
    assert rules.check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://user:pw@example.com/",
        "https://user@example.com/",
        "https:///nohost",
        "http://example.com/a b",
        "http://example.com/\x00",
        "http://example.com/#frag",
        "http://example.com:0/",
        "http://example.com:99999/",
        "https://example.com/" + "a" * rules.URL_MAX,
        "",
        "example.com/hook",
    ],
)
def test_urls_refused(url: str) -> None:
    with pytest.raises(DomainError) as refused:
        rules.check_url(url)
    assert refused.value.error == "invalid-webhook-url"
    assert ":pw@" not in json.dumps(refused.value.to_json())  # a password in the URL is not echoed


def test_events_are_checked_and_ordered() -> None:
    wanted = ["job.finished", "device.enrolled", "job.finished"]
    assert rules.check_events(wanted) == ["device.enrolled", "job.finished"]
    for bad in (["device.exploded"], [], ["webhook.ping"]):
        with pytest.raises(DomainError) as refused:
            rules.check_events(bad)
        assert refused.value.error == "invalid-webhook-event"


def test_event_body_is_stable_json() -> None:
    text = rules.event_body("evt_1", "device.enrolled", NOW, "12345678", {"mac": "A4251B000001"})
    assert json.loads(text) == {
        "id": "evt_1",
        "type": "device.enrolled",
        "created_at": NOW.isoformat(),
        "account_id": "12345678",
        "data": {"mac": "A4251B000001"},
    }
    assert text == rules.event_body("evt_1", "device.enrolled", NOW, "12345678", {"mac": "A4251B000001"})


def test_account_ids_of_a_path_root_first() -> None:
    assert rules.account_ids_of_path("/00000001/12345678/87654321/") == ["00000001", "12345678", "87654321"]
    assert rules.account_ids_of_path(None) == []
