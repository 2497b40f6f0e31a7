"""Fault knobs for negative tests, against the reference server over real sockets: dropped
connections, expired and foreign factory certificates (ENR-1, PROTOCOL §2: the handshake ends),
a phone without the server's CA, clock skew, an unreachable server and a slow file server."""

from __future__ import annotations

import socket

from simulators.firmware import REBOOT_SECONDS
from simulators.phone import RETRY_DELAYS, Faults, OutcomeResult
from tests.integration.device_client import enrollment_log
from tests.integration.test_phone_lab import FILES_HOST, Lab, event, lab, names, provisioning_files

__all__ = ["REBOOT_SECONDS", "lab"]


async def test_dropped_connection_is_retried_and_the_server_saw_both_attempts(lab: Lab) -> None:
    """Fault `drop_connection`: the first answer is never read; the phone retries after 10 s (on
    its clock) and is provisioned. The server acted on both requests (ENR-5: two audit entries)."""
    files = await lab.files(provisioning_files("J179"))
    phone = lab.phone("J179", faults=Faults(drop_connection=1))
    await lab.zero_touch([phone], f"https://{FILES_HOST}:{files.https_port}/$MODEL4/",
                         root_ca_pem=files.ca_pem.decode())

    outcome = await phone.boot()

    assert outcome.result is OutcomeResult.PROVISIONED
    assert event(phone, "connection-failed")["reason"] == "connection-dropped"
    assert event(phone, "retry") == {"attempt": 1, "after": RETRY_DELAYS[0]}
    assert names(phone).count("enroll-request") == 2 and names(phone).count("enroll-answer") == 1
    assert [e.status for e in await enrollment_log(lab.server)] == ["SUCCESS", "SUCCESS"]


async def test_too_many_drops_end_unreachable_after_the_retries(lab: Lab) -> None:
    phone = lab.phone("J179", faults=Faults(drop_connection=10))
    await lab.import_phones([phone])
    start = lab.clock.now()
    outcome = await phone.boot()
    assert (outcome.result, outcome.reason) == ("unreachable", "connection-dropped")
    assert names(phone).count("enroll-request") == len(RETRY_DELAYS) + 1
    assert lab.clock.now() - start == sum(RETRY_DELAYS)


async def test_enr1_expired_or_foreign_factory_certificate_ends_the_handshake(lab: Lab) -> None:
    """ENR-1, PROTOCOL §2: the device listener refuses the handshake; no retries (TLS refusals
    are not transient)."""
    expired = lab.phone("J179", expired=True)
    foreign = lab.phone("J179", foreign=True)
    await lab.import_phones([expired, foreign])

    outcomes = [await expired.boot(), await foreign.boot()]

    assert [(o.result, o.reason) for o in outcomes] == [("unreachable", "tls-handshake-failed")] * 2
    assert "retry" not in names(expired) and "retry" not in names(foreign)
    assert await enrollment_log(lab.server) == []


async def test_phone_without_the_servers_ca_or_with_a_skewed_clock_refuses_the_server(lab: Lab) -> None:
    """The phone verifies the enrollment server against its built-in public roots, at its own
    time (fault `clock_skew`)."""
    no_roots = lab.environment(public_roots=[])
    untrusting = lab.phone("J179", env=no_roots)
    behind = lab.phone("J179", faults=Faults(clock_skew=-30 * 86400))
    ahead = lab.phone("J179", faults=Faults(clock_skew=5 * 365 * 86400))
    await lab.import_phones([untrusting, behind, ahead])

    outcomes = [await p.boot() for p in (untrusting, behind, ahead)]
    await no_roots.close()

    assert [(o.result, o.reason) for o in outcomes] == [
        ("unreachable", "server-certificate-untrusted"),
        ("unreachable", "server-certificate-not-yet-valid"),
        ("unreachable", "server-certificate-expired"),
    ]


async def test_unreachable_enrollment_server_after_retries(lab: Lab) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = lab.environment(enrollment_url=f"https://127.0.0.1:{port}")
    phone = lab.phone("J179", env=env)
    outcome = await phone.boot()
    await env.close()
    assert (outcome.result, outcome.reason) == ("unreachable", "connection-refused")
    assert [e.detail["attempt"] for e in phone.events if e.name == "retry"] == [1, 2, 3]


async def test_slow_file_server_times_out(lab: Lab) -> None:
    """File-server knob `delay` against the environment's `http_timeout`."""
    files = await lab.files(provisioning_files("J179"), delay=1.0)
    env = lab.environment(http_timeout=0.3)
    phone = lab.phone("J179", env=env)
    await lab.zero_touch([phone], f"https://{FILES_HOST}:{files.https_port}/$MODEL4/",
                         root_ca_pem=files.ca_pem.decode())
    outcome = await phone.boot()
    await env.close()
    assert (outcome.result, outcome.reason) == ("provisioning-failed", "timeout")
    assert outcome.requested == ["J179/J100Supgrade.txt"]
