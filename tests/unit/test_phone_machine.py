"""The phone state machine where it needs no server: the prompt's No path (research §11.4),
ENR-7 where unsupported, the public API's shapes, and memory per idle phone (a fleet holds
100,000 of them)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from simulators.clock import DEFAULT_START, VirtualClock
from simulators.factory import ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.network import StaticNetwork
from simulators.phone import Faults, Outcome, OutcomeResult, Phone, PhoneEnvironment, State, User

CA = ManufacturerCA.generate("Unit Manufacturer CA", "enrollab Simulated Manufacturer")
CREDS = CA.issue("A4251B000001", "SN1", "J179")


def make_phone(env: PhoneEnvironment, model: str = "J179", firmware: str = "4.1.11.0.9", **kw: object) -> Phone:
    identity = PhoneIdentity(model, firmware, "A4251B000001", "SN1")
    return Phone(identity, CREDS.key_pem, CREDS.cert_pem, env, **kw)  # type: ignore[arg-type]


async def test_prompt_no_without_network_waits_at_manual_entry() -> None:
    env = PhoneEnvironment("https://127.0.0.1:9", clock=VirtualClock())
    phone = make_phone(env, user=User(prompt="no"))
    assert phone.state is State.OFF and phone.events == [] and phone.outcome is None

    outcome = await phone.boot()

    assert isinstance(outcome, Outcome) and outcome.result is OutcomeResult.MANUAL_ENTRY
    assert outcome.to_json() == {
        "result": "manual-entry",
        "reason": "no-provisioning-server",
        "firmware": "4.1.11.0.9",
        "group": None,
        "server": None,
        "source": "none",
        "params": {},
        "fetched": [],
        "identity_certificate": False,
        "detail": {},
    }
    assert phone.state is State.MANUAL_ENTRY and phone.outcome is outcome
    assert {e.at for e in phone.events} == {DEFAULT_START} and {e.mac for e in phone.events} == {phone.mac}
    assert [e.state for e in phone.events][:4] == ["booting", "booting", "prompt", "prompt"]  # power-on, des-stat


async def test_enr7_reprovision_where_unsupported_contacts_nobody() -> None:
    env = PhoneEnvironment("https://127.0.0.1:9", clock=VirtualClock())
    phone = make_phone(env, "CU360", "11.2.0.30")  # Re-provisioning devices from 11.3.0.40
    outcome = await phone.reprovision()
    assert (outcome.result, outcome.reason) == ("not-supported", "re-provisioning-not-supported")
    assert [e.name for e in phone.events] == ["reprovision-requested", "provisioning-source", "outcome"]


async def test_a_network_server_that_cannot_be_reached_fails_provisioning() -> None:
    env = PhoneEnvironment(
        "https://127.0.0.1:9", clock=VirtualClock(), network=StaticNetwork(option_242="HTTPSRVR=127.0.0.1,HTTPPORT=9")
    )
    phone = make_phone(env, user=User(prompt="timeout"))
    outcome = await phone.boot()
    assert (outcome.result, outcome.reason) == ("provisioning-failed", "connection-refused")
    timeout = next(e for e in phone.events if e.name == "prompt-timeout")
    assert timeout.at == DEFAULT_START + 60
    await env.close()


async def test_one_run_at_a_time_and_the_api_shapes() -> None:
    clock = VirtualClock(auto=False)
    env = PhoneEnvironment("https://127.0.0.1:9", clock=clock)
    phone = make_phone(env, user=User(prompt="timeout"))
    running = asyncio.create_task(phone.boot())
    await clock.wait_for_sleepers(1)
    with pytest.raises(RuntimeError, match="already running"):
        await phone.boot()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(ValueError):
        User(prompt="maybe")
    assert User(codes=["1"]).codes == ("1",)
    assert Faults() == Faults(0.0, 0, False, False, False, None)
    assert {r.value for r in OutcomeResult} >= {
        "provisioned", "code-invalid", "locked", "rejected", "unknown-device", "manual-entry",
        "upgrade-failed", "unreachable", "provisioning-failed", "upgraded-no-retrigger",
    }
    await env.close()


def test_idle_phones_are_small() -> None:
    """A benchmark holds 100,000 never-booted phones: at most 20 KB each, here far less."""
    env = PhoneEnvironment("https://127.0.0.1:9")
    assert not hasattr(make_phone(env), "__dict__")
    count = 2000
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    phones = []
    for i in range(count):
        mac = f"A4251B{i:06X}"
        identity = PhoneIdentity("J179", "4.1.11.0.9", mac, f"21WZ{i:08d}")
        # Each phone its own key and certificate bytes, as a fleet has them.
        phones.append(Phone(identity, bytes(bytearray(CREDS.key_pem)), bytes(bytearray(CREDS.cert_pem)), env))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_phone = used / count
    assert per_phone < 20 * 1024
    assert per_phone < 2 * 1024, f"{per_phone:.0f} bytes per idle phone"
    assert len(phones) == count
