"""What a simulated phone of a model, at a firmware version, can do — from data only.

Three fixtures, read once (`Capabilities.load()`):
- `fixtures/feature-matrix.json` (Appendix A, through `fixtures.features.FeatureMatrix`): which
  of the 16 enrollment features the model supports at a version;
- `fixtures/firmware-catalog.json`: the model's releases, latest version and `$MODEL4`;
- `fixtures/phone-models.json` (schema `fixtures/schemas/phone-models.schema.json`, validated
  with jsonschema on load): `$MODEL`, `$MODEL6`, `$HWVERS`, the first file the phone requests
  from a provisioning server, fixed `$-variables`, quirks, MAC OUIs, the prompt's timeout, and
  how the firmware treats DES_STAT (`des`, research §11.6).

Model differences are answered here as data; the phone code never asks `if model == …`.

Decisions (the data file's `decisions` list says why for each value):
- The three fixtures must list the same models, and `model4` must agree with the catalog;
  `load()` refuses otherwise (`PhoneModelsError`, a ValueError).
- Code formats (ENR-3) come from Appendix A: "8-digit numeric enrollment code" -> `nec8`,
  "12-digit numeric enrollment code" -> `nec12`, "Provisioning enrollment code" -> `pec12`.
- A quirk applies from its `from` version (inclusive) up to its `below` version (exclusive);
  either bound may be missing.
- DES_STAT 3 exists from `des.force_from` (inclusive; None: never), as quirks' `from` bounds do.
- `variables()` gives `$MACADDR` as 12 upper-case hex digits (PROTOCOL §1); the interpreter
  (`simulators.script`) derives the lower-case form a GET uses (research §1 [obs S43]).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

import fixtures
from fixtures.features import FeatureMatrix
from fixtures.versions import Version, VersionError, parse_version

__all__ = [
    "CODE_FEATURES",
    "REFUSES_WILDCARDS",
    "Capabilities",
    "DesPolicy",
    "PhoneModel",
    "PhoneModelsError",
    "Quirk",
]

MODELS_FILE = "phone-models.json"
SCHEMA_FILE = "schemas/phone-models.schema.json"
CATALOG_FILE = "firmware-catalog.json"

# Appendix A feature id per enrollment-code format of PROTOCOL §2 (ENR-3), in the protocol's order.
CODE_FEATURES: Mapping[str, str] = {
    "nec8": "8-digit-numeric-enrollment-code",
    "nec12": "12-digit-numeric-enrollment-code",
    "pec12": "provisioning-enrollment-code",
}
REFUSES_WILDCARDS = "refuses-wildcard-certificates"


class PhoneModelsError(ValueError):
    """`fixtures/phone-models.json` is broken or disagrees with the other fixtures."""

    error = "invalid-phone-models"

    def __init__(self, detail: str, where: str = "(top level)") -> None:
        super().__init__(f"Phone models ({where}): {detail}")
        self.detail = detail
        self.where = where


@dataclass(frozen=True, slots=True)
class Quirk:
    """A behaviour of some versions of a model (data, not code): applies for `start <= v < below`."""

    id: str
    start: Version | None
    below: Version | None
    source: str

    def applies(self, version: Version) -> bool:
        return (self.start is None or version >= self.start) and (self.below is None or version < self.below)


@dataclass(frozen=True, slots=True)
class DesPolicy:
    """How a model's firmware treats DES_STAT (research §11.6; the data file's `des` and its
    decisions say why for each model)."""

    force_from: Version | None  # first version that takes 3 (DES without the prompt); None: none
    force_overrides_network: bool  # 3 runs DES even when the network named a server
    network_server_skips_des: bool  # at 2, a server from the network means no prompt and no DES

    def forces(self, version: Version) -> bool:
        """Whether DES_STAT 3 exists at `version` (else it acts as 2)."""
        return self.force_from is not None and version >= self.force_from


@dataclass(frozen=True, slots=True)
class PhoneModel:
    """One model's simulator data (see the module docstring for where each field comes from)."""

    name: str
    family: str
    model4: str
    model: str
    model6: str | None
    model6_from: Version | None
    hwvers: str
    upgrade_script: str | None
    settings_file: str
    variables: tuple[tuple[str, str, Version | None], ...]
    value_lengths: Mapping[str, int]
    quirks: tuple[Quirk, ...]
    ouis: tuple[str, ...]
    prompt_seconds: int
    des: DesPolicy
    releases: tuple[str, ...]
    latest: str

    @property
    def first_file(self) -> str:
        """What the phone requests first from a provisioning server."""
        return self.upgrade_script or self.settings_file


class Capabilities:
    """Answers about a model at a firmware version: features, code formats, quirks, variables."""

    def __init__(self, matrix: FeatureMatrix, models: Mapping[str, PhoneModel]) -> None:
        self.matrix = matrix
        self._models = dict(models)
        self._names = {name: name for name in self._models}
        for name in self._models:
            # Catalog aliases ("HW-3 K175", the CU360 model numbers) resolve like the matrix's.
            self._names.update({alias: name for alias in _aliases(matrix, name)})
        self._supports: dict[tuple[str, str, str], bool] = {}

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls) -> Capabilities:
        """The shipped fixtures, validated once per process."""
        return _shipped()

    @classmethod
    def from_documents(
        cls, models_doc: Any, catalog_doc: Any | None = None, matrix: FeatureMatrix | None = None
    ) -> Capabilities:
        """Build from the JSON form of phone-models.json (plus the catalog and matrix; the
        shipped ones when omitted). Raises `PhoneModelsError` on any disagreement."""
        schema = fixtures.load_json(SCHEMA_FILE)
        error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(models_doc))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            raise PhoneModelsError(error.message, where)
        catalog = (catalog_doc if catalog_doc is not None else fixtures.load_json(CATALOG_FILE))["models"]
        matrix = matrix or FeatureMatrix.load()
        raw_models: Mapping[str, Any] = models_doc["models"]
        missing = [name for name in catalog if name not in raw_models]
        extra = [name for name in raw_models if name not in catalog]
        if missing or extra:
            raise PhoneModelsError(
                f"models must be the firmware catalog's: missing {missing}, not in the catalog {extra}", "models"
            )
        models = {name: _model(name, raw_models[name], catalog[name], matrix) for name in catalog}
        return cls(matrix, models)

    # -- models ----------------------------------------------------------------------------

    def models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def model(self, model: str) -> PhoneModel:
        """A model by catalog name or alias; KeyError naming the choices otherwise."""
        name = self._names.get(model)
        if name is None:
            raise KeyError(f"unknown model {model!r}; known models: {', '.join(self._models)}")
        return self._models[name]

    # -- features (Appendix A) -------------------------------------------------------------

    def supports(self, model: str, firmware: str | Version, feature: str) -> bool:
        """Whether `model` at `firmware` supports `feature` (an Appendix A id or label)."""
        key = (model, str(firmware), feature)
        answer = self._supports.get(key)
        if answer is None:
            answer = self.matrix.supports(self.model(model).name, firmware, feature)
            if len(self._supports) < 100_000:
                self._supports[key] = answer
        return answer

    def explain(self, model: str, firmware: str | Version, feature: str) -> str:
        return self.matrix.explain(self.model(model).name, firmware, feature)

    def code_formats(self, model: str, firmware: str | Version) -> tuple[str, ...]:
        """ENR-3: the enrollment-code formats (`nec8`, `nec12`, `pec12`) the phone can take."""
        return tuple(fmt for fmt, feature in CODE_FEATURES.items() if self.supports(model, firmware, feature))

    # -- DES_STAT (research §11.6) ----------------------------------------------------------

    def des_policy(self, model: str) -> DesPolicy:
        return self.model(model).des

    def can_force_des(self, model: str, firmware: str | Version) -> bool:
        """Whether the firmware takes DES_STAT 3 (else 3 acts as 2)."""
        return self.model(model).des.forces(_version(firmware))

    # -- quirks and variables --------------------------------------------------------------

    def quirks(self, model: str, firmware: str | Version) -> frozenset[str]:
        version = _version(firmware)
        return frozenset(q.id for q in self.model(model).quirks if q.applies(version))

    def has_quirk(self, model: str, firmware: str | Version, quirk: str) -> bool:
        return quirk in self.quirks(model, firmware)

    def variables(
        self,
        model: str,
        firmware: str,
        mac: str,
        serial: str,
        *,
        group: int = 0,
        hwvers: str | None = None,
    ) -> dict[str, str]:
        """The `$-variables` a settings script sees (names without `$`, research §4)."""
        info = self.model(model)
        version = _version(firmware)
        values = {
            "MODEL4": info.model4,
            "MODEL": info.model,
            "MACADDR": mac.upper(),
            "MACADDR_UPPER": mac.upper(),
            "SERIALNO": serial.upper(),
            "SERIALNO_UPPER": serial.upper(),
            "GROUP": str(group),
            "APPNAME_IN_USE": firmware,
            "HWVERS": hwvers or info.hwvers,
        }
        if info.model6 is not None and (info.model6_from is None or version >= info.model6_from):
            values["MODEL6"] = info.model6
        for name, value, start in info.variables:
            if start is None or version >= start:
                values[name] = value
        return values

    def random_mac(self, model: str, rng: random.Random) -> str:
        """A MAC from one of the model's OUIs (12 upper-case hex digits)."""
        oui = rng.choice(self.model(model).ouis)
        return f"{oui}{rng.getrandbits(24):06X}"


@cache
def _shipped() -> Capabilities:
    return Capabilities.from_documents(fixtures.load_json(MODELS_FILE))


def _aliases(matrix: FeatureMatrix, name: str) -> tuple[str, ...]:
    raw = fixtures.load_json(CATALOG_FILE)["models"].get(name, {})
    return tuple(alias for alias in raw.get("aliases", ()) if matrix.model(alias).name == name)


def _model(name: str, raw: Mapping[str, Any], catalog: Mapping[str, Any], matrix: FeatureMatrix) -> PhoneModel:
    where = f"models.{name}"
    if raw["model4"] != catalog["model4"]:
        raise PhoneModelsError(
            f"model4 {raw['model4']!r} differs from {CATALOG_FILE}'s {catalog['model4']!r}", f"{where}.model4"
        )
    model6 = raw.get("model6")
    quirks = tuple(
        Quirk(q["id"], _opt_version(q.get("from"), where), _opt_version(q.get("below"), where), q["source"])
        for q in raw["quirks"]
    )
    variables = tuple(
        (v["name"], v["value"], _opt_version(v.get("from"), f"{where}.variables")) for v in raw.get("variables", ())
    )
    return PhoneModel(
        name=name,
        family=matrix.family(name),
        model4=raw["model4"],
        model=raw["model"],
        model6=model6["value"] if model6 else None,
        model6_from=_opt_version(model6["from"], f"{where}.model6") if model6 else None,
        hwvers=raw["hwvers"],
        upgrade_script=raw["upgrade_script"],
        settings_file=raw["settings_file"],
        variables=variables,
        value_lengths=MappingProxyType(dict(raw.get("value_lengths", {}))),
        quirks=quirks,
        ouis=tuple(raw["ouis"]),
        prompt_seconds=raw["prompt_seconds"],
        des=DesPolicy(
            force_from=_opt_version(raw["des"]["force_from"], f"{where}.des.force_from"),
            force_overrides_network=raw["des"]["force_overrides_network"],
            network_server_skips_des=raw["des"]["network_server_skips_des"],
        ),
        releases=tuple(catalog["releases"]),
        latest=catalog["latest"],
    )


def _opt_version(text: str | None, where: str) -> Version | None:
    if text is None:
        return None
    try:
        return parse_version(text)
    except VersionError as exc:
        raise PhoneModelsError(exc.detail, where) from exc


def _version(firmware: str | Version) -> Version:
    return firmware if isinstance(firmware, Version) else parse_version(firmware)
