"""SIP messages of physical-phone reboots: the harness's NOTIFY check-sync request, how it matches
answers to its own transaction, and how a simulated phone's SIP port answers (RFC 3261, 6665)."""

from __future__ import annotations

from harness.physical.sip_notify import _answer_of, notify_request
from simulators.sip_agent import answer_to

BRANCH, CALL = "z9hG4bKabc123", "c0ffee@enrollab"


def _request() -> bytes:
    return notify_request("10.0.40.21", 5060, ("10.0.40.1", 40000), user="1001", branch=BRANCH, tag="t1",
                          call_id=CALL)


def test_the_notify_is_a_check_sync_request_with_the_transaction_headers() -> None:
    text = _request().decode()
    assert text.startswith("NOTIFY sip:1001@10.0.40.21:5060 SIP/2.0\r\n")
    assert f"Via: SIP/2.0/UDP 10.0.40.1:40000;branch={BRANCH};rport\r\n" in text
    for header in ("Event: check-sync", "CSeq: 1 NOTIFY", f"Call-ID: {CALL}", "Max-Forwards: 70",
                   "Subscription-State: terminated", "Content-Length: 0"):
        assert f"\r\n{header}\r\n" in text
    assert text.endswith("\r\n\r\n")


def test_a_phone_answers_check_sync_200_and_other_events_or_methods_as_a_phone_without_them() -> None:
    answer, act = answer_to(_request(), tag="p1")
    assert act is True and answer is not None
    assert _answer_of(answer, BRANCH, CALL) == (200, "OK")
    assert b"\r\nTo: <sip:1001@10.0.40.21>;tag=p1\r\n" in answer and b"\r\nCSeq: 1 NOTIFY\r\n" in answer
    other, act = answer_to(_request().replace(b"Event: check-sync", b"Event: dialog"), tag="p2")
    assert act is False and _answer_of(other or b"", BRANCH, CALL) == (489, "Bad Event")
    options, act = answer_to(_request().replace(b"NOTIFY sip:", b"OPTIONS sip:", 1), tag="p3")
    assert act is False and _answer_of(options or b"", BRANCH, CALL) == (200, "OK")  # there, nothing done
    message, act = answer_to(_request().replace(b"NOTIFY sip:", b"MESSAGE sip:", 1), tag="p5")
    assert act is False and _answer_of(message or b"", BRANCH, CALL) == (501, "Not Implemented")
    assert answer_to(b"GET / HTTP/1.1\r\n\r\n", tag="p4") == (None, False)


def test_only_answers_to_this_transaction_count() -> None:
    answer, _ = answer_to(_request(), tag="p1")
    assert answer is not None
    assert _answer_of(answer.replace(BRANCH.encode(), b"z9hG4bKother"), BRANCH, CALL) is None
    assert _answer_of(answer.replace(CALL.encode(), b"someone-else"), BRANCH, CALL) is None
    assert _answer_of(b"NOTIFY sip:x SIP/2.0\r\n\r\n", BRANCH, CALL) is None  # a request, not an answer
    compact = answer.replace(b"\r\nVia:", b"\r\nv:").replace(b"\r\nCall-ID:", b"\r\ni:")
    assert _answer_of(compact, BRANCH, CALL) == (200, "OK")  # RFC 3261 compact header names
