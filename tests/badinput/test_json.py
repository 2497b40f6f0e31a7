"""Bad JSON (issue 13) to every operation of /api/v1/openapi.json that takes a JSON body: whole bodies
(malformed, deep, huge, wrong top-level types) and, one property at a time, values of the wrong type,
NUL, surrogates, control characters and overlong text. Each answer is a 4xx with a stable error id,
the server stays up and a refusal writes nothing. A value the documented schema of its property
allows may be taken (that is not bad input); a value it refuses must be refused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from server.api.app import route_table
from server.domain import permissions
from tests.badinput import corpus
from tests.badinput.conftest import Probe, World
from tests.integration.client import Answer

pytestmark = [pytest.mark.badinput, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(900)]

# Bodies the handlers accept, so that a bad value in one property is what gets judged.
# {name} are the world's ids.
VALID: dict[str, dict[str, Any]] = {
    "POST /accounts": {"type": "customer", "name": "Bad input customer"},
    "PATCH /accounts/{id}": {"name": "Acme Customer"},
    "POST /users": {"account_id": "{account}", "login": "bad-input-user", "password": "Sturdy-Password-42",
                    "email": "bad@example.test", "first_name": "A", "last_name": "B"},
    "PATCH /users/{id}": {"first_name": "A"},
    "POST /profiles": {"name": "Bad input profile", "entries": [{"server_type": "HTTPS",
                                                                 "url": "https://prov.example.com/"}]},
    "PATCH /profiles/{id}": {"name": "Acme Telecom"},
    "POST /accounts/{id}/sites": {"name": "Bad input site", "profile_id": "{profile:int}"},
    "PATCH /sites/{id}": {"name": "Acme Telecom"},
    "POST /labels": {"name": "bad-input-2"},
    "POST /devices/claim": {"mac": "{mac}", "serial": "{serial}"},
    "POST /jobs": {"name": "bad input job", "actions": ["activate"], "macs": ["{mac}"]},
    "PUT /settings/lockout": {"attempts": 3, "minutes": 30},
    "POST /certificates/denied": {"thumbprints": ["AB" * 32], "reason": "bad input"},
    "POST /auth/login": {"login": "admin", "password": "not-the-password"},
    "PUT /sites/{id}/firmware/{model}": {"setting": "latest"},
}
RESOURCE_IDS = {"accounts": "account", "users": "user", "profiles": "profile", "sites": "site", "jobs": "job",
                "labels": "label"}


@dataclass(frozen=True)
class Operation:
    label: str  # "METHOD /path" as the OpenAPI document names it, without /api/v1
    method: str
    path: str  # with the world's ids in it
    schema: dict[str, Any]
    actor: str
    file_format: bool = False  # the JSON is one of several file formats (an import): its own error ids
    max_bytes: int = 1 << 20  # the request body's limit, as the document states it ("at most N bytes")


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        key = value.strip("{}")
        return int(ids[key.removesuffix(":int")]) if key.endswith(":int") else ids[key]
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def placeholder(schema: dict[str, Any]) -> Any:
    """A value of the schema's type (not necessarily one the handler takes)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    return {"boolean": True, "array": [], "object": {}, "number": 1}.get(str(kind), "x")


def baseline(op: Operation, ids: dict[str, str]) -> dict[str, Any]:
    if op.label in VALID:
        return dict(_fill(VALID[op.label], ids))
    props = op.schema.get("properties", {})
    return {name: placeholder(props.get(name, {})) for name in op.schema.get("required", [])}


def _path(template: str, ids: dict[str, str]) -> str:
    resource = template.strip("/").split("/")[0]
    filled = template.replace("{id}", ids.get(RESOURCE_IDS.get(resource, ""), "1"))
    return filled.replace("{model}", ids["model"]).replace("{mac}", ids["mac"])


def _actor(method: str, path: str, actions: dict[tuple[str, str], str | None]) -> str:
    action = actions.get((method, "/api/v1" + path))
    if action is None or permissions.allowed(permissions.PLATFORM, action):
        return "platform"
    return "sp"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def operations(world: World) -> list[Operation]:
    """Every operation of the served OpenAPI document with an application/json request body."""
    doc = (await world.admin.get("/openapi.json")).ok()
    actions = {(r["method"], r["path"]): r["action"] for r in route_table()}
    found = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            limit = re.search(r"at most (\d+) bytes", op.get("requestBody", {}).get("description", ""))
            if "application/json" not in content:
                continue
            bare, verb = path.removeprefix("/api/v1"), method.upper()
            schema = content["application/json"].get("schema", {})
            actor = _actor(verb, bare, actions)
            found.append(Operation(f"{verb} {bare}", verb, _path(bare, world.ids), schema, actor, len(content) > 1,
                                   int(limit.group(1)) if limit else 1 << 20))
    assert len(found) >= 40, [o.label for o in found]
    return found


@pytest.mark.parametrize("item", corpus.items("json-body"), ids=lambda i: i.id)
async def test_a_bad_json_body_is_refused_by_every_json_operation(
    item: corpus.Item, operations: list[Operation], world: World, probe: Probe
) -> None:
    for op in operations:
        data = _over_limit(op) if item.spec.get("generate", {}).get("over_limit") else corpus.body_bytes(item.spec)
        client = world.client(op.actor)
        judged = replace(item, expect={"status": "4xx"}) if op.file_format else item
        await probe.send(judged, op.label, lambda c=client, o=op, d=data: c.call(o.method, o.path, data=d,
                                                                                   content_type="application/json"))
    probe.assert_clean()


def _over_limit(op: Operation) -> bytes:
    """A JSON body one byte over the operation's documented limit: 413 `body-too-large`."""
    head, tail = b'{"name": "', b'"}'
    return head + b"a" * (op.max_bytes + 1 - len(head) - len(tail)) + tail


def _documented(schema: dict[str, Any], value: Any) -> bool:
    """Does the property's schema in the OpenAPI document allow `value`?"""
    try:
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError:
        return False
    except jsonschema.SchemaError:
        return True
    # The document's integers are ints: 3.0 is not one (the server's own rule).
    return not (isinstance(value, float) and "integer" in str(schema.get("type")))


@pytest.mark.parametrize("item", corpus.items("json-value"), ids=lambda i: i.id)
async def test_a_bad_value_in_any_property_is_refused(
    item: corpus.Item, operations: list[Operation], world: World, probe: Probe
) -> None:
    value = corpus.json_value(item.spec)
    for op in operations:
        client = world.client(op.actor)
        base = baseline(op, world.ids)
        for name, prop in sorted(op.schema.get("properties", {}).items()):
            judged = item
            if "error" not in item.expect and _documented(prop, value):
                judged = replace(item, expect={"status": "2xx|4xx", "accepted": "the documented schema allows it"})
            body = {**base, name: value}
            check = _not_echoed(name, value) if prop.get("writeOnly") else None
            await probe.send(
                judged, f"{op.label} .{name}", lambda c=client, o=op, b=body: c.call(o.method, o.path, b), check=check
            )
    probe.assert_clean()


def _echo_of(value: Any) -> str | None:
    """A piece of `value` that an answer quoting it would hold (None: too short to tell apart)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return str(value)
    if isinstance(value, str):
        words = re.findall(r"\w{4,}", value)
        return words[0][:8] if words else None
    return None


def _not_echoed(name: str, value: Any) -> Callable[[Answer], str | None] | None:
    """A secret property (`writeOnly`: a label code, a claim's serial) is never quoted back."""
    piece = _echo_of(value)
    if piece is None:
        return None

    # A number is quoted when its digits stand alone ("2147483648" is in the bound "-2147483648").
    quoted = re.compile(rf"(?<![\d-]){piece}(?!\d)" if piece.isdigit() else re.escape(piece))

    def check(answer: Answer) -> str | None:
        shown = json.dumps(answer.body, ensure_ascii=False)
        return f"the answer quotes the secret {name} ({piece!r})" if quoted.search(shown) else None

    return check
