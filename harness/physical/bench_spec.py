"""The lab file's `[bench]` table: how the physical phones of a conformance run reach the harness.

    [bench]
    address = "10.213.0.1"            # the harness's address on the phones' LAN (default: [network.dhcp] address)
    des_name = "des.avaya.com"        # the enrollment server's name the phones are built with (default)
    des_port = 443                    # where the scripted enrollment server listens on `address`
    des_cert = "bench/des.crt"        # a certificate for des_name the phones trust (chain, PEM) ...
    des_key = "bench/des.key"         # ... and its key
    manufacturer_ca = ["bench/manufacturer-ca.pem"]   # what the phones' factory certificates chain to
    files_name = "files.enrollab.test"                # the harness's file servers' name (default)
    server_ca = "bench/lab-root.crt"  # a CA the phones trust as a root (optional) ...
    server_ca_key = "bench/lab-root.key"   # ... and its key: the harness issues test servers' certificates

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
  `files_name` (the bench's DNS names it). A test whose server the phone must trust by a root
  it carries (`cert_mode="public"`: HTTPS provisioning, the server-name tests of PRF-6/ENR-2)
  needs `server_ca` + `server_ca_key`: a CA the bench's phones trust as a root — a lab root
  installed on them (TRUSTCERTS in their settings file) or development firmware — whose key the
  harness uses to issue each test's certificate with the names the test wants. Without them such
  a test ends in error `public-root-unavailable` saying so [inf]. With them, `des_cert`/`des_key`
  may be left out: the harness issues `des_name`'s certificate from `server_ca` too.
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
    server_ca: Path | None = None
    server_ca_key: Path | None = None

    def missing_for_des(self) -> list[str]:
        """What the scripted enrollment server of a physical phone still needs, as `[bench]` keys."""
        issued = self.server_ca is not None and self.server_ca_key is not None
        wanted = {"address": self.address, "des_cert": self.des_cert or issued or None,
                  "des_key": self.des_key or issued or None, "manufacturer_ca": self.manufacturer_ca or None}
        return [key for key, value in wanted.items() if value is None]

    def server_issuer(self) -> tuple[Any, Any]:
        """(key, certificate) of `server_ca`, loaded; `HarnessError("bench-unreadable")` when they
        cannot be read or do not belong together."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from harness.errors import HarnessError

        if self.server_ca is None or self.server_ca_key is None:
            raise HarnessError("bench-unreadable", "[bench] server_ca and server_ca_key are not given")
        try:
            cert = x509.load_pem_x509_certificate(self.server_ca.read_bytes())
            key = serialization.load_pem_private_key(self.server_ca_key.read_bytes(), password=None)
        except OSError as exc:
            raise HarnessError("bench-unreadable", f"[bench]: {exc.strerror or exc}: {exc.filename}") from None
        except (ValueError, TypeError) as exc:
            raise HarnessError("bench-unreadable", f"[bench] server_ca / server_ca_key: not a PEM certificate and "
                               f"unencrypted key ({exc})") from None
        if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
                != cert.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo):
            raise HarnessError("bench-unreadable", "[bench] server_ca_key is not the key of server_ca")
        return key, cert


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
    ca, ca_key = file("server_ca", raw.get("server_ca"), ["bench", "server_ca"]), \
        file("server_ca_key", raw.get("server_ca_key"), ["bench", "server_ca_key"])
    if (ca is None) != (ca_key is None):
        missing = "server_ca_key" if ca_key is None else "server_ca"
        problem(["bench", missing], "server_ca and server_ca_key go together", None)
    port = raw.get("des_port")
    return BenchSpec(
        address=address,
        des_name=str(raw.get("des_name") or DEFAULT_DES_NAME),
        des_port=port if isinstance(port, int) else 443,
        des_cert=cert,
        des_key=key,
        manufacturer_ca=tuple(p for p in found if p is not None),
        files_name=str(raw.get("files_name") or DEFAULT_FILES_NAME),
        server_ca=ca,
        server_ca_key=ca_key,
    )
