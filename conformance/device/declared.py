"""What `fixtures/phone-models.json` declares of a model at a firmware version, read by the device
suite itself: the oracle of the tests whose expectation is a model's quirk or DES_STAT policy,
not Appendix A (which `fixtures.features` answers).

The file is read here with `fixtures.load_json` and `fixtures.versions`, never through
`simulators.capabilities`: a simulated phone whose quirk or policy logic is broken must not move
the expectation with it (the mutation tier, docs/mutation.md, showed such mutants surviving).

Decisions:
- Identity matching is RFC 2818 §3.1 / RFC 6125 on every model (`TLSSRVRID` 1, the default,
  research §7): a certificate whose SANs name the URL's host (a DNS name for an FQDN URL, an IP
  address for an IP-address URL) is accepted, one that names another host is refused.
- Wildcards (PRF-6): the quirk `refuses-wildcard-certificates` of `fixtures/phone-models.json`
  (Vantage below 3.0, B199 and CU360 at every version; the file's `decisions` say why) declares
  which model at which firmware refuses a certificate with `*` in a DNS name even where it
  matches the host; a quirk applies from its `from` version (inclusive) below its `below`
  version (exclusive).
- DES_STAT 3 (research §11.6): the model's `des.force_from` is the first version that takes it
  (inclusive); none: the firmware never does, and 3 acts as 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fixtures
from fixtures.features import FeatureMatrix
from fixtures.versions import parse_version

__all__ = ["REFUSES_WILDCARDS", "can_force_des", "refuses_wildcards", "wildcard_source"]

REFUSES_WILDCARDS = "refuses-wildcard-certificates"


def _declared(model: str) -> Mapping[str, Any]:
    return fixtures.load_json("phone-models.json")["models"][FeatureMatrix.load().model(model).name]


def _quirk(model: str, firmware: str) -> Mapping[str, Any] | None:
    """The declared `refuses-wildcard-certificates` entry that applies to `model` at `firmware`."""
    version = parse_version(firmware)
    for quirk in _declared(model)["quirks"]:
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


def can_force_des(model: str, firmware: str) -> bool:
    """Whether the firmware takes DES_STAT 3 (DES without the prompt)."""
    start = _declared(model)["des"]["force_from"]
    return start is not None and parse_version(firmware) >= parse_version(start)
