"""The enrollab pytest plugin: conformance suites against a lab (entry point `pytest11: enrollab`).

Loaded into every pytest run of an environment with enrollab installed, it stays inert — no
fixture does anything, no hook changes a report — until a run is a *conformance run*: one of
`--target`, `--lab`, `--server` is given (`enrollab conformance run` gives them), or a suite's
conftest calls `activate(config)` (the defaults: --target sim, the example lab). Then the
suites' coroutines run under pytest-asyncio in auto mode, each test on its own loop.

Options
    --target sim|lab     which devices of the lab: simulated (default) or physical phones
                         (`harness.physical.device.PhysicalDevice`)
    --lab LAB.toml       the lab file (`harness.lab`); default `fixtures/labs/example-sim.toml`
    --server URL         a running enrollment server (PROTOCOL.md) instead of the lab's; the
                         platform administrator from ENROLLAB_ADMIN_LOGIN (default `admin`) and
                         ENROLLAB_ADMIN_PASSWORD
    --report-dir DIR     writes DIR/report.json, DIR/report.html (`harness.report`) and, unless
                         --junitxml says otherwise, DIR/junit.xml
    --enrollab-seed N    overrides the lab's `[options] seed`
    --enrollab-unattended
                         nobody is at the bench (`enrollab conformance run --unattended`): tests
                         marked `operator` end *needs operator* on devices that are not simulated,
                         and physical drivers ask nobody (`ConformanceSession.unattended`: their
                         bench is unattended, so a prompt they would show is *needs operator*).
                         A run without a controlling terminal (CI, cron) or with
                         ENROLLAB_NO_OPERATOR set is unattended anyway.

Fixtures
    enrollment_server    (session) `harness.session.EnrollmentServer`: the embedded reference
                         server (SQLite in a temporary directory, on its own thread and loop) or
                         the remote one. `.admin_url`, `.device_url`, `.est_url` and `.info`
                         (GET /api/v1/info), `.name`, `.version`, `.embedded`,
                         `async with .admin(login=None, password=None) as client` (an
                         `simulators.admin_client.AdminClient`, platform administrator by
                         default), `.manufacturer_ca()` / `.manufacturer_key_pem` /
                         `.manufacturer_cert_pem` (the CA issuing factory certificates: embedded
                         from its data dir, remote from the lab's `[server]` PKI options),
                         `.tls_ca_pem` (the CA of its TLS certificate). A server that does not
                         start or answer makes every test using it an *error*.
    platform_admin       (function, async) the platform administrator, logged in: `AdminClient`.
    audit_log            (function, async) `harness.observers.AuditLogObserver` marked when the
                         test began: `await audit_log.since(mac=dut.identity.mac)` -> evidence.
    arrange              (function, async) `harness.arrangement.Arranger`:
                         `await arrange.zero_touch(dut, url, group=…, root_ca_pem=…)`,
                         `await arrange.imported(dut)`, `await arrange.release(dut)`.
    file_server          (function, async factory) `files = await file_server(files=None,
                         cert_mode="private"|"public"|"wildcard"|"expired", **FileServer options)`:
                         a `harness.fileserver.FileServer` on 127.0.0.1 as files.enrollab.test,
                         HTTPS and plain HTTP (`files.https_url`, `files.http_url`,
                         `files.url("https", host="127.0.0.1")` for IP-address URLs, `files.ca_pem`).
                         `files=None` serves `fixtures/provisioning/`. A `public` CA becomes a
                         built-in public root of the simulated phones. Every request it served
                         goes into the test's evidence (`evidence.http`); it stops with the test.
    dut                  (function) the device under test (`harness.dut.DeviceUnderTest`),
                         parametrized over the lab's devices for the target; test ids like
                         `test_x[J179@4.1.11.0.9#A4251B000001]`. Handed over factory-reset; what
                         it did during the test goes into `evidence.events`. A simulated one
                         (`harness.dut.SimulatedDevice`) also has `.phone`, `.faults` (fault
                         knobs), `.reissue_certificate(expired=True | foreign=True)`, `.link`.
                         A lab without devices for the target, or a device whose driver cannot
                         be bound (e.g. a physical one when the server is unreachable), makes the
                         test an *error*, never a skip.
    step                 (function) `harness.steps.StepRecorder`:
                         `with step("enroll", evidence={...}) as s: …; s.record(key=value)`.

Markers
    @pytest.mark.rule("EC-3", "ENR-4")   SPEC rule ids the test checks (report: rule coverage);
                                         malformed ids are an error.
    @pytest.mark.feature("Re-trigger after firmware upgrade")
                                         Appendix A feature (id or label) the test needs; on a
                                         dut whose model and firmware (as the lab declares them)
                                         lack it in Appendix A (`fixtures.features.FeatureMatrix`)
                                         the test is *not applicable* with the device's
                                         `explain()` as reason —
                                         decided before any fixture runs. Needs `dut`.
    @pytest.mark.steps("arrange", "enroll", "check")
                                         declared steps: a test that ends without running them
                                         all is an *error*; an undeclared step is an error.
    @pytest.mark.operator("type the enrollment code on the keypad")
                                         on a physical phone the test needs a person to do this.
                                         In an unattended run it ends *needs operator* at set-up
                                         with this text as its reason, once every not-applicable
                                         decision is taken (an n/a test stays n/a) and before its
                                         function-scoped fixtures run; simulated devices are never
                                         affected; in an attended run nothing happens at set-up
                                         (the driver prompts when it gets there).

Outcomes (`harness.outcomes`): pass; fail (an assertion in the test body: the device or server
under test broke a rule); error (a `harness.errors.HarnessError` or any other exception in the
body, anything failing in fixture setup or teardown, declared steps not run, a skip without a
not-applicable reason); needs operator (a `harness.errors.NeedsOperator` in the body, a step or a
fixture's set-up, or the `operator` marker in an unattended run); not applicable (the feature
marker, or `harness.outcomes.not_applicable(reason)` anywhere: a test that finds so at run time).
pytest sees n/a as a skip whose reason starts with `not applicable: ` and needs operator as one
whose reason starts with `needs operator: ` (the terminal shows it as NEEDS OPERATOR, counted as
"needs operator"); the terminal shows harness errors in the body as ERROR. A run with a test that
needed an operator exits 1 even if nothing failed (`harness.report.exit_status`).

The record: every test ends in one `report.json` entry (id, suite, name, outcome, rules,
feature, device, reason, message, duration, steps, declared steps, evidence), written at the
end with provenance through `harness.report.write_report`; junit.xml is annotated to match
(`harness.record.annotate_junit`). A suite's own fixtures add evidence with
`add_evidence(request.node, http=[...], events=[...], network=[...])` (exchange dicts: method,
url, status, at, who; network: the capture's entries, `harness.lab_network.evidence`). A test
module may list rules no test can observe from outside as `UNOBSERVABLE_RULES = {"NTF-1": "why"}`;
they go to `unobservable_rules`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from harness.errors import HarnessError, LabError, NeedsOperator
from harness.outcomes import NA_PREFIX, OPERATOR_PREFIX, Outcome, classify, not_applicable, not_applicable_reason
from harness.steps import StepRecorder

__all__ = ["STATE_KEY", "activate", "add_evidence", "conformance_session"]

SESSION_KEY = pytest.StashKey[Any]()
STATE_KEY = pytest.StashKey["_TestState"]()
RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*-[0-9]+[a-z]?$")
MARKERS = (
    "rule(*ids): SPEC rule ids a conformance test checks, e.g. rule('EC-3', 'ENR-4')",
    "feature(*features): Appendix A features (id or label) the device under test needs; "
    "not applicable on devices that lack one",
    "steps(*names): the declared steps of a conformance test; all must run",
    "operator(*what): what a person at the bench must do for this test on a physical device (type a code, "
    "answer the prompt); in an unattended run such tests end 'needs operator'",
)
TRACEBACK_LIMIT = 6000


# -- options and activation ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("enrollab", "enrollab conformance runs (harness.pytest_plugin)")
    group.addoption("--target", dest="enrollab_target", choices=("sim", "lab", "all"), default=None,
                    help="devices under test: sim (simulated, default), lab (physical phones) or all (both)")
    group.addoption("--lab", dest="enrollab_lab", metavar="LAB.toml", default=None,
                    help="the lab file (default: fixtures/labs/example-sim.toml)")
    group.addoption("--server", dest="enrollab_server", metavar="URL", default=None,
                    help="admin API URL of a running enrollment server instead of the lab's "
                    "(credentials: ENROLLAB_ADMIN_LOGIN, ENROLLAB_ADMIN_PASSWORD)")
    group.addoption("--report-dir", dest="enrollab_report_dir", metavar="DIR", default=None,
                    help="write report.json, report.html (and junit.xml) here")
    group.addoption("--enrollab-seed", dest="enrollab_seed", metavar="N", type=int, default=None,
                    help="seed for derived device identities (overrides the lab's)")
    group.addoption("--enrollab-network-path", dest="enrollab_network_path", choices=("loopback", "namespaces"),
                    default=None, help="how simulated devices reach the servers (overrides the lab's "
                    "[options] network_path): namespaces = each on a lab network of its own (root; device suite)")
    group.addoption("--enrollab-devices", dest="enrollab_devices", metavar="I,J,...", default=None,
                    help="only these devices of the target (0-based positions in the lab file's devices for the "
                    "target): one shard of `enrollab conformance run --jobs N` (harness.shards)")
    group.addoption("--enrollab-unattended", dest="enrollab_unattended", action="store_true", default=False,
                    help="nobody is at the bench: tests marked operator end 'needs operator' on physical devices "
                    "(also without a controlling terminal)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if any(config.getoption(name) is not None for name in ("enrollab_target", "enrollab_lab", "enrollab_server")):
        activate(config)


def activate(config: pytest.Config) -> None:
    """Make this run a conformance run (idempotent); a bad lab file is a usage error."""
    if SESSION_KEY in config.stash:
        return
    from harness.lab import default_lab_path, load_lab
    from harness.record import command_line
    from harness.session import ConformanceSession, admin_login_from_env

    target = config.getoption("enrollab_target") or "sim"
    given = config.getoption("enrollab_lab")
    path = Path(given) if given else default_lab_path()
    try:
        lab = load_lab(path, seed=config.getoption("enrollab_seed"))
    except LabError as err:
        raise pytest.UsageError(str(err)) from None
    network_path = config.getoption("enrollab_network_path", None)
    if network_path:
        lab = replace(lab, options=replace(lab.options, network_path=network_path))
    server_url = config.getoption("enrollab_server")
    if server_url:
        lab = lab.with_server_url(server_url, admin_login_from_env())
    report_dir = config.getoption("enrollab_report_dir")
    report_path = Path(report_dir) if report_dir else None
    if report_path is not None and not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(report_path / "junit.xml")
    if getattr(config.option, "asyncio_mode", None) is None:
        config.option.asyncio_mode = "auto"  # the suites are coroutines
    unattended = bool(config.getoption("enrollab_unattended", False))
    session = ConformanceSession(lab, target=target, lab_file=str(path), report_dir=report_path, command=command_line(),
                                 unattended=unattended)
    chosen = config.getoption("enrollab_devices", None)
    if chosen:
        try:
            positions = [int(i) for i in str(chosen).split(",")]
            session.devices = tuple(session.devices[i] for i in positions)
        except (ValueError, IndexError):
            raise pytest.UsageError(f"--enrollab-devices {chosen!r}: positions 0-{len(session.devices) - 1} "
                                    "of the target's devices, comma-separated") from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_Conformance(session, unattended=unattended), "enrollab-conformance")


def conformance_session(config: pytest.Config) -> Any:
    """The run's `harness.session.ConformanceSession`, or None outside conformance runs."""
    return config.stash.get(SESSION_KEY, None)


def add_evidence(
    node: pytest.Item | Any,
    *,
    http: Iterable[Mapping[str, Any]] = (),
    events: Iterable[Mapping[str, Any]] = (),
    network: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Add to a test's `evidence.http` / `evidence.events` / `evidence.network` (for fixtures of a
    suite, e.g. an observer of their own, or `harness.lab_network.service.attach_capture_evidence`);
    `node` is the test item (`request.node`). No-op outside conformance runs."""
    state = getattr(node, "stash", {}).get(STATE_KEY, None)
    if state is not None:
        state.http.extend(dict(e) for e in http)
        state.events.extend(dict(e) for e in events)
        state.network.extend(dict(e) for e in network)


def _session(config: pytest.Config) -> Any:
    session = conformance_session(config)
    if session is None:
        raise HarnessError(
            "not-a-conformance-run",
            "enrollab fixtures work in conformance runs: pass --target sim|lab (or run `enrollab conformance run`)",
        )
    return session


# -- the conformance run's hooks (registered by `activate` only) --------------------------------------


@dataclass(frozen=True)
class _NoDevice:
    """The lab has no device for the target: device tests end in error, never silently skipped."""

    target: str
    driver: str

    @property
    def id(self) -> str:
        return f"no-{self.driver}-device"


@dataclass
class _TestState:
    suite: str
    name: str
    rules: list[str]
    features: list[str]
    declared: tuple[str, ...]
    device: Any
    recorder: StepRecorder
    operator: tuple[str, ...] = ()  # the `operator` marker: what a person at the bench must do
    problem: HarnessError | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    message: str | None = None
    traceback: str | None = None
    duration: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


class _Conformance:
    """The hooks of a conformance run, on the run's `ConformanceSession`."""

    def __init__(self, session: Any, *, unattended: bool = False) -> None:
        self.cs = session
        self._unattended: bool | None = True if unattended else None

    @property
    def unattended(self) -> bool:
        """Nobody at the bench: `--enrollab-unattended`, ENROLLAB_NO_OPERATOR, or no controlling
        terminal to ask on (decided once, when the first `operator` test needs to know)."""
        if self._unattended is None:
            import os

            from harness.physical.operator import has_terminal

            self._unattended = bool(os.environ.get("ENROLLAB_NO_OPERATOR")) or not has_terminal()
        return self._unattended

    # -- collection ------------------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "dut" not in metafunc.fixturenames:
            return
        from harness.lab import DRIVER_OF_TARGET

        cs = self.cs
        specs: list[Any] = list(cs.devices) or [_NoDevice(cs.target, DRIVER_OF_TARGET[cs.target])]
        metafunc.parametrize("dut", specs, ids=[s.id for s in specs], indirect=True)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from fixtures.features import FeatureMatrix

        matrix = FeatureMatrix.load()
        if self.cs.lab.options.network_path == "namespaces":
            server_side = [item.nodeid for item in items if _suite_of(item, "dut" in getattr(item, "fixturenames", ()))
                           == "server"]
            if server_side:
                raise pytest.UsageError(
                    f'network_path = "namespaces" runs the device suite only (--suite device): {len(server_side)} '
                    f"server-suite tests were collected (e.g. {server_side[0]}); they speak the device protocol "
                    "from the harness's own namespace, which has no route to the lab network")
        for item in items:
            state = self._state_of(item, matrix)
            item.stash[STATE_KEY] = state
            item.user_properties.append(("enrollab.nodeid", item.nodeid))
            if state.rules:
                item.user_properties.append(("enrollab.rules", " ".join(state.rules)))
            if state.features:
                item.user_properties.append(("enrollab.feature", " ".join(state.features)))
            if state.device is not None:
                item.user_properties.append(("enrollab.device", state.device.id))
            unobservable = getattr(getattr(item, "module", None), "UNOBSERVABLE_RULES", None)
            if isinstance(unobservable, Mapping):
                for rule, why in unobservable.items():
                    self.cs.unobservable.setdefault(str(rule), str(why))

    def _state_of(self, item: pytest.Item, matrix: Any) -> _TestState:
        from fixtures.features import UnknownFeature

        fixturenames = getattr(item, "fixturenames", ())
        problem: HarnessError | None = None
        rules: list[str] = []
        for rule in _marker_args(item, "rule"):
            if not isinstance(rule, str) or not RULE_ID.match(rule):
                problem = problem or HarnessError("bad-rule-marker", f"{rule!r} is not a SPEC rule id (like ENR-4)")
            elif rule not in rules:
                rules.append(rule)
        features: list[str] = []
        for feature in _marker_args(item, "feature"):
            try:
                fid = matrix.feature_id(feature)
            except UnknownFeature as exc:
                problem = problem or HarnessError("bad-feature-marker", str(exc), feature)
                continue
            if fid not in features:
                features.append(fid)
            self.cs.features.setdefault(fid, matrix.label(fid))
        if features and "dut" not in fixturenames:
            problem = problem or HarnessError("feature-needs-dut", "a feature marker needs the dut fixture")
        declared = tuple(str(s) for s in _marker_args(item, "steps"))
        operator = tuple(str(what).strip() for what in _marker_args(item, "operator"))
        if any(item.iter_markers("operator")) and (not operator or not all(operator)):
            problem = problem or HarnessError(
                "bad-operator-marker", "an operator marker says what the person at the bench must do, "
                "e.g. operator('type the enrollment code on the keypad')")
        callspec = getattr(item, "callspec", None)
        return _TestState(
            suite=_suite_of(item, "dut" in fixturenames),
            name=getattr(item, "originalname", None) or item.name,
            rules=rules,
            features=features,
            declared=declared,
            device=callspec.params.get("dut") if callspec is not None else None,
            recorder=StepRecorder(declared),
            problem=problem,
            operator=operator,
        )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not report.failed:
            return
        path = report.nodeid.split("::")[0]
        self.cs.records.append(
            _record_of(
                nodeid=report.nodeid or path or "(collection)",
                suite="device" if "/device/" in f"/{path}" else "server",
                name=Path(path).name or "collection",
                outcome=Outcome.ERROR,
                message=f"collecting {report.nodeid or path or 'the tests'} failed: {_short(report.longreprtext)}",
                traceback=report.longreprtext[-TRACEBACK_LIMIT:],
            )
        )

    # -- running ---------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        state = item.stash.get(STATE_KEY, None)
        if state is None:
            return
        if state.problem is not None:
            raise state.problem
        device = state.device
        if state.features and device is not None and not isinstance(device, _NoDevice):
            # Appendix A itself (the lab's declared model and firmware), not the simulators'
            # reading of it: an oracle sharing `Capabilities.supports` with the simulated phone
            # would move the expectation with the behaviour (docs/mutation.md).
            from fixtures.features import FeatureMatrix

            matrix = FeatureMatrix.load()
            for fid in state.features:
                if not matrix.supports(device.model, device.firmware, fid):
                    not_applicable(matrix.explain(device.model, device.firmware, fid), at_test=True)

    @pytest.fixture(autouse=True)
    def _enrollab_operator(self, request: pytest.FixtureRequest) -> None:
        """The `operator` marker in an unattended run: a physical device's test ends *needs
        operator*. A fixture, not a set-up hook, so every set-up hook's not-applicable decision
        (the suites' conftests too) comes first; autouse, so it runs before the test's other
        function-scoped fixtures."""
        state = request.node.stash.get(STATE_KEY, None)
        if state is None or not state.operator:
            return
        device = state.device
        if device is None or isinstance(device, _NoDevice) or device.driver == "simulated":
            return
        if self.unattended:
            raise NeedsOperator("; ".join(state.operator), device.id)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        state = item.stash.get(STATE_KEY, None)
        if state is None or state.done:
            return report
        state.duration += report.duration
        if report.when in ("setup", "call"):
            _classify(state, report, call)
            if state.outcome is Outcome.NEEDS_OPERATOR and report.failed:
                _to_skipped(item, report, OPERATOR_PREFIX + (state.reason or ""))
        elif report.failed and state.outcome in (None, Outcome.PASS):
            state.outcome = Outcome.ERROR
            state.message = f"teardown failed: {_exc_text(call)}"
            state.traceback = report.longreprtext[-TRACEBACK_LIMIT:]
        report.enrollab_outcome = str(state.outcome) if state.outcome else None  # type: ignore[attr-defined]
        if report.when == "teardown":
            self._finish(item, state)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        outcome = getattr(report, "enrollab_outcome", None)
        if outcome == Outcome.ERROR and report.when == "call" and report.failed:
            return "error", "E", "ERROR"
        if outcome == Outcome.NOT_APPLICABLE and report.skipped:
            return "skipped", "n", "NOT APPLICABLE"
        if outcome == Outcome.NEEDS_OPERATOR and report.skipped:
            return "needs operator", "o", "NEEDS OPERATOR"
        return None

    def _finish(self, item: pytest.Item, state: _TestState) -> None:
        state.done = True
        device = state.device
        device_id = device.id if device is not None and not isinstance(device, _NoDevice) else None
        outcome = state.outcome or Outcome.ERROR
        failed = outcome in (Outcome.FAIL, Outcome.ERROR)
        self.cs.records.append(
            _record_of(
                nodeid=item.nodeid,
                suite=state.suite,
                name=state.name,
                outcome=outcome,
                rules=state.rules,
                feature=state.features[0] if state.features else None,
                device=device_id,
                reason=state.reason,
                message=(state.message or "the test did not finish") if failed else None,
                duration=state.duration,
                steps=state.recorder.to_json(),
                declared=list(state.declared),
                events=state.events,
                http=state.http,
                network=state.network,
                traceback=state.traceback if failed else None,
            )
        )

    # -- the end ---------------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from harness.record import annotate_junit, build_report
        from harness.report import ReportError, write_report

        cs = self.cs
        doc = build_report(
            tests=cs.records,
            devices=[d.to_json() for d in cs.devices],
            features=cs.features,
            unobservable=cs.unobservable,
            target=cs.target,
            seed=cs.seed,
            lab_file=cs.lab_file,
            lab_digest=cs.lab.digest,
            server=cs.server_provenance(),
            started_at=cs.started_at,
            command=cs.command,
        )
        cs.report = doc
        if doc["summary"][Outcome.NEEDS_OPERATOR.value] and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # not finished is not green (harness.report)
        xmlpath = getattr(session.config.option, "xmlpath", None)
        if xmlpath and Path(xmlpath).is_file():
            annotate_junit(Path(xmlpath), doc)
            cs.report_paths["junit"] = Path(xmlpath)
        if cs.report_dir is None:
            return
        try:
            files = write_report(doc, cs.report_dir)
        except ReportError as err:
            cs.report_problem = str(err)
            return
        cs.report_paths["json"] = files.json
        cs.report_paths["html"] = files.html

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        cs = self.cs
        if cs.report is None:
            return
        from harness.report import summary_line

        terminalreporter.write_sep("=", "enrollab conformance")
        terminalreporter.write_line(
            f"{summary_line(cs.report['summary'])} ({cs.report['summary']['total']} tests; target {cs.target}, "
            f"seed {cs.seed})"
        )
        for test in cs.report["tests"]:
            if test["outcome"] == Outcome.NEEDS_OPERATOR:
                terminalreporter.write_line(f"needs operator: {test['id']}: {test['reason']}", yellow=True)
        for kind, path in cs.report_paths.items():
            terminalreporter.write_line(f"{kind}: {path}")
        if cs.report_problem:
            terminalreporter.write_line(f"report not written: {cs.report_problem}", red=True)

    def pytest_unconfigure(self) -> None:
        self.cs.close()


def _suite_of(item: pytest.Item, uses_dut: bool) -> str:
    parts = item.path.parts
    for i, part in enumerate(parts[:-1]):
        if part == "conformance" and parts[i + 1] in ("server", "device"):
            return parts[i + 1]
    return "device" if uses_dut else "server"


def _marker_args(item: pytest.Item, name: str) -> list[Any]:
    return [arg for mark in item.iter_markers(name) for arg in mark.args]


def _classify(state: _TestState, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
    if report.passed:
        if report.when != "call":
            return
        missing = state.recorder.missing()
        if missing:
            state.outcome = Outcome.ERROR
            state.message = f"the test ended without running its declared steps {missing}"
            _to_failed(report, f"error: {state.message}")
        else:
            state.outcome = Outcome.PASS
        return
    if report.skipped:
        xfail = hasattr(report, "wasxfail")
        reason = _skip_text(report)
        na = None if xfail else not_applicable_reason(reason)
        if na:
            state.outcome = Outcome.NOT_APPLICABLE
            state.reason = na
            return
        state.outcome = Outcome.ERROR
        kind = "an expected failure (xfail)" if xfail else "a skip"
        state.message = f"a conformance test never skips silently: {kind} without a '{NA_PREFIX}…' reason: {reason}"
        _to_failed(report, f"error: {state.message}")
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, NeedsOperator):  # in the body, a step or a fixture's set-up
        state.outcome = Outcome.NEEDS_OPERATOR
        state.reason = exc.detail
        return
    state.traceback = report.longreprtext[-TRACEBACK_LIMIT:]
    if report.when == "setup":
        state.outcome = Outcome.ERROR
        state.message = f"setup failed: {_exc_text(call)}"
        return
    state.outcome = classify(exc) if exc is not None else Outcome.FAIL
    state.message = _exc_text(call)


def _to_failed(report: pytest.TestReport, text: str) -> None:
    report.outcome = "failed"
    report.longrepr = text


def _to_skipped(item: pytest.Item, report: pytest.TestReport, text: str) -> None:
    """A skip with `text` as its reason (junit.xml: `<skipped message=TEXT>`), at the test."""
    path, line, _ = item.location
    report.outcome = "skipped"
    report.longrepr = (str(path), (line or 0) + 1, text)


def _skip_text(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(getattr(report, "wasxfail", "") or longrepr or "")


def _exc_text(call: pytest.CallInfo[None]) -> str:
    if call.excinfo is None:
        return "(no exception)"
    exc = call.excinfo.value
    if isinstance(exc, HarnessError):
        return f"{type(exc).__name__} {exc.error}: {exc.detail}"
    return _short(call.excinfo.exconly()) or type(exc).__name__


def _short(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record_of(
    *,
    nodeid: str,
    suite: str,
    name: str,
    outcome: Outcome,
    rules: list[str] | None = None,
    feature: str | None = None,
    device: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    duration: float = 0.0,
    steps: list[dict[str, Any]] | None = None,
    declared: list[str] | None = None,
    events: list[dict[str, Any]] | None = None,
    http: list[dict[str, Any]] | None = None,
    network: list[dict[str, Any]] | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": nodeid,
        "suite": suite,
        "name": name,
        "outcome": str(outcome),
        "rules": rules or [],
        "feature": feature,
        "device": device,
        "reason": reason,
        "message": message,
        "duration": round(max(duration, 0.0), 4),
        "steps": steps or [],
        "declared_steps": declared or [],
        "evidence": {"events": events or [], "http": http or [], "network": network or []},
    }
    if traceback:
        record["traceback"] = traceback
    return record


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def enrollment_server(request: pytest.FixtureRequest) -> Any:
    """The enrollment server of the run (module docstring)."""
    return _session(request.config).server()


@pytest_asyncio.fixture(loop_scope="function")
async def platform_admin(enrollment_server: Any) -> AsyncIterator[Any]:
    """The platform administrator, logged in (`AdminClient`)."""
    async with enrollment_server.admin() as admin:
        yield admin


@pytest_asyncio.fixture(loop_scope="function")
async def audit_log(enrollment_server: Any, platform_admin: Any) -> Any:
    """`AuditLogObserver` marked at the start of the test."""
    from harness.observers import AuditLogObserver

    return await AuditLogObserver(platform_admin, device_url=enrollment_server.device_url).begin()


@pytest_asyncio.fixture(loop_scope="function")
async def arrange(enrollment_server: Any, platform_admin: Any) -> Any:
    """`harness.arrangement.Arranger` for this test."""
    from harness.arrangement import Arranger

    return Arranger(enrollment_server, platform_admin)


FileServerFactory = Callable[..., Awaitable[Any]]


def _on_the_bench(bench: Any, device: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """A test's file server for a physical phone: on `[bench] address`, named `files_name` (and
    the names of its certificate moved to that domain), a "public" certificate issued by the
    bench's `server_ca` (harness.physical.bench_spec)."""
    from harness.session import FILES_HOST

    if bench.address is None:
        raise HarnessError("bench-address-unknown", f"{device.id}: give [bench] address (the harness's "
                           "address on the phones' LAN) for the test's file servers")
    names = tuple(bench.files_name if n == FILES_HOST else n for n in settings["hostnames"])
    unknown = [n for n in names if n != bench.files_name]
    if unknown:
        raise HarnessError("bench-name-unknown",
                           f"{device.id}: this test serves files as {', '.join(unknown)}, which the bench's "
                           f"DNS does not name (only [bench] des_name and files_name)")
    settings = {**settings, "host": bench.address, "hostnames": names}
    ours, theirs = FILES_HOST.split(".", 1)[-1], bench.files_name.split(".", 1)[-1]
    if settings.get("cert_names") is not None:
        settings["cert_names"] = tuple(n[: -len(ours)] + theirs if n.endswith("." + ours) else n
                                       for n in settings["cert_names"])
    if settings["cert_mode"] == "public":
        if bench.server_ca is None:
            raise HarnessError("public-root-unavailable",
                               f"{device.id}: this test needs a file server the phone trusts by a root it carries: "
                               "give [bench] server_ca and server_ca_key (a CA the bench's phones trust, e.g. a lab "
                               "root installed with TRUSTCERTS) so the harness can issue its certificate")
        settings["issuer"] = bench.server_issuer()
    return settings


@pytest_asyncio.fixture(loop_scope="function")
async def file_server(request: pytest.FixtureRequest) -> AsyncIterator[FileServerFactory]:
    """Start provisioning file servers for this test (module docstring)."""
    from harness.fileserver import FileServer
    from harness.fleet_run import provisioning_files
    from harness.observers import FileServerObserver
    from harness.session import FILES_HOST

    cs = _session(request.config)
    state = request.node.stash.get(STATE_KEY, None)
    started: list[Any] = []

    device: Any = state.device if state is not None else None
    physical = getattr(device, "driver", "simulated") == "physical"

    async def start(files: Any = None, *, cert_mode: str = "private", **options: Any) -> Any:
        content = provisioning_files() if files is None else files
        settings = {"cert_mode": cert_mode, "hostnames": (FILES_HOST,), **options}
        if physical:  # on the bench (`[bench]`): its address, the name the bench's DNS gives it
            settings = _on_the_bench(cs.lab.bench, device, settings)
        elif cs.path is not None:  # network_path = "namespaces": on the lab address, in the lab's namespace
            settings = {"host": cs.path.address, "netns": cs.path.netns, **settings}
        try:
            server = await FileServer(content, **settings).start()
        except (OSError, ValueError) as exc:
            raise HarnessError("file-server-down", f"the harness's file server did not start: {exc}") from None
        started.append(server)
        if physical:
            cs.file_servers.append(server)  # the phone's observer reads its request log
        if cert_mode == "public":
            cs.public_roots.append(server.ca_pem)
        return server

    yield start
    for server in started:
        if state is not None:
            state.http.extend(FileServerObserver(server).since(0))
        if server.ca_pem in cs.public_roots:
            cs.public_roots.remove(server.ca_pem)
        if server in cs.file_servers:
            cs.file_servers.remove(server)
        await server.stop()


@pytest.fixture
def dut(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The device under test, factory-reset (module docstring)."""
    cs = _session(request.config)
    spec = getattr(request, "param", None)
    if spec is None:
        raise HarnessError("no-device", "the dut fixture is parametrized by the plugin in conformance runs")
    if isinstance(spec, _NoDevice):
        raise LabError(
            "no-devices",
            f"the lab ({cs.lab_file}) lists no {spec.driver} devices for --target {spec.target}",
        )
    device = cs.device(spec)
    mark = len(device.events)
    device.factory_reset()
    if hasattr(device, "network"):
        device.network = None  # each test says what network its device sits on (discovery tests)
        device.netns = None
    yield device
    state = request.node.stash.get(STATE_KEY, None)
    path = getattr(device, "path", None)
    if path is not None:
        captured = path.take_evidence(device.identity.mac)
    else:  # a physical phone: what the bench network's capture saw of it
        captured = device.take_evidence() if hasattr(device, "take_evidence") else []
    if state is not None:
        state.events.extend(device.events[mark:])
        state.network.extend(captured)


@pytest.fixture
def step(request: pytest.FixtureRequest) -> StepRecorder:
    """Declared-steps recorder for this test (`harness.steps`)."""
    state = request.node.stash.get(STATE_KEY, None)
    if state is not None:
        return state.recorder
    return StepRecorder(tuple(str(s) for s in _marker_args(request.node, "steps")))
