"""Device suite: which provisioning servers the device trusts (research §7) — rules ENR-2 (the
redirect's root CA, PRF-1) and the network's server without enrollment.

- A root CA that comes with the enrollment answer may be a PEM text holding several
  certificates (a CA bundle): the device trusts each of them. The file server's CA is the middle
  one of three, so a device that reads only the first or only the last certificate of the text
  refuses the server. Applicable where the device has "Certificate with provisioning URL".
- A server the network names (DHCP option 242) with no enrollment behind it is not verified while
  TRUSTCERTS is empty: "If ENABLE_PUBLIC_CA_CERTS=0 and TRUSTCERTS is empty, the phone trusts any
  HTTPS file server for config and firmware download" [tpl S2:L4492-4510]. The file server's
  certificate chains to a private CA the device has never seen; the prompt is answered No, so
  the network's server is used (`test_discovery.py`).

Evidence: the file server's access log (a refused server sees no request).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.device.settings_files import SETTINGS_FILE, settings
from harness.fileserver import FileServer, make_certificates
from harness.scripted_des import ScriptedDES, redirect
from simulators.network import StaticNetwork
from simulators.phone import User

PROVISIONING = ("provisioning-urls", "https-provisioning-url")
DECLINE = "answer No at the phone's auto-provisioning prompt"


def fetched(files: FileServer) -> list[str]:
    return files.paths("https", status=200)


@pytest.mark.rule("ENR-2", "PRF-1")
@pytest.mark.feature("certificate-with-provisioning-url")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_root_ca_bundle_from_enrollment_is_trusted(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    files: FileServer = await file_server(settings(), cert_mode="private")
    others = [make_certificates("private").ca_pem for _ in range(2)]
    bundle = (others[0] + files.ca_pem + others[1]).decode("ascii")
    with step("arrange", evidence={"url": files.https_url, "certificates_in_root_ca": 3, "server_ca": "the second"}):
        des.script(dut.identity.mac, redirect(files.https_url, trust=[bundle]))
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        s.record(requested=files.paths())
        assert SETTINGS_FILE in fetched(files), (
            f"the device did not trust the second certificate of the redirect's root CA text "
            f"(requests: {files.paths()}; ended {outcome.result}: {outcome.reason})"
        )


@pytest.mark.rule("ENR-2")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.operator(DECLINE)
@pytest.mark.steps("arrange", "boot", "check")
async def test_network_server_is_not_verified_without_trustcerts(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    files: FileServer = await file_server(settings(), cert_mode="private")
    parts = urlsplit(files.https_url)
    offer = f"TLSSRVR={parts.hostname},TLSPORT={parts.port},TLSDIR=/"
    with step("arrange", evidence={"option_242": offer, "server_ca": "private, unknown to the device"}):
        dut.network = StaticNetwork(option_242=offer)
    with step("boot") as s:
        outcome = await dut.boot(User(prompt="no"))
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        s.record(requested=files.paths())
        assert des.enrollments(dut.identity.mac) == [], "the prompt was answered No, yet the device asked DES"
        assert SETTINGS_FILE in fetched(files), (
            f"with TRUSTCERTS empty the device must take the network's HTTPS server unverified "
            f"(requests: {files.paths()}; ended {outcome.result}: {outcome.reason})"
        )
