"""Device suite: the `$-variables` a settings script sees on the device (research §4) — rule
ENR-2 (the device provisions itself from the server it was sent to, with its own identity).

The settings file the suite serves tests each variable with IF … SEQ and asks, with a GET the
file server answers 404, for `var-<NAME>-ok.txt`, `var-<NAME>-wrong.txt` or
`var-<NAME>-undefined.txt`: the file server's access log is the evidence. A missing file makes
the script go on with the next line, so one pass shows every variable.

What is expected comes from the declarations, never from the simulators' code: `$MODEL4` from
the firmware catalog; `$MODEL`, `$MODEL6` (from its first version, undefined below), `$HWVERS`
and the model's fixed variables (`SIG`, `SIG_IN_USE`, `GEN` from its first version) from
`fixtures/phone-models.json`; `$MACADDR` (12 hex digits), `$SERIALNO`, `$APPNAME_IN_USE` (the
firmware it runs) from the device's identity; `$GROUP` 0, as no group is sent. SEQ compares
without regard to case, so the case of a value is not checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import fixtures
from conformance.device.settings_files import SETTINGS_FILE, model4
from fixtures.features import FeatureMatrix
from fixtures.versions import parse_version
from harness.fileserver import FileServer
from harness.scripted_des import ScriptedDES, redirect

PROVISIONING = ("provisioning-urls", "https-provisioning-url")


def expected_variables(model: str, firmware: str, mac: str, serial: str | None) -> dict[str, str | None]:
    """Each variable the script tests and the value the device must give it (None: undefined)."""
    name = FeatureMatrix.load().model(model).name
    declared: Mapping[str, Any] = fixtures.load_json("phone-models.json")["models"][name]
    version = parse_version(firmware)

    def from_version(start: str | None) -> bool:
        return start is None or version >= parse_version(start)

    values: dict[str, str | None] = {
        "MODEL4": model4(name),
        "MODEL": declared["model"],
        "MACADDR": mac,
        "MACADDR_UPPER": mac,
        "GROUP": "0",
        "APPNAME_IN_USE": firmware,
        "HWVERS": str(declared["hwvers"]),
    }
    if serial is not None:
        values["SERIALNO"] = values["SERIALNO_UPPER"] = serial
    model6 = declared.get("model6")
    if model6:
        values["MODEL6"] = model6["value"] if from_version(model6.get("from")) else None
    for variable in declared.get("variables", ()):
        values[variable["name"]] = variable["value"] if from_version(variable.get("from")) else None
    return values


def probe_script(variables: Mapping[str, str | None]) -> bytes:
    """A settings file that asks for one `var-<NAME>-<verdict>.txt` per variable (module docstring)."""
    lines = ["## 46xxsettings.txt served by the enrollab device suite: the device's variables"]
    for i, (name, value) in enumerate(variables.items()):
        lines += [
            f"IF ${name} SEQ ${name} GOTO DEF{i}",
            f"GET var-{name}-undefined.txt",
            f"GOTO END{i}",
            f"# DEF{i}",
        ]
        if value is None:
            lines += [f"GET var-{name}-defined.txt", f"GOTO END{i}"]
        else:
            lines += [
                f'IF ${name} SEQ "{value}" GOTO OK{i}',
                f"GET var-{name}-wrong.txt",
                f"GOTO END{i}",
                f"# OK{i}",
                f"GET var-{name}-ok.txt",
            ]
        lines.append(f"# END{i}")
    return ("\n".join(lines) + "\n").encode()


def verdicts(variables: Mapping[str, str | None]) -> list[str]:
    return [f"var-{name}-{'ok' if value is not None else 'undefined'}.txt" for name, value in variables.items()]


@pytest.mark.rule("ENR-2")
@pytest.mark.needs(*PROVISIONING)
@pytest.mark.steps("arrange", "boot", "check")
async def test_settings_script_sees_the_device_variables(
    dut: Any, des: ScriptedDES, file_server: Any, step: Any
) -> None:
    identity = dut.identity
    variables = expected_variables(identity.model, identity.firmware, identity.mac, identity.serial)
    content = {SETTINGS_FILE: probe_script(variables)}
    if dut.supports("certificate-with-provisioning-url"):  # a private CA, sent with the URL
        files: FileServer = await file_server(content)
        answer = redirect(files.https_url, trust=[files.ca_pem])
    else:  # a CA the device carries as a public root (simulated devices)
        files = await file_server(content, cert_mode="public")
        answer = redirect(files.https_url)
    with step("arrange", evidence={"expected": variables, "url": files.https_url}):
        des.script(identity.mac, answer)
    with step("boot") as s:
        outcome = await dut.boot()
        s.record(outcome=outcome.to_json())
    with step("check") as s:
        requested = files.paths()
        s.record(requested=requested)
        assert SETTINGS_FILE in files.paths(status=200), (
            f"the device did not fetch {SETTINGS_FILE}, so its variables cannot be seen (requests: {requested})"
        )
        seen = [p for p in requested if p.startswith("var-")]
        wrong = [p for p in seen if p not in verdicts(variables)]
        assert seen == verdicts(variables), (
            f"the device's variables differ from its declaration: {wrong or 'some tests were not run'} "
            f"(expected {variables})"
        )
