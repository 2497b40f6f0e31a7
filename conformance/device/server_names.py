"""Which server certificates a device must accept, by the names they carry — the device suite's
oracle for `test_server_names.py`, read from the declaration, not from a simulator.

Decisions:
- Identity matching is RFC 2818 §3.1 / RFC 6125 on every model (`TLSSRVRID` 1, the default,
  research §7): a certificate whose SANs name the URL's host (a DNS name for an FQDN URL, an IP
  address for an IP-address URL) is accepted, one that names another host is refused.
- Wildcards (PRF-6): the quirk `refuses-wildcard-certificates` of `fixtures/phone-models.json`
  (Vantage below 3.0, B199 and CU360 at every version; the file's `decisions` say why) declares
  which model at which firmware refuses a certificate with `*` in a DNS name even where it
  matches the host. This module reads that file itself (the quirk's `from`/`below` bounds with
  `fixtures.versions`), not through `simulators.capabilities`, so a simulated phone whose quirk
  logic is broken does not move the expectation with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fixtures
from fixtures.features import FeatureMatrix
from fixtures.versions import parse_version

__all__ = ["REFUSES_WILDCARDS", "refuses_wildcards", "wildcard_source"]

REFUSES_WILDCARDS = "refuses-wildcard-certificates"


def _quirk(model: str, firmware: str) -> Mapping[str, Any] | None:
    """The declared `refuses-wildcard-certificates` entry that applies to `model` at `firmware`."""
    name = FeatureMatrix.load().model(model).name
    version = parse_version(firmware)
    for quirk in fixtures.load_json("phone-models.json")["models"][name]["quirks"]:
        if quirk["id"] != REFUSES_WILDCARDS:
            continue
        start, below = quirk.get("from"), quirk.get("below")
        if (start is None or version >= parse_version(start)) and (below is None or version < parse_version(below)):
            return quirk
    return None


def refuses_wildcards(model: str, firmware: str) -> bool:
    """Whether the device must refuse a wildcard server certificate that matches the host."""
    return _quirk(model, firmware) is not None


def wildcard_source(model: str, firmware: str) -> str:
    """Why: the declaring quirk's source, or that none applies."""
    quirk = _quirk(model, firmware)
    if quirk is None:
        return f"{model} {firmware} declares no {REFUSES_WILDCARDS} quirk: it accepts matching wildcard certificates"
    return f"{model} {firmware}: {REFUSES_WILDCARDS} ({quirk['source']})"
