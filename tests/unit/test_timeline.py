"""Issue 16 (S15): `server.domain.timeline.build_timeline` — the whole path in order, pending steps,
failures, what the row says over what the events say, a device placed again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from server.domain.timeline import HISTORY, PATH, DeviceRow, Event, build_timeline

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Events:
    def __init__(self) -> None:
        self.items: list[Event] = []

    def add(self, step: str, minutes: float, *, ok: bool = True, **detail: Any) -> Event:
        event = Event(id=len(self.items) + 1, step=step, at=at(minutes), ok=ok,
                      login=detail.pop("login", None), account_id=detail.pop("account_id", None), detail=detail)
        self.items.append(event)
        return event


def steps(timeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in timeline["steps"]}


def enrolled_row(**overrides: Any) -> DeviceRow:
    values: dict[str, Any] = dict(
        mac="A4251B000001", created_at=at(0), imported_by="00000002", approved=True, owner_id="12345678",
        site_id=7, associated=True, activated=True, last_contact=at(5), enrolled_at=at(5),
        identity_issued_at=at(6),
    )
    values.update(overrides)
    return DeviceRow(**values)


def full_history() -> Events:
    ev = Events()
    ev.add("approved", 1, login="admin")
    ev.add("claimed", 2, login="sp", account_id="12345678", via="admin")
    ev.add("associated", 3, login="sp", account_id="12345678", site_id=7)
    ev.add("activated", 4, login="sp", account_id="12345678")
    ev.add("first_contact", 5, client_host="127.0.0.1", firmware="4.1.11.0.9")
    ev.add("redirected", 5, profile_url="https://prov.example.com/J179/", server_type="HTTPS")
    ev.add("identity_issued", 6, serial="1f", not_after="2027-11-23T09:06:00+00:00")
    return ev


def test_just_imported_lists_every_step_the_rest_pending() -> None:
    row = DeviceRow(mac="A4251B000001", created_at=at(0), imported_by="00000002")
    timeline = build_timeline(row, [], at(10))
    assert [s["step"] for s in timeline["steps"]] == list(PATH)
    assert timeline["stage"] == "imported"
    imported, *rest = timeline["steps"]
    assert imported == {"step": "imported", "status": "done", "at": at(0), "detail": {"account_id": "00000002"}}
    assert all(s["status"] == "pending" and s["at"] is None for s in rest)
    assert timeline["failures"] == [] and timeline["history"] == []


def test_a_fully_enrolled_device_in_path_order_with_who_and_the_profile_url() -> None:
    timeline = build_timeline(enrolled_row(), full_history().items, at(10))
    assert [s["status"] for s in timeline["steps"]] == ["done"] * len(PATH)
    assert [s["at"] for s in timeline["steps"]] == [at(m) for m in (0, 1, 2, 3, 4, 5, 5, 6, 6)]
    step = steps(timeline)
    assert step["approved"]["detail"]["login"] == "admin"
    assert step["claimed"]["detail"] == {"login": "sp", "account_id": "12345678", "via": "admin"}
    assert step["redirected"]["detail"]["profile_url"] == "https://prov.example.com/J179/"
    assert step["identity_issued"]["detail"]["serial"] == "1f"
    assert timeline["stage"] == "identity_issued"


def test_events_in_any_order_and_repeated_are_read_by_id() -> None:
    ev = full_history()
    items = list(reversed(ev.items)) + ev.items[:2]  # the store may give some twice
    timeline = build_timeline(enrolled_row(), items, at(10))
    assert [e["id"] for e in timeline["history"]] == list(range(1, 8))


def test_failures_are_listed_and_do_not_advance_the_stage() -> None:
    ev = Events()
    ev.add("approved", 1)
    ev.add("first_contact", 2)
    ev.add("code_requested", 2)
    ev.add("wrong_code", 3, ok=False, result="code_invalid", reason="wrong-code")
    ev.add("lockout", 4, ok=False, result="locked", reason="wrong-code")
    ev.add("refused_while_locked", 5, ok=False, result="locked", reason="locked")
    row = DeviceRow(mac="A4251B000001", created_at=at(0), approved=True, last_contact=at(5), locked_until=at(60))
    timeline = build_timeline(row, ev.items, at(10))
    assert [f["step"] for f in timeline["failures"]] == ["wrong_code", "lockout", "refused_while_locked"]
    assert timeline["locked"] is True
    assert timeline["stage"] == "first_contact"  # it talked to the server; it is not claimed
    step = steps(timeline)
    assert step["claimed"]["status"] == "pending" and step["redirected"]["status"] == "pending"
    assert step["last_seen"]["at"] == at(5)
    assert build_timeline(row, ev.items, at(61))["locked"] is False


def test_the_row_decides_what_is_done_a_released_device_is_unclaimed_again() -> None:
    ev = full_history()
    ev.add("released", 8, account_id="12345678")
    row = enrolled_row(owner_id=None, site_id=None, associated=False, activated=False)
    timeline = build_timeline(row, ev.items, at(10))
    step = steps(timeline)
    assert [step[s]["status"] for s in ("claimed", "associated", "activated", "redirected", "identity_issued")] == [
        "pending"
    ] * 5
    assert timeline["stage"] == "first_contact"
    assert timeline["history"][-1]["step"] == "released"


def test_a_redirect_for_the_previous_placement_is_pending_after_activation_again() -> None:
    ev = full_history()
    ev.add("claimed", 20, account_id="87654321")
    ev.add("associated", 21, account_id="87654321", site_id=9)
    ev.add("activated", 22, account_id="87654321")
    row = enrolled_row(owner_id="87654321", site_id=9)
    step = steps(build_timeline(row, ev.items, at(30)))
    assert step["activated"]["at"] == at(22)
    assert step["redirected"]["status"] == "pending" and step["identity_issued"]["status"] == "pending"
    assert step["first_contact"]["at"] == at(5)  # first contact is the device's, whatever its placement
    ev.add("redirected", 23, profile_url="https://other.example.com/")
    step = steps(build_timeline(row, ev.items, at(30)))
    assert step["redirected"]["status"] == "done" and step["redirected"]["detail"]["profile_url"].startswith(
        "https://other."
    )


def test_steps_done_before_events_were_kept_come_from_the_row() -> None:
    timeline = build_timeline(enrolled_row(), [], at(10))
    step = steps(timeline)
    assert all(s["status"] == "done" for s in timeline["steps"])
    assert step["approved"]["at"] is None and step["approved"]["detail"] == {"recorded": False}
    assert step["redirected"]["at"] == at(5) and step["identity_issued"]["at"] == at(6)
    assert step["last_seen"]["at"] == at(5)
    assert step["claimed"]["detail"]["account_id"] == "12345678"


def test_history_is_capped_and_says_so() -> None:
    ev = full_history()
    for n in range(HISTORY + 5):
        ev.add("redirected", 10 + n, profile_url="https://prov.example.com/J179/")
    timeline = build_timeline(enrolled_row(), ev.items, at(10_000))
    assert len(timeline["history"]) == HISTORY and timeline["history_complete"] is False
    assert steps(timeline)["redirected"]["at"] == at(10 + HISTORY + 4)
    assert steps(timeline)["last_seen"]["at"] == at(10 + HISTORY + 4)
