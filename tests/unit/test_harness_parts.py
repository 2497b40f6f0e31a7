"""Parts of the conformance harness on their own: device-under-test drivers, declared steps,
outcome classification, observers' evidence, the record's JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness.dut import DeviceUnderTest, OutcomeResult, SimLink, SimulatedDevice, User, bind
from harness.errors import HarnessError, NeedsOperator
from harness.fileserver import RequestRecord
from harness.lab import parse_lab
from harness.observers import AuditLogObserver, FileServerObserver
from harness.outcomes import Outcome, classify, not_applicable_reason
from harness.physical.device import Bench, PhysicalDevice
from harness.record import jsonable
from harness.steps import StepRecorder
from simulators.capabilities import Capabilities
from simulators.factory import ManufacturerCA, thumbprint
from simulators.fleet import SkipWaits


@pytest.fixture(scope="module")
def manufacturer() -> ManufacturerCA:
    return ManufacturerCA.generate("Test Manufacturer CA", "Test Devices")


def simulated(manufacturer: ManufacturerCA, model: str = "B199", firmware: str = "1.0.1") -> SimulatedDevice:
    (spec,) = parse_lab(f'[[devices]]\ndriver = "simulated"\nmodel = "{model}"\nfirmware = "{firmware}"\n').devices
    return bind(spec, manufacturer=manufacturer, link=SimLink("https://127.0.0.1:9", clock=SkipWaits()))


def test_a_simulated_device_answers_the_protocol(manufacturer: ManufacturerCA) -> None:
    dut = simulated(manufacturer)
    assert isinstance(dut, DeviceUnderTest) and dut.driver == "simulated"
    assert dut.id == f"B199@1.0.1#{dut.identity.mac}" and dut.address is None
    assert dut.supports("HTTPS provisioning URL") and not dut.supports("12-digit-numeric-enrollment-code")
    assert dut.explain("12-digit numeric enrollment code").startswith(
        "B199 1.0.1: 12-digit numeric enrollment code not supported"
    )
    row = dut.arrange_row()
    assert row == {"mac": dut.identity.mac, "serial": dut.identity.serial, "model": "B199",
                   "thumbprint": thumbprint(dut.credentials.cert_pem)}


async def test_a_simulated_device_boots_records_events_and_resets(manufacturer: ManufacturerCA) -> None:
    dut = simulated(manufacturer)
    outcome = await dut.boot()  # nothing listens on port 9: the device says so, it does not raise
    assert outcome.result is OutcomeResult.UNREACHABLE
    names = [e["event"] for e in dut.events]
    assert names[0] == "power-on" and names[-1] == "outcome" and "connection-failed" in names
    assert set(dut.events[0]) == {"at", "state", "event", "detail"}
    old_phone = dut.phone
    dut.factory_reset()
    assert dut.phone is not old_phone and dut.events[-1]["event"] == "factory-reset"
    before = dut.credentials.thumbprint
    dut.reissue_certificate(expired=True)
    assert dut.credentials.thumbprint != before and dut.arrange_row()["thumbprint"] == dut.credentials.thumbprint


def test_physical_devices_bind_to_the_physical_driver() -> None:
    lab = parse_lab(
        '[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.0"\nmac = "A4251B000001"\n'
        'ip = "10.0.0.1"\nreboot = "poe"\npoe = {switch = "10.0.0.2", port = 3, community_env = "X"}\n'
        '[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.0"\nmac = "A4251B000002"\n'
        'serial = "21WZ51234567"\nip = "10.0.0.2"\nreboot = "manual"\n'
    )
    poe, manual = (bind(spec, bench=Bench(attended=False)) for spec in lab.devices)
    assert isinstance(poe, PhysicalDevice) and isinstance(poe, DeviceUnderTest)
    assert (poe.driver, poe.address, poe.id) == ("physical", "10.0.0.1", "J179@4.0#A4251B000001")
    feature = "12-digit numeric enrollment code"
    assert poe.supports(feature) is Capabilities.load().supports("J179", "4.0", feature)
    with pytest.raises(HarnessError, match="give the phone's serial"):
        poe.arrange_row()
    assert manual.arrange_row() == {"mac": "A4251B000002", "serial": "21WZ51234567", "model": "J179"}
    manual.factory_reset()  # forgets what the harness saw; never needs a person
    assert manual.events[-1]["event"] == "test-start"
    with pytest.raises(NeedsOperator, match="reset the phone A4251B000002 to factory defaults"):
        manual.erase()


async def test_an_unattended_physical_boot_that_needs_a_person_ends_needs_operator() -> None:
    lab = parse_lab(
        '[[devices]]\ndriver = "physical"\nname = "desk-2"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
        'mac = "A4251B000002"\nip = "10.0.0.2"\nreboot = "manual"\n'
    )
    dut = bind(lab.devices[0], bench=Bench(attended=False))
    with pytest.raises(NeedsOperator) as codes:
        await dut.boot(User(codes=["12345678"]))
    assert codes.value.detail == "on the phone desk-2 after it restarts: type the enrollment code 12345678 when the " \
                                 "phone asks"
    with pytest.raises(NeedsOperator, match=r"power-cycle the phone desk-2 \(MAC A4251B000002\)"):
        await dut.boot()
    with pytest.raises(NeedsOperator, match="choose Administration"):
        await dut.reprovision()


def test_declared_steps() -> None:
    steps = StepRecorder(("arrange", "enroll", "check"))
    with steps("arrange", evidence={"url": "https://x"}) as s:
        s.record(site=3)
    with pytest.raises(AssertionError), steps("enroll"):
        raise AssertionError("refused")
    assert steps.missing() == ["check"]
    with pytest.raises(HarnessError, match="undeclared-step"), steps("chek"):
        pass
    with pytest.raises(RuntimeError), steps("check"):
        raise RuntimeError("no route")
    assert [(s["name"], s["outcome"]) for s in steps.to_json()] == [
        ("arrange", "pass"), ("enroll", "fail"), ("check", "error")
    ]
    assert steps.to_json()[0]["evidence"] == {"url": "https://x", "site": 3}
    assert steps.missing() == []
    anything = StepRecorder()
    with anything("whatever"):
        pass
    assert anything.missing() == []


def test_exceptions_sort_into_outcomes() -> None:
    def raised(call: Any) -> BaseException:
        try:
            call()
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    assert classify(AssertionError("x")) is Outcome.FAIL
    assert classify(raised(lambda: pytest.fail("server broke EC-3"))) is Outcome.FAIL
    assert classify(raised(lambda: pytest.fail("Timeout (>300.0s) from pytest-timeout."))) is Outcome.ERROR
    assert classify(HarnessError("file-server-down", "down")) is Outcome.ERROR
    assert classify(KeyError("x")) is Outcome.ERROR
    assert classify(raised(lambda: pytest.skip("not applicable: K165 1.1: …"))) is Outcome.NOT_APPLICABLE
    assert classify(raised(lambda: pytest.skip("later"))) is Outcome.ERROR
    assert not_applicable_reason("Skipped: not applicable: why") == "why"
    assert not_applicable_reason("later") is None


@dataclass
class _Files:
    requests: list[RequestRecord]

    def url(self, scheme: str = "https", host: str | None = None, path: str = "") -> str:
        return f"{scheme}://files.enrollab.test:4443/{path}"


def test_file_server_evidence_since_a_mark_and_by_device_address() -> None:
    files = _Files([RequestRecord("GET", "a.txt", "127.0.0.1", 1795424400.0, "https", 200)])
    observer = FileServerObserver(files)  # type: ignore[arg-type]
    mark = observer.mark()
    files.requests.append(RequestRecord("GET", "46xxsettings.txt", "10.0.0.7", 1795424401.5, "http", 404, "u"))
    (entry,) = observer.since(mark)
    assert entry == {"method": "GET", "url": "http://files.enrollab.test:4443/46xxsettings.txt", "status": 404,
                     "at": "2026-11-23T09:00:01.500Z", "who": "file-server", "path": "46xxsettings.txt",
                     "client": "10.0.0.7", "user": "u"}

    class Phone:
        address = "10.0.0.8"

    assert observer.since(0, device=Phone()) == []  # type: ignore[arg-type]


def test_audit_entries_as_evidence() -> None:
    class Admin:
        base = "http://127.0.0.1:8080/api/v1"

    audit = AuditLogObserver(Admin(), device_url="https://127.0.0.1:8443/")  # type: ignore[arg-type]
    enroll = {"id": 7, "at": "2026-11-23T09:00:00", "process": "ENROLLMENT", "action": "enroll", "status": "FAIL",
              "message": "A4251B000001 [CN=A4251B000001] rejected (unsupported-url): no HTTP URL for K165 1.1"}
    evidence = audit.evidence(enroll)
    assert (evidence["method"], evidence["url"], evidence["status"], evidence["who"], evidence["at"]) == (
        "POST", "https://127.0.0.1:8443/device/v1/enroll", 403, "device-api", "2026-11-23T09:00:00.000Z"
    )
    other = audit.evidence({"id": 8, "at": "2026-11-23T09:00:00Z", "process": "DEVICE", "action": "claim"})
    assert (other["who"], other["method"], other["status"]) == ("admin-api", "claim", None)


def test_evidence_becomes_json() -> None:
    assert jsonable({"b": b"text", "raw": b"\xff\x00", 3: (1, 2.5, float("nan")), "o": OutcomeResult.PROVISIONED}) == {
        "b": "text", "raw": "base64:/wA=", "3": [1, 2.5, "nan"], "o": "provisioned"
    }


def test_shards_keep_physical_phones_together_and_deal_simulated_ones_round_robin() -> None:
    from harness.shards import plan_shards

    drivers = ["simulated", "physical", "simulated", "physical", "simulated"]
    assert plan_shards(drivers, 3) == [[1, 3], [0, 4], [2]]  # the bench's phones one after another
    assert plan_shards(drivers, 1) == [[1, 3], [0, 2, 4]]  # at least one simulated shard beside it
    assert plan_shards(["simulated"] * 3, 8) == [[0], [1], [2]]  # never an empty shard
    assert plan_shards(["physical", "physical"], 4) == [[0, 1]]
