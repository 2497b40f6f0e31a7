"""FW-1..4, SIT-3: the firmware catalog and which firmware a device is sent."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

import fixtures
from server.domain.errors import DomainError
from server.domain.firmware import (
    Catalog,
    check_minimum,
    firmware_for_unclaimed,
    resolve_firmware,
)
from server.domain.identity import parse_version
from server.domain.sites import FirmwareChoice, FirmwareSetting

# Appendix A, "Supported devices and features": every minimum release per catalog model
# (N/A cells left out). Typed in from the guide, independently of the catalog file.
_J = {
    "J129": ["2.0", "3.0", "4.0.1", "4.0.4", "4.0.6.0", "4.0.6.1.9"],
    "J139": ["2.0", "3.0", "4.0.1", "4.0.4", "4.0.6.0", "4.0.6.1.9"],
    "J159": ["2.0", "4.0.3", "4.0.4", "4.0.6.0", "4.0.6.1.9"],
    "J169": ["2.0", "3.0", "4.0.1", "4.0.4", "4.0.6.0", "4.0.6.1.9"],
    "J179": ["2.0", "3.0", "4.0.1", "4.0.4", "4.0.6.0", "4.0.6.1.9"],
    "J189": ["2.0", "4.0.5", "4.0.6.0", "4.0.6.1.9"],
}
APPENDIX_A_MINIMUMS: dict[str, list[str]] = {
    **_J,
    "K155": ["2.0", "2.1", "2.0.5"],
    "K165": ["1.1", "1.1SP1", "2.0", "2.1", "2.0.5"],
    "K175": ["1.1", "1.1SP1", "2.0", "2.1", "2.0.5"],
    "K155-HW3": ["3.0"],
    "K175-HW3": ["3.0"],
    "B199": ["1.0.1", "1.0.3.0", "1.0.1.0.9"],
    "CU360": ["11.3.0.40"],
}
# Appendix A's "Provisioning URLs" row: the lowest version that can enroll (redirect).
PROVISIONING_URL_MINIMUM = {
    "J129": "2.0",
    "J139": "3.0",
    "J159": "4.0.3",
    "J169": "2.0",
    "J179": "2.0",
    "J189": "4.0.5",
    "K155": "2.0",
    "K165": "1.1",
    "K175": "1.1",
    "K155-HW3": "3.0",
    "K175-HW3": "3.0",
    "B199": "1.0.1",
    "CU360": "11.3.0.40",
}
NOT_UPGRADABLE = {"B199", "CU360"}  # Appendix A: "Firmware upgrade N/A"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def raw_catalog() -> dict[str, Any]:
    return copy.deepcopy(fixtures.load_json("firmware-catalog.json"))


def test_fw1_shipped_catalog_matches_its_schema() -> None:
    jsonschema.validate(
        fixtures.load_json("firmware-catalog.json"),
        fixtures.load_json("schemas/firmware-catalog.schema.json"),
    )


def test_fw1_catalog_lists_every_supported_model(catalog: Catalog) -> None:
    assert set(catalog.models()) == set(PROVISIONING_URL_MINIMUM)


@pytest.mark.parametrize(("model", "minimum"), sorted(PROVISIONING_URL_MINIMUM.items()))
def test_fw1_minimum_is_appendix_a_provisioning_url_release(catalog: Catalog, model: str, minimum: str) -> None:
    assert catalog.minimum(model) == parse_version(minimum)


@pytest.mark.parametrize("model", sorted(APPENDIX_A_MINIMUMS))
def test_fw1_releases_straddle_every_appendix_a_minimum(catalog: Catalog, model: str) -> None:
    releases = catalog.releases(model)
    for text in APPENDIX_A_MINIMUMS[model]:
        minimum = parse_version(text)
        assert any(r < minimum for r in releases), f"{model}: no release below {text}"
        assert any(r == minimum for r in releases), f"{model}: {text} itself is not a release"
        assert any(r > minimum for r in releases), f"{model}: no release above {text}"


@pytest.mark.parametrize("model", sorted(PROVISIONING_URL_MINIMUM))
def test_fw1_releases_ascending_latest_last_minimum_below(catalog: Catalog, model: str) -> None:
    releases = catalog.releases(model)
    assert list(releases) == sorted(releases)
    assert len(set(releases)) == len(releases)
    assert catalog.latest(model) == releases[-1]
    assert catalog.minimum(model) <= catalog.latest(model)


@pytest.mark.parametrize("model", sorted(PROVISIONING_URL_MINIMUM))
def test_fw1_upgradable_follows_appendix_a(catalog: Catalog, model: str) -> None:
    assert catalog.model(model).upgradable == (model not in NOT_UPGRADABLE)


def test_fw1_protocol_example_versions_are_releases(catalog: Catalog) -> None:
    # PROTOCOL.md §4's fleet example: J179@4.1.3.0, K175@3.0, B199@1.0.3.0.
    assert parse_version("4.1.3.0") in catalog.releases("J179")
    assert parse_version("3.0") in catalog.releases("K175")
    assert parse_version("1.0.3.0") in catalog.releases("B199")


def test_fw1_catalog_loaded_once(catalog: Catalog) -> None:
    assert Catalog.load() is catalog


def test_fw1_aliases_resolve(catalog: Catalog) -> None:
    assert catalog.model("HW-3 K175").name == "K175-HW3"
    assert catalog.model("K155 HW-3").name == "K155-HW3"
    assert catalog.model("700513893").name == "CU360"
    assert catalog.model("K175-HW3").model4 == "K175"


@pytest.mark.parametrize("name", ["J999", "j179", "", None])
def test_fw1_unknown_model_refused(catalog: Catalog, name: object) -> None:
    with pytest.raises(DomainError) as caught:
        catalog.model(name)  # type: ignore[arg-type]
    assert caught.value.error == "unknown-model"
    assert caught.value.value == name


def test_sit3_last_n_releases_default_five_ending_at_latest(catalog: Catalog) -> None:
    assert [str(v) for v in catalog.last_n_releases("J179")] == [
        "4.0.10.0",
        "4.0.13.0",
        "4.1.1.0.7",
        "4.1.3.0",
        "4.1.11.0.9",
    ]
    assert [str(v) for v in catalog.last_n_releases("K165", 2)] == ["3.0", "3.1"]
    assert len(catalog.last_n_releases("CU360", 10)) == 4
    with pytest.raises(DomainError) as caught:
        catalog.last_n_releases("J179", 0)
    assert caught.value.error == "invalid-last-n"


def test_sit3_releases_after_latest_not_offered() -> None:
    data = raw_catalog()
    data["models"]["J179"]["latest"] = "4.1.1.0.7"
    held_back = Catalog.from_data(data)
    assert held_back.last_n_releases("J179")[-1] == parse_version("4.1.1.0.7")
    assert resolve_firmware(True, "latest", "J179", held_back) == "4.1.1.0.7"


def test_fw4_j100_below_2_0_needs_manual_upgrade(catalog: Catalog) -> None:
    assert catalog.needs_manual_upgrade("J179", "1.5")
    assert not catalog.needs_manual_upgrade("J179", "2.0")
    assert not catalog.needs_manual_upgrade("K175", "1.0")


def test_fw4_manual_upgrade_refused_with_guide_reason(catalog: Catalog) -> None:
    gate = check_minimum("J169", "1.5", catalog, upgrade_to="4.1.11.0.9")
    assert gate.action == "refuse"
    assert gate.reason == "manual-upgrade-required"
    assert gate.detail == "manual upgrade to 2.0 and factory reset required"


def test_fw4_at_or_above_minimum_proceeds(catalog: Catalog) -> None:
    assert check_minimum("J159", "4.0.3", catalog, upgrade_to=None).action == "proceed"
    assert check_minimum("K165", "1.1", catalog, upgrade_to=None).action == "proceed"
    assert check_minimum("J179", "4.1.3.0", catalog, upgrade_to=None).action == "proceed"


def test_fw4_below_minimum_upgraded_when_allowed(catalog: Catalog) -> None:
    gate = check_minimum("J159", "4.0.1", catalog, upgrade_to="4.1.11.0.9")
    assert (gate.action, gate.version) == ("upgrade", "4.1.11.0.9")


def test_fw4_below_minimum_refused_when_upgrade_not_allowed(catalog: Catalog) -> None:
    gate = check_minimum("J159", "4.0.1", catalog, upgrade_to=None)
    assert (gate.action, gate.reason) == ("refuse", "firmware-below-minimum")


def test_fw4_upgrade_target_below_minimum_not_sent(catalog: Catalog) -> None:
    gate = check_minimum("J159", "4.0.1", catalog, upgrade_to="4.0.2")
    assert (gate.action, gate.reason) == ("refuse", "firmware-below-minimum")


def test_fw4_non_upgradable_model_below_minimum_refused(catalog: Catalog) -> None:
    gate = check_minimum("B199", "1.0.0", catalog, upgrade_to="1.0.4.0")
    assert (gate.action, gate.reason) == ("refuse", "firmware-below-minimum")


def test_fw2_unclaimed_device_sent_latest_if_model_upgradable(catalog: Catalog) -> None:
    assert firmware_for_unclaimed("J179", catalog) == "4.1.11.0.9"
    assert firmware_for_unclaimed("K175-HW3", catalog) == "3.2"
    assert firmware_for_unclaimed("B199", catalog) is None
    assert firmware_for_unclaimed("CU360", catalog) is None


@pytest.mark.parametrize("setting", ["same-as-account", "latest", "4.1.3.0", None])
def test_fw3_claimed_device_upgrade_off_by_default(catalog: Catalog, setting: str | None) -> None:
    assert resolve_firmware(False, setting, "J179", catalog) is None


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("same-as-account", "4.1.11.0.9"),
        (None, "4.1.11.0.9"),
        ("latest", "4.1.11.0.9"),
        ("off", None),
        ("4.1.3.0", "4.1.3.0"),
        ("4.1.3", "4.1.3.0"),
        (FirmwareSetting(FirmwareChoice.VERSION, parse_version("4.0.13.0")), "4.0.13.0"),
    ],
)
def test_fw3_sit3_site_setting_picks_version_when_on(catalog: Catalog, setting: object, expected: str | None) -> None:
    assert resolve_firmware(True, setting, "J179", catalog) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("account_setting", "expected"),
    [("latest", "4.1.11.0.9"), ("off", None), ("4.1.1.0.7", "4.1.1.0.7"), (None, "4.1.11.0.9")],
)
def test_fw3_same_as_account_follows_account_setting(
    catalog: Catalog, account_setting: str | None, expected: str | None
) -> None:
    assert resolve_firmware(True, "same-as-account", "J179", catalog, account_setting=account_setting) == expected


def test_fw3_site_setting_overrides_account_setting(catalog: Catalog) -> None:
    assert resolve_firmware(True, "latest", "J179", catalog, account_setting="off") == "4.1.11.0.9"


def test_fw3_pinned_version_that_left_catalog_sends_nothing(catalog: Catalog) -> None:
    assert resolve_firmware(True, "4.1.12.0.1", "J179", catalog) is None


def test_fw3_non_upgradable_model_never_sent_firmware(catalog: Catalog) -> None:
    assert resolve_firmware(True, "latest", "B199", catalog) is None
    assert resolve_firmware(True, "1.0.4.0", "CU360", catalog) is None


def _mutate(path: list[str], value: Any) -> dict[str, Any]:
    data = raw_catalog()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (["models", "J179", "minimum"], _DELETE, "'minimum' is a required property"),
        (["models", "J179", "latest"], "4.01", "does not match"),
        (["models", "J179", "last_n"], 0, "less than the minimum"),
        (["models", "J179", "upgradable"], "yes", "not of type 'boolean'"),
        (["models", "J179", "colour"], "red", "Additional properties"),
        (["models", "J179", "releases"], ["2.0", "1.5"], "strictly ascending"),
        (["models", "J179", "releases"], ["2.0", "2.0.0"], "strictly ascending"),
        (["models", "J179", "latest"], "4.1.12.0.1", "not one of its releases"),
        (["models", "J179", "minimum"], "5.0", "above latest"),
        (["models", "J179", "manual_upgrade_below"], "3.0", "above its minimum"),
        (["models", "J179", "aliases"], ["J169"], "used twice"),
        (["schema_version"], 2, "schema_version"),
    ],
)
def test_fw1_inconsistent_catalog_refused(path: list[str], value: Any, why: str) -> None:
    with pytest.raises(DomainError) as caught:
        Catalog.from_data(_mutate(path, value))
    assert caught.value.error == "invalid-firmware-catalog"
    assert why in caught.value.detail or why in str(caught.value.value)
