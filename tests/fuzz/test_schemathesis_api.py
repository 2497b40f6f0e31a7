"""Issue 13: property-based fuzzing of the admin API from its own OpenAPI document (schemathesis).

A real server listens on loopback (its own thread and event loop, SQLite in a temporary directory);
every operation of `/api/v1/openapi.json` gets `EXAMPLES` schema-conforming cases and `EXAMPLES`
schema-violating ones, sent over HTTP as the platform administrator — half of them with random
path ids, half with ids that exist, so handlers run past their lookups. Each answer must be no
5xx and conform to the document (status, content type, headers, and the error schema for errors).
The tier prints operations × examples, answers by status class and each failure, then asserts
none. `POST /auth/logout` is sent with a token of its own, so it cannot end the session.

Run: `tox -e fuzz` (or `pytest -m fuzz tests/fuzz`); `ENROLLAB_FUZZ_EXAMPLES` changes the count.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.runner import Running, ServeConfig, start
from tests.conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("ENROLLAB_FUZZ_EXAMPLES", "25"))  # per operation, mode and id kind
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class ServerThread:
    """`server.runner.start` on an event loop of its own, so synchronous clients can call it."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.running: Running | None = None

    def __enter__(self) -> ServerThread:
        self.thread.start()
        cfg = ServeConfig(data_dir=self.data / "data", db_url=f"sqlite:///{self.data / 'fuzz.db'}", admin_port=0)
        future = asyncio.run_coroutine_threadsafe(start(cfg, admin_password=ADMIN_PASSWORD), self.loop)
        self.running = future.result(timeout=60)
        return self

    @property
    def url(self) -> str:
        assert self.running is not None
        return self.running.admin_url

    def __exit__(self, *exc: object) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def login(base: str) -> str:
    answer = requests.post(
        f"{base}/api/v1/auth/login", json={"login": "admin", "password": ADMIN_PASSWORD}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def known_ids(base: str, token: str) -> dict[str, str]:
    """Objects that exist, as path parameters: an account, administrator, profile, site, job. The
    platform writes no profiles or sites, so a service provider's administrator makes those."""

    def call(method: str, path: str, body: dict[str, Any] | None, tok: str) -> Any:
        answer = requests.request(
            method, f"{base}/api/v1{path}", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=10
        )
        assert answer.status_code < 300, (path, answer.status_code, answer.text)
        return answer.json()

    provider = call("POST", "/accounts", {"type": "service_provider", "name": "Fuzz provider"}, token)
    customer = call("POST", "/accounts", {"type": "customer", "name": "Fuzz customer"}, token)
    body = {"account_id": provider["id"], "login": "fuzz-sp", "password": "Fuzz-Password-1", "email": "f@x.test"}
    user = call("POST", "/users", body, token)
    answer = requests.post(
        f"{base}/api/v1/auth/login", json={"login": "fuzz-sp", "password": "Fuzz-Password-1"}, timeout=10
    ).json()
    sp = answer["token"]
    call("POST", "/auth/password", {"old_password": "Fuzz-Password-1", "new_password": "Fuzz-Password-2"}, sp)
    sp_customer = call("POST", "/accounts", {"type": "customer", "name": "Fuzz SP customer"}, sp)
    entry = {"server_type": "HTTPS", "url": "https://p.example.com/"}
    profile = call("POST", "/profiles", {"name": "fuzz", "entries": [entry]}, sp)
    site = call("POST", f"/accounts/{sp_customer['id']}/sites", {"name": "Fuzz site", "profile_id": profile["id"]}, sp)
    call("POST", f"/sites/{site['id']}/nec", {"length": 8, "total_devices": 5}, sp)
    devices = {"devices": [{"mac": "A4251B000001", "serial": "21WZ00000001", "model": "J179"}]}
    job = requests.post(
        f"{base}/api/v1/devices/import", json=devices, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    return {
        "id": str(customer["id"]),
        "user": str(user["id"]),
        "profile": str(profile["id"]),
        "site": str(site["id"]),
        "job": str(job["id"]),
        "model": "J179",
        "mac": "A4251B000001",
    }


def path_parameters(path: str, ids: dict[str, str]) -> dict[str, str]:
    """Existing ids for an operation's path parameters (`{id}` means what the path is about)."""
    resource = path.removeprefix("/api/v1/").split("/")[0]
    by_resource = {"users": "user", "profiles": "profile", "sites": "site", "jobs": "job"}
    values: dict[str, str] = {}
    for part in path.split("/"):
        if part.startswith("{"):
            name = part.strip("{}")
            values[name] = ids.get(by_resource.get(resource, name), ids["id"]) if name == "id" else ids.get(name, "1")
    return values


@dataclass
class Tally:
    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    no_negatives: set[str] = field(default_factory=set)  # operations whose schema has nothing to break


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    os.environ.setdefault("ENROLLAB_PASSWORD_HASH", "test")
    with ServerThread(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(server: ServerThread) -> None:
    base = server.url
    token = login(base)
    ids = known_ids(base, token)
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    session = requests.Session()
    tally = Tally()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in (None, path_parameters(operation.path, ids)):
                if fixed == {}:
                    continue
                _fuzz(operation, label, mode, fixed, base, token, session, tally)
    elapsed = time.monotonic() - started
    total = sum(tally.examples.values())
    print(f"\nschemathesis: {len(operations)} operations x up to {EXAMPLES * 4} examples = {total} requests "
          f"in {elapsed:.0f} s; answers {dict(sorted(tally.statuses.items()))}; 5xx: {tally.server_errors}; "
          f"failing operations: {len(tally.failures)}; without negative examples: {sorted(tally.no_negatives)}")
    for label, message in sorted(tally.failures.items()):
        print(f"--- {label}\n{message}")
    assert len(operations) >= 80
    assert len(tally.no_negatives) <= 3, sorted(tally.no_negatives)  # a handful of free-text lookups, not the API
    assert tally.server_errors == 0 and not tally.failures, sorted(tally.failures)


def _fuzz(
    operation: Any,
    label: str,
    mode: GenerationMode,
    fixed: dict[str, str] | None,
    base: str,
    token: str,
    session: requests.Session,
    tally: Tally,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case: Any) -> None:
        own = login(base) if operation.path.endswith("/auth/logout") else token
        headers = {"Authorization": f"Bearer {own}"}
        try:
            response = case.call(base_url=base, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:  # a dropped connection is as bad as a 500
            tally.server_errors += 1
            tally.failures.setdefault(label, f"{type(exc).__name__}: {exc}")
            return
        tally.examples[label] += 1
        tally.statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            tally.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as exc:
            tally.failures.setdefault(label, str(exc)[:3000])

    try:
        run()
    except Unsatisfiable:  # nothing in the operation's schema can be made invalid (a free-text path id)
        if mode is not GenerationMode.NEGATIVE:
            raise
        tally.no_negatives.add(label)
