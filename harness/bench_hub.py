"""The bench hub: one bench shared by several physical phones tested at once
(`enrollab conformance run --jobs N` with `[options] physical_jobs` > 1, `harness.shards`).

Every physical phone's test needs what the bench has once: the lab network on `[network]
interface` (DHCP responder with its per-MAC option 242, LLDP advertiser, capture) and the
enrollment server port `[bench] address`:`des_port` (a real phone asks the name it was built
with on port 443, so the port cannot differ per phone). The parent `conformance run` process
owns them here, for the whole run, and its bench shards (pytest processes, one phone at a time
each) use them through a control channel:

    hub = await BenchHub(address="10.213.0.1", port=443, control=Path("/tmp/x/hub.sock"),
                         phones={"A4251B000001": "10.213.0.60"}, network=lab.network,
                         capture_path=report_dir / "network" / "bench.pcap").start()
    ...                                   # shards run with ENROLLAB_BENCH_HUB=/tmp/x/hub.sock
    await hub.stop()

    client = HubClient.from_env()         # in a shard: what `session.bench_network()` returns
    client.dhcp.offer_242(mac, "DES_STAT=0"); client.dhcp.clear_242(mac); client.dhcp.events
    client.capture_path, client.evidence(mac, since)       # the surface PhysicalDevice uses
    client.route(mac, "10.213.0.1", 40123); client.unroute(mac)   # the des fixture's

- The front: a TCP listener on `address`:`port` that forwards each connection, WITHOUT
  terminating TLS, to the backend registered for the connecting phone (the shard's scripted
  enrollment server on an ephemeral port). The phone is known by the connection's source
  address: the lab file's `ip` for a phone, else the MAC of the DHCP responder's last ack of that
  address. No route (no phone of that address, or its shard registered no server: between two
  tests), or a backend that does not accept within `CONNECT_DEADLINE`: the connection is closed,
  as if no enrollment server answered, and recorded (`connections`; `log_path` when the hub
  stops: `<report-dir>/network/bench-hub.jsonl` in a run). A half-close passes through (each
  direction ends on its own); a side that breaks ends both. At most `MAX_FRONT` connections are
  forwarded at once (more: closed, recorded `too-many`), and one without a byte either way for
  `IDLE_DEADLINE` (or a side that stops reading for that long) is closed (recorded `closed`).
- The control channel: JSON lines over a Unix socket (mode 0600) in the run's temporary
  directory, which must be private (mode 0700, as `tempfile.mkdtemp` makes it: the socket exists
  for a moment before its chmod; else `bench-hub-unsafe-dir`), its path in `ENROLLAB_BENCH_HUB`
  for the shards; removed when the hub stops, which also lets go of clients still connected.
  One request per line, one answer per line:
  `{"op": "offer_242", "mac": M, "value": "DES_STAT=0"|null}`, `clear_242` {mac},
  `dhcp_events` {since: N} (the responder's events from position N, and `next`), `evidence`
  {mac, since: epoch seconds|null} (the capture's entries, `harness.lab_network.evidence`),
  `route` {mac, host: IPv4, port}, `unroute` {mac}, `connections` {since: N}, `info`. Answers
  are `{"ok": true, ...}` or `{"ok": false, "error": id, "detail": sentence}`; a bad request
  (not JSON, unknown op, a bad MAC or port, a line over `MAX_LINE`) is answered with
  `bad-request` and the hub goes on serving.
- The client is synchronous (a Unix socket per request, each with a `DEADLINE`): PhysicalDevice
  reads `dhcp.events` and `capture_path` as plain attributes. A hub that is not there or does
  not answer in time is `HarnessError("bench-hub-unreachable")` — the shard's physical tests end
  in that error, never a hang. What the lab network could not start with (no interface, no
  permission) is the hub's `network_error`, raised in every shard as it would be without the hub.
- `dhcp.events` is cached in the client: each read asks only for the events after the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from simulators.clock import iso
from simulators.identity import canonical_mac

__all__ = ["CONNECT_DEADLINE", "DEADLINE", "ENV", "IDLE_DEADLINE", "MAX_FRONT", "MAX_LINE", "BenchHub", "HubClient"]

ENV = "ENROLLAB_BENCH_HUB"
DEADLINE = 10.0  # seconds: one control request, answer included
CONNECT_DEADLINE = 10.0  # seconds: the front reaching a shard's server
IDLE_DEADLINE = 300.0  # seconds without a byte either way: the front closes a forwarded connection
MAX_FRONT = 64  # forwarded connections at once (a bench has a handful of phones)
MAX_LINE = 1 << 20  # bytes of one control request
MAX_ANSWER = 256 << 20  # bytes of one answer (a long capture's evidence)
CHUNK = 65536


class _BadRequest(Exception):
    """A control request the hub does not take (answered `bad-request`)."""


def _mac(args: Mapping[str, Any]) -> str:
    value = args.get("mac")
    if not isinstance(value, str):
        raise _BadRequest("`mac` must be a MAC address (PROTOCOL §1)")
    try:
        return canonical_mac(value)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None


def _count(args: Mapping[str, Any], key: str) -> int:
    value = args.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _BadRequest(f"`{key}` must be a count (an integer >= 0), not {value!r}")
    return value


class BenchHub:
    """The bench's shared parts for the shards of one run (module docstring)."""

    def __init__(self, *, address: str | None, port: int, control: Path,
                 phones: Mapping[str, str | None] | None = None, network: Any = None,
                 capture_path: Path | None = None, log_path: Path | None = None, netns: str | None = None,
                 idle_deadline: float = IDLE_DEADLINE, max_front: int = MAX_FRONT) -> None:
        self.address = address
        self.port = port  # 0: a free one, chosen at start (tests)
        self.control = Path(control)
        self.phones = {str(ip): canonical_mac(mac) for mac, ip in (phones or {}).items() if ip}  # ip -> MAC
        self.spec = network  # harness.lab_network.spec.NetworkSpec or None
        self.capture_path = capture_path
        self.log_path = log_path  # the front's record is written there at stop
        self.netns = netns  # the lab network, the front and its backends in this namespace (a lab in a box)
        self.network: Any = None  # harness.lab_network.service.LabNetwork, started
        self.network_error: HarnessError | None = None
        self.front_error: HarnessError | None = None
        self.routes: dict[str, tuple[str, int]] = {}  # MAC -> the shard's server
        self.connections: list[dict[str, Any]] = []  # the front's record
        self._front: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self.idle_deadline = idle_deadline
        self.max_front = max_front
        self._pipes: set[asyncio.Task[None]] = set()  # the front's connections
        self._talks: set[asyncio.Task[None]] = set()  # the control channel's
        self._ops: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "info": self._info, "offer_242": self._offer_242, "clear_242": self._clear_242,
            "dhcp_events": self._dhcp_events, "evidence": self._evidence, "route": self._route,
            "unroute": self._unroute, "connections": self._connections,
        }

    # -- start and stop -------------------------------------------------------------------------

    async def start(self) -> BenchHub:
        """Control socket, lab network, front; what cannot start is remembered for the shards
        (`network_error`, `front_error`), the control socket's failure is raised."""
        if self.control.parent.stat().st_mode & 0o077:
            raise HarnessError("bench-hub-unsafe-dir", f"the bench hub's control socket goes in a directory only this "
                               f"user can enter (mode 0700, as tempfile.mkdtemp makes), not {self.control.parent}")
        self.control.unlink(missing_ok=True)
        self._control = await asyncio.start_unix_server(self._serve_control, path=str(self.control), limit=MAX_LINE)
        os.chmod(self.control, 0o600)
        if self.spec is not None:
            from harness.lab_network.service import LabNetwork

            try:
                self.network = await LabNetwork(self.spec, netns=self.netns, capture_path=self.capture_path).start()
            except HarnessError as exc:
                self.network_error = exc
        if self.address is not None:
            try:
                from harness.listen import listening_socket

                sock = listening_socket(self.address, self.port, self.netns)
                self._front = await asyncio.start_server(self._serve_front, sock=sock)
            except OSError as exc:
                self.front_error = HarnessError(
                    "bench-front-down", f"the bench hub cannot listen on {self.address}:{self.port} for the phones' "
                    f"enrollment server ({exc.strerror or exc}): is [bench] address an address of this host, and is "
                    "the port free (and allowed: below 1024 needs root or CAP_NET_BIND_SERVICE)?")
            else:
                self.port = self._front.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for server in (self._front, self._control):
            if server is not None:
                server.close()
        tasks = [*self._pipes, *self._talks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in (self._front, self._control):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)
        self._front = self._control = None
        self.control.unlink(missing_ok=True)
        if self.network is not None:
            network, self.network = self.network, None
            await network.stop()
        if self.log_path is not None and self.connections:
            with contextlib.suppress(OSError):
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self.log_path.write_text("".join(json.dumps(c) + "\n" for c in self.connections))

    @property
    def forwarding(self) -> int:
        """Connections the front forwards now (each a task with its two pipes)."""
        return len(self._pipes)

    # -- who is calling ---------------------------------------------------------------------------

    def mac_of(self, ip: str) -> str | None:
        """The phone at `ip`: the lab file's, else the MAC of the DHCP's last ack of that address."""
        if ip in self.phones:
            return self.phones[ip]
        dhcp = getattr(self.network, "dhcp", None)
        for event in reversed(dhcp.events if dhcp is not None else []):
            if event.get("event") == "ack" and event.get("ip") == ip:
                with contextlib.suppress(ValueError):
                    return canonical_mac(str(event.get("mac")))
        return None

    # -- the front --------------------------------------------------------------------------------

    async def _serve_front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._pipes) >= self.max_front:
            peer = writer.get_extra_info("peername")
            self.connections.append({"at": iso(time.time()), "peer": str(peer[0]) if peer else "?", "mac": None,
                                     "event": "too-many", "why": f"{self.max_front} connections are forwarded now"})
            await _close(writer)
            return
        self._pipes.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._pipes.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        mac = self.mac_of(ip)
        record: dict[str, Any] = {"at": iso(time.time()), "peer": ip, "mac": mac}
        self.connections.append(record)
        backend = self.routes.get(mac) if mac is not None else None
        if backend is None:
            record["event"] = "no-route"
            record["why"] = "no phone of the lab has this address" if mac is None else \
                "no test of this phone has an enrollment server now"
            await _close(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(self._connect(backend), CONNECT_DEADLINE)
        except (OSError, TimeoutError) as exc:
            record.update(event="backend-down", to=f"{backend[0]}:{backend[1]}", why=str(exc) or type(exc).__name__)
            await _close(writer)
            return
        record.update(event="forwarded", to=f"{backend[0]}:{backend[1]}")
        idle = _Idle(self.idle_deadline)
        pipes = [asyncio.ensure_future(_pipe(reader, up_writer, idle)),
                 asyncio.ensure_future(_pipe(up_reader, writer, idle))]
        try:
            await asyncio.gather(*pipes)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            await _close(up_writer)
            await _close(writer)
            if idle.expired:
                record["closed"] = f"idle for {self.idle_deadline:g} s"

    async def _connect(self, backend: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.netns is None:
            return await asyncio.open_connection(*backend)
        from simulators.l2.netns import connect_in

        return await asyncio.open_connection(sock=await connect_in(self.netns, *backend))

    # -- the control channel ----------------------------------------------------------------------

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._talks.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):  # over MAX_LINE: the rest of it cannot be read
                    await _answer(writer, {"ok": False, "error": "bad-request",
                                           "detail": f"a request is one JSON line of at most {MAX_LINE} bytes"})
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                await _answer(writer, await self.handle(line))
        except (ConnectionError, OSError):
            return
        except asyncio.CancelledError:  # the hub stops: a client still connected is let go
            return
        finally:
            self._talks.discard(task)
            await _close(writer)

    async def handle(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line (module docstring)."""
        try:
            try:
                request = json.loads(line)
            except ValueError:
                raise _BadRequest("not a JSON line") from None
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise _BadRequest('a request is a JSON object with "op"')
            op = self._ops.get(request["op"])
            if op is None:
                raise _BadRequest(f"unknown op {request['op']!r} (one of {', '.join(sorted(self._ops))})")
            result = op(request)
            if asyncio.iscoroutine(result):
                result = await result
            return {"ok": True, **(result or {})}
        except _BadRequest as exc:
            return {"ok": False, "error": "bad-request", "detail": str(exc)}
        except HarnessError as exc:
            return {"ok": False, "error": exc.error, "detail": exc.detail}
        except (OSError, ValueError) as exc:
            return {"ok": False, "error": "bench-hub-failed", "detail": str(exc)}

    def _info(self, _: Mapping[str, Any]) -> dict[str, Any]:
        def error(exc: HarnessError | None) -> dict[str, str] | None:
            return {"error": exc.error, "detail": exc.detail} if exc is not None else None

        capture = getattr(self.network, "capture_path", None)
        return {"dhcp": getattr(self.network, "dhcp", None) is not None,
                "capture": str(capture) if capture is not None else None,
                "front": [self.address, self.port] if self._front is not None else None,
                "network_error": error(self.network_error), "front_error": error(self.front_error)}

    def _dhcp(self) -> Any:
        if self.network_error is not None:
            raise self.network_error
        dhcp = getattr(self.network, "dhcp", None)
        if dhcp is None:
            raise HarnessError("bench-dhcp-unavailable", "the bench hub serves no DHCP: give the lab file [network] "
                               "with [network.dhcp]")
        return dhcp

    def _offer_242(self, args: Mapping[str, Any]) -> None:
        value = args.get("value")
        if value is not None and not isinstance(value, str):
            raise _BadRequest("`value` is option 242's text or null")
        mac = _mac(args)
        self._dhcp().offer_242(mac, value)

    def _clear_242(self, args: Mapping[str, Any]) -> None:
        mac = _mac(args)
        self._dhcp().clear_242(mac)

    def _dhcp_events(self, args: Mapping[str, Any]) -> dict[str, Any]:
        since = _count(args, "since")
        events = list(self._dhcp().events)
        return {"events": events[since:], "next": len(events)}

    async def _evidence(self, args: Mapping[str, Any]) -> dict[str, Any]:
        mac = _mac(args)
        since = args.get("since")
        if since is not None and (not isinstance(since, int | float) or isinstance(since, bool)):
            raise _BadRequest("`since` is epoch seconds or null")
        if self.network_error is not None:
            raise self.network_error
        if self.network is None:
            raise HarnessError("network-no-capture", "the bench hub serves no lab network ([network])")
        entries = await asyncio.to_thread(self.network.evidence, mac, since)
        return {"entries": entries}

    def _route(self, args: Mapping[str, Any]) -> dict[str, Any]:
        mac = _mac(args)
        host, port = args.get("host"), args.get("port")
        try:
            ipaddress.IPv4Address(host if isinstance(host, str) else "")
        except ValueError:
            raise _BadRequest(f"`host` must be an IPv4 address, not {host!r}") from None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _BadRequest(f"`port` must be 1-65535, not {port!r}")
        if self.front_error is not None:
            raise self.front_error
        if self._front is None:
            raise HarnessError("bench-front-down", "the bench hub has no front: give [bench] address")
        assert isinstance(host, str)
        self.routes[mac] = (host, port)
        return {"front": [self.address, self.port]}

    def _unroute(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"removed": self.routes.pop(_mac(args), None) is not None}

    def _connections(self, args: Mapping[str, Any]) -> dict[str, Any]:
        since = _count(args, "since")
        return {"connections": self.connections[since:], "next": len(self.connections)}


class _Idle:
    """A forwarded connection's idle deadline: bytes either way keep it alive."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.last = time.monotonic()
        self.expired = False

    def left(self) -> float:
        return self.last + self.deadline - time.monotonic()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: _Idle) -> None:
    """Bytes from `reader` to `writer` until EOF, then half-close (TLS close_notify passes through).
    A broken side or nothing either way for the idle deadline closes `writer`, which ends the
    other direction too (its reader sees the end of the connection)."""
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(CHUNK), max(idle.left(), 0.0))
            except TimeoutError:
                if idle.left() > 0:  # the other direction was busy meanwhile
                    continue
                idle.expired = True
                writer.close()
                return
            if not chunk:
                break
            idle.last = time.monotonic()
            writer.write(chunk)
            try:  # a side that stops reading holds no task: its writes end within the deadline too
                await asyncio.wait_for(writer.drain(), idle.deadline)
            except TimeoutError:
                idle.expired = True
                writer.close()
                return
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 5)


async def _answer(writer: asyncio.StreamWriter, answer: Mapping[str, Any]) -> None:
    writer.write(json.dumps(answer).encode() + b"\n")
    await writer.drain()


# -- in a shard -------------------------------------------------------------------------------------


class HubClient:
    """A shard's handle on the hub (module docstring): the surface `PhysicalDevice` uses of a
    `LabNetwork` (`dhcp`, `capture_path`, `evidence`) plus `route`/`unroute`."""

    def __init__(self, path: str | os.PathLike[str], *, deadline: float = DEADLINE) -> None:
        self.path = str(path)
        self.deadline = deadline
        info = self.call("info")
        problem = info.get("network_error")  # the lab network did not start: as without the hub
        if isinstance(problem, dict):
            raise HarnessError(str(problem.get("error")), str(problem.get("detail")))
        front = info.get("front")
        self.front = (str(front[0]), int(front[1])) if isinstance(front, list) and len(front) == 2 else None
        self.capture_path = Path(info["capture"]) if info.get("capture") else None
        self.dhcp = HubDhcp(self) if info.get("dhcp") else None

    @classmethod
    def from_env(cls) -> HubClient | None:
        """The hub named by `ENROLLAB_BENCH_HUB`, or None when the variable is not set."""
        path = os.environ.get(ENV)
        return cls(path) if path else None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request, its answer; the hub's error as `HarnessError(id)`, no answer within the
        deadline as `bench-hub-unreachable`."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.deadline)
                end = time.monotonic() + self.deadline
                sock.connect(self.path)
                sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
                data = bytearray()
                while not data.endswith(b"\n"):
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    chunk = sock.recv(CHUNK)
                    if not chunk:
                        raise ConnectionError("the hub closed the connection without an answer")
                    data += chunk
                    if len(data) > MAX_ANSWER:
                        raise ConnectionError(f"an answer over {MAX_ANSWER} bytes")
        except (OSError, TimeoutError) as exc:
            raise HarnessError("bench-hub-unreachable", f"the bench hub at {self.path} did not answer {op!r} within "
                               f"{self.deadline:g} s ({exc}): the physical phones of this shard share the bench "
                               "through it (the `conformance run` process that started this shard)") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise HarnessError("bench-hub-unreachable", f"the bench hub at {self.path} answered {op!r} with no "
                               "JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            problem = answer if isinstance(answer, dict) else {}
            raise HarnessError(str(problem.get("error") or "bench-hub-failed"),
                               str(problem.get("detail") or f"the bench hub refused {op!r}"))
        return answer

    def evidence(self, mac: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        if mac is None:
            raise HarnessError("bench-hub-failed", "the bench hub gives evidence per phone (a MAC)")
        return list(self.call("evidence", mac=mac, since=since)["entries"])

    def route(self, mac: str, host: str, port: int) -> None:
        """Connections from this phone to the bench's enrollment server port go to host:port."""
        self.call("route", mac=mac, host=host, port=port)

    def unroute(self, mac: str) -> None:
        self.call("unroute", mac=mac)

    def connections(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.call("connections", since=since)["connections"])


class HubDhcp:
    """The hub's DHCP responder as PhysicalDevice uses one: per-MAC option 242 and its events."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self._events: list[dict[str, Any]] = []

    def offer_242(self, mac: str, text: str | None) -> None:
        self.client.call("offer_242", mac=mac, value=text)

    def clear_242(self, mac: str) -> None:
        self.client.call("clear_242", mac=mac)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The responder's events, oldest first (only the new ones are fetched)."""
        answer = self.client.call("dhcp_events", since=len(self._events))
        self._events.extend(answer["events"])
        return list(self._events)
