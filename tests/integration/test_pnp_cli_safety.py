"""PNP-1 command line over a live server: what it is given is checked before it reaches a URL
or the disk — a MAC or batch number that is no such thing never becomes another call's path, a
batch never overwrites files (the tokens are shown once: a directory with files is refused before
the batch is made), a payload can come from standard input (kept out of the process list), a
registration file is checked whole before any device is sent. Each refusal: error id, exit 2."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import Phone, device_row, entry, import_phones, new_customer, new_site


async def run(*args: str, server: str, login: str = "admin", password: str = ADMIN_PASSWORD,
              stdin: str | None = None) -> tuple[int, str, str]:  # fmt: skip
    env = {"ENROLLAB_SERVER": server, "ENROLLAB_ADMIN_LOGIN": login, "ENROLLAB_ADMIN_PASSWORD": password}

    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env=env, input=stdin)
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


async def test_pnp1_cli_arguments_never_become_another_calls_path(server: Running, admin: ApiClient) -> None:
    for args, error in (
        (("devices", "show", "A4251B000001/../../../accounts"), "invalid-mac"),
        (("devices", "reprovision", "../../accounts/10000001/disable", "--site", "1"), "invalid-mac"),
        (("qr", "show", "../../devices"), "invalid-batch-number"),
        (("qr", "show", "QR000001?limit=1"), "invalid-batch-number"),
    ):
        code, _, stderr = await run(*args, server=admin.base)
        assert code == 2 and f"error {error}:" in stderr and "Traceback" not in stderr, (args, stderr)


async def test_pnp1_cli_batch_never_overwrites_and_keeps_its_directory_private(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    phones = [Phone.make(server) for _ in range(2)]
    await import_phones(admin, phones)
    used = tmp_path / "used"
    used.mkdir(mode=0o755)
    (used / "sheet.html").write_text("the last batch's codes")
    code, _, stderr = await run("qr", "batch", "--count", "1", "--out", str(used), server=admin.base)
    assert code == 2 and "error out-not-empty:" in stderr, stderr
    assert (used / "sheet.html").read_text() == "the last batch's codes"
    assert stat.S_IMODE(used.stat().st_mode) == 0o755
    assert (await admin.get("/pnp/qr-batches")).ok()["total"] == 0  # refused before the batch was made

    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    code, stdout, stderr = await run(
        "qr", "batch", "--count", "1", "--out", str(empty), "--format", "png", "--format", "png", server=admin.base
    )
    assert code == 0, stderr
    assert json.loads(stdout)["total"] == 1 and stat.S_IMODE(empty.stat().st_mode) == 0o700
    assert sorted(p.suffix for p in empty.iterdir()) == [".csv", ".png"]


async def test_pnp1_cli_scans_a_payload_from_standard_input(server: Running, admin: ApiClient) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    batch = (await admin.post("/pnp/qr-batches", {"devices": [phone.mac]})).ok()
    code, stdout, stderr = await run(
        "qr", "scan", "-", "--account", cust.id, "--site", str(site),
        server=admin.base, login=cust.sp.login_name, password=PASSWORD, stdin=batch["codes"][0]["payload"] + "\n",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["site_id"] == site
    assert (await device_row(server, phone.mac)).site_id == site


async def test_pnp1_cli_registration_file_is_checked_whole_before_sending(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    listing = tmp_path / "devices.csv"
    listing.write_text(f"mac,serial\n{phone.mac},{phone.serial}\nnot-a-mac,SN1\n")
    code, _, stderr = await run(
        "devices", "register", str(listing), "--account", cust.id, "--site", str(site),
        server=admin.base, login=cust.sp.login_name, password=PASSWORD,
    )  # fmt: skip
    assert code == 2 and "error invalid-mac:" in stderr and "line 3" in stderr, stderr
    assert (await device_row(server, phone.mac)).owner_id is None
