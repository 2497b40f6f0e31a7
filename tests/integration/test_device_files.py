"""ENR-6: with server type DES this server serves the site's configuration files — to the
enrolled devices of that site, and to nobody else."""

from __future__ import annotations

import io
import zipfile

from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import Customer, Phone, entry, import_phones, new_customer, new_site, zero_touch

SETTINGS = b"SET SIPDOMAIN contoso.example\nSET ENABLE_AVAYA_ENVIRONMENT 0\n"
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def site_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("46xxsettings.txt", SETTINGS)
        archive.writestr("logo.png", LOGO)
    return buffer.getvalue()


async def des_site(cust: Customer) -> int:
    site = await new_site(cust.sp, cust.id, entry("https://des.example.com/", server_type="DES", group=2))
    answer = await cust.sp.call("PUT", f"/sites/{site}/config", data=site_zip(), content_type="application/zip")
    answer.ok()
    return site


async def test_enr6_des_redirect_points_at_this_server_and_serves_the_site_files(
    server: Running, admin: ApiClient
) -> None:
    phone, stranger, elsewhere = Phone.make(server), Phone.make(server), Phone.make(server)
    await import_phones(admin, [phone, stranger, elsewhere])
    cust, other = await new_customer(admin), await new_customer(admin)
    await zero_touch(cust, [phone], await des_site(cust))
    await zero_touch(other, [elsewhere], await des_site(other))

    answer = await phone.enroll()

    assert (answer.status, answer["result"]) == (200, "redirect"), answer.body
    # Decision: a DES entry sends the device to where this server serves the files.
    assert answer["provisioning"]["url"] == f"{server.device_url}/device/v1/files/"
    assert answer["provisioning"]["server_type"] == "DES" and answer["provisioning"]["group"] == 2
    settings = await phone.request("GET", answer["provisioning"]["url"] + "46xxsettings.txt")
    assert settings.status == 200 and settings.raw == SETTINGS
    assert settings.headers["Content-Type"].startswith("text/plain")
    logo = await phone.request("GET", "/device/v1/files/logo.png")
    assert (logo.status, logo.raw, logo.headers["Content-Type"]) == (200, LOGO, "image/png")
    # Names are case-sensitive (PRF-5); other names, other devices: 404 alike.
    for who, name in ((phone, "46XXsettings.txt"), (phone, "missing.txt"), (stranger, "46xxsettings.txt")):
        refused = await who.request("GET", f"/device/v1/files/{name}")
        assert (refused.status, refused["error"]) == (404, "file-not-found"), (who.mac, name)
    # A device enrolled at another customer's DES site gets its own site's files, not these.
    assert (await elsewhere.request("GET", "/device/v1/files/46xxsettings.txt")).status == 200
    (await other.sp.post("/devices/deactivate", {"macs": [elsewhere.mac]})).ok()
    assert (await elsewhere.request("GET", "/device/v1/files/46xxsettings.txt")).status == 404


async def test_enr6_no_files_once_the_site_leaves_des(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await des_site(cust)
    await zero_touch(cust, [phone], site)
    assert (await phone.request("GET", "/device/v1/files/46xxsettings.txt")).status == 200
    https = (await cust.sp.post("/profiles", {"name": "plain https", "entries": [entry()]})).ok()
    (await cust.sp.call("PATCH", f"/sites/{site}", {"profile_id": https["id"]})).ok()
    assert (await phone.request("GET", "/device/v1/files/46xxsettings.txt")).status == 404


async def test_enr4_des_needs_a_host_name_for_a_vantage(server: Running, admin: ApiClient) -> None:
    """ENR-4: the DES URL names this server by IP address here; a K175 cannot use that."""
    phone = Phone.make(server, model="K175", firmware="3.1")
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await des_site(cust))
    answer = await phone.enroll()
    assert (answer.status, answer["reason"]) == (403, "unsupported-url")
