"""The audit log over the admin API: LOG-1 (search, visibility, redaction, export), ENR-5."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from server.runner import Running
from server.store.models import AuditLog
from tests.conftest import FakeClock
from tests.integration.client import PASSWORD, ApiClient


def q(mode: str, *conditions: tuple[str, str, Any]) -> str:
    return json.dumps({mode: [{"field": f, "op": op, "value": v} for f, op, v in conditions]})


async def search(client: ApiClient, filter_json: str | None = None, **params: str) -> list[dict[str, Any]]:
    if filter_json is not None:
        params["q"] = filter_json
    return (await client.get("/logs", limit="1000", **params)).ok()["items"]


async def test_log1_entry_has_every_field(admin: ApiClient, clock: FakeClock) -> None:
    sp = await admin.new_account("service_provider")
    [entry] = await search(admin, q("all", ("action", "eq", "create_account"), ("account_id", "eq", admin.account_id)))
    assert entry["at"] == clock.now.isoformat()
    assert (entry["login"], entry["process"], entry["status"], entry["client_host"]) == (
        "admin",
        "ACCOUNT",
        "SUCCESS",
        "127.0.0.1",
    )
    assert sp.account_id in entry["message"] and entry["acting_as"] is None


async def test_log1_each_operator_on_login(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider", name="Ops")
    await sp.get("/settings/lockout")  # reads are not logged; the account's own writes are
    own = sp.login_name  # e.g. service_provider-7@example.test
    for op, value, expect_own in (
        ("eq", own, True),
        ("equals", own, True),
        ("ne", own, False),
        ("starts_with", own[:-3], True),
        ("ends_with", own[-8:], True),
        ("contains", own[3:-3], True),
        ("contains", "nobody-by-this-name", False),
    ):
        logins = {e["login"] for e in await search(admin, q("all", ("login", op, value)))}
        assert (own in logins) is expect_own, (op, value, logins)
        if op == "ne":
            assert "admin" in logins
        elif expect_own:
            assert logins == {own}, (op, logins)


async def test_log1_search_by_action_status_and_process(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    refused = await sp.call("PUT", "/settings/lockout", {"attempts": 9})
    assert refused.status == 403
    [fail] = await search(admin, q("all", ("status", "eq", "FAIL"), ("login", "eq", sp.login_name)))
    assert (fail["action"], fail["process"], fail["account_id"]) == ("put_lockout", "SETTINGS", sp.account_id)
    assert "forbidden-role" in fail["message"]
    by_process = await search(admin, q("all", ("process", "eq", "SETTINGS")))
    assert [e["action"] for e in by_process] == ["put_lockout"]
    by_action = await search(admin, q("all", ("action", "eq", "change_password")))
    assert {e["login"] for e in by_action} == {sp.login_name}


async def test_log1_and_or_combinations(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    await sp.call("PUT", "/settings/lockout", {"attempts": 9})  # FAIL
    both = await search(admin, q("all", ("login", "eq", sp.login_name), ("status", "eq", "FAIL")))
    assert [e["action"] for e in both] == ["put_lockout"]
    either = await search(admin, q("any", ("login", "eq", sp.login_name), ("status", "eq", "FAIL")))
    assert {e["action"] for e in either} >= {"put_lockout", "change_password", "login"}
    nested = json.dumps(
        {
            "all": [
                {"field": "login", "op": "eq", "value": sp.login_name},
                {
                    "any": [
                        {"field": "action", "op": "eq", "value": "login"},
                        {"field": "action", "op": "eq", "value": "put_lockout"},
                    ]
                },
            ]
        }
    )
    assert sorted(e["action"] for e in await search(admin, nested)) == ["login", "put_lockout"]


async def test_log1_bad_filters_are_refused(admin: ApiClient) -> None:
    for bad in (
        '{"all": [{"field": "password", "op": "eq", "value": "x"}]}',
        '{"all": [{"field": "login", "op": "matches", "value": "x"}]}',
        "not json",
    ):
        ans = await admin.get("/logs", q=bad)
        assert ans.status == 400 and ans["error"] == "invalid-filter", bad
    ans = await admin.get("/logs", **{"from": "yesterday"})
    assert ans.status == 400 and ans["error"] == "invalid-time"


async def test_log1_time_bounds_and_newest_first(admin: ApiClient, clock: FakeClock) -> None:
    start = clock.now
    await admin.post("/accounts", {"type": "customer", "name": "Early"})
    clock.advance(hours=1)
    middle = clock.now
    await admin.post("/accounts", {"type": "customer", "name": "Late"})
    mine = q("all", ("action", "eq", "create_account"))
    entries = await search(admin, mine)
    assert ["Late" in entries[0]["message"], "Early" in entries[1]["message"]] == [True, True]
    later = await search(admin, mine, **{"from": middle.isoformat()})
    assert len(later) == 1 and "Late" in later[0]["message"]
    earlier = await search(admin, mine, to=middle.isoformat().replace("+00:00", "Z"))
    assert len(earlier) == 1 and "Early" in earlier[0]["message"]
    assert await search(admin, mine, **{"from": start.isoformat(), "to": start.isoformat()}) == []


async def test_log1_paging(admin: ApiClient) -> None:
    for i in range(3):
        await admin.post("/accounts", {"type": "customer", "name": f"P{i}"})
    flt = q("all", ("action", "eq", "create_account"))
    page = (await admin.get("/logs", q=flt, limit="2", offset="1")).ok()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert "P1" in page["items"][0]["message"] and "P0" in page["items"][1]["message"]


async def test_log1_an_account_sees_its_subtree_only(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    reseller = await sp.new_account("reseller")
    other = await admin.new_account("service_provider")
    await sp.post("/accounts", {"type": "customer", "name": "By provider"})
    await reseller.post("/accounts", {"type": "customer", "name": "By reseller"})

    async def subtree(client: ApiClient) -> set[str]:
        return {a["id"] for a in (await client.get("/accounts")).ok()["items"]}

    seen_by_sp = await search(sp)
    assert {sp.login_name, reseller.login_name} <= {e["login"] for e in seen_by_sp}
    assert {e["account_id"] for e in seen_by_sp} <= await subtree(sp)  # the platform's own entries stay hidden
    seen_by_reseller = await search(reseller)
    assert seen_by_reseller and {e["account_id"] for e in seen_by_reseller} <= await subtree(reseller)
    assert all("By provider" not in e["message"] for e in seen_by_reseller)
    assert any("By reseller" in e["message"] for e in seen_by_sp)
    assert not await subtree(sp) & {e["account_id"] for e in await search(other)}


async def test_log1_failed_logins_are_logged(admin: ApiClient, api: ApiClient) -> None:
    """Unknown names are visible to the platform only; a known administrator's failed login is filed
    under its account, so that account sees attempts on its own logins."""
    sp = await admin.new_account("service_provider")
    assert (await api.post("/auth/login", {"login": "nobody@example.test", "password": "Wrong-Pass-1"})).status == 401
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": "Wrong-Pass-1"})).status == 401
    failed = await search(admin, q("all", ("process", "eq", "LOGIN"), ("status", "eq", "FAIL")))
    assert len(failed) == 2
    assert all("invalid-credentials" in e["message"] for e in failed)
    assert {e["login"]: e["account_id"] for e in failed} == {"nobody@example.test": None, sp.login_name: sp.account_id}
    seen_by_sp = await search(sp, q("all", ("process", "eq", "LOGIN"), ("status", "eq", "FAIL")))
    assert [e["login"] for e in seen_by_sp] == [sp.login_name]
    # the password tried never reaches the log
    assert await search(admin, q("all", ("message", "contains", "Wrong-Pass-1"))) == []
    assert (await api.post("/auth/login", {"login": sp.login_name, "password": PASSWORD})).status == 200


async def test_log1_url_password_never_logged(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    entry = {"server_type": "HTTPS", "url": "https://user:s3cr3t-pw@prov.example.test/$MODEL4/", "group": 0}
    (await sp.post("/profiles", {"name": "With password", "entries": [entry]})).ok()
    # a refused one too: its FAIL entry quotes the error, which may quote the URL
    bad = {**entry, "url": "ftp://user:s3cr3t-pw@prov.example.test/"}
    assert (await sp.post("/profiles", {"name": "Refused", "entries": [bad]})).status == 422
    assert await search(admin, q("all", ("message", "contains", "s3cr3t"))) == []
    entries = await search(admin, q("all", ("process", "eq", "PROFILE")))
    assert {e["status"] for e in entries} == {"SUCCESS", "FAIL"}
    assert all("s3cr3t" not in json.dumps(e) for e in entries)
    created = next(e for e in entries if e["status"] == "SUCCESS")
    assert "user:****@prov.example.test" in created["message"]


async def test_log1_entries_written_elsewhere_are_redacted_on_read(admin: ApiClient, server: Running) -> None:
    """An entry stored without going through `write_audit` (another writer) is still shown masked."""
    ctx = server.opened.ctx
    async with ctx.store.transaction() as session:
        session.add(
            AuditLog(
                at=ctx.clock(),
                account_id=None,
                account_path=None,
                login=None,
                process="ENROLLMENT",
                client_host="10.0.0.9",
                action="enroll",
                status="FAIL",
                message="redirect to http://prov:hunter2@10.0.0.5/ refused",
            )
        )
    [entry] = await search(admin, q("all", ("process", "eq", "ENROLLMENT")))
    assert "hunter2" not in entry["message"] and "prov:****@10.0.0.5" in entry["message"]


async def test_enr5_enrollment_entries_are_searchable_by_the_owner(admin: ApiClient, server: Running) -> None:
    """ENR-5: an ENROLLMENT entry filed under an account is found by that account's process filter."""
    from server.store.audit import write_audit

    sp = await admin.new_account("service_provider")
    ctx = server.opened.ctx
    async with ctx.store.transaction() as session:
        await write_audit(
            session,
            ctx,
            None,
            process="ENROLLMENT",
            action="enroll",
            status="SUCCESS",
            message="MAC A4251B0C3D5E, CN=A4251B0C3D5E,O=Maker: redirect",
            client_host="10.1.2.3",
            account_id=sp.account_id,
        )
    [entry] = await search(sp, q("all", ("process", "eq", "ENROLLMENT"), ("client_host", "starts_with", "10.1.")))
    assert entry["account_id"] == sp.account_id and "A4251B0C3D5E" in entry["message"]


async def test_log1_export_json_and_csv(admin: ApiClient) -> None:
    await admin.post("/accounts", {"type": "customer", "name": '=HYPERLINK("http://evil")'})
    flt = q("all", ("action", "eq", "create_account"))
    as_json = await admin.call("GET", "/logs/export", params={"q": flt, "format": "json"})
    assert as_json.status == 200 and [e["action"] for e in as_json.body["items"]] == ["create_account"]
    as_csv = await admin.call("GET", "/logs/export", params={"q": flt, "format": "csv"})
    assert as_csv.status == 200
    rows = list(csv.DictReader(io.StringIO(as_csv.body)))
    assert [r["action"] for r in rows] == ["create_account"] and rows[0]["login"] == "admin"
    assert rows[0]["message"] == as_json.body["items"][0]["message"]  # the name sits inside the message
    bad = await admin.call("GET", "/logs/export", params={"format": "xml"})
    assert bad.status == 400 and bad["error"] == "invalid-format"


async def test_log1_csv_export_neutralises_formulas(admin: ApiClient, server: Running) -> None:
    ctx = server.opened.ctx
    async with ctx.store.transaction() as session:
        session.add(
            AuditLog(
                at=ctx.clock(), process="ACCOUNT", action="x", status="SUCCESS", message='=HYPERLINK("http://evil")'
            )
        )
    ans = await admin.call("GET", "/logs/export", params={"format": "csv", "q": q("all", ("action", "eq", "x"))})
    [row] = list(csv.DictReader(io.StringIO(ans.body)))
    assert row["message"] == '\'=HYPERLINK("http://evil")'


async def test_log1_export_respects_the_subtree(admin: ApiClient) -> None:
    sp = await admin.new_account("service_provider")
    ans = await sp.call("GET", "/logs/export", params={"format": "json"})
    assert ans.status == 200 and ans.body["items"]
    assert {e["account_id"] for e in ans.body["items"]} == {sp.account_id}
