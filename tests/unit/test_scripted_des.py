"""The scripted DES's pieces that need no socket: the PROTOCOL §2 answer builders, the simulated
images, the code masking and the certificates."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from cryptography import x509

from harness.scripted_des import (
    DesPki,
    DesRequest,
    ScriptedDES,
    _masked,
    code_invalid,
    code_required,
    image_bytes,
    locked,
    redirect,
    rejected,
    unknown_device,
    upgrade,
)
from simulators.discovery import ANSWERS, parse_answer
from simulators.factory import ManufacturerCA

FIRMWARE = {"version": "4.1.11.0.9", "url": "https://des.example/fw", "sha256": "ab" * 32}


def test_answer_builders_follow_the_protocol_table() -> None:
    """PROTOCOL §2: status, `result` and the body fields of each answer."""
    assert redirect("https://files.example/", "DES", 7, [b"PEM"], FIRMWARE, "https://des.example/est") == (
        200,
        {
            "result": "redirect",
            "provisioning": {"url": "https://files.example/", "server_type": "DES", "group": 7, "trust": ["PEM"]},
            "firmware": FIRMWARE,
            "identity": {"est": "https://des.example/est"},
        },
    )
    assert redirect("http://x/")[1]["firmware"] is None and redirect("http://x/")[1]["identity"] is None
    assert upgrade(FIRMWARE) == (200, {"result": "upgrade", "firmware": FIRMWARE, "reason": "upgrade-required"})
    assert code_required(["nec8"]) == (200, {"result": "code_required", "formats": ["nec8"]})
    assert code_required()[1]["formats"] == ["nec8", "nec12", "pec12"]
    assert code_invalid(2) == (422, {"result": "code_invalid", "attempts_left": 2})
    assert locked(1800) == (423, {"result": "locked", "retry_after": 1800})
    assert rejected("not-approved")[0] == 403 and rejected("not-approved")[1]["reason"] == "not-approved"
    assert unknown_device() == (404, {"result": "unknown_device"})


@pytest.mark.parametrize(
    "answer", [redirect("https://x/"), upgrade(FIRMWARE), code_required(), code_invalid(1), locked(5),
               rejected("no-profile"), unknown_device()]
)
def test_a_simulated_phone_reads_every_answer(answer: tuple[int, dict[str, object]]) -> None:
    import json

    status, body = answer
    parsed = parse_answer(status, json.dumps(body).encode())
    assert parsed.result in ANSWERS and parsed.error is None


def test_images_are_deterministic_and_differ_per_model_and_version() -> None:
    assert image_bytes("J179", "4.1.11.0.9") == image_bytes("J179", "4.1.11.0.9")
    assert len({image_bytes("J179", "4.1.11.0.9"), image_bytes("J169", "4.1.11.0.9"),
                image_bytes("J179", "4.1.3.0")}) == 3
    assert len(image_bytes("K175", "1.1SP1")) == 2048


def test_firmware_object_names_the_image_and_its_sha256() -> None:
    des = ScriptedDES(ManufacturerCA.generate().cert_pem)
    des.port = 8443
    fw = des.firmware("K175", "1.1SP1")
    assert fw["url"] == "https://des.enrollab.test:8443/device/v1/firmware/K175/1.1SP1"
    assert fw["sha256"] == hashlib.sha256(image_bytes("K175", "1.1SP1")).hexdigest()
    assert des.files_url == "https://des.enrollab.test:8443/device/v1/files/"
    assert des.est_url == "https://des.enrollab.test:8443/.well-known/est"


def test_codes_are_masked_in_records() -> None:
    assert _masked({"mac": "A", "code": "12345678"})["code"] == "********"
    assert _masked({"mac": "A", "code": "123456789012"})["code"] == "*" * 12
    assert _masked({"mac": "A", "code": None})["code"] is None
    assert _masked({"mac": "A"}) == {"mac": "A"}


def test_request_mac_is_canonical() -> None:
    record = DesRequest("POST", "/device/v1/enroll", "A4251B0C3D5E", 0.0, 200, "redirect",
                        {"mac": "a4:25:1b:0c:3d:5e"})
    assert record.mac == "A4251B0C3D5E" and record.is_enrollment


def test_server_certificate_names_the_hosts_and_127_0_0_1() -> None:
    pki = DesPki.create(("des.enrollab.test", "des2.enrollab.test"))
    cert = x509.load_pem_x509_certificate(pki.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["des.enrollab.test", "des2.enrollab.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.issuer == pki.ca.certificate.subject
    assert DesPki.shared(("a.test",)) is DesPki.shared(("a.test",))


def test_a_bundle_without_certificates_is_refused() -> None:
    with pytest.raises(ValueError, match="manufacturer CA bundle"):
        ScriptedDES(b"")
