"""Bad files and bad values inside bodies (issue 13): import files (bad rows, wrong encodings, binary,
100k garbage rows) to POST /devices/import and POST /jobs/upload; zip archives (path traversal,
absolute names, symlinks, bombs by declared and by actual size, non-zip bytes) to PUT
/sites/{id}/config and POST /devices/import; provisioning URLs and root CAs in profiles; look-alike
names next to the names they imitate. Each answer is what fixtures/bad-input/manifest.json says, the
server stays up, and a refusal writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.badinput import corpus
from tests.badinput.conftest import Probe, World
from tests.integration.client import Answer

pytestmark = [pytest.mark.badinput, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(900)]

IMPORT, JOB_UPLOAD, SITE_CONFIG = "POST /devices/import", "POST /jobs/upload", "PUT /sites/{id}/config"
IMPORT_MEMBER = b"mac,serial,model\nNOT-A-MAC,SN 1,J179\n"  # a refused row: an archive that opens imports nothing
SETTINGS = b"SET SIP_CONTROLLER_LIST sip.example.com\n"


@pytest.mark.parametrize("item", corpus.items("import-file"), ids=lambda i: i.id)
async def test_a_bad_import_file_is_refused(item: corpus.Item, world: World, probe: Probe) -> None:
    data = corpus.body_bytes(item.spec)
    await probe.send(item, IMPORT, lambda: world.admin.call("POST", "/devices/import", data=data,
                                                            content_type="text/csv"))
    params = {"name": "bad input", "actions": "claim"}
    await probe.send(item, JOB_UPLOAD, lambda: world.sp.call("POST", "/jobs/upload", data=data,
                                                             content_type="text/csv", params=params))
    probe.assert_clean()


@pytest.mark.parametrize("item", corpus.items("zip"), ids=lambda i: i.id)
async def test_a_bad_zip_is_refused(item: corpus.Item, world: World, probe: Probe) -> None:
    site_zip = corpus.zip_bytes(item.spec, "46xxsettings.txt", SETTINGS)
    path = f"/sites/{world.ids['des_site']}/config"
    await probe.send(item, SITE_CONFIG, lambda: world.sp.call("PUT", path, data=site_zip,
                                                              content_type="application/zip"))
    import_zip = corpus.zip_bytes(item.spec, "devices.csv", IMPORT_MEMBER)
    await probe.send(item, IMPORT, lambda: world.admin.call("POST", "/devices/import", data=import_zip,
                                                            content_type="application/zip"))
    probe.assert_clean()


def _profile(field: str, value: Any) -> dict[str, Any]:
    entry = {"server_type": "HTTPS", "url": "https://prov.example.com/", field: value}
    return {"name": f"Bad input profile {abs(hash((field, str(value)))) % 10**8}", "entries": [entry]}


def _no_secret(secret: str | None) -> Any:
    """An accepted URL with a password: the answer shows it redacted (LOG-1)."""

    def check(answer: Answer) -> str | None:
        return "the answer shows the URL's password" if secret and secret in str(answer.body) else None

    return check


@pytest.mark.parametrize("item", corpus.items("profile-url"), ids=lambda i: i.id)
async def test_a_bad_provisioning_url_is_refused(item: corpus.Item, world: World, probe: Probe) -> None:
    url = corpus.json_value({"generate": item.spec["generate"]}) if "generate" in item.spec else item.spec["url"]
    check = _no_secret(item.spec.get("secret"))
    await probe.send(item, "POST /profiles .entries[0].url",
                     lambda: world.sp.post("/profiles", _profile("url", url)), check=check)
    patch = {"entries": [{"server_type": "HTTPS", "url": url}]}
    path = f"/profiles/{world.ids['profile']}"
    await probe.send(item, "PATCH /profiles/{id} .entries[0].url", lambda: world.sp.call("PATCH", path, patch),
                     check=check)
    if item.spec.get("secret"):
        logs = (await world.admin.get("/logs", limit="1000")).ok()["items"]
        assert not [e for e in logs if item.spec["secret"] in str(e)], "the audit log shows the URL's password"
    probe.assert_clean()


@pytest.mark.parametrize("item", corpus.items("root-ca"), ids=lambda i: i.id)
async def test_a_bad_root_ca_is_refused(item: corpus.Item, world: World, probe: Probe) -> None:
    pem = corpus.root_ca_text(item.spec, datetime.now(UTC))
    await probe.send(item, "POST /profiles .entries[0].root_ca_pem",
                     lambda: world.sp.post("/profiles", _profile("root_ca_pem", pem)))
    patch = {"entries": [{"server_type": "HTTPS", "url": "https://prov.example.com/", "root_ca_pem": pem}]}
    path = f"/profiles/{world.ids['profile']}"
    await probe.send(item, "PATCH /profiles/{id} .entries[0].root_ca_pem",
                     lambda: world.sp.call("PATCH", path, patch))
    probe.assert_clean()


@pytest.mark.parametrize("item", corpus.items("name"), ids=lambda i: i.id)
async def test_a_look_alike_name_is_refused(item: corpus.Item, world: World, probe: Probe) -> None:
    """Next to an object named `looks_like`, a name that could pass for it is 422 `confusable-name`; a
    name in one script per word is a name of its own (kept exactly, a new id)."""
    name, original = item.spec["value"], item.spec["looks_like"]
    customer = world.ids["account"]
    # The originals: an account (under the provider), a site and a profile named `original`.
    made = await world.sp.post("/accounts", {"type": "customer", "name": original})
    assert made.status in (201, 409), made.body
    await world.sp.post(f"/accounts/{customer}/sites", {"name": original, "profile_id": int(world.ids["profile"])})
    await world.sp.post("/profiles", _named(original))

    def distinct(answer: Answer) -> str | None:
        if answer.status < 300 and answer.body.get("name") != name:
            return f"the name came back as {answer.body.get('name')!r}, not as written"
        return None

    site_body = {"name": name, "profile_id": int(world.ids["profile"])}
    calls = {
        "POST /accounts .name": lambda: world.sp.post("/accounts", {"type": "customer", "name": name}),
        "PATCH /accounts/{id} .name": lambda: world.sp.call("PATCH", f"/accounts/{customer}", {"name": name}),
        "POST /accounts/{id}/sites .name": lambda: world.sp.post(f"/accounts/{customer}/sites", site_body),
        "PATCH /sites/{id} .name": lambda: world.sp.call("PATCH", f"/sites/{world.ids['site']}", {"name": name}),
        "POST /profiles .name": lambda: world.sp.post("/profiles", _named(name)),
        "PATCH /profiles/{id} .name": lambda: world.sp.call("PATCH", f"/profiles/{world.ids['profile']}",
                                                            {"name": name}),
    }
    for endpoint, call in calls.items():
        await probe.send(item, endpoint, call, check=distinct)
    probe.assert_clean()


def _named(name: str) -> dict[str, Any]:
    return {"name": name, "entries": [{"server_type": "HTTPS", "url": "https://prov.example.com/"}]}
