"""Discovery with simulated phones (research §11): the auto-provisioning prompt on a virtual
clock (Yes / No / 60 s timeout), a network layer offering a server (DHCP option 242), TRUSTCERTS
(research §7), booting again with a configured server, and re-provisioning (ENR-7)."""

from __future__ import annotations

import asyncio

from harness.fileserver import FileServer
from simulators.clock import VirtualClock
from simulators.network import StaticNetwork
from simulators.phone import OutcomeResult, User
from tests.integration.device_client import entry, new_site
from tests.integration.test_phone_lab import FILES_HOST, Lab, event, lab, names, provisioning_files

__all__ = ["lab"]


def sson_https(files: FileServer, directory: str = "J179") -> str:
    """A DHCP option 242 string naming `files` over HTTPS."""
    return f"TLSSRVR={FILES_HOST},TLSPORT={files.https_port},TLSDIR={directory}, L2Q=1,L2QVLAN=233"


async def test_prompt_no_without_a_network_server_asks_for_manual_entry(lab: Lab) -> None:
    """research §11.4: "No" -> DHCP SSON/LLDP; nothing there -> manual server entry. The
    enrollment server is never contacted."""
    phone = lab.phone("J179", user=User(prompt="no"))
    outcome = await phone.boot()
    assert (outcome.result, outcome.reason) == ("manual-entry", "no-provisioning-server")
    assert names(phone) == [
        "power-on",
        "des-stat",
        "prompt-shown",
        "prompt-answered",
        "network-discovery",
        "no-network-server",
        "manual-entry",
        "provisioning-source",
        "outcome",
    ]


async def test_prompt_no_with_dhcp_option_242_and_trustcerts(lab: Lab) -> None:
    """research §9, §7: option 242 names an HTTPS server; with TRUSTCERTS empty the phone does not
    verify it (ENABLE_PUBLIC_CA_CERTS=0). Its settings name TRUSTCERTS, which the phone fetches
    and keeps: from the next boot it verifies, and a server outside that trust is refused."""
    foreign_ca = FileServer({}).ca_pem  # a CA the file server does not use
    extra = {"lab_ca.txt": foreign_ca, "46xxsettings.txt": b"SET TRUSTCERTS lab_ca.txt\nSET SIPDOMAIN lab.example\n"}
    files = await lab.files(provisioning_files("J179", **extra))
    env = lab.environment(network=StaticNetwork(option_242=sson_https(files)))
    phone = lab.phone("J179", user=User(prompt="no"), env=env)

    first = await phone.boot()
    second = await phone.boot()
    await env.close()

    assert first.result is OutcomeResult.PROVISIONED and first.params["TRUSTCERTS"] == "lab_ca.txt"
    assert event(phone, "network-server") == {"url": f"https://{FILES_HOST}:{files.https_port}/J179/",
                                              "source": "dhcp-242"}
    assert event(phone, "server-not-verified") == {"reason": "trustcerts-empty"}
    assert event(phone, "trustcerts-fetched") == {"files": 1, "certificates": 1, "limit": 6}
    assert "enroll-request" not in names(phone)
    assert first.fetched == ["J179/J100Supgrade.txt", "J179/46xxsettings.txt", "J179/lab_ca.txt"]
    # Second boot: the configured server, no prompt, verified against TRUSTCERTS — and refused.
    assert (second.result, second.reason) == ("provisioning-failed", "server-certificate-untrusted")
    second_boot = names(phone)[names(phone).index("outcome") + 1 :]
    assert second_boot[:5] == ["power-on", "network-up", "configured-server", "provisioning-source", "provisioning"]
    assert "prompt-shown" not in second_boot


async def test_prompt_timeout_waits_60_virtual_seconds_then_uses_the_enrollment_server(lab: Lab) -> None:
    """research §11.5: no answer for 60 s (a driven virtual clock: no real wait) -> the network
    (none here) -> the enrollment server."""
    clock = VirtualClock(auto=False)
    env = lab.environment(clock=clock)
    files = await lab.files(provisioning_files("J179"))
    phone = lab.phone("J179", user=User(prompt="timeout"), env=env)
    await lab.zero_touch([phone], f"https://{FILES_HOST}:{files.https_port}/$MODEL4/",
                         root_ca_pem=files.ca_pem.decode())
    start = clock.now()

    running = asyncio.create_task(phone.boot())
    await clock.wait_for_sleepers(1)
    assert phone.state == "prompt"
    clock.advance(59)
    await asyncio.sleep(0.01)
    assert phone.state == "prompt" and not running.done()
    clock.advance(1)
    outcome = await asyncio.wait_for(running, 10)
    await env.close()

    assert outcome.result is OutcomeResult.PROVISIONED
    timeout = next(e for e in phone.events if e.name == "prompt-timeout")
    assert timeout.at - start == 60 and timeout.detail == {"after": 60}
    assert names(phone)[4:7] == ["network-discovery", "no-network-server", "des-discovery"]


async def test_prompt_timeout_prefers_the_network_and_yes_ignores_it(lab: Lab) -> None:
    """research §11.3/§11.5: on timeout a DHCP-provided server wins; "Yes" uses only the
    enrollment server even when the network offers one."""
    files = await lab.files(provisioning_files("J179"))
    env = lab.environment(network=StaticNetwork(option_242=f"HTTPSRVR={FILES_HOST},HTTPPORT={files.http_port},"
                                                             "HTTPDIR=J179"))
    waited = lab.phone("J179", user=User(prompt="timeout"), env=env)
    eager = lab.phone("J179", user=User(prompt="yes"), env=env)
    await lab.zero_touch([eager], f"https://{FILES_HOST}:{files.https_port}/$MODEL4/",
                         root_ca_pem=files.ca_pem.decode())

    by_network, by_des = await waited.boot(), await eager.boot()
    await env.close()

    assert by_network.result is OutcomeResult.PROVISIONED and "enroll-request" not in names(waited)
    assert by_network.server == f"http://{FILES_HOST}:{files.http_port}/J179/"
    assert by_des.result is OutcomeResult.PROVISIONED and "network-discovery" not in names(eager)
    assert [r.scheme for r in files.requests] == ["http"] * 3 + ["https"] * 3


async def test_enr7_reprovisioning_reflects_the_current_profile(lab: Lab) -> None:
    """ENR-7: a provisioned J179 boots from its configured server; re-provisioning runs discovery
    again and follows the profile as it is now (PRF-3). A J139 at 2.0 (Re-provisioning devices
    from 3.0) cannot."""
    files = await lab.files(provisioning_files("J179", "new/J179"))
    phone = lab.phone("J179")
    await lab.import_phones([phone])
    cust = await lab.customer()
    ca = files.ca_pem.decode()
    site = await new_site(cust.sp, cust.id, entry(f"https://{FILES_HOST}:{files.https_port}/$MODEL4/", root_ca_pem=ca))
    await lab.activate(cust, [phone], site)
    assert (await phone.boot()).server == f"https://{FILES_HOST}:{files.https_port}/J179/"
    moved = entry(f"https://{FILES_HOST}:{files.https_port}/new/$MODEL4/", root_ca_pem=ca)
    profile = (await cust.sp.post("/profiles", {"name": "moved", "entries": [moved]})).ok()
    (await cust.sp.call("PATCH", f"/sites/{site}", {"profile_id": profile["id"]})).ok()

    rebooted = await phone.boot()
    again = await phone.reprovision()
    old = lab.phone("J139", "2.0")
    refused = await old.reprovision()

    assert rebooted.server == f"https://{FILES_HOST}:{files.https_port}/J179/"
    assert again.result is OutcomeResult.PROVISIONED
    assert again.server == f"https://{FILES_HOST}:{files.https_port}/new/J179/"
    assert again.fetched[0] == "new/J179/J100Supgrade.txt"
    assert names(phone).count("enroll-request") == 2 and names(phone).count("prompt-shown") == 1
    assert (refused.result, refused.reason) == ("not-supported", "re-provisioning-not-supported")
    assert "needs 3.0" in refused.detail["explain"] and "enroll-request" not in names(old)
