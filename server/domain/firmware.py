"""The firmware catalog and which firmware a device is sent (FW-1..4, SIT-3).

Data lives in `fixtures/firmware-catalog.json` (schema `fixtures/schemas/firmware-catalog.schema.json`).

Decisions:
- `minimum` is the lowest version that can enroll: Appendix A's "Provisioning URLs" row.
- `latest` (the guide's "upgradable version") must be one of the releases; releases after it
  are known but not offered. "Last N releases" (SIT-3) counts back from `latest`.
- A model whose Appendix A row says "Firmware upgrade N/A" (B199, CU360) is `upgradable:
  false`: it is never sent firmware, whatever a setting says.
- `manual_upgrade_below` (FW-4): versions that cannot upgrade themselves (J100 below 2.0) are
  refused with "manual upgrade to 2.0 and factory reset required".
- FW-3: for claimed devices firmware upgrade is off unless the customer account switched it
  on; then the site's setting for the model decides, `same-as-account` meaning the account's
  own setting for the model (default `latest`). A pinned version that has since left the
  catalog sends nothing rather than something unknown.
- Model names are exact (`J179`, `K175-HW3`); a model's `aliases` (e.g. `HW-3 K175`, the CU360
  model numbers) resolve to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NamedTuple

import jsonschema
from jsonschema.exceptions import best_match

import fixtures
from server.domain.errors import DomainError, invalid
from server.domain.identity import Version, parse_version
from server.domain.sites import FirmwareChoice, FirmwareSetting, parse_firmware_setting

CATALOG_FILE = "firmware-catalog.json"
SCHEMA_FILE = "schemas/firmware-catalog.schema.json"


@dataclass(frozen=True)
class ModelFirmware:
    """FW-1: one model's entry of the device-family catalog."""

    name: str
    family: str
    model4: str
    minimum: Version
    latest: Version
    releases: tuple[Version, ...]
    upgradable: bool
    last_n: int
    manual_upgrade_below: Version | None = None
    aliases: tuple[str, ...] = ()

    @property
    def offered(self) -> tuple[Version, ...]:
        """Releases up to and including `latest`."""
        return self.releases[: self.releases.index(self.latest) + 1]


def _catalog_error(detail: str, where: str) -> DomainError:
    return invalid("invalid-firmware-catalog", f"Firmware catalog: {detail} (FW-1).", value=where)


def _version(text: str, where: str) -> Version:
    try:
        return parse_version(text)
    except DomainError:
        raise _catalog_error(f"'{text}' is not a version", where) from None


def _model(name: str, raw: Mapping[str, Any]) -> ModelFirmware:
    releases = tuple(_version(v, f"models.{name}.releases") for v in raw["releases"])
    for earlier, later in zip(releases, releases[1:], strict=False):
        if not earlier < later:
            raise _catalog_error(
                f"releases of {name} must be strictly ascending ({earlier} then {later})",
                f"models.{name}.releases",
            )
    minimum = _version(raw["minimum"], f"models.{name}.minimum")
    latest = _version(raw["latest"], f"models.{name}.latest")
    if latest not in releases:
        raise _catalog_error(f"latest {latest} of {name} is not one of its releases", f"models.{name}.latest")
    if minimum > latest:
        raise _catalog_error(f"minimum {minimum} of {name} is above latest {latest}", f"models.{name}.minimum")
    manual = raw.get("manual_upgrade_below")
    manual_below = _version(manual, f"models.{name}.manual_upgrade_below") if manual is not None else None
    if manual_below is not None and manual_below > minimum:
        raise _catalog_error(
            f"manual_upgrade_below {manual_below} of {name} is above its minimum {minimum}",
            f"models.{name}.manual_upgrade_below",
        )
    return ModelFirmware(
        name=name,
        family=raw["family"],
        model4=raw["model4"],
        minimum=minimum,
        latest=releases[releases.index(latest)],
        releases=releases,
        upgradable=raw["upgradable"],
        last_n=raw["last_n"],
        manual_upgrade_below=manual_below,
        aliases=tuple(raw.get("aliases", ())),
    )


class Catalog:
    """FW-1: the device-family catalog: per model minimum, latest and releases."""

    def __init__(self, models: Mapping[str, ModelFirmware]) -> None:
        self._models = dict(models)
        self._names: dict[str, str] = {}
        for info in self._models.values():
            for key in (info.name, *info.aliases):
                if key in self._names:
                    raise _catalog_error(f"the model name or alias '{key}' is used twice", "models")
                self._names[key] = info.name

    @classmethod
    def from_data(cls, data: Any) -> Catalog:
        """FW-1: build a catalog from its JSON form, checked against the schema and for
        consistency (ascending releases, latest among them, minimum <= latest)."""
        schema = fixtures.load_json(SCHEMA_FILE)
        error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            raise _catalog_error(error.message, where)
        return cls({name: _model(name, raw) for name, raw in data["models"].items()})

    @classmethod
    def load(cls) -> Catalog:
        """FW-1: the catalog shipped in fixtures/, read and validated once."""
        return _shipped_catalog()

    def models(self) -> list[str]:
        return list(self._models)

    def model(self, name: str) -> ModelFirmware:
        """The catalog entry of a model (or alias); `unknown-model` otherwise."""
        canonical = self._names.get(name) if isinstance(name, str) else None
        if canonical is None:
            raise invalid(
                "unknown-model",
                "The model is not in the device-family catalog; known are " + ", ".join(self._models) + ".",
                value=name,
            )
        return self._models[canonical]

    def minimum(self, model: str) -> Version:
        return self.model(model).minimum

    def latest(self, model: str) -> Version:
        return self.model(model).latest

    def releases(self, model: str) -> tuple[Version, ...]:
        return self.model(model).releases

    def last_n_releases(self, model: str, n: int | None = None) -> tuple[Version, ...]:
        """SIT-3: the model's last `n` releases up to `latest` (n defaults to the model's N), oldest first."""
        info = self.model(model)
        count = info.last_n if n is None else n
        if count < 1:
            raise invalid("invalid-last-n", "N must be at least 1 (SIT-3).", value=n)
        return info.offered[-count:]

    def needs_manual_upgrade(self, model: str, version: Version | str) -> bool:
        """FW-4: this version cannot upgrade itself (J100 below 2.0)."""
        info = self.model(model)
        current = version if isinstance(version, Version) else parse_version(version)
        return info.manual_upgrade_below is not None and current < info.manual_upgrade_below


@cache
def _shipped_catalog() -> Catalog:
    return Catalog.from_data(fixtures.load_json(CATALOG_FILE))


def firmware_for_unclaimed(model: str, catalog: Catalog) -> str | None:
    """FW-2: an unclaimed device is sent the latest version if its model supports upgrades."""
    info = catalog.model(model)
    return str(info.latest) if info.upgradable else None


def resolve_firmware(
    account_upgrade_enabled: bool,
    site_setting: FirmwareSetting | str | None,
    model: str,
    catalog: Catalog,
    *,
    account_setting: FirmwareSetting | str | None = None,
) -> str | None:
    """FW-3/SIT-3: the version a claimed device of `model` at a site should run, or None.

    None when the account has not switched firmware upgrade on (the default), when the model
    cannot be upgraded, or when the setting is `off`. Otherwise `latest` gives the catalog's
    latest, a version gives itself, `same-as-account` the account's setting (default latest).
    """
    info = catalog.model(model)
    if not account_upgrade_enabled or not info.upgradable:
        return None
    setting = parse_firmware_setting(site_setting)
    if setting.choice is FirmwareChoice.SAME_AS_ACCOUNT:
        setting = parse_firmware_setting(account_setting or FirmwareChoice.LATEST.value)
        if setting.choice is FirmwareChoice.SAME_AS_ACCOUNT:
            setting = FirmwareSetting(FirmwareChoice.LATEST)
    if setting.choice is FirmwareChoice.OFF:
        return None
    if setting.choice is FirmwareChoice.LATEST or setting.version is None:
        return str(info.latest)
    if setting.version not in info.releases:
        return None
    return str(info.releases[info.releases.index(setting.version)])


class FirmwareGate(NamedTuple):
    """FW-4: what to do with a device's current version before anything else."""

    action: Literal["proceed", "upgrade", "refuse"]
    version: str | None = None
    reason: str | None = None
    detail: str | None = None


def check_minimum(model: str, version: Version | str, catalog: Catalog, *, upgrade_to: str | None) -> FirmwareGate:
    """FW-4: a device below its model's minimum version is not redirected: it is sent the
    upgrade when allowed (`upgrade_to`, e.g. from `resolve_firmware` or FW-2), otherwise
    refused with a reason; a version that cannot upgrade itself is refused with
    `manual-upgrade-required`."""
    info = catalog.model(model)
    current = version if isinstance(version, Version) else parse_version(version)
    if current >= info.minimum:
        return FirmwareGate("proceed")
    if catalog.needs_manual_upgrade(model, current):
        return FirmwareGate(
            "refuse",
            reason="manual-upgrade-required",
            detail=f"manual upgrade to {info.manual_upgrade_below} and factory reset required",
        )
    if upgrade_to is not None and info.upgradable and parse_version(upgrade_to) >= info.minimum:
        return FirmwareGate("upgrade", version=upgrade_to, reason="below-minimum")
    return FirmwareGate(
        "refuse",
        reason="firmware-below-minimum",
        detail=f"{info.name} {current} is below the minimum version {info.minimum} and is not upgraded",
    )
