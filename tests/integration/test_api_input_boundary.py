"""Issue 13: the five kinds of input that reached a 500 — deep JSON, huge integers, lone surrogates,
paging past the store's integers, non-ASCII digits as ids — answer a 4xx with a stable error id at
the admin API's boundary, and nothing is written (a digest of every table but the audit log is the
same before and after). Also: the body size limit (413), NUL and control characters, and the
serial character set in imports (server/domain/inputs.py, server/domain/identity.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Collection
from typing import Any

import pytest
from sqlalchemy import select
from yarl import URL

from server.runner import Running
from server.store.models import AuditLog, Base
from tests.integration.client import Answer, ApiClient

DEEP = b"[" * 100_000
HUGE_INT = "9" * 5000


async def digest(server: Running, skip: Collection[str] = ()) -> str:
    """SHA-256 over every row of every table except the audit log (a refusal is audited), the device
    events (a device's refused request is on its timeline, issue 16) and `skip`."""
    h = hashlib.sha256()
    async with server.opened.ctx.store.transaction() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in (AuditLog.__tablename__, "device_events") or table.name in skip:
                continue
            rows = (await session.execute(select(table))).all()
            h.update(table.name.encode())
            for row in sorted(repr(tuple(r)) for r in rows):
                h.update(row.encode("utf-8", "backslashreplace"))
    return h.hexdigest()


async def raw(api: ApiClient, method: str, path: str, data: bytes, token: str | None = None) -> Answer:
    return await api.call(method, path, data=data, content_type="application/json", token=token)


def refused(ans: Answer, status: int, error: str) -> None:
    assert ans.status == status and ans.body["error"] == error, f"{ans.status}: {ans.body}"
    assert isinstance(ans.body["detail"], str) and len(ans.body["detail"]) < 1000


@pytest.fixture
async def world(admin: ApiClient) -> AsyncIterator[dict[str, Any]]:
    """A service provider with one administrator; their ids."""
    sp = await admin.new_account("service_provider", sap_id="SAP-1")
    users = (await admin.get("/users", account_id=sp.account_id)).ok()["items"]
    yield {"sp": sp, "account_id": sp.account_id, "user_id": users[0]["id"]}


# --- 1. deeply nested JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 500, 100_000])
async def test_deep_json_on_login_is_400_json_too_deep(api: ApiClient, server: Running, depth: int) -> None:
    before = await digest(server)
    refused(await raw(api, "POST", "/auth/login", b"[" * depth + b"]" * depth), 400, "json-too-deep")
    # Unterminated: too deep for the parser, or (while the parser still copes) not JSON at all.
    unterminated = await raw(api, "POST", "/auth/login", b"[" * depth)
    refused(unterminated, 400, "json-too-deep" if depth > 10_000 else "invalid-json")
    assert await digest(server) == before


async def test_deep_json_in_a_field_and_on_a_write_is_refused(
    admin: ApiClient, server: Running, world: dict[str, Any]
) -> None:
    before = await digest(server)
    body = b'{"name": ' + b"[" * 40 + b"]" * 40 + b"}"
    refused(await raw(admin, "PATCH", f"/accounts/{world['account_id']}", body, admin.token), 400, "json-too-deep")
    refused(await raw(admin, "PATCH", f"/accounts/{world['account_id']}", DEEP, admin.token), 400, "json-too-deep")
    assert await digest(server) == before
    # 32 levels are still JSON: the schema refuses them as any other wrong type.
    ok_depth = b'{"name": ' + b"[" * 31 + b"]" * 31 + b"}"
    refused(await raw(admin, "PATCH", f"/accounts/{world['account_id']}", ok_depth, admin.token), 422, "invalid-body")


async def test_deep_json_in_a_device_filter_is_invalid_filter(admin: ApiClient) -> None:
    refused(await admin.get("/devices", q="[" * 1000 + "]" * 1000), 400, "invalid-filter")


# --- 2. huge integers -----------------------------------------------------------------------------


async def test_an_integer_of_5000_digits_is_422_integer_out_of_range(api: ApiClient, server: Running) -> None:
    before = await digest(server)
    body = f'{{"login": {HUGE_INT}, "password": "x"}}'.encode()
    ans = await raw(api, "POST", "/auth/login", body)
    refused(ans, 422, "integer-out-of-range")
    assert len(json.dumps(ans.body)) < 500  # the number is not echoed back whole
    assert await digest(server) == before


async def test_integers_past_32_bits_are_refused_before_the_store(admin: ApiClient, server: Running) -> None:
    before = await digest(server)
    for attempts in (2**31, -(2**31) - 1, 2**63, int("9" * 4000)):
        ans = await admin.call("PUT", "/settings/lockout", {"attempts": attempts})
        refused(ans, 422, "integer-out-of-range")
    refused(await raw(admin, "PUT", "/settings/lockout", b'{"attempts": 1e999}', admin.token), 400, "invalid-json")
    refused(await raw(admin, "PUT", "/settings/lockout", b'{"attempts": NaN}', admin.token), 400, "invalid-json")
    # A JSON integer is an int: 3.0 is a number, not an integer.
    refused(await admin.call("PUT", "/settings/lockout", {"attempts": 3.0}), 422, "invalid-body")
    assert (await admin.get("/settings/lockout")).ok()["attempts"] == 3
    assert await digest(server) == before


async def test_a_huge_integer_in_a_filter_is_invalid_filter(admin: ApiClient) -> None:
    for value in (10**30, str(10**30), -1):
        q = json.dumps({"all": [{"field": "site_id", "op": "eq", "value": value}]})
        refused(await admin.get("/devices", q=q), 400, "invalid-filter")


# --- 3. lone surrogates, NUL, control characters -------------------------------------------------


async def test_a_lone_surrogate_in_reset_request_is_422_and_queues_nothing(api: ApiClient, server: Running) -> None:
    before = await digest(server)
    # json.dumps writes the escape "\ud800": valid JSON syntax, not Unicode text.
    refused(await api.post("/auth/reset-request", {"login": "\ud800"}), 422, "invalid-text")
    refused(await api.post("/auth/reset-request", {"login": "admin\x00"}), 422, "invalid-text")
    assert await digest(server) == before


@pytest.mark.parametrize("field", ["name", "sap_id"])
@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "nul\x00"])
async def test_a_lone_surrogate_or_nul_in_an_account_leaves_it_unchanged(
    admin: ApiClient, server: Running, world: dict[str, Any], field: str, value: str
) -> None:
    path = f"/accounts/{world['account_id']}"
    was = (await admin.get(path)).ok()
    before = await digest(server)
    ans = await admin.call("PATCH", path, {field: value})
    refused(ans, 422, "invalid-text")
    assert ans.body["value"] == [field]
    assert await digest(server) == before
    assert (await admin.get(path)).ok() == was


@pytest.mark.parametrize("field", ["first_name", "last_name"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("\ud800", "invalid-text"),
        ("x\x00y", "invalid-text"),
        ("bell\x07", "invalid-body"),
        ("two\nlines", "invalid-body"),
        ("c1\x85", "invalid-body"),
    ],
)
async def test_bad_text_in_an_administrator_name_leaves_it_unchanged(
    admin: ApiClient, server: Running, world: dict[str, Any], field: str, value: str, error: str
) -> None:
    path = f"/users/{world['user_id']}"
    was = (await admin.get(path)).ok()
    before = await digest(server)
    refused(await admin.call("PATCH", path, {field: value}), 422, error)
    assert await digest(server) == before
    assert (await admin.get(path)).ok() == was
    # A name in any script is fine.
    assert (await admin.call("PATCH", path, {field: "Zoë Ωμέγα 山田"})).ok()[field] == "Zoë Ωμέγα 山田"


async def test_a_surrogate_in_a_key_or_a_nested_value_is_refused(admin: ApiClient, world: dict[str, Any]) -> None:
    path = f"/accounts/{world['account_id']}"
    refused(await admin.call("PATCH", path, {"contact": {"\ud83d": "x"}}), 422, "invalid-text")
    refused(await admin.call("PATCH", path, {"contact": {"phone": "\udc00"}}), 422, "invalid-text")
    refused(await admin.call("PATCH", path, {"contact": {"phone": "1\t2"}}), 422, "invalid-body")
    assert (await admin.call("PATCH", path, {"contact": {"phone": "+49 30 1234"}})).ok()["contact"] == {
        "phone": "+49 30 1234"
    }


async def test_nul_in_a_query_or_path_is_invalid_text(admin: ApiClient, world: dict[str, Any]) -> None:
    refused(await admin.get("/accounts", name="a\x00"), 422, "invalid-text")
    refused(await admin.get("/accounts/%00"), 422, "invalid-text")
    q = json.dumps({"all": [{"field": "serial", "op": "contains", "value": "\ud800"}]})
    refused(await admin.get("/devices", q=q), 400, "invalid-filter")


async def test_a_bearer_token_that_is_not_ascii_is_401(server: Running) -> None:
    url = URL(server.admin_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ") and b'"invalid-token"' in answer


# --- 4. paging past the store's integers ----------------------------------------------------------

LISTS = ["/devices", "/labels", "/jobs", "/profiles", "/notifications/outbox", "/accounts", "/users", "/logs"]


@pytest.mark.parametrize("path", LISTS)
async def test_offset_past_the_bound_is_400_invalid_paging(admin: ApiClient, path: str) -> None:
    for offset in (str(2**63), str(2**31), "9" * 5000, "-1", "١", "1e3", " 1"):
        refused(await admin.get(path, offset=offset), 400, "invalid-paging")
    for limit in ("0", "¹", str(2**64)):
        refused(await admin.get(path, limit=limit), 400, "invalid-paging")
    assert (await admin.get(path, offset=str(2**31 - 1))).ok()["items"] == []


# --- 5. non-ASCII digits as path ids --------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/jobs/¹", "/jobs/%C2%B9", "/sites/¹/pec", "/sites/%D9%A3", "/users/٣", "/profiles/²", "/accounts/٣٣٣٣٣٣٣٣"],
)
async def test_a_non_ascii_digit_as_an_id_is_404(admin: ApiClient, server: Running, path: str) -> None:
    before = await digest(server)
    url = URL(server.admin_url + "/api/v1" + path, encoded="%" in path)
    async with admin._session().request("GET", url, headers={"Authorization": f"Bearer {admin.token}"}) as resp:
        body = await resp.json()
    assert resp.status == 404 and body["error"].endswith("not-found"), body
    assert await digest(server) == before


async def test_ids_past_the_store_range_are_404(admin: ApiClient) -> None:
    for path in (f"/jobs/{2**31}", f"/users/{2**63}", f"/sites/{'9' * 30}/pec"):
        assert (await admin.get(path)).status == 404


# --- body size ------------------------------------------------------------------------------------


async def test_a_body_over_one_mib_is_413(api: ApiClient, server: Running) -> None:
    before = await digest(server)
    body = b'{"login": "' + b"a" * (1 << 20) + b'", "password": "x"}'
    refused(await raw(api, "POST", "/auth/login", body), 413, "body-too-large")
    assert await digest(server) == before


# --- serials and other identifiers in imports -----------------------------------------------------


async def test_garbage_serials_are_refused_row_by_row_and_nothing_is_imported(
    admin: ApiClient, server: Running
) -> None:
    serials = ["@#aa!ac@bc", "SN/1", "SN 2", "-SN3", "SN_4", "SN.5", "Séria6", "x" * 65]
    lines = ["mac,serial,model"] + [f"A4251B{i:06X},{s},J179" for i, s in enumerate(serials, start=1)]
    before = await digest(server)
    ans = await admin.post("/devices/import", data="\n".join(lines).encode(), content_type="text/csv")
    job = ans.ok()
    assert job["summary"]["imported"] == 0 and job["summary"]["rejected"] == len(serials)
    errors = {(e["row"], e["field"], e["reason"]) for e in job["errors"]}
    assert errors == {(row, "serial", "invalid-serial") for row in range(2, len(serials) + 2)}
    assert (await admin.get("/devices")).ok()["total"] == 0
    assert before  # the job itself is written; the devices are not


async def test_nul_and_surrogates_in_import_text_are_row_errors(admin: ApiClient) -> None:
    rows = [
        {"mac": "A4251B000001", "serial": "SN1", "model": "J179", "hardware": "\ud800"},
        {"mac": "A4251B000002", "serial": "SN2", "model": "J179", "order_id": "a\x00b"},
        {"mac": "A4251B000003", "serial": "SN3", "model": "J179", "hardware": "Révision 2"},
    ]
    data = json.dumps({"devices": rows}).encode()
    job = (await admin.post("/devices/import", data=data, content_type="application/json")).ok()
    assert job["summary"]["imported"] == 1
    assert {(e["row"], e["field"], e["reason"]) for e in job["errors"]} == {
        (1, "hardware", "invalid-text"),
        (2, "order_id", "invalid-text"),
    }
    csv = b"mac,serial,model,hardware\nA4251B000004,SN4,J179,a\x00b\n"
    job = (await admin.post("/devices/import", data=csv, content_type="text/csv")).ok()
    assert [(e["row"], e["field"], e["reason"]) for e in job["errors"]] == [(2, "hardware", "invalid-text")]
    assert (await admin.get("/devices")).ok()["total"] == 1
