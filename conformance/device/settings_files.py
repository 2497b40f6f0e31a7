"""The settings files the device suite serves (from the harness's file server or as DES-hosted
files), written so that what the device did with its enrollment shows on the wire.

`SETTINGS` is the `46xxsettings.txt` every model ends up requesting (J100 and Vantage phones ask
for their upgrade script first; the suite serves none, so they fall back to it). It branches on
`$GROUP`: a device whose GROUP is `GROUP` requests `group-417.txt`, any other requests
`group-other.txt` — neither is served, the request itself is the evidence (Device group ID).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GROUP", "GROUP_FILE", "OTHER_GROUP_FILE", "SETTINGS", "SETTINGS_FILE", "model4", "settings"]

GROUP = 417
GROUP_FILE = f"group-{GROUP}.txt"
OTHER_GROUP_FILE = "group-other.txt"
SETTINGS_FILE = "46xxsettings.txt"
SETTINGS = f"""## 46xxsettings.txt served by the enrollab device suite
SET SIPDOMAIN conformance.enrollab.test
IF $GROUP SEQ {GROUP} GOTO GROUP{GROUP}
GET {OTHER_GROUP_FILE}
GOTO END
# GROUP{GROUP}
GET {GROUP_FILE}
# END
""".encode()


def settings(directory: str = "") -> dict[str, bytes]:
    """The suite's files under `directory` (a URL path without slashes; "" for the root)."""
    prefix = f"{directory.strip('/')}/" if directory.strip("/") else ""
    return {prefix + SETTINGS_FILE: SETTINGS}


def model4(model: str) -> str:
    """`$MODEL4` of a catalog model (what a URL's `$MODEL4` becomes, PRF-2)."""
    import fixtures

    catalog: Mapping[str, Mapping[str, str]] = fixtures.load_json("firmware-catalog.json")["models"]
    return catalog[model]["model4"]
