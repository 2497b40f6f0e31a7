"""`enrollab orders register|submit|fetch` (DEP-1) against a real server: a key file encrypts the
batch on the way and decrypts the response; refusals print the error id (and each schema error's
JSON pointer) and exit 2, never a traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from harness.cli import main
from server.domain import orders
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import ApiClient
from tests.integration.test_api_devices import SERIAL_OF, device, fleet, macs_for


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The command in a thread (it runs its own event loop; the server runs in this one)."""

    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


async def test_dep1_cli_registers_submits_encrypted_and_fetches_decrypted(admin: ApiClient, tmp_path: Path) -> None:
    sp = await admin.new_account("service_provider")
    customer = await sp.new_account("customer")
    macs = await fleet(admin, [device(m) for m in macs_for("A4D201", 3)])
    key_file = tmp_path / "orders.key"
    creds = {"ENROLLAB_ADMIN_PASSWORD": ADMIN_PASSWORD, "ENROLLAB_SERVER": admin.base}

    code, out, err = await run(
        "orders", "register", "erp", "--account", sp.account_id, "--key-out", str(key_file), env=creds
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["token"].startswith("eos_") and key_file.stat().st_mode & 0o077 == 0
    batch_file = tmp_path / "batch.json"
    document = {
        "version": 1,
        "batch_id": "CLI-1",
        "order_id": "SO-9",
        "customer_account": customer.account_id,
        "devices": [{"mac": m, "serial": SERIAL_OF[m], "model": "J179", "request_type": "EN"} for m in macs],
    }
    batch_file.write_text(json.dumps(document))
    token = {"ENROLLAB_SERVER": admin.base, "ENROLLAB_ORDER_TOKEN": created["token"]}

    code, out, err = await run("orders", "submit", str(batch_file), "--key", str(key_file), env=token)

    assert code == 0, err
    state = json.loads(out)
    assert state["status"] == "COMPLETE" and state["encrypted"] is True and state["outcomes"] == {"enrolled": 3}
    assert "enrolled" in err  # the outcome table
    plain_out = tmp_path / "response.json"
    code, _, err = await run("orders", "fetch", "CLI-1", "--key", str(key_file), "--out", str(plain_out), env=token)
    assert code == 0, err
    answered = json.loads(plain_out.read_text())
    jsonschema.validate(answered, orders.schema("dep-response"))
    assert [d["outcome"] for d in answered["devices"]] == ["enrolled"] * 3
    code, out, _ = await run("orders", "fetch", "CLI-1", env=token)  # without the key: as served
    assert code == 0 and json.loads(out)["envelope"] == "fernet"
    # An administrator for the order system, by id; submitting again is the same batch.
    code, out, err = await run(
        "orders", "submit", str(batch_file), "--key", str(key_file), "--order-system", str(created["id"]), env=creds
    )
    assert code == 0 and json.loads(out)["replayed"] is True, err


async def test_dep1_cli_refusals_are_clear(admin: ApiClient, tmp_path: Path) -> None:
    sp = await admin.new_account("service_provider")
    created = (await sp.post("/order-systems", {"name": "erp"})).ok()
    token = {"ENROLLAB_SERVER": admin.base, "ENROLLAB_ORDER_TOKEN": created["token"]}
    key_file = tmp_path / "k"
    key_file.write_text(created["key"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "batch_id": "X", "devices": [{"mac": "nope"}]}))

    code, _, err = await run("orders", "submit", str(bad), "--key", str(key_file), env=token)
    assert code == 2 and "invalid-batch" in err and "/devices/0/mac" in err and "Traceback" not in err, err

    wrong = tmp_path / "wrong.key"
    wrong.write_text("A" * 43 + "=")
    code, _, err = await run("orders", "submit", str(bad), "--key", str(wrong), env=token)
    assert code == 2 and "wrong-key" in err, err
    wrong.write_text("not a key")
    code, _, err = await run("orders", "submit", str(bad), "--key", str(wrong), env=token)
    assert code == 2 and "invalid-key" in err and "not a key" not in err, err
    code, _, err = await run("orders", "submit", str(bad), env=token)
    assert code == 2 and "encryption-required" in err, err
    code, _, err = await run("orders", "fetch", "NOPE", env=token)
    assert code == 2 and "batch-not-found" in err, err
    code, _, err = await run("orders", "fetch", "NOPE", env={"ENROLLAB_SERVER": admin.base})
    assert code == 2 and "credentials-required" in err, err
    code, _, err = await run("orders", "fetch", "NOPE", "--server", "http://127.0.0.1:9", "--token", "eos_x")
    assert code == 2 and "server-unreachable" in err and "Traceback" not in err, err
    code, out, _ = await run("orders", "fetch", "--help")
    assert code == 0 and "--key" in out and "--out" in out
