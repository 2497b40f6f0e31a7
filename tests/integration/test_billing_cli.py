"""`enrollab billing report` (FF-1) against a real server: the table, `--json` and the `--csv` file
count a device added directly and deleted at once; bad input and refusals exit 2 with the error
id, never a traceback."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import new_customer

MONTH = "2026-11"


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The command in a thread (it runs its own event loop; the server runs in this one)."""

    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


async def test_ff1_cli_billing_report_counts_an_addition_deleted_at_once(admin: ApiClient, tmp_path: Path) -> None:
    cust = await new_customer(admin)
    (await cust.customer.post("/direct-devices", {"id": "A4251BC00001", "kind": "K175", "company": cust.id})).ok()
    (await cust.customer.call("DELETE", "/direct-devices/A4251BC00001")).ok()
    creds = {"ENROLLAB_ADMIN_PASSWORD": ADMIN_PASSWORD, "ENROLLAB_SERVER": admin.base}
    out_file = tmp_path / "billing.csv"

    code, out, err = await run("billing", "report", "--account", cust.id, "--month", MONTH, "--csv", str(out_file),
                               env=creds)

    assert code == 0, err
    assert "A4251BC00001" in out and "deleted" in out and "billable direct additions: 1" in out
    rows = list(csv.DictReader(out_file.open(newline="", encoding="utf-8")))
    assert [(r["mac"], r["kind"], r["present"]) for r in rows] == [("A4251BC00001", "K175", "false")]
    served = (await admin.get("/billing", account=cust.id, month=MONTH, format="csv")).ok()
    assert out_file.read_bytes() == served.encode()  # the server's format=csv, byte for byte
    code, out, err = await run("billing", "report", "--account", cust.id, "--month", MONTH, "--json", env=creds)
    assert code == 0 and json.loads(out)["direct_additions"] == 1, err
    # the customer's own administrator sees its own account's report
    own = {"ENROLLAB_SERVER": admin.base, "ENROLLAB_ADMIN_LOGIN": cust.customer.login_name,
           "ENROLLAB_ADMIN_PASSWORD": PASSWORD}
    code, out, err = await run("billing", "report", "--account", cust.id, "--month", MONTH, "--json", env=own)
    assert code == 0 and json.loads(out)["direct_additions"] == 1, err


async def test_ff1_cli_billing_refusals_exit_2_with_the_error_id(admin: ApiClient) -> None:
    cust, other = await new_customer(admin), await new_customer(admin)
    creds = {"ENROLLAB_ADMIN_PASSWORD": ADMIN_PASSWORD, "ENROLLAB_SERVER": admin.base}
    outsider = {"ENROLLAB_SERVER": admin.base, "ENROLLAB_ADMIN_LOGIN": other.customer.login_name,
                "ENROLLAB_ADMIN_PASSWORD": PASSWORD}
    for args, env, error in (
        (("--account", cust.id, "--month", "2026-13"), creds, "invalid-month"),
        (("--account", "42", "--month", MONTH), creds, "invalid-account"),
        (("--account", cust.id, "--month", MONTH), outsider, "account-not-found"),  # ACC-7
    ):
        code, out, err = await run("billing", "report", *args, env=env)
        assert code == 2 and f"error {error}" in err and "Traceback" not in err, (args, err)
    code, out, _ = await run("billing", "report", "--help")
    assert code == 0 and "--csv" in out
