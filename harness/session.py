"""One conformance run's lab, live: the enrollment server (embedded or remote), the devices bound
to their drivers, and the results collected for the record.

The embedded server runs on its own event loop in a thread of its own (`LoopThread`) for the
whole session, so tests — each on pytest-asyncio's loop of its own — reach it over sockets like
any client, and a test that blocks cannot stall it. Everything is started on first use: a run
whose tests never need the server never starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from harness.errors import HarnessError, LabError
from harness.lab import DeviceSpec, Lab, ServerSpec
from simulators.admin_client import AdminClient, AdminError

__all__ = ["FILES_HOST", "ConformanceSession", "EnrollmentServer", "LoopThread"]

T = TypeVar("T")
FILES_HOST = "files.enrollab.test"
LAB_DEVICE_PORT = 8443  # the device listener on the lab address (network_path = "namespaces")
EMBEDDED_PASSWORD = "Conformance-Embedded-Pw-1"  # noqa: S105 - a throwaway server in a temporary directory
START_TIMEOUT = 120.0
# The budget a run sets on a remote server for its duration (EnrollmentServer.relax_guessing).
RUN_GUESSING = {"failures": 100_000, "minutes": 1}


class LoopThread:
    """An asyncio loop running in a daemon thread; `run(coro)` waits for a result from any thread."""

    def __init__(self, name: str = "enrollab-server") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class Holder:
    """An administrator the harness made, who holds arranged devices (to give them back later)."""

    login: str
    password: str = field(repr=False)
    account_id: str


@dataclass
class EnrollmentServer:
    """The server under test (or serving the device under test), as the `enrollment_server` fixture."""

    admin_url: str
    device_url: str
    name: str
    version: str
    embedded: bool
    admin_login: str
    admin_password: str = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict)
    est_url: str | None = None
    manufacturer_key_pem: bytes | None = field(default=None, repr=False)
    manufacturer_cert_pem: bytes | None = None
    tls_ca_pem: bytes | None = None
    data_dir: Path | None = None
    # MAC -> the administrator holding the device since the harness arranged it (harness.arrangement).
    holders: dict[str, Holder] = field(default_factory=dict)
    # The server's enrollment-code guessing budgets before the run relaxed them (`relax_guessing`),
    # put back when the session closes; None when nothing was changed.
    guessing_before: dict[str, Any] | None = None
    _stop: Any = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """For an https admin URL: trusts the server's TLS CA when known, else the system's roots."""
        if not self.admin_url.startswith("https:"):
            return None
        context = ssl.create_default_context()
        if self.tls_ca_pem:
            context.load_verify_locations(cadata=self.tls_ca_pem.decode("ascii"))
        return context

    @contextlib.asynccontextmanager
    async def admin(self, login: str | None = None, password: str | None = None) -> AsyncIterator[AdminClient]:
        """A logged-in `AdminClient` (the platform administrator unless `login`/`password`), on
        the caller's event loop; its HTTP session closes with the block."""
        https = self.admin_url.startswith("https:")
        connector = aiohttp.TCPConnector(ssl=self.ssl_context() or False) if https else None
        async with aiohttp.ClientSession(connector=connector) as http:
            client = await _login(AdminClient(self.admin_url, http), login or self.admin_login,
                                  password if password is not None else self.admin_password, self.admin_url)
            yield client

    def manufacturer_ca(self) -> Any:
        """The manufacturer CA the server trusts (`simulators.factory.ManufacturerCA`), which
        issues the factory certificates of simulated devices."""
        from simulators.factory import ManufacturerCA

        if self.manufacturer_key_pem is None or self.manufacturer_cert_pem is None:
            raise HarnessError(
                "no-manufacturer-ca",
                f"simulated devices against {self.admin_url} need the manufacturer CA it trusts: give [server] "
                "data (its data directory) or manufacturer_key and manufacturer_cert in the lab file",
            )
        return ManufacturerCA(self.manufacturer_key_pem, self.manufacturer_cert_pem)

    def provenance(self) -> dict[str, Any]:
        about = {
            "url": self.admin_url,
            "name": self.name,
            "version": self.version,
            "embedded": self.embedded,
            "device_url": self.device_url,
        }
        if self.guessing_before is not None:
            about["guessing_relaxed_from"] = self.guessing_before
        return about

    async def relax_guessing(self) -> None:
        """A run's probe devices all come from the harness's address and type many wrong codes on
        purpose (LCK, EC tests): a server's per-address guessing budget would answer them 429
        part-way through. Where the server has the reference server's `/settings/guessing`, the
        budgets are raised for the run and `restore_guessing` puts the old ones back (the
        report's provenance says so); a server without it is left alone."""
        async with self.admin() as admin:
            try:
                current = await admin.call("GET", "/settings/guessing")
            except (AdminError, aiohttp.ClientError):  # not the reference server's API: left alone
                return
            if not isinstance(current, dict):
                return
            before = {k: current[k] for k in ("per_address", "global") if isinstance(current.get(k), dict)}
            if not before:
                return
            if all(b.get("failures", 0) >= RUN_GUESSING["failures"] for b in before.values()):
                return
            await admin.call("PUT", "/settings/guessing", {k: dict(RUN_GUESSING) for k in before})
            self.guessing_before = before

    async def restore_guessing(self) -> None:
        if self.guessing_before is None:
            return
        async with self.admin() as admin:
            await admin.call("PUT", "/settings/guessing", self.guessing_before)
        self.guessing_before = None


async def _login(client: AdminClient, login: str, password: str, url: str) -> AdminClient:
    try:
        return await client.login(login, password)
    except AdminError as exc:
        raise HarnessError("admin-login-refused", f"{url} refused the login of {login!r}: {exc}") from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise HarnessError("server-unreachable", f"cannot reach the enrollment server at {url}: {exc}") from None


async def _info(admin_url: str, context: ssl.SSLContext | None) -> dict[str, Any]:
    url = admin_url.rstrip("/")
    if not url.endswith("/api/v1"):
        url += "/api/v1"
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(ssl=context or False) if url.startswith("https:") else None
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as http,
            http.get(url + "/info") as resp,
        ):
            body = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(body, dict):
                raise HarnessError("server-info-failed", f"GET {url}/info answered {resp.status}: {str(body)[:200]}")
            return body
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        raise HarnessError("server-unreachable", f"cannot reach the enrollment server at {url}: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LabError("cannot-read", f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _pki_of(data: Path) -> tuple[bytes, bytes, bytes]:
    from server.pki.store import PkiLayout

    layout = PkiLayout.of(data)
    if not layout.manufacturer_ca_key.exists():
        raise LabError("no-pki", f"{data} holds no server PKI (no {layout.manufacturer_ca_key})")
    return (
        _read(layout.manufacturer_ca_key, "manufacturer CA key"),
        _read(layout.manufacturer_ca_cert, "manufacturer CA certificate"),
        _read(layout.tls_ca_cert, "server TLS CA"),
    )


async def _start_embedded(data: Path, *, device_at: tuple[str, int, str] | None = None) -> tuple[EnrollmentServer, Any]:
    """The embedded server; with `device_at` (address, port, netns) its device listener serves on
    that lab address inside the lab's namespace (the admin API stays on 127.0.0.1 here)."""
    from server.runner import SIMULATION_GUESSING, ServeConfig, start

    config = ServeConfig(data_dir=data, admin_port=0, guessing=SIMULATION_GUESSING)
    if device_at is not None:
        from harness.listen import listening_socket

        address, port, netns = device_at
        config.hostnames = [address]
        config.device_socket = listening_socket(address, port, netns)
    running = await start(config, admin_password=EMBEDDED_PASSWORD)
    try:
        info = await _info(running.admin_url, None)
    except BaseException:
        await running.stop()
        raise
    key, cert, tls_ca = _pki_of(data)
    server = EnrollmentServer(
        admin_url=running.admin_url,
        device_url=str(info.get("device_url") or running.device_url),
        name=str(info.get("name", "")),
        version=str(info.get("version", "")),
        embedded=True,
        admin_login="admin",
        admin_password=EMBEDDED_PASSWORD,
        info=info,
        est_url=info.get("est_url"),
        manufacturer_key_pem=key,
        manufacturer_cert_pem=cert,
        tls_ca_pem=tls_ca,
        data_dir=data,
    )
    return server, running


async def _connect_remote(spec: ServerSpec) -> EnrollmentServer:
    assert spec.url is not None
    password = spec.admin_password()
    if not password:
        raise HarnessError(
            "admin-password-required",
            f"set {spec.admin_password_env} to the password of {spec.admin_login!r} on {spec.url}",
        )
    key = cert = tls_ca = None
    if spec.data is not None:
        key, cert, tls_ca = _pki_of(spec.data)
    if spec.manufacturer_key is not None and spec.manufacturer_cert is not None:
        key = _read(spec.manufacturer_key, "manufacturer CA key")
        cert = _read(spec.manufacturer_cert, "manufacturer CA certificate")
    if spec.server_ca is not None:
        tls_ca = _read(spec.server_ca, "server TLS CA")
    server = EnrollmentServer(
        admin_url=spec.url.rstrip("/").removesuffix("/api/v1"),
        device_url="",
        name="",
        version="",
        embedded=False,
        admin_login=spec.admin_login,
        admin_password=password,
        manufacturer_key_pem=key,
        manufacturer_cert_pem=cert,
        tls_ca_pem=tls_ca,
    )
    info = await _info(server.admin_url, server.ssl_context())
    server.info = info
    server.device_url = str(info.get("device_url") or "")
    server.est_url = info.get("est_url")
    server.name = str(info.get("name", ""))
    server.version = str(info.get("version", ""))
    async with server.admin():  # the credentials work, or every test says why not
        pass
    await server.relax_guessing()
    return server


class ConformanceSession:
    """What a conformance run shares: the lab, the target, the server, the devices, the results."""

    def __init__(
        self,
        lab: Lab,
        *,
        target: str,
        lab_file: str | None,
        report_dir: Path | None = None,
        command: str = "",
        unattended: bool = False,
    ) -> None:
        self.lab = lab
        self.target = target
        # `--unattended`: nobody at the bench, whatever the terminal says (physical drivers ask no one)
        self.unattended = unattended
        self.lab_file = lab_file
        self.report_dir = report_dir
        self.command = command
        self.started_at = datetime.now(UTC)
        self.devices: tuple[DeviceSpec, ...] = lab.devices_for(target)
        self.records: list[dict[str, Any]] = []
        self.features: dict[str, str] = {}
        self.unobservable: dict[str, str] = {}
        self.public_roots: list[bytes] = []
        self.report: dict[str, Any] | None = None
        self.report_paths: dict[str, Path] = {}
        self.report_problem: str | None = None
        self._loop: LoopThread | None = None
        self._server: EnrollmentServer | None = None
        self._server_error: BaseException | None = None
        self._running: Any = None
        self._tmp: str | None = None
        self._drivers: dict[str, Any] = {}
        # The harness's file servers of the run (a test's `files` fixture adds its own while it runs): the
        # request logs physical phones are observed through (`bench`).
        self.file_servers: list[Any] = []
        # The scripted enrollment servers running for physical phones' tests (the device suite's `des`).
        self.des_servers: list[Any] = []
        # The lab network a run with physical phones serves on `[network] interface` (DHCP, LLDP, capture).
        self.network: Any = None
        self.hub: Any = None  # harness.bench_hub.HubClient instead, in a bench shard under a hub (bench_network)
        self._network_error: BaseException | None = None
        self._driver_errors: dict[str, BaseException] = {}
        self._link: Any = None
        self.path: Any = None  # harness.lab_network.path.LabPath with `[options] network_path = "namespaces"`

    @property
    def seed(self) -> int:
        return self.lab.options.seed

    # -- the server --------------------------------------------------------------------------------

    def server(self) -> EnrollmentServer:
        """The enrollment server, started (or reached) on first use; a failure is remembered and
        raised again for every later test, as a `HarnessError`."""
        if self._server is not None:
            return self._server
        if self._server_error is not None:
            raise self._server_error
        try:
            self._server = self._start()
        except HarnessError as exc:
            self._server_error = exc
            raise
        except Exception as exc:
            self._server_error = HarnessError("server-start-failed", f"the enrollment server did not start: {exc!r}")
            raise self._server_error from exc
        return self._server

    @property
    def server_started(self) -> EnrollmentServer | None:
        return self._server

    def _start(self) -> EnrollmentServer:
        self._loop = LoopThread()
        spec = self.lab.server
        if spec.embedded:
            self._tmp = tempfile.mkdtemp(prefix="enrollab-conformance-")
            device_at = None
            if self.lab.options.network_path == "namespaces":
                self.path = self._lab_path(Path(self._tmp))
                device_at = (self.path.address, LAB_DEVICE_PORT, self.path.netns)
            server, self._running = self._loop.run(_start_embedded(Path(self._tmp) / "data", device_at=device_at))
            return server
        if self.lab.options.network_path == "namespaces":
            raise LabError("network-path-needs-embedded-server",
                           'network_path = "namespaces" puts the devices on a lab network only the embedded '
                           "server listens on: drop --server / [server] url, or use network_path = \"loopback\"",
                           field="options.network_path")
        return self._loop.run(_connect_remote(spec))

    def _lab_path(self, tmp: Path) -> Any:
        from harness.lab_network.netns import TopologyError
        from harness.lab_network.path import LabPath

        captures = (self.report_dir / "network") if self.report_dir is not None else tmp / "network"
        path = LabPath(f"enrollab-c{uuid.uuid4().hex[:4]}", captures)
        try:
            return path.start()
        except (TopologyError, OSError, subprocess.CalledProcessError) as exc:
            raise LabError("network-path-unavailable",
                           f'network_path = "namespaces" needs network namespaces (root, iproute2): {exc}',
                           field="options.network_path") from None

    def server_provenance(self) -> dict[str, Any]:
        if self._server is not None:
            return self._server.provenance()
        spec = self.lab.server
        out: dict[str, Any] = {
            "url": spec.url or "embedded",
            "name": "",
            "version": "",
            "embedded": spec.embedded,
            "contacted": False,
        }
        if self._server_error is not None:
            out["error"] = str(self._server_error)
        return out

    # -- devices -----------------------------------------------------------------------------------

    def link(self) -> Any:
        from harness.dut import SimLink
        from simulators.fleet import SkipWaits

        if self._link is None:
            server = self.server()
            if server.tls_ca_pem:
                self.public_roots.insert(0, server.tls_ca_pem)
            files_at = self.path.address if self.path is not None else "127.0.0.1"
            self._link = SimLink(server.device_url, self.public_roots, {FILES_HOST: files_at}, SkipWaits())
        return self._link

    def bench(self) -> Any:
        """What physical phones are observed through: the server's audit log (the platform
        administrator), the file servers the run started, the lab namespace for SIP."""
        from harness.physical.device import Bench

        server = self.server()
        return Bench(admin=server.admin, device_url=server.device_url, files=self.file_servers,
                     netns=self.path.netns if self.path is not None else None,
                     attended=False if self.unattended else None, spec=self.lab.bench,
                     des=self.des_servers, network=self.bench_network())

    def bench_network(self) -> Any:
        """The lab file's `[network]` served for the run's physical phones (DHCP responder, LLDP
        advertiser, capture into the report directory's `network/bench.pcap`), started once, on the
        server's loop; None when the lab has no `[network]`. It is the evidence of what each phone
        asked the network (`PhysicalDevice.take_evidence`). A failure to start is remembered.

        In a bench shard of a run testing several physical phones at once (`harness.shards`) the
        parent process serves the bench for all of them, and this is its `harness.bench_hub.HubClient`
        (named by `ENROLLAB_BENCH_HUB`), with or without `[network]`: the hub also fronts the
        enrollment server port (the device suite's `des` registers its server there)."""
        if self._network_error is not None:
            raise self._network_error
        from harness.bench_hub import ENV, HubClient

        if os.environ.get(ENV):
            if self.hub is None:
                try:
                    self.hub = HubClient(os.environ[ENV])
                except HarnessError as exc:
                    self._network_error = exc
                    raise
            return self.hub
        if self.network is not None or self.lab.network is None:
            return self.network
        from harness.lab_network.service import LabNetwork

        self.server()
        assert self._loop is not None
        if self.report_dir is None and self._tmp is None:  # a remote server: close() removes this one too
            self._tmp = tempfile.mkdtemp(prefix="enrollab-conformance-")
        base = self.report_dir if self.report_dir is not None else Path(str(self._tmp))
        capture = base / "network" / "bench.pcap" if self.lab.network.capture else None
        if capture is not None:
            capture.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.network = self._loop.run(LabNetwork(self.lab.network, capture_path=capture).start())
        except HarnessError as exc:
            self._network_error = exc
            raise
        return self.network

    def device(self, spec: DeviceSpec) -> Any:
        """The driver bound to a lab device (one per device for the session; errors remembered)."""
        from harness.dut import bind

        if spec.id in self._drivers:
            return self._drivers[spec.id]
        if spec.id in self._driver_errors:
            raise self._driver_errors[spec.id]
        try:
            if spec.driver == "simulated":
                driver = bind(spec, manufacturer=self.server().manufacturer_ca(), link=self.link())
                driver.path = self.path
            else:
                driver = bind(spec, bench=self.bench())
        except HarnessError as exc:
            self._driver_errors[spec.id] = exc
            raise
        self._drivers[spec.id] = driver
        return driver

    # -- the end -----------------------------------------------------------------------------------

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            network, self.network = self.network, None
            if network is not None:
                with contextlib.suppress(Exception):
                    loop.run(network.stop(), timeout=30)
            if self._server is not None and self._server.guessing_before is not None:
                try:
                    loop.run(self._server.restore_guessing(), timeout=30)
                except Exception as exc:  # the run's results stand; say what is left changed
                    print(f"enrollab: could not restore the guessing budgets of {self._server.admin_url} "
                          f"({exc}); they were {self._server.guessing_before}", file=sys.stderr)
            if self._running is not None:
                with contextlib.suppress(Exception):
                    loop.run(self._running.stop(), timeout=30)
                self._running = None
            loop.close()
        if self.path is not None:
            self.path.close()
            self.path = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def admin_login_from_env() -> str:
    return os.environ.get("ENROLLAB_ADMIN_LOGIN") or "admin"
