"""The lab file's `[bench]` table: how the physical phones of a conformance run reach the harness.

    [bench]
    address = "10.213.0.1"            # the harness's address on the phones' LAN (default: [network.dhcp] address)
    des_name = "des.avaya.com"        # the enrollment server's name the phones are built with (default)
    des_port = 443                    # where the scripted enrollment server listens on `address`
    des_cert = "bench/des.crt"        # a certificate for des_name the phones trust (chain, PEM) ...
    des_key = "bench/des.key"         # ... and its key
    manufacturer_ca = ["bench/manufacturer-ca.pem"]   # what the phones' factory certificates chain to
    files_name = "files.enrollab.test"                # the harness's file servers' name (default)

The device suite plays the enrollment server for each test (`conformance/device/conftest.py`,
`des`). A simulated phone is pointed at it from inside; a physical phone asks the name it was
built with (research §11: des.avaya.com), so the bench's DNS must name the harness for
`des_name` and `files_name`, and the harness must present a certificate the phone accepts for
`des_name`, checking the phone's factory certificate against `manufacturer_ca`.

Decisions:
- Without `des_cert`, `des_key` and `manufacturer_ca` the scripted-server tests of a physical
  phone end in *error* `scripted-des-unreachable` naming what is missing — never pass or fail:
  a production phone trusts only its built-in public roots for its enrollment server, so the
  bench must be able to present such a certificate (a lab CA installed on the phones, or
  development firmware) [inf].
- The file servers a test starts for a physical phone listen on `address` and are named
  `files_name` (the bench's DNS names it); one the phone must trust by a *public* root cannot
  be made by the harness for a physical phone (its roots are built in): such a test ends in error
  `public-root-unavailable` [inf].
- Paths are relative to the lab file; each must exist. `address` must be IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DES_NAME", "DEFAULT_FILES_NAME", "BenchSpec", "parse_bench"]

DEFAULT_DES_NAME = "des.avaya.com"
DEFAULT_FILES_NAME = "files.enrollab.test"

Problem = Callable[[Sequence[str | int], str, Any], None]


@dataclass(frozen=True)
class BenchSpec:
    """`[bench]` as data (module docstring)."""

    address: str | None = None
    des_name: str = DEFAULT_DES_NAME
    des_port: int = 443
    des_cert: Path | None = None
    des_key: Path | None = None
    manufacturer_ca: tuple[Path, ...] = ()
    files_name: str = DEFAULT_FILES_NAME

    def missing_for_des(self) -> list[str]:
        """What the scripted enrollment server of a physical phone still needs, as `[bench]` keys."""
        wanted = {"address": self.address, "des_cert": self.des_cert, "des_key": self.des_key,
                  "manufacturer_ca": self.manufacturer_ca or None}
        return [key for key, value in wanted.items() if value is None]


def parse_bench(raw: Mapping[str, Any], base: Path, problem: Problem, *, default_address: str | None) -> BenchSpec:
    """`[bench]` (already checked against the schema) with its paths resolved against `base`."""
    given = raw.get("address") if isinstance(raw.get("address"), str) else None
    if given is not None:
        try:
            ipaddress.IPv4Address(given)
        except ValueError:
            problem(["bench", "address"], f"{given!r} is not an IPv4 address", given)
    address = given if given is not None else default_address  # [network.dhcp] checks its own

    def file(key: str, value: Any, where: Sequence[str | int]) -> Path | None:
        if not isinstance(value, str):
            return None
        resolved = (base / value).expanduser()
        if not resolved.is_file():
            problem(list(where), f"{value!r}: no such file", value)
        return resolved

    cas = raw.get("manufacturer_ca")
    listed = [cas] if isinstance(cas, str) else list(cas) if isinstance(cas, list) else []
    found = [file("manufacturer_ca", value, ["bench", "manufacturer_ca", i] if isinstance(cas, list)
                  else ["bench", "manufacturer_ca"]) for i, value in enumerate(listed)]
    cert, key = file("des_cert", raw.get("des_cert"), ["bench", "des_cert"]), \
        file("des_key", raw.get("des_key"), ["bench", "des_key"])
    if (cert is None) != (key is None):
        problem(["bench", "des_key" if key is None else "des_cert"], "des_cert and des_key go together", None)
    port = raw.get("des_port")
    return BenchSpec(
        address=address,
        des_name=str(raw.get("des_name") or DEFAULT_DES_NAME),
        des_port=port if isinstance(port, int) else 443,
        des_cert=cert,
        des_key=key,
        manufacturer_ca=tuple(p for p in found if p is not None),
        files_name=str(raw.get("files_name") or DEFAULT_FILES_NAME),
    )
