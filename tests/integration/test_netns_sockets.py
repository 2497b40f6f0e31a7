"""Sockets inside namespaces of our own (`simulators.l2.netns`, `harness.listen`): a server made in
one host's namespace answers a phone transport made in another's, across the lab bridge, and the
client address the server sees is the phone's own; the caller's namespace cannot reach it."""

from __future__ import annotations

import pytest

from harness.fileserver import FileServer
from harness.lab_network.netns import run_ip
from simulators.l2.netns import NetnsError, connect_in, socket_in
from simulators.transport import Transport, TransportError
from tests.lab_tiers import lab_topology


@pytest.fixture
def two_hosts():  # type: ignore[no-untyped-def]
    with lab_topology("enrollab-s") as lab:
        files = lab.add_host("files", "A4251B00F001")
        phone = lab.add_host("phone", "A4251B00F002")
        run_ip("addr", "add", "10.213.0.10/24", "dev", "eth0", netns=files.netns)
        run_ip("addr", "add", "10.213.0.20/24", "dev", "eth0", netns=phone.netns)
        yield lab, files, phone


async def test_a_transport_in_the_phones_namespace_reaches_a_server_in_another(two_hosts) -> None:  # type: ignore[no-untyped-def]
    lab, files_host, phone_host = two_hosts
    async with FileServer({"46xxsettings.txt": b"SET GROUP 1\n"}, host="10.213.0.10", netns=files_host.netns) as files:
        transport = Transport(netns=phone_host.netns, timeout=5)
        try:
            reply = await transport.request("GET", files.url("http", host="10.213.0.10", path="46xxsettings.txt"),
                                            None)
            secure = await transport.request("GET", files.url("https", host="10.213.0.10", path="46xxsettings.txt"),
                                             transport.contexts.get(None))
        finally:
            await transport.close()
    assert (reply.status, reply.body) == (200, b"SET GROUP 1\n")
    assert secure.status == 200
    assert [r.client for r in files.requests] == ["10.213.0.20", "10.213.0.20"]


async def test_the_callers_own_namespace_does_not_reach_the_lab(two_hosts) -> None:  # type: ignore[no-untyped-def]
    lab, files_host, _ = two_hosts
    async with FileServer({}, host="10.213.0.10", netns=files_host.netns) as files:
        transport = Transport(timeout=2)
        try:
            with pytest.raises(TransportError):
                await transport.request("GET", files.url("http", host="10.213.0.10"), None)
        finally:
            await transport.close()


async def test_connect_in_and_unknown_namespaces(two_hosts) -> None:  # type: ignore[no-untyped-def]
    lab, files_host, phone_host = two_hosts
    async with FileServer({}, host="10.213.0.10", netns=files_host.netns) as files:
        sock = await connect_in(phone_host.netns, "10.213.0.10", files.http_port)
        assert sock.getsockname()[0] == "10.213.0.20"
        sock.close()
    with pytest.raises(NetnsError, match="no network namespace"):
        socket_in("enrollab-no-such-namespace")
