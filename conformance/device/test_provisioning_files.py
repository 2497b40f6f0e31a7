"""Device suite: what the device asks its provisioning server for — the model's first file and
how long a settings value it takes. Rule ENR-2 (the device provisions itself from the server the
redirect named).

- The first request is the model's upgrade script (`J100Supgrade.txt`, `K1xxSupgrade.txt`), or
  its settings file where it has none (B199, CU360): `fixtures/phone-models.json`
  (`upgrade_script`, `settings_file`). The suite serves no upgrade script, so a device that asks
  for one falls back to `46xxsettings.txt` (research §1).
- A settings value longer than 255 characters is ignored (research §2.7), except where the model
  declares a longer limit (`value_lengths`: TRUSTCERTS 1024 on Vantage, template S2:L4460). The
  settings file sets TRUSTCERTS to a list of names 300-odd characters long: a device that takes
  it asks the file server for each named certificate file (404 here; the request is the
  evidence), one that ignores it asks for none.

The expectation is read from the data file, not through `simulators.capabilities`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import fixtures
from conformance.device.settings_files import SETTINGS, SETTINGS_FILE
from fixtures.features import FeatureMatrix
from harness.fileserver import FileServer
from harness.scripted_des import ScriptedDES, redirect

NEEDS = ("provisioning-urls", "https-provisioning-url")
VALUE_LIMIT = 255  # research §2.7
TRUSTCERTS = [f"trust-{i:02d}-enrollab-conformance.pem" for i in range(10)]  # 339 characters joined


def declared(model: str) -> Mapping[str, Any]:
    return fixtures.load_json("phone-models.json")["models"][FeatureMatrix.load().model(model).name]


async def boot_redirected(dut: Any, des: ScriptedDES, file_server: Any, step: Any,
                          content: Mapping[str, bytes], **evidence: Any) -> FileServer:
    if dut.supports("certificate-with-provisioning-url"):  # a private CA, sent with the URL
        files: FileServer = await file_server(dict(content))
        answer = redirect(files.https_url, trust=[files.ca_pem])
    else:  # a CA the device carries as a public root (simulated devices)
        files = await file_server(dict(content), cert_mode="public")
        answer = redirect(files.https_url)
    with step("arrange", evidence={"url": files.https_url, **evidence}):
        des.script(dut.identity.mac, answer)
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    return files


@pytest.mark.rule("ENR-2")
@pytest.mark.needs(*NEEDS)
@pytest.mark.steps("arrange", "boot", "check")
async def test_first_file_is_the_models_own(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    model = declared(dut.identity.model)
    first = model["upgrade_script"] or model["settings_file"]
    files = await boot_redirected(dut, des, file_server, step, {SETTINGS_FILE: SETTINGS}, first_file=first)
    with step("check") as s:
        requested = files.paths()
        s.record(requested=requested)
        assert requested[:1] == [first], f"the device asked first for {requested[:1]}, not {first}"
        assert SETTINGS_FILE in files.paths(status=200), f"the device never fetched {SETTINGS_FILE}: {requested}"


@pytest.mark.rule("ENR-2")
@pytest.mark.needs(*NEEDS)
@pytest.mark.steps("arrange", "boot", "check")
async def test_trustcerts_longer_than_255_characters(dut: Any, des: ScriptedDES, file_server: Any, step: Any) -> None:
    value = ",".join(TRUSTCERTS)
    limit = declared(dut.identity.model).get("value_lengths", {}).get("TRUSTCERTS", VALUE_LIMIT)
    content = {SETTINGS_FILE: SETTINGS.replace(b"\nIF ", f'\nSET TRUSTCERTS "{value}"\nIF '.encode(), 1)}
    files = await boot_redirected(dut, des, file_server, step, content, length=len(value), limit=limit)
    with step("check") as s:
        requested = files.paths()
        s.record(requested=requested)
        assert SETTINGS_FILE in files.paths(status=200), f"the device never fetched {SETTINGS_FILE}: {requested}"
        asked = [p.rsplit("/", 1)[-1] for p in requested if p.rsplit("/", 1)[-1] in TRUSTCERTS]
        if len(value) <= limit:
            assert asked == TRUSTCERTS, (
                f"TRUSTCERTS of {len(value)} characters is within this model's {limit}, yet the device asked for "
                f"{asked}"
            )
        else:
            assert asked == [], f"TRUSTCERTS of {len(value)} characters is over {limit}, yet the device took it"
