"""What the device suite adds to the enrollab plugin (`harness.pytest_plugin`): the scripted
enrollment server as a fixture, and two markers for applicability.

Fixtures
    des     (function, async) a `harness.scripted_des.ScriptedDES` the device under test enrolls
            with for this test: mutual TLS against the manufacturer CA that issued the device's
            factory certificate, its CA among the device's roots, `des.enrollab.test` resolving
            to it. Every request it saw goes into the test's evidence (`evidence.http`, who
            `device-api`). For a physical phone it is the bench's (`[bench]`,
            `harness.physical.bench_spec`): on the bench address and `des_port`, named `des_name`
            with the bench's certificate, checking factory certificates against
            `manufacturer_ca`; the phone's observer watches it. Without those the test ends in
            *error* `scripted-des-unreachable` saying what `[bench]` lacks. Under a bench hub
            (several physical phones at once, `harness.bench_hub`) it listens on the bench
            address with a port of its own, and the hub's front on `des_port` forwards the
            phone's connections to it for the test (its URLs name `des_port`: the phone only
            reaches it through the front).

Markers
    @pytest.mark.lacks_feature("HTTP provisioning URL")
        A negative check: applicable only where the device LACKS the feature (Appendix A),
        *not applicable* elsewhere with the reason. The test names no feature in the report.
    @pytest.mark.needs("provisioning-urls", "https-provisioning-url")
        What the test needs to observe its behaviour (`observability.PREREQUISITES`): *not
        applicable* ("not observable on this device: …") where the device lacks one. Checked
        after the plugin's `feature` marker, so "not supported" wins as the reason.
    @pytest.mark.statement
        The conformance-statement check of the test's `feature`: applicable only where the
        device supports it and no behavioural test can observe it (`observability.py`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from conformance.device.observability import observable
from fixtures.features import FeatureMatrix
from harness.errors import HarnessError
from harness.outcomes import not_applicable
from harness.pytest_plugin import add_evidence
from harness.scripted_des import ScriptedDES

DES_HOST = "des.enrollab.test"
MARKERS = (
    "lacks_feature(*features): a negative check, applicable only where the device under test lacks the "
    "Appendix A features",
    "needs(*features): Appendix A features the test needs to observe its behaviour; not applicable without",
    "statement: the conformance-statement check of a feature (marker `feature`), applicable only where the "
    "device supports the feature and the behavioural tests cannot observe it",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def pytest_runtest_setup(item: pytest.Item) -> None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("dut") if callspec is not None else None
    model, firmware = getattr(spec, "model", None), getattr(spec, "firmware", None)
    if not isinstance(model, str) or not isinstance(firmware, str):
        return
    matrix = FeatureMatrix.load()  # Appendix A itself, not the simulators' reading of it
    for mark in item.iter_markers("lacks_feature"):
        for feature in mark.args:
            if matrix.supports(model, firmware, feature):
                why = matrix.explain(model, firmware, feature)
                not_applicable(f"a negative check for devices without {matrix.label(feature)}: {why}")
    for mark in item.iter_markers("needs"):
        for feature in mark.args:
            if not matrix.supports(model, firmware, feature):
                not_applicable(f"not observable on this device: {matrix.explain(model, firmware, feature)}")
    if item.get_closest_marker("statement") is not None:
        features = [matrix.feature_id(f) for mark in item.iter_markers("feature") for f in mark.args]
        supports = functools.partial(matrix.supports, model, firmware)
        if all(observable(supports, f) for f in features):
            labels = ", ".join(matrix.label(f) for f in features)
            not_applicable(f"the behavioural tests observe {labels} on this device")


@contextlib.contextmanager
def enrolling_with(dut: Any, des: ScriptedDES) -> Iterator[None]:
    """Point the device at `des` for the block: a simulated one by its own link (the shared roots
    get the DES's CA while it runs); a physical one asks the bench's name by itself, and its
    observer watches `des` (`Bench.des`)."""
    from harness.dut import SimulatedDevice

    if not isinstance(dut, SimulatedDevice):
        watched = dut.bench.des
        watched.append(des)
        try:
            yield
        finally:
            watched.remove(des)
        return
    link = dut.link
    roots = link.public_roots
    added = des.ca_pem not in roots
    if added:
        roots.append(des.ca_pem)
    dut.link = replace(link, device_url=des.url, hosts={**link.hosts, DES_HOST: des.host})
    try:
        yield
    finally:
        dut.link = link
        if added and des.ca_pem in roots:
            roots.remove(des.ca_pem)


def _bench_des(dut: Any, *, port: int | None = None) -> ScriptedDES:
    """The scripted enrollment server a physical phone reaches (module docstring: `des`)."""
    from harness.fileserver import make_certificates
    from harness.scripted_des import DesPki

    bench = dut.bench.spec
    missing = bench.missing_for_des()
    if missing:
        raise HarnessError(
            "scripted-des-unreachable",
            f"{dut.id}: a physical phone reaches the harness's scripted enrollment server only through the bench: "
            f"give [bench] {', '.join(missing)} in the lab file (a certificate for {bench.des_name} the phone trusts — "
            "des_cert/des_key, or server_ca/server_ca_key to issue one —, the CA of its factory certificate; the "
            "bench's DNS names the harness) — see README, 'Pointing enrollab "
            "at your phones'",
            dut.id,
        )
    try:
        if bench.des_cert is not None and bench.des_key is not None:
            cert_pem, key_pem = bench.des_cert.read_bytes(), bench.des_key.read_bytes()
        else:  # issued by the bench's server_ca for des_name (bench_spec)
            issued = make_certificates("public", (bench.des_name,), (bench.address,), issuer=bench.server_issuer())
            cert_pem, key_pem = issued.cert_pem, issued.key_pem
        pki = DesPki.from_files(cert_pem, key_pem, (bench.des_name,))
        cas = [path.read_bytes() for path in bench.manufacturer_ca]
    except OSError as exc:
        raise HarnessError("bench-unreadable", f"[bench]: {exc.strerror or exc}: {exc.filename}") from None
    return ScriptedDES(cas, hostnames=(bench.des_name,), host=bench.address,
                       port=bench.des_port if port is None else port, pki=pki)


async def _hub_des(dut: Any, hub: Any) -> ScriptedDES:
    """The bench DES under a hub (module docstring): on a free port, routed to from `des_port`."""
    server = await _bench_des(dut, port=0).start()
    try:
        hub.route(dut.spec.mac, server.host, server.port)
    except BaseException:
        await server.stop()
        raise
    server.port = dut.bench.spec.des_port  # what its URLs say: the phone reaches it only through the front
    return server


@pytest_asyncio.fixture(loop_scope="function")
async def des(request: pytest.FixtureRequest, dut: Any, enrollment_server: Any) -> AsyncIterator[ScriptedDES]:
    """The scripted enrollment server of this test (module docstring)."""
    from harness.bench_hub import HubClient

    hub = getattr(getattr(dut, "bench", None), "network", None)
    hub = hub if isinstance(hub, HubClient) else None
    try:
        if hub is not None:
            server = await _hub_des(dut, hub)
        elif getattr(dut, "driver", "simulated") == "physical":
            server = await _bench_des(dut).start()
        else:
            manufacturer = enrollment_server.manufacturer_cert_pem
            if manufacturer is None:
                raise HarnessError("no-manufacturer-ca", "the scripted DES needs the manufacturer CA of the devices")
            path = getattr(dut, "path", None)  # network_path = "namespaces": on the lab address, in its namespace
            at: dict[str, Any] = {"host": path.address, "netns": path.netns} if path is not None else {}
            server = await ScriptedDES(manufacturer, hostnames=(DES_HOST,), **at).start()
    except OSError as exc:
        raise HarnessError("scripted-des-down", f"the scripted enrollment server did not start: {exc}") from None
    try:
        with enrolling_with(dut, server):
            yield server
    finally:
        try:
            add_evidence(request.node, http=server.exchanges())
        finally:  # the route and the server end whatever the evidence did
            if hub is not None:
                with contextlib.suppress(HarnessError):  # a hub gone: its front routes nothing anyway
                    hub.unroute(dut.spec.mac)
            await server.stop()
