"""PNP-1 must-show: `enrollab qr batch` writes a QR sheet for 50 devices; zbar's `zbarimg` (an
independent reader, Debian zbar-tools) decodes every code on the sheet; each decoded payload,
scanned through the admin API, onboards its device, and each of the 50 then enrolls zero-touch
over mutual TLS; the batch's counts follow. Also the CLI's other commands: list/show,
`devices reprovision/replace/register`, and its clear errors (error id, exit 2)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from server.domain import pnp_qr
from server.runner import Running
from tests.conftest import ADMIN_PASSWORD
from tests.integration.client import PASSWORD, ApiClient
from tests.integration.device_client import Phone, entry, import_phones, new_customer, new_site, zero_touch
from tests.lab_tiers import need_tool, need_zbarimg


async def run(*args: str, server: str, login: str = "admin", password: str = ADMIN_PASSWORD) -> tuple[int, str, str]:
    """The command in a thread (it runs its own event loop; the server runs in this one)."""
    env = {"ENROLLAB_SERVER": server, "ENROLLAB_ADMIN_LOGIN": login, "ENROLLAB_ADMIN_PASSWORD": password}

    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


def zbar_decode(zbarimg: str, images: list[Path]) -> list[str]:
    """What zbarimg reads from the images, one payload per image, in order."""
    out = subprocess.run(  # noqa: S603 - a fixed tool on files this test wrote
        [zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", *map(str, images)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


async def test_pnp1_a_sheet_of_50_codes_decoded_by_zbarimg_onboards_the_50_devices(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    zbarimg = need_zbarimg()
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry("https://sheet.example.com/$MODEL4/"))
    phones = [Phone.make(server) for _ in range(50)]
    await import_phones(admin, phones)
    devices_file = tmp_path / "devices.csv"
    devices_file.write_text("mac,serial\n" + "".join(f"{p.mac},{p.serial}\n" for p in phones))
    out = tmp_path / "codes"

    code, stdout, stderr = await run(
        "qr", "batch", "--devices", str(devices_file), "--account", cust.id, "--site", str(site),
        "--out", str(out), server=admin.base,
    )  # fmt: skip

    assert code == 0, stderr
    made = json.loads(stdout)
    assert made["total"] == 50 and made["number"].startswith("QR")
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{p.mac}.png" for p in phones)
    assert len(list(out.glob("*.svg"))) == 50
    svg = (out / f"{phones[0].mac}.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    sheet = (out / "sheet.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', sheet)
    assert len(images) == 50
    files = []
    for i, data in enumerate(images):
        path = tmp_path / f"sheet-{i:02d}.png"
        path.write_bytes(base64.b64decode(data))
        files.append(path)

    payloads = zbar_decode(zbarimg, files)

    assert len(payloads) == 50, payloads
    parsed = [pnp_qr.parse_payload(p) for p in payloads]
    assert [p.mac for p in parsed] == [p.mac for p in phones]
    assert {p.batch for p in parsed} == {made["number"]}
    assert zbar_decode(zbarimg, [out / f"{phones[7].mac}.png"]) == [payloads[7]]  # the per-device PNG too
    for payload in payloads:
        (await cust.sp.post("/pnp/scan", {"payload": payload})).ok()
    replies = await asyncio.gather(*(p.enroll() for p in phones))
    assert [r["result"] for r in replies] == ["redirect"] * 50, [r.body for r in replies if r.status != 200][:3]
    assert {r["provisioning"]["url"] for r in replies} == {"https://sheet.example.com/$MODEL4/"}
    code, stdout, stderr = await run("qr", "show", made["number"], "--json", server=admin.base)
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert (shown["total"], shown["scanned"], shown["enrolled"]) == (50, 50, 50)
    code, stdout, _ = await run("qr", "list", server=admin.base)
    assert code == 0 and made["number"] in stdout


async def test_pnp1_cli_reprovision_replace_and_clear_errors(server: Running, admin: ApiClient, tmp_path: Path) -> None:
    cust = await new_customer(admin)
    site_a = await new_site(cust.sp, cust.id, entry("https://a.example.com/"))
    site_b = await new_site(cust.sp, cust.id, entry("https://b.example.com/"))
    old = Phone.make(server)
    await import_phones(admin, [old])
    await zero_touch(cust, [old], site_a)
    sp_login = cust.sp.login_name
    code, stdout, stderr = await run(
        "devices", "reprovision", old.mac, "--account", cust.id, "--site", str(site_b),
        server=admin.base, login=sp_login, password=PASSWORD,
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["site_id"] == site_b and f"site {site_a} -> account {cust.id} site {site_b}" in stderr
    assert (await old.enroll())["provisioning"]["url"] == "https://b.example.com/"

    new = Phone.make(server)
    cert = tmp_path / "new.crt"
    cert.write_bytes(new.factory.cert_pem)
    code, stdout, stderr = await run(
        "devices", "replace", old.mac, "--new-mac", new.mac, "--new-serial", new.serial, "--new-cert", str(cert),
        server=admin.base, login=sp_login, password=PASSWORD,
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["new"]["pnp"]["replaces"] == old.mac
    refused = await old.enroll()
    assert refused.status == 403 and refused["reason"] == "certificate-denied"

    code, _, stderr = await run(
        "devices", "replace", new.mac, "--new-mac", new.mac, "--new-serial", new.serial, "--new-cert", str(cert),
        server=admin.base, login=sp_login, password=PASSWORD,
    )  # fmt: skip
    assert code == 2 and "error" in stderr and "Traceback" not in stderr, stderr
    code, _, stderr = await run("qr", "batch", "--out", str(tmp_path / "x"), server=admin.base)
    assert code == 2 and "devices-required" in stderr
    code, _, stderr = await run("qr", "scan", "not-a-payload", server=admin.base)
    assert code == 2 and "invalid-qr-payload" in stderr
    code, _, stderr = await run("qr", "show", "QR999999", server=admin.base)
    assert code == 2 and "batch-not-found" in stderr
    code, stdout, _ = await run("qr", "--help", server=admin.base)
    assert code == 0 and "batch" in stdout and "scan" in stdout


async def test_pnp1_cli_registers_devices_from_a_file(server: Running, admin: ApiClient, tmp_path: Path) -> None:
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry("https://reg.example.com/"))
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones[:2])
    listing = tmp_path / "devices.csv"
    listing.write_text("mac,serial,model\n" + "".join(f"{p.mac},{p.serial},J179\n" for p in phones))
    code, stdout, stderr = await run(
        "devices", "register", str(listing), "--account", cust.id, "--site", str(site),
        server=admin.base, login=cust.sp.login_name, password=PASSWORD,
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["outcomes"] == {"ready": 2, "pending": 1}
    assert (await phones[0].enroll())["result"] == "redirect"


async def test_pnp1_the_sheet_as_a_browser_renders_it_is_read_whole_by_zbarimg(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    """The page a person prints, not the images inside it: Chromium renders sheet.html, zbarimg
    finds every code on the one screenshot."""
    zbarimg = need_zbarimg()
    chromium = need_tool("chromium", package="chromium")
    phones = [Phone.make(server) for _ in range(50)]
    await import_phones(admin, phones)
    out = tmp_path / "codes"
    code, stdout, stderr = await run("qr", "batch", "--count", "50", "--out", str(out), "--format", "html",
                                     server=admin.base)  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "sheet.html"]
    shot = tmp_path / "sheet.png"
    rendered = subprocess.run(  # noqa: S603 - the Debian browser on a file this test wrote
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=900,3300", (out / "sheet.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0 and shot.exists(), rendered.stderr[-2000:]

    payloads = zbar_decode(zbarimg, [shot])

    assert sorted(pnp_qr.parse_payload(p).mac for p in payloads) == sorted(p.mac for p in phones)
    assert {pnp_qr.parse_payload(p).batch for p in payloads} == {json.loads(stdout)["number"]}
