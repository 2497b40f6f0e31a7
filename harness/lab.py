"""The lab file: which enrollment server, which devices under test, which options (TOML).

    [server]                       # the default: an embedded reference server
    embedded = true                # on SQLite in a temporary directory
    # url = "https://des.lab.example:8080"      # or a running server (PROTOCOL.md)
    # admin_login = "admin"                      # its platform administrator
    # admin_password_env = "ENROLLAB_ADMIN_PASSWORD"   # the variable holding the password
    # data = "/srv/enrollab-data"   # its data directory (manufacturer CA, TLS CA), or:
    # manufacturer_key = "…", manufacturer_cert = "…", server_ca = "…"

    [options]
    seed = 1                       # derives MACs and serials of simulated devices
    concurrency = 4                # simulated devices at once: a fleet's phones, and at most this
                                   # many simulated shards under `conformance run --jobs N`
    network_path = "loopback"      # or "namespaces": simulated devices boot over a lab network in
                                   # namespaces (DHCP, LLDP, HTTP on veth; root; the device suite only)
    physical_jobs = 1              # physical phones at once under `conformance run --jobs N`
                                   # (harness.shards, harness.bench_hub); 1: one after another

    [[devices]]
    driver = "simulated"
    model = "J179"                 # a firmware-catalog model (or one of its aliases)
    firmware = "4.1.11.0.9"        # PROTOCOL §1 version
    mac = "A4251B000001"           # optional; derived from the seed otherwise
    count = 1                      # optional: N phones of this spec (derived MACs)
    [devices.faults]               # optional fault knobs (simulators.phone.Faults)
    ignore_group = true

    [[devices]]
    driver = "physical"            # a phone on the bench (harness.physical)
    model = "K175"
    firmware = "3.1"
    mac = "A4:25:1B:0C:3D:5E"
    ip = "10.0.40.21"
    reboot = "sip-notify"          # sip-notify | poe | manual (an operator prompt)
    sip = {port = 5060}            # optional: where NOTIFY check-sync goes (enrollab lab reboot)
    # reboot = "poe" needs: poe = {switch = "10.0.40.2", port = 12, community_env = "POE_COMMUNITY"}

    [network]                      # the lab network: harness.lab_network.spec documents it
    interface = "eth1"             # a run with physical phones serves it (DHCP, LLDP, capture)

    [bench]                        # how physical phones reach the harness: harness.physical.bench_spec
    des_cert = "bench/des.crt"     # a certificate for the phones' enrollment server name they trust

Examples ship as `fixtures/labs/example-sim.toml` and `fixtures/labs/example-lab.toml`.

The file is read with tomllib and checked against `fixtures/schemas/lab.schema.json`
(jsonschema), then for what a schema cannot say: MAC form (PROTOCOL §1), firmware versions,
known models, `embedded` xor `url`, unique MACs, files that exist. Every problem is a `LabError`
naming the file, the line (found in the TOML text for the failing key path) and the field:
`lab.toml:12: devices[2].firmware: '4.x' is not a firmware version`.

Decisions:
- A missing `[server]` is the embedded server; `url` and `embedded = true` together are refused.
- Simulated devices without `mac` get one derived from the seed and their place in the file
  (an OUI of the model, `fixtures/phone-models.json`, then three octets), a serial likewise; so
  a lab file names the same devices on every machine. `count = N` stands for N such phones;
  with an explicit `mac` it must be 1.
- Models are stored under their catalog name, versions in their normalised form (`R1.1` -> `1.1`).
- `--target sim` uses the simulated devices, `--target lab` the physical ones, `--target all`
  both in one run and one report (`devices_for`).
- The lab digest (`sha256:…` of the file's bytes) goes into every report's provenance.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema

import fixtures
from harness.errors import LabError
from harness.lab_network.spec import NetworkSpec, parse_network
from harness.physical.bench_spec import BenchSpec, parse_bench

__all__ = [
    "DEFAULT_LAB",
    "DeviceSpec",
    "Lab",
    "LabError",
    "LabOptions",
    "ServerSpec",
    "Target",
    "default_lab_path",
    "field_path",
    "load_lab",
    "locate",
    "parse_lab",
]

SCHEMA_FILE = "schemas/lab.schema.json"
DEFAULT_LAB = "labs/example-sim.toml"
DEFAULT_LOGIN = "admin"
DEFAULT_PASSWORD_ENV = "ENROLLAB_ADMIN_PASSWORD"  # noqa: S105 - the name of a variable

Target = Literal["sim", "lab", "all"]
# The driver a target works with; `all` takes every device of the lab (a mixed run, one report).
DRIVER_OF_TARGET: Mapping[str, str] = {"sim": "simulated", "lab": "physical", "all": "simulated or physical"}
TARGETS = ("sim", "lab", "all")
NETWORK_PATHS = ("loopback", "namespaces")  # [options] network_path: harness.lab_network.path


@dataclass(frozen=True)
class ServerSpec:
    """Where the enrollment server comes from (module docstring)."""

    embedded: bool = True
    url: str | None = None
    admin_login: str = DEFAULT_LOGIN
    admin_password_env: str = DEFAULT_PASSWORD_ENV
    data: Path | None = None
    manufacturer_key: Path | None = None
    manufacturer_cert: Path | None = None
    server_ca: Path | None = None

    def admin_password(self) -> str | None:
        return os.environ.get(self.admin_password_env) or None


@dataclass(frozen=True)
class DeviceSpec:
    """One device under test as the lab describes it (a passive resource; drivers act on it)."""

    driver: str
    model: str
    firmware: str
    mac: str
    serial: str | None  # derived for simulated devices; a physical phone's is optional
    entry: int = 0  # its [[devices]] entry (0-based)
    copy: int = 0  # which of the entry's `count` phones
    name: str | None = None
    ip: str | None = None
    reboot: str | None = None
    thumbprint: str | None = None
    faults: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # sip/poe/boot_timeout/quiet_timeout of physical phones

    @property
    def id(self) -> str:
        """`J179@4.1.11.0.9#A4251B000001`: the device's id in reports and test ids."""
        return f"{self.model}@{self.firmware}#{self.mac}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "firmware": self.firmware, "mac": self.mac, "driver": self.driver}


@dataclass(frozen=True)
class LabOptions:
    seed: int = 1
    concurrency: int = 4
    network_path: str = "loopback"  # NETWORK_PATHS
    physical_jobs: int = 1  # physical phones at once with --jobs (harness.shards: each its own shard)


@dataclass(frozen=True)
class Lab:
    server: ServerSpec = field(default_factory=ServerSpec)
    devices: tuple[DeviceSpec, ...] = ()
    options: LabOptions = field(default_factory=LabOptions)
    path: Path | None = None
    digest: str | None = None
    interface: str | None = None
    network: NetworkSpec | None = None
    bench: BenchSpec = field(default_factory=BenchSpec)  # how physical phones reach the harness

    def devices_for(self, target: str) -> tuple[DeviceSpec, ...]:
        """The devices a `--target` works with: sim -> simulated, lab -> physical, all -> both."""
        if target == "all":
            return self.devices
        driver = DRIVER_OF_TARGET[target]
        return tuple(d for d in self.devices if d.driver == driver)

    def with_server_url(self, url: str, admin_login: str = DEFAULT_LOGIN) -> Lab:
        """`--server URL`: a remote server replaces the lab's, keeping its PKI files if it named a remote one."""
        keep = self.server if not self.server.embedded else ServerSpec(embedded=False)
        return replace(self, server=replace(keep, embedded=False, url=url, admin_login=admin_login,
                                            admin_password_env=DEFAULT_PASSWORD_ENV))


def default_lab_path() -> Path:
    """The lab used when none is given: `fixtures/labs/example-sim.toml`."""
    return fixtures.path(DEFAULT_LAB)


def load_lab(path: Path | str, *, seed: int | None = None) -> Lab:
    """Read, check and expand a lab file; `seed` overrides `[options] seed`. Raises `LabError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabError("lab-unreadable", f"cannot read the lab file: {exc.strerror or exc}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LabError("invalid-lab", "not UTF-8 text", file=str(path), line=line) from None
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return parse_lab(text, name=str(path), base=path.resolve().parent, seed=seed, digest=digest, path=path)


def parse_lab(
    text: str,
    *,
    name: str = "lab.toml",
    base: Path | None = None,
    seed: int | None = None,
    digest: str | None = None,
    path: Path | None = None,
) -> Lab:
    """A lab from TOML text (`name` is what errors call the file; `base` resolves relative paths)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        line = None
        if found:
            line = int(found[1])
            message = message[: found.start()] + f" (column {found[2]})"
        raise LabError("invalid-lab", f"not TOML: {message}", file=name, line=line) from None
    checker = _Checker(text, name, base or Path.cwd())
    checker.schema(doc)
    lab = checker.build(doc, seed)
    checker.raise_any()
    return replace(lab, digest=digest, path=path)


# -- checking ---------------------------------------------------------------------------------------


class _Checker:
    """Collects every problem with its line and field; `raise_any` raises the first (by line)."""

    def __init__(self, text: str, name: str, base: Path) -> None:
        self.text = text
        self.name = name
        self.base = base
        self.problems: list[tuple[int, str, LabError]] = []

    def problem(self, where: Sequence[str | int], detail: str, value: Any = None) -> None:
        line = locate(self.text, where)
        err = LabError("invalid-lab", detail, file=self.name, line=line, field=field_path(where), value=value)
        if all(err.message != known.message for _, _, known in self.problems):
            self.problems.append((line or 0, field_path(where), err))

    def raise_any(self) -> None:
        if not self.problems:
            return
        ordered = sorted(self.problems, key=lambda p: (p[0], p[1]))
        first = ordered[0][2]
        raise LabError(
            first.error,
            first.detail,
            file=first.file,
            line=first.line,
            field=first.field,
            value=first.value,
            problems=[p[2].message for p in ordered],
        )

    # -- structure (JSON Schema) -------------------------------------------------------------------

    def schema(self, doc: Any) -> None:
        validator = jsonschema.Draft202012Validator(_schema())
        for err in validator.iter_errors(doc):
            where: list[str | int] = list(err.absolute_path)
            instance = err.instance
            if err.validator == "required" and isinstance(instance, Mapping):
                for name in err.validator_value:
                    if name not in instance:
                        self.problem([*where, name], "is required")
            elif err.validator == "additionalProperties" and isinstance(instance, Mapping):
                allowed = list(err.schema.get("properties", {}))
                for key in instance:
                    if key not in allowed:
                        self.problem([*where, key], f"unknown field; allowed here: {', '.join(allowed)}", key)
            elif err.validator == "enum":
                choices = ", ".join(repr(c) for c in err.validator_value)
                self.problem(where, f"{instance!r} is not one of {choices}", instance)
            elif err.validator == "type":
                self.problem(where, f"{instance!r} is not {_a(err.validator_value)}", instance)
            else:
                self.problem(where, err.message, instance)

    # -- meaning -------------------------------------------------------------------------------------

    def build(self, doc: Mapping[str, Any], seed_override: int | None) -> Lab:
        options_doc = _table(doc.get("options"))
        seed = seed_override if seed_override is not None else _int(options_doc.get("seed"), 1)
        path = options_doc.get("network_path")
        options = LabOptions(seed=seed, concurrency=_int(options_doc.get("concurrency"), 4),
                             network_path=path if path in NETWORK_PATHS else "loopback",
                             physical_jobs=_int(options_doc.get("physical_jobs"), 1))
        server = self.server(_table(doc.get("server")))
        devices = self.devices(doc.get("devices"), seed)
        network = parse_network(_table(doc.get("network")), self.problem)
        interface = network.interface if network is not None else None
        dhcp_address = network.dhcp.address if network is not None and network.dhcp is not None else None
        bench = parse_bench(_table(doc.get("bench")), self.base, self.problem, default_address=dhcp_address)
        return Lab(server=server, devices=tuple(devices), options=options, interface=interface, network=network,
                   bench=bench)

    def server(self, raw: Mapping[str, Any]) -> ServerSpec:
        url = raw.get("url") if isinstance(raw.get("url"), str) else None
        embedded_raw = raw.get("embedded")
        embedded = url is None if embedded_raw is None else bool(embedded_raw)
        if embedded and url is not None:
            self.problem(["server", "url"], "give either embedded = true or a url, not both", url)
        if not embedded and url is None:
            self.problem(["server", "embedded"], "embedded = false needs a url of a running server")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.problem(["server", "url"], f"{url!r} is not an http(s) URL of an admin API", url)
        paths: dict[str, Path | None] = {}
        for key in ("data", "manufacturer_key", "manufacturer_cert", "server_ca"):
            value = raw.get(key)
            paths[key] = None
            if not isinstance(value, str):
                continue
            if embedded:
                self.problem(["server", key], "only for a remote server (url): the embedded one has its own PKI", value)
                continue
            resolved = (self.base / value).expanduser()
            if key == "data" and not resolved.is_dir():
                self.problem(["server", key], f"{value!r} is no directory", value)
            elif key != "data" and not resolved.is_file():
                self.problem(["server", key], f"{value!r}: no such file", value)
            paths[key] = resolved
        if (paths["manufacturer_key"] is None) != (paths["manufacturer_cert"] is None):
            missing = "manufacturer_cert" if paths["manufacturer_cert"] is None else "manufacturer_key"
            self.problem(["server", missing], "manufacturer_key and manufacturer_cert go together")
        login = raw.get("admin_login")
        password_env = raw.get("admin_password_env")
        return ServerSpec(
            embedded=embedded,
            url=url,
            admin_login=login if isinstance(login, str) else DEFAULT_LOGIN,
            admin_password_env=password_env if isinstance(password_env, str) else DEFAULT_PASSWORD_ENV,
            data=paths["data"],
            manufacturer_key=paths["manufacturer_key"],
            manufacturer_cert=paths["manufacturer_cert"],
            server_ca=paths["server_ca"],
        )

    def devices(self, raw: Any, seed: int) -> list[DeviceSpec]:
        from fixtures.features import FeatureMatrix, UnknownModel
        from fixtures.versions import VersionError, parse_version
        from simulators.identity import canonical_mac

        if not isinstance(raw, list):
            return []
        matrix = FeatureMatrix.load()
        # First pass: what each entry says; explicit MACs are reserved before any is derived.
        entries: list[dict[str, Any]] = []
        taken: dict[str, int] = {}
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or entry.get("driver") not in ("simulated", "physical"):
                continue
            where: list[str | int] = ["devices", i]
            model = entry.get("model")
            firmware = entry.get("firmware")
            ok = isinstance(model, str) and isinstance(firmware, str)
            if isinstance(model, str):
                try:
                    model = matrix.model(model).name
                except UnknownModel:
                    self.problem([*where, "model"], f"{model!r} is not a known model ({', '.join(matrix.models())})",
                                 model)
                    ok = False
            if isinstance(firmware, str):
                try:
                    firmware = str(parse_version(firmware))
                except VersionError:
                    self.problem([*where, "firmware"], f"{firmware!r} is not a firmware version", firmware)
                    ok = False
            mac = entry.get("mac")
            if isinstance(mac, str):
                try:
                    mac = canonical_mac(mac)
                except ValueError:
                    self.problem([*where, "mac"], f"{mac!r} is not a MAC address (PROTOCOL §1: 12 hex digits)", mac)
                    ok = False
                else:
                    if mac in taken:
                        self.problem([*where, "mac"], f"{mac} is also the MAC of devices[{taken[mac]}]", mac)
                        ok = False
                    taken.setdefault(mac, i)
            count = entry.get("count", 1)
            if isinstance(mac, str) and isinstance(count, int) and count != 1:
                self.problem([*where, "count"], "a device with a fixed mac is one phone: drop count or mac", count)
                ok = False
            ip = entry.get("ip")
            if isinstance(ip, str):
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    self.problem([*where, "ip"], f"{ip!r} is not an IP address", ip)
                    ok = False
            if entry.get("reboot") == "poe" and "poe" not in entry:
                self.problem([*where, "reboot"], 'reboot = "poe" needs a poe table: poe = {switch = "10.0.40.2", '
                             'port = 12, community_env = "POE_COMMUNITY"}', "poe")
                ok = False
            faults = _table(entry.get("faults"))
            reported = faults.get("report_firmware")
            if isinstance(reported, str):
                try:
                    parse_version(reported)
                except VersionError:
                    self.problem([*where, "faults", "report_firmware"], f"{reported!r} is not a firmware version",
                                 reported)
                    ok = False
            if ok:
                entries.append({**entry, "model": model, "firmware": firmware, "mac": mac, "_index": i})
        return list(_expand(entries, seed, taken))


def _expand(entries: Iterable[dict[str, Any]], seed: int, taken: Mapping[str, int]) -> Iterable[DeviceSpec]:
    from simulators.capabilities import Capabilities

    caps = Capabilities.load()
    macs = set(taken)
    serials: set[str] = set()
    for entry in entries:
        index = entry["_index"]
        count = entry.get("count", 1) if entry.get("mac") is None else 1
        for copy in range(count if isinstance(count, int) else 1):
            rng = random.Random(f"enrollab-lab:{seed}:{index}:{copy}")
            mac = entry.get("mac")
            if mac is None:
                ouis = caps.model(entry["model"]).ouis
                while mac is None or mac in macs:
                    mac = rng.choice(ouis) + f"{rng.getrandbits(24):06X}"
                macs.add(mac)
            serial = entry.get("serial") if count == 1 else None
            while entry["driver"] == "simulated" and (serial is None or serial in serials):
                serial = f"{seed % 100:02d}LB{rng.randrange(10**6):06d}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}"
            if serial is not None:
                serials.add(serial)
            thumbprint = entry.get("thumbprint")
            yield DeviceSpec(
                driver=entry["driver"],
                model=entry["model"],
                firmware=entry["firmware"],
                mac=mac,
                serial=serial,
                entry=index,
                copy=copy,
                name=entry.get("name"),
                ip=entry.get("ip"),
                reboot=entry.get("reboot"),
                thumbprint=thumbprint.replace(":", "").upper() if isinstance(thumbprint, str) else None,
                faults=MappingProxyType(dict(_table(entry.get("faults")))),
                extra=MappingProxyType({k: entry[k] for k in ("sip", "poe", "boot_timeout", "quiet_timeout")
                                            if k in entry}),
            )


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = fixtures.load_json(SCHEMA_FILE)
    return schema


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _a(kind: Any) -> str:
    names = {"integer": "an integer", "string": "a string", "boolean": "true or false", "number": "a number",
             "object": "a table", "array": "an array"}
    if isinstance(kind, list):
        return " or ".join(names.get(str(k), str(k)) for k in kind)
    return names.get(str(kind), str(kind))


# -- where in the text ----------------------------------------------------------------------------------


def field_path(where: Sequence[str | int]) -> str:
    """`("devices", 2, "firmware")` -> `devices[2].firmware`."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[|\[)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")


def _parts(dotted: str) -> list[str]:
    return [p.strip('"').strip("'") for p in re.findall(_KEY_PART, dotted)]


def locate(text: str, where: Sequence[str | int]) -> int | None:
    """The 1-based line of `where` (a key path like `("devices", 2, "firmware")`) in TOML text:
    the key's own line, else the nearest enclosing table's header or key (a missing field is
    reported where its table starts); None when nothing of the path is in the text."""
    positions: dict[tuple[str | int, ...], int] = {}
    arrays: dict[tuple[str | int, ...], int] = {}  # array-of-tables path -> entries so far
    current: tuple[str | int, ...] = ()
    in_string: str | None = None

    def resolve(parts: Sequence[str]) -> list[str | int]:
        out: list[str | int] = []
        for part in parts:
            out.append(part)
            key = tuple(out)
            if key in arrays:
                out.append(arrays[key] - 1)
        return out

    for number, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _parts(header[2])
            if header[1] == "[[":
                table = (*resolve(parts[:-1]), parts[-1])
                n = arrays.get(table, 0)
                arrays[table] = n + 1
                current = (*table, n)
            else:
                current = tuple(resolve(parts))
            positions.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            full = (*current, *_parts(key[1]))
            for end in range(len(current) + 1, len(full) + 1):
                positions.setdefault(full[:end], number)
            rest = line[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_string = quote
    path = tuple(where)
    for end in range(len(path), 0, -1):
        if path[:end] in positions:
            return positions[path[:end]]
    return None
