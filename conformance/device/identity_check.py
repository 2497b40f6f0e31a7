"""ENR-1 from the device's side, shared by `test_identity.py` and the conformance-statement test:
does the device's first enrollment request say who the lab declares it is?"""

from __future__ import annotations

from typing import Any

from harness.scripted_des import DesRequest

__all__ = ["identity_evidence", "identity_problems"]


def identity_problems(dut: Any, request: DesRequest) -> list[str]:
    """What differs between the request and the device's declared identity (empty: nothing)."""
    ident = dut.identity
    body = request.body or {}
    expected = {"model": ident.model, "firmware": ident.firmware, "mac": ident.mac}
    if ident.serial is not None:
        expected["serial"] = ident.serial
    problems = [
        f"{key} is {body.get(key)!r}, the lab declares {value!r}" for key, value in expected.items()
        if body.get(key) != value
    ]
    if request.cn != ident.mac:
        problems.append(f"the factory certificate's CN is {request.cn!r}, not the MAC {ident.mac} (PROTOCOL §2)")
    return problems


def identity_evidence(dut: Any, request: DesRequest) -> dict[str, Any]:
    ident = dut.identity
    return {
        "declared": {"model": ident.model, "firmware": ident.firmware, "mac": ident.mac, "serial": ident.serial},
        "sent": request.body,
        "certificate_cn": request.cn,
    }
