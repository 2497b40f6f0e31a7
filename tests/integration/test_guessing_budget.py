"""Issue 13: enrollment-code guessing budgets on `POST /device/v1/enroll`, over real mutual-TLS
sockets from several loopback addresses — per address and for everyone, 429 `too-many-attempts`
with `Retry-After`, audited, never holding back a zero-touch device, and over once the window
has passed (`server.domain.throttle`)."""

from __future__ import annotations

from server.runner import Running
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Phone,
    device_row,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
    zero_touch,
)


def _phones(server: Running, n: int, source: str) -> list[Phone]:
    phones = [Phone.make(server) for _ in range(n)]
    for phone in phones:
        phone.source = source
    return phones


async def test_an_address_that_spent_its_budget_waits_and_others_do_not(
        server: Running, admin: ApiClient, clock: FakeClock) -> None:
    (await admin.call("PUT", "/settings/guessing", {"per_address": {"failures": 3, "minutes": 10}})).ok()
    guessers = _phones(server, 4, "127.0.0.2")
    neighbour = _phones(server, 1, "127.0.0.3")[0]
    ready = _phones(server, 1, "127.0.0.2")[0]
    await import_phones(admin, [*guessers, neighbour, ready])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site, total=10)
    await zero_touch(cust, [ready], site)

    for phone in guessers[:3]:  # three identities, one wrong code each: no device lock (LCK-2) helps here
        assert (await phone.enroll(code="00000000"))["result"] == "code_invalid"
    held = await guessers[3].enroll(code=code)  # even the right code: the address spent its budget
    assert (held.status, held["error"]) == (429, "too-many-attempts")
    wait = int(held.headers["Retry-After"])
    assert 1 <= wait <= 600
    assert (await device_row(server, guessers[3].mac)).owner_id is None  # nothing was looked at

    assert (await ready.enroll())["result"] == "redirect"  # no code: zero-touch is never held back
    assert (await neighbour.enroll(code=code))["result"] == "redirect"  # another address has its own budget
    log = (await enrollment_log(server))
    assert any(e.status == "FAIL" and "too-many-attempts" in e.message and e.client_host == "127.0.0.2" for e in log)

    figures = (await admin.get("/settings/guessing")).ok()
    assert figures["per_address"] == {"failures": 3, "minutes": 10}
    assert figures["figures"]["wrong_codes"] == 3 and figures["figures"]["refused"] == 1
    assert figures["figures"]["addresses_refused_now"] == 1

    clock.advance(seconds=wait)
    assert (await guessers[3].enroll(code=code))["result"] == "redirect"  # the window passed


async def test_the_global_budget_stops_a_spread_out_guesser(server: Running, admin: ApiClient) -> None:
    (await admin.call("PUT", "/settings/guessing", {"global": {"failures": 4, "minutes": 5}})).ok()
    phones = [p for source in ("127.0.0.4", "127.0.0.5", "127.0.0.6") for p in _phones(server, 2, source)]
    await import_phones(admin, phones)
    results = [(await p.enroll(code="00000000")).status for p in phones]
    assert results == [422, 422, 422, 422, 429, 429], results
    figures = (await admin.get("/settings/guessing")).ok()["figures"]
    assert figures["refused_global"] == 2 and figures["global_failures_in_window"] == 4


async def test_budgets_are_the_platforms_to_set(server: Running, admin: ApiClient) -> None:
    default = (await admin.get("/settings/guessing")).ok()
    assert default["per_address"] == {"failures": 30, "minutes": 10} and default["global"]["failures"] >= 100
    bad = await admin.call("PUT", "/settings/guessing", {"per_address": {"failures": 0, "minutes": 10}})
    assert (bad.status, bad.body["error"]) == (422, "invalid-budget")
    cust = await new_customer(admin)
    refused = await cust.sp.call("PUT", "/settings/guessing", {"global": {"failures": 5, "minutes": 1}})
    assert (refused.status, refused.body["error"]) == (403, "forbidden-role")
    assert (await cust.sp.get("/settings/guessing")).ok()["per_address"] == default["per_address"]
