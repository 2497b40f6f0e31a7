"""Simulated phones against the reference server over real TLS sockets: the zero-touch redirect
(ENR-2) and what each model does with it — URL checks (ENR-4 on the phone), group (Device group
ID), trust (Certificate with provisioning URL, PRF-6 wildcards), identity certificates (ENR-8),
DES as provisioning server (ENR-6) — for J100, Vantage, B199 and CU360."""

from __future__ import annotations

import io
import zipfile

from cryptography import x509
from cryptography.x509.oid import NameOID

from simulators.phone import Faults, OutcomeResult, Phone, User
from tests.integration.device_client import LATEST_J, entry, new_site
from tests.integration.test_phone_lab import (
    FILES_HOST,
    SETTINGS,
    UPGRADE_J100,
    Lab,
    event,
    lab,
    names,
    provisioning_files,
)

__all__ = ["lab"]


def https(port: int, path: str = "$MODEL4/") -> str:
    return f"https://{FILES_HOST}:{port}/{path}"


def trace(phone: Phone) -> list[str]:
    return [str(e) for e in phone.events]


async def test_enr2_zero_touch_j179_is_provisioned_from_the_https_file_server(lab: Lab) -> None:
    """ENR-2, PRF-2: $MODEL4 expanded, upgrade script -> settings -> $MACADDR file, group 7 seen."""
    phone = lab.phone("J179", user=User(prompt="yes"))
    mac_file = f"J179/{phone.mac.lower()}.txt"
    files = await lab.files(provisioning_files("J179", **{f"{phone.mac.lower()}.txt": b"SET SIPUSERNAME 4711\n"}))
    await lab.zero_touch([phone], https(files.https_port), group=7, root_ca_pem=files.ca_pem.decode())

    outcome = await phone.boot()

    assert outcome.result is OutcomeResult.PROVISIONED, trace(phone)
    assert outcome.reason is None and outcome.group == 7 and outcome.firmware == LATEST_J
    assert files.paths("https") == ["J179/J100Supgrade.txt", "J179/46xxsettings.txt", mac_file]
    assert outcome.fetched == files.paths()
    assert outcome.params["SIPDOMAIN"] == "contoso.example"
    assert outcome.params["SIP_CONTROLLER_LIST"].startswith("sbc7.")  # the GROUP 7 section ran
    assert outcome.params["SIPUSERNAME"] == "4711"
    assert outcome.server == f"https://{FILES_HOST}:{files.https_port}/J179/"
    assert event(phone, "trust-added") == {"source": "enrollment", "certificates": 1}
    assert names(phone)[:5] == ["power-on", "des-stat", "prompt-shown", "prompt-answered", "des-discovery"]
    assert names(phone)[-2:] == ["settings-applied", "outcome"]
    assert phone.state == "ready"
    assert [e.to_json()["event"] for e in phone.events] == names(phone)


async def test_device_group_id_applied_where_supported_and_ignored_by_a_nonconforming_phone(lab: Lab) -> None:
    """Device group ID: J179 and CU360 take group 7; B199 (N/A) gets 0 from the server (ENR-4)
    and requests 46xxsettings.txt first (no known upgrade file); a J179 with the
    `ignore_group` fault keeps GROUP 0 and says so."""
    j179, cu360, b199 = lab.phone("J179"), lab.phone("CU360", "11.4.0.20"), lab.phone("B199", "1.0.4.0")
    rogue = lab.phone("J179", faults=Faults(ignore_group=True))
    files = await lab.files(provisioning_files("J179", "CU36", "B199"))
    await lab.zero_touch([j179, cu360, b199, rogue], https(files.https_port), group=7,
                         root_ca_pem=files.ca_pem.decode())

    outcomes = {p.identity.model + ("-rogue" if p is rogue else ""): await p.boot() for p in (j179, cu360, b199, rogue)}

    assert {k: (o.result, o.group) for k, o in outcomes.items()} == {
        "J179": ("provisioned", 7),
        "CU360": ("provisioned", 7),
        "B199": ("provisioned", 0),
        "J179-rogue": ("provisioned", 0),
    }
    assert "SIP_CONTROLLER_LIST" in outcomes["J179"].params and "SIP_CONTROLLER_LIST" in outcomes["CU360"].params
    assert "SIP_CONTROLLER_LIST" not in outcomes["B199"].params
    assert "SIP_CONTROLLER_LIST" not in outcomes["J179-rogue"].params
    assert event(b199, "redirect")["group"] == 0
    assert event(b199, "group-not-supported") == {"offered": 0}
    assert event(rogue, "non-conforming") == {"behaviour": "ignore-group", "offered": 7}
    # B199 and CU360: no upgrade script known, so the settings file comes first.
    assert outcomes["B199"].fetched[0] == "B199/46xxsettings.txt"
    assert outcomes["CU360"].fetched[0] == "CU36/46xxsettings.txt"


async def test_prf6_wildcard_certificate_refused_by_quirky_models_only(lab: Lab) -> None:
    """PRF-6, quirk `refuses-wildcard-certificates` (fixtures/phone-models.json): Vantage below
    3.0 and B199 refuse `*.enrollab.test`; a Vantage at 3.1 and a J179 accept it — until its
    settings say BLOCK_CERTIFICATE_WILDCARDS 1, which the next boot obeys."""
    k175_old, k175_new = lab.phone("K175", "2.2"), lab.phone("K175", "3.1")
    b199, j179 = lab.phone("B199", "1.0.4.0"), lab.phone("J179")
    strict = {f"{j179.mac.lower()}.txt": b"SET BLOCK_CERTIFICATE_WILDCARDS 1\n"}
    files = await lab.files(provisioning_files("K175", "B199", "J179", **strict), cert_mode="wildcard")
    await lab.zero_touch([k175_old, k175_new, b199, j179], https(files.https_port), root_ca_pem=files.ca_pem.decode())

    results = [(o.result, o.reason) for o in [await p.boot() for p in (k175_old, k175_new, b199, j179)]]

    refused = ("provisioning-failed", "wildcard-certificate-refused")
    assert results == [refused, ("provisioned", None), refused, ("provisioned", None)]
    failed = event(k175_old, "fetch-failed")
    assert failed["reason"] == "wildcard-certificate-refused" and "*.enrollab.test" in failed["detail"]
    # Refused in the handshake: the quirky phones never sent a request.
    assert {p.split("/")[0] for p in files.paths()} == {"K175", "J179"}
    assert len([p for p in files.paths() if p.startswith("K175/")]) == 3  # upgrade, settings, MAC file
    # J179: the parameter from its settings file is kept (non-volatile) and applies at the next boot.
    again = await j179.boot()
    assert (again.result, again.reason) == refused
    assert "configured-server" in names(j179)


async def test_enr4_phone_refuses_an_http_url_its_firmware_cannot_use(lab: Lab) -> None:
    """ENR-4 on both sides, 'HTTP provisioning URL' (K165 from 1.1SP1): the server refuses a K165
    at 1.1; a K165 at 1.1 that reports 1.1SP1 (non-conforming) gets the URL and refuses it itself,
    with the reason recorded — unless it also ignores the refusal, then it fetches over HTTP."""
    honest = lab.phone("K165", "1.1")
    liar = lab.phone("K165", "1.1", faults=Faults(report_firmware="1.1SP1"))
    reckless = lab.phone("K165", "1.1", faults=Faults(report_firmware="1.1SP1", ignore_http_refusal=True))
    files = await lab.files(provisioning_files("K165"))
    await lab.zero_touch([honest, liar, reckless], f"http://{FILES_HOST}:{files.http_port}/$MODEL4/")

    first, second, third = [await p.boot() for p in (honest, liar, reckless)]

    assert (first.result, first.reason) == ("rejected", "unsupported-url")
    assert "HTTP provisioning URL" in first.detail["detail"]
    assert (second.result, second.reason) == ("provisioning-failed", "http-url-not-supported")
    assert event(liar, "url-refused")["reason"] == "http-url-not-supported"
    assert (third.result, third.fetched) == ("provisioned", ["K165/K1xxSupgrade.txt", "K165/46xxsettings.txt"])
    assert event(reckless, "non-conforming")["behaviour"] == "ignore-http-refusal"
    assert files.paths("http") == third.requested  # the refusing phone asked for nothing


async def test_enr4_ip_address_url_is_never_sent_to_a_vantage(lab: Lab) -> None:
    """ENR-4, 'Provisioning URL with IP address' (N/A on Vantage): a J179 uses the IP URL, a K175
    is refused by the server and ends `rejected` / `unsupported-url`."""
    j179, k175 = lab.phone("J179"), lab.phone("K175", "3.1")
    files = await lab.files(provisioning_files("J179"))
    await lab.zero_touch([j179, k175], f"https://127.0.0.1:{files.https_port}/$MODEL4/",
                         root_ca_pem=files.ca_pem.decode())

    ok, refused = await j179.boot(), await k175.boot()

    assert ok.result == "provisioned"
    assert (refused.result, refused.reason) == ("rejected", "unsupported-url")
    assert phase_states(k175) == ["booting", "prompt", "des-discovery", "failed"]


def phase_states(phone: Phone) -> list[str]:
    """The distinct states the phone went through, in order."""
    out: list[str] = []
    for e in phone.events:
        if not out or out[-1] != e.state:
            out.append(e.state)
    return out


async def test_certificate_with_provisioning_url_decides_whether_a_private_ca_is_trusted(lab: Lab) -> None:
    """'Certificate with provisioning URL' (K165 from 2.0): a K165 at 1.1SP1 is not sent the root
    CA (ENR-4), so it cannot verify the private file server; at 2.0 it can. A CA the phone has as
    a built-in public root needs no root CA at all."""
    old, new = lab.phone("K165", "1.1SP1"), lab.phone("K165", "2.0")
    private = await lab.files(provisioning_files("K165"))
    await lab.zero_touch([old, new], https(private.https_port), root_ca_pem=private.ca_pem.decode())
    public = await lab.files(provisioning_files("J179"), cert_mode="public")
    env = lab.environment(public_roots=[lab.tls_ca_pem, public.ca_pem])
    j179 = lab.phone("J179", env=env)
    await lab.zero_touch([j179], https(public.https_port))

    refused, trusted, via_public = await old.boot(), await new.boot(), await j179.boot()
    await env.close()

    assert (refused.result, refused.reason) == ("provisioning-failed", "server-certificate-untrusted")
    assert "trust-added" not in names(old) and event(old, "redirect")["trust"] == 0
    assert trusted.result == "provisioned" and event(new, "trust-added")["certificates"] == 1
    assert via_public.result == "provisioned" and "trust-added" not in names(j179)


async def test_expired_file_server_certificate_is_refused(lab: Lab) -> None:
    phone = lab.phone("J179")
    files = await lab.files(provisioning_files("J179"), cert_mode="expired")
    await lab.zero_touch([phone], https(files.https_port), root_ca_pem=files.ca_pem.decode())
    outcome = await phone.boot()
    assert (outcome.result, outcome.reason) == ("provisioning-failed", "server-certificate-expired")
    assert files.requests == []  # refused in the handshake


async def test_enr8_identity_certificate_by_est_where_instructed_and_supported(lab: Lab) -> None:
    """ENR-8, 'Avaya issued certificates' (J179 from 4.0.1, K175 from 2.1): the phone makes a key,
    sends a CSR with CN=MAC and installs the device CA's certificate; a J179 at 3.0 is sent no
    instruction (ENR-4) and asks for nothing."""
    j179, k175, old = lab.phone("J179"), lab.phone("K175", "3.1"), lab.phone("J179", "3.0")
    files = await lab.files(provisioning_files("J179", "K175"))
    await lab.zero_touch([j179, k175, old], https(files.https_port), root_ca_pem=files.ca_pem.decode(),
                         identity_certificates=True)

    outcomes = [await p.boot() for p in (j179, k175, old)]

    pki = lab.server.opened.ctx.pki
    assert pki is not None
    for phone, outcome in zip((j179, k175), outcomes[:2], strict=True):
        assert outcome.result == "provisioned", trace(phone)
        assert outcome.identity_certificate is not None
        issued = x509.load_pem_x509_certificate(outcome.identity_certificate)
        assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == phone.mac
        issued.verify_directly_issued_by(pki.device_ca.certificate)
        assert event(phone, "identity-installed")["subject_cn"] == phone.mac
    assert outcomes[2].result == "provisioned" and outcomes[2].identity_certificate is None
    assert event(old, "redirect")["identity"] is False and "identity-requested" not in names(old)


def des_zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_enr6_des_as_provisioning_server_over_the_enrollment_mutual_tls(lab: Lab) -> None:
    """ENR-6, 'DES as Provisioning Server': J179 and CU360 fetch their files from the enrollment
    server itself (factory certificate, mutual TLS); the B199 (N/A) is refused by the server."""
    j179, cu360, b199 = lab.phone("J179"), lab.phone("CU360", "11.4.0.20"), lab.phone("B199", "1.0.4.0")
    await lab.import_phones([j179, cu360, b199])
    cust = await lab.customer()
    site = await new_site(cust.sp, cust.id, entry("https://des.example.com/", server_type="DES", group=7))
    archive = des_zip(**{"46xxsettings.txt": SETTINGS, "J100Supgrade.txt": UPGRADE_J100})
    (await cust.sp.call("PUT", f"/sites/{site}/config", data=archive, content_type="application/zip")).ok()
    await lab.activate(cust, [j179, cu360, b199], site)

    first, second, third = [await p.boot() for p in (j179, cu360, b199)]

    assert first.result == "provisioned", trace(j179)
    assert first.fetched == ["device/v1/files/J100Supgrade.txt", "device/v1/files/46xxsettings.txt"]
    assert first.params["SIP_CONTROLLER_LIST"].startswith("sbc7.") and first.group == 7
    assert second.result == "provisioned" and second.fetched == ["device/v1/files/46xxsettings.txt"]
    assert (third.result, third.reason) == ("rejected", "unsupported-url")
