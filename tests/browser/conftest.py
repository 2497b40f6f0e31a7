"""The browser tier (issue 16): the portal in headless Chromium, driven by Playwright's sync API.

- `portal_server`: one real server per test module (`server.runner.start` on free loopback ports,
  SQLite in a temp dir, the real clock so TOTP codes from pyotp are current) on an event loop
  of its own in a thread; stopped when the module ends, whatever happened.
- `admin_api`: the platform administrator over the admin API (urllib, sync) to arrange accounts,
  devices and sites before the browser looks at them.
- `browser`: Debian's Chromium (`/usr/bin/chromium`, or ENROLLAB_CHROMIUM), one per module. A
  missing Chromium or Playwright is a skip on a user's machine and a failure under
  ENROLLAB_REQUIRE_TIERS=1 (CI), as for the other tiers (tests/lab_tiers.py).
- `page`: a fresh browser context (its own cookies) at 1280x800 per test. It records console
  errors, Content-Security-Policy violations and failed sub-resources (scripts, styles, fetches of
  live parts); the test fails if there was any.

Helpers: `sign_in`, `shoot` (screenshots to the test's tmp dir, and to docs/portal-*.png under
ENROLLAB_UPDATE_SCREENSHOTS=1), `assert_accessible` (axe-core, serious and critical violations).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.lab_tiers import gap

T = TypeVar("T")

CHROMIUM = Path(os.environ.get("ENROLLAB_CHROMIUM", "/usr/bin/chromium"))
DOCS = Path(__file__).resolve().parents[2] / "docs"
ADMIN_PASSWORD = "Browser-Admin-Pw-1"
PASSWORD = "Sturdy-Browser-Pw-42"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Every page's errors must be the ones its test asked for: the main document's 4xx answers
# (a refused form, a 404 page) are asserted by the tests themselves.
_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


# --- the server ---------------------------------------------------------------------------------


@dataclass
class PortalServer:
    url: str
    device_url: str
    loop: asyncio.AbstractEventLoop
    running: Any  # server.runner.Running

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coro` on the server's own loop (to look into the store, or hold a job)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    yield from serve_portal(tmp_path_factory)


def serve_portal(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[PortalServer]:
    """A real server on its own loop in a thread (module docstring); `options` go to ServeConfig."""
    from server.runner import ServeConfig, start

    data = tmp_path_factory.mktemp("portal")
    cfg = ServeConfig(data_dir=data / "data", db_url=f"sqlite:///{data / 'enrollab.db'}", admin_port=0,
                      webhook_interval=0, **options)
    ready: Future[PortalServer] = Future()
    stop = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            running = loop.run_until_complete(start(cfg, admin_password=ADMIN_PASSWORD))
        except BaseException as exc:  # the fixture reports it
            ready.set_exception(exc)
            loop.close()
            return
        try:
            ready.set_result(PortalServer(running.admin_url, running.device_url, loop, running))
            loop.run_until_complete(_until(stop))
        finally:
            loop.run_until_complete(running.stop())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=serve, name="portal-server", daemon=True)
    thread.start()
    try:
        server = ready.result(timeout=120)
        yield server
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the portal server did not stop"


async def _until(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.05)


# --- the admin API, to arrange what the browser then sees ---------------------------------------


@dataclass
class Api:
    """A small synchronous admin-API client (urllib): `call` answers (status, parsed body)."""

    base: str
    token: str = ""
    login: str = ""
    account_id: str = ""
    tls: ssl.SSLContext | None = None  # an HTTPS portal (`--admin-tls`): the server's trust

    def call(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
             content_type: str = "application/json", query: dict[str, Any] | None = None) -> tuple[int, Any]:
        url = self.base + "/api/v1" + path + ("?" + urllib.parse.urlencode(query) if query else "")
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type} if payload is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=payload, method=method, headers=headers)  # noqa: S310 (http://127.0.0.1)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.tls) as answer:  # noqa: S310
                status, raw, ctype = answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as refused:
            status, raw, ctype = refused.code, refused.read(), refused.headers.get("Content-Type", "")
        parsed: Any = json.loads(raw) if "json" in ctype and raw else raw.decode(errors="replace")
        return status, parsed

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, answer = self.call(method, path, body, **kw)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer}"
        return answer

    def as_user(self, login: str, password: str, otp: str | None = None) -> Api:
        answer = Api(self.base, tls=self.tls).ok("POST", "/auth/login", {"login": login, "password": password,
                                                                          **({"otp": otp} if otp else {})})
        return Api(self.base, token=answer["token"], login=login, account_id=answer["account_id"], tls=self.tls)

    def new_account(self, type_: str, name: str) -> Api:
        """A child account of this one and its first administrator (password already changed)."""
        account = self.ok("POST", "/accounts", {"type": type_, "name": name})
        login = f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}@example.test"
        self.new_user(account["id"], login)
        child = self.as_user(login, PASSWORD)
        child.account_id = account["id"]
        return child

    def new_user(self, account_id: str, login: str) -> None:
        """An administrator of `account_id` whose temporary password is already replaced by PASSWORD."""
        self.ok("POST", "/users", {"account_id": account_id, "login": login, "password": "Temporary-Pw-1",
                                   "email": login, "first_name": "Test", "last_name": "User"})
        first = self.as_user(login, "Temporary-Pw-1")
        first.ok("POST", "/auth/password", {"old_password": "Temporary-Pw-1", "new_password": PASSWORD})


@pytest.fixture(scope="module")
def admin_api(portal_server: PortalServer) -> Api:
    return Api(portal_server.url).as_user("admin", ADMIN_PASSWORD)


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        gap(f"browser tier: no Chromium at {CHROMIUM}: install the Debian package `chromium` "
            "(apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        gap("browser tier: Playwright is missing: pip install -e '.[test]' (the test extra)")
        raise
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


# Chromium reports a blocked resource both as a console error and as this DOM event; the event
# also catches what a page's script does (an inline handler, eval) that the console may word differently.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


@dataclass
class Problems:
    """What went wrong in a page beyond what its test looks at."""

    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.console or self.failed)


def open_page(browser: Any, base_url: str, viewport: dict[str, int] | None = None,
              **options: Any) -> tuple[Any, Any, Problems]:
    """A fresh context and page; `options` go to `browser.new_context` (client certificates)."""
    context = browser.new_context(base_url=base_url, viewport=viewport or VIEWPORT, accept_downloads=True,
                                  locale="en-GB", timezone_id="UTC", **options)
    context.set_default_timeout(15_000)
    context.add_init_script(_CSP_LISTENER)
    page = context.new_page()
    problems = Problems()

    def on_console(msg: Any) -> None:
        if msg.type == "error" and not _FAILED_LOAD.match(msg.text):
            problems.console.append(msg.text)

    def on_response(response: Any) -> None:
        kind = response.request.resource_type
        if kind != "document" and response.status >= 400:
            problems.failed.append(f"{response.status} {kind} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.console.append(f"uncaught: {exc}"))
    page.on("response", on_response)
    page.on("requestfailed", lambda r: problems.failed.append(f"failed {r.resource_type} {r.url}: {r.failure}")
            if r.resource_type != "document" else None)
    return context, page, problems


@pytest.fixture
def page(browser: Any, portal_server: PortalServer) -> Iterator[Any]:
    """A fresh, signed-out page on the portal (relative URLs: `page.goto("/jobs")`)."""
    context, pg, problems = open_page(browser, portal_server.url)
    try:
        yield pg
    finally:
        context.close()
    assert not problems, f"the browser reported problems: {problems}"


# --- helpers ------------------------------------------------------------------------------------


def sign_in(page: Any, login: str, password: str) -> None:
    """The login form as a person fills it in (ends wherever the portal sends them)."""
    page.goto("/login")
    page.get_by_label("Login name").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def heading(page: Any, name: str) -> Any:
    return page.get_by_role("heading", level=1, name=name)


# The set kept in docs/ (README, docs/portal.md); the other pages' screenshots stay in tmp dirs.
DOCS_SET = frozenset({"dashboard", "dashboard-phone", "devices", "device", "job", "site-codes", "audit-log", "fleet"})


def shoot(page: Any, name: str, tmp_path: Path, *, full_page: bool = False) -> Path:
    """A screenshot in the test's tmp dir; for DOCS_SET also docs/portal-<name>.png under
    ENROLLAB_UPDATE_SCREENSHOTS=1."""
    path = tmp_path / f"portal-{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if name in DOCS_SET and os.environ.get("ENROLLAB_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS / path.name)
    return path


def assert_accessible(page: Any) -> None:
    """axe-core over the page as drawn now: no serious or critical violation (WCAG 2.1 A/AA and
    axe's best practices). axe.min.js comes inside the axe-playwright-python package (no network);
    page.evaluate runs it outside the page's CSP."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        gap("browser tier: axe-playwright-python is missing: pip install -e '.[test]' (the test extra)")
        raise
    results = Axe().run(page, options={"resultTypes": ["violations"],
                                       "runOnly": {"type": "tag", "values": [
                                           "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    report = [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["html"][:160] for n in v["nodes"][:3])
        for v in bad
    ]
    assert not bad, f"{page.url}: accessibility violations:\n" + "\n".join(report)
