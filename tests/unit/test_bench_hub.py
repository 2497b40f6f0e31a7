"""The bench hub (harness.bench_hub) over real sockets: its control channel answers bad requests
with an error and goes on serving; its front forwards each connection by the caller's address
to that phone's server without terminating TLS, and closes (and records) what it cannot route.
Two "phones" are loopback source addresses (127.0.0.2, 127.0.0.3)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import stat
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from harness.bench_hub import ENV, MAX_LINE, BenchHub, HubClient
from harness.errors import HarnessError
from harness.lab import parse_lab
from harness.scripted_des import DesPki
from harness.session import ConformanceSession

PHONE_A, PHONE_B, PHONE_C = "A4251B0000A1", "A4251B0000B2", "A4251B0000C3"
PHONES = {PHONE_A: "127.0.0.2", PHONE_B: "127.0.0.3", PHONE_C: "127.0.0.4"}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="hubt-"))  # a Unix socket's path is short
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
async def hub(short_dir: Path) -> AsyncIterator[BenchHub]:
    running = await BenchHub(address="127.0.0.1", port=0, control=short_dir / "hub.sock", phones=PHONES,
                             log_path=short_dir / "network" / "bench-hub.jsonl").start()
    yield running
    await running.stop()


async def _ask(hub: BenchHub, *lines: bytes) -> list[dict[str, object]]:
    reader, writer = await asyncio.open_unix_connection(str(hub.control), limit=MAX_LINE * 2)
    answers = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            answers.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
    finally:
        writer.close()
    return answers


async def test_bad_control_requests_are_answered_with_an_error_and_the_channel_goes_on(hub: BenchHub) -> None:
    answers = await _ask(hub, b"not json", b"[1, 2]", b'{"op": "fly"}',
                         b'{"op": "route", "mac": "nope", "host": "127.0.0.1", "port": 9}',
                         b'{"op": "route", "mac": "A4251B0000A1", "host": "des.example", "port": 9}',
                         b'{"op": "route", "mac": "A4251B0000A1", "host": "127.0.0.1", "port": 70000}',
                         b'{"op": "dhcp_events", "since": -1}',
                         b'{"op": "offer_242", "mac": "A4251B0000A1", "value": "DES_STAT=0"}',
                         b'{"op": "info"}')
    *bad, no_dhcp, info = answers
    assert [a["error"] for a in bad] == ["bad-request"] * 7, bad
    assert all(isinstance(a["detail"], str) and a["detail"] for a in bad), bad
    assert "unknown op 'fly'" in str(bad[2]["detail"])
    assert no_dhcp == {"ok": False, "error": "bench-dhcp-unavailable", "detail": no_dhcp["detail"]}
    assert info["ok"] is True and info["dhcp"] is False and info["front"] == ["127.0.0.1", hub.port]


async def test_a_request_over_the_line_limit_is_refused_and_the_hub_still_serves(hub: BenchHub) -> None:
    reader, writer = await asyncio.open_unix_connection(str(hub.control))
    writer.write(b'{"op": "info", "pad": "' + b"x" * (MAX_LINE + 10) + b'"}\n')
    await writer.drain()
    answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
    writer.close()
    assert answer["ok"] is False and answer["error"] == "bad-request", answer
    (info,) = await _ask(hub, b'{"op": "info"}')
    assert info["ok"] is True


async def _echo(label: bytes) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(label + b":" + data)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def _from(source: str, port: int, data: bytes = b"hello") -> bytes:
    """What the front answers a caller at `source` (b"" when it closes at once)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), 10)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def test_the_front_forwards_by_the_callers_address_and_closes_what_it_cannot_route(hub: BenchHub) -> None:
    backend_a, backend_b = await _echo(b"A"), await _echo(b"B")
    client = await asyncio.to_thread(HubClient, hub.control)
    try:
        await asyncio.to_thread(client.route, PHONE_A, "127.0.0.1", _port(backend_a))
        await asyncio.to_thread(client.route, PHONE_B.lower(), "127.0.0.1", _port(backend_b))  # any MAC notation
        assert await _from("127.0.0.2", hub.port) == b"A:hello"
        assert await _from("127.0.0.3", hub.port) == b"B:hello"
        assert await _from("127.0.0.4", hub.port) == b""  # a phone of the lab with no server now
        assert await _from("127.0.0.5", hub.port) == b""  # no phone of the lab
        await asyncio.to_thread(client.unroute, PHONE_A)
        assert await _from("127.0.0.2", hub.port) == b""
        record = await asyncio.to_thread(client.connections)
    finally:
        backend_a.close()
        backend_b.close()
    assert [(c["peer"], c["mac"], c["event"]) for c in record] == [
        ("127.0.0.2", PHONE_A, "forwarded"), ("127.0.0.3", PHONE_B, "forwarded"), ("127.0.0.4", PHONE_C, "no-route"),
        ("127.0.0.5", None, "no-route"), ("127.0.0.2", PHONE_A, "no-route")]
    await hub.stop()
    log = hub.control.parent / "network" / "bench-hub.jsonl"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged == record


async def test_a_route_to_a_server_that_is_gone_closes_the_phones_connection(hub: BenchHub) -> None:
    gone = socket.socket()
    gone.bind(("127.0.0.1", 0))
    port = gone.getsockname()[1]
    gone.close()
    client = await asyncio.to_thread(HubClient, hub.control)
    await asyncio.to_thread(client.route, PHONE_A, "127.0.0.1", port)
    assert await _from("127.0.0.2", hub.port) == b""
    (last,) = (await asyncio.to_thread(client.connections))[-1:]
    assert last["event"] == "backend-down" and last["to"] == f"127.0.0.1:{port}", last


async def _settled(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (the suite's timeout bounds a hang; no time is asserted)."""
    while not condition():
        await asyncio.sleep(0.01)


async def _held_backend(seen: list[bytes], *, abort_after: bytes | None = None) -> asyncio.Server:
    """A shard's server that records what it reads until the end; with `abort_after` it resets the
    connection as soon as it has read that (a server gone mid-stream)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        try:
            while chunk := await reader.read(100):
                data += chunk
                if abort_after is not None and data.endswith(abort_after):
                    writer.transport.abort()
                    return
            writer.write(b"got:" + data)  # the phone half-closed: answer, then close
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            seen.append(data)
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_a_half_close_passes_through_and_the_answer_still_comes_back(hub: BenchHub) -> None:
    seen: list[bytes] = []
    backend = await _held_backend(seen)
    client = await asyncio.to_thread(HubClient, hub.control)
    await asyncio.to_thread(client.route, PHONE_A, "127.0.0.1", _port(backend))
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=("127.0.0.2", 0))
    writer.write(b"hello")
    writer.write_eof()  # the phone's request is complete; it still reads
    answer = await asyncio.wait_for(reader.read(), 10)  # to the end of the stream
    writer.close()
    backend.close()
    assert answer == b"got:hello" and seen == [b"hello"]
    await _settled(lambda: hub.forwarding == 0)


async def test_a_phone_or_a_server_gone_mid_stream_ends_both_sides(hub: BenchHub) -> None:
    seen: list[bytes] = []
    backend = await _held_backend(seen, abort_after=b"!")
    client = await asyncio.to_thread(HubClient, hub.control)
    await asyncio.to_thread(client.route, PHONE_A, "127.0.0.1", _port(backend))
    # the phone resets its connection mid-stream: the server sees the end, the hub keeps nothing
    phone = socket.create_connection(("127.0.0.1", hub.port), source_address=("127.0.0.2", 0))
    phone.sendall(b"partial")
    await _settled(lambda: hub.forwarding == 1)
    phone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    phone.close()  # RST
    await _settled(lambda: len(seen) == 1)
    await _settled(lambda: hub.forwarding == 0)
    # the server resets mid-stream: the phone sees the end of its connection
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=("127.0.0.2", 0))
    writer.write(b"boom!")
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        rest = b""
    writer.close()
    backend.close()
    assert rest == b"" and seen[-1] == b"boom!"
    await _settled(lambda: hub.forwarding == 0)


async def test_the_front_bounds_its_connections_and_closes_an_idle_one(short_dir: Path) -> None:
    hub = await BenchHub(address="127.0.0.1", port=0, control=short_dir / "hub.sock", phones=PHONES,
                         max_front=2, idle_deadline=0.3).start()
    seen: list[bytes] = []
    backend = await _held_backend(seen)
    try:
        client = await asyncio.to_thread(HubClient, hub.control)
        await asyncio.to_thread(client.route, PHONE_A, "127.0.0.1", _port(backend))
        held = [await asyncio.open_connection("127.0.0.1", hub.port, local_addr=("127.0.0.2", 0)) for _ in range(2)]
        await _settled(lambda: hub.forwarding == 2)
        assert await _from("127.0.0.2", hub.port) == b""  # a third one is closed at once
        for reader, writer in held:  # silent both ways: closed after the idle deadline
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
        await _settled(lambda: hub.forwarding == 0)
        record = await asyncio.to_thread(client.connections)
    finally:
        backend.close()
        await hub.stop()
    assert [c["event"] for c in record] == ["forwarded", "forwarded", "too-many"], record
    assert all("idle" in c["closed"] for c in record[:2]), record


async def test_the_control_socket_is_private_and_gone_with_the_hub_idle_clients_too(short_dir: Path) -> None:
    open_dir = short_dir / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(HarnessError) as refused:
        await BenchHub(address=None, port=0, control=open_dir / "hub.sock").start()
    assert refused.value.error == "bench-hub-unsafe-dir" and not (open_dir / "hub.sock").exists()
    hub = await BenchHub(address=None, port=0, control=short_dir / "hub.sock").start()
    assert stat.S_IMODE(hub.control.stat().st_mode) == 0o600
    reader, writer = await asyncio.open_unix_connection(str(hub.control))  # asks once, then stays
    writer.write(b'{"op": "info"}\n')
    assert json.loads(await asyncio.wait_for(reader.readline(), 10))["ok"] is True

    await asyncio.wait_for(hub.stop(), 30)

    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert not hub.control.exists()


def _tls_backend(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for des.avaya.com and a client context trusting only its CA."""
    pki = DesPki.create(("des.avaya.com",))
    (tmp / "des.crt").write_bytes(pki.cert_pem)
    (tmp / "des.key").write_bytes(pki.key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "des.crt", tmp / "des.key")
    client = ssl.create_default_context(cadata=pki.ca_pem.decode())
    return server, client


async def test_tls_passes_through_the_front_end_to_end(hub: BenchHub, short_dir: Path) -> None:
    server_tls, client_tls = _tls_backend(short_dir)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"over tls: " + await reader.readline())
        await writer.drain()
        writer.close()

    backend = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
    try:
        client = await asyncio.to_thread(HubClient, hub.control)
        await asyncio.to_thread(client.route, PHONE_B, "127.0.0.1", _port(backend))
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=("127.0.0.3", 0),
                                                       ssl=client_tls, server_hostname="des.avaya.com")
        writer.write(b"ping\n")
        answer = await asyncio.wait_for(reader.readline(), 10)
        peer = writer.get_extra_info("peercert")
        writer.close()
    finally:
        backend.close()
    assert answer == b"over tls: ping\n"
    assert ("commonName", "des.avaya.com") in [pair for rdn in peer["subject"] for pair in rdn]


def test_a_hub_that_is_not_there_or_silent_is_bench_hub_unreachable(short_dir: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        HubClient(short_dir / "none.sock", deadline=1)
    assert caught.value.error == "bench-hub-unreachable"
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(short_dir / "silent.sock"))
    silent.listen()
    try:
        with pytest.raises(HarnessError) as caught:
            HubClient(short_dir / "silent.sock", deadline=0.5)  # accepts, never answers: the deadline ends it
    finally:
        silent.close()
    assert caught.value.error == "bench-hub-unreachable" and "within 0.5 s" in caught.value.detail


PHYSICAL_LAB = ('[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\nmac = "A4251B0000A1"\n'
                'ip = "127.0.0.2"\nreboot = "sip-notify"\n')


def test_a_shards_bench_network_is_the_hubs_client_and_an_unreachable_hub_is_remembered(
        short_dir: Path, hub_thread: BenchHub, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = parse_lab(PHYSICAL_LAB)
    monkeypatch.setenv(ENV, str(hub_thread.control))
    session = ConformanceSession(lab, target="lab", lab_file=None)
    client = session.bench_network()
    assert isinstance(client, HubClient) and client.front == ("127.0.0.1", hub_thread.port)
    assert client.dhcp is None and client.capture_path is None  # this hub serves no [network]
    monkeypatch.setenv(ENV, str(short_dir / "gone.sock"))
    lost = ConformanceSession(lab, target="lab", lab_file=None)
    for _ in range(2):  # the same one-line error for every physical test of the shard
        with pytest.raises(HarnessError) as caught:
            lost.bench_network()
        assert caught.value.error == "bench-hub-unreachable"


@pytest.fixture
def hub_thread(short_dir: Path) -> Iterator[BenchHub]:
    """A hub on a loop of its own (a sync client may call it from this thread)."""
    from harness.session import LoopThread

    loop = LoopThread("test-hub")
    running = loop.run(BenchHub(address="127.0.0.1", port=0, control=short_dir / "thread.sock",
                                phones=PHONES).start())
    try:
        yield running
    finally:
        loop.run(running.stop())
        loop.close()
