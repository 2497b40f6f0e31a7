"""SIT-1, SIT-3: site PIN, name, profile entry and the per-model firmware setting."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import fixtures
from server.domain.errors import DomainError
from server.domain.firmware import Catalog
from server.domain.identity import parse_version
from server.domain.sites import (
    DEFAULT_FIRMWARE_SETTING,
    FirmwareChoice,
    FirmwareSetting,
    parse_firmware_setting,
    validate_entry_index,
    validate_firmware_setting,
    validate_pin,
    validate_site_name,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def catalog_with(model: str, **changes: Any) -> Catalog:
    data = copy.deepcopy(fixtures.load_json("firmware-catalog.json"))
    data["models"][model].update(changes)
    return Catalog.from_data(data)


@pytest.mark.parametrize("pin", ["0000", "9999", "0042", "1234"])
def test_sit1_pin_four_digits_kept_as_text(pin: str) -> None:
    assert validate_pin(pin) == pin


def test_sit1_pin_is_optional() -> None:
    assert validate_pin(None) is None


@pytest.mark.parametrize("pin", ["", "123", "12345", "12a4", " 123", "123 ", "١٢٣٤", "-123", 1234, 42, True])
def test_sit1_pin_other_values_refused(pin: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_pin(pin)
    assert caught.value.error == "invalid-pin"
    assert caught.value.value == pin


def test_sit1_site_name() -> None:
    assert validate_site_name(" London HQ ") == "London HQ"
    for bad in ["", "   ", "x" * 129, "a\x00b", None]:
        with pytest.raises(DomainError) as caught:
            validate_site_name(bad)
        assert caught.value.error == "invalid-site-name"


def test_sit1_profile_entry_index() -> None:
    assert validate_entry_index(None, 1) == 0
    assert validate_entry_index(1, 2) == 1
    for bad in [2, -1, True, "0"]:
        with pytest.raises(DomainError) as caught:
            validate_entry_index(bad, 2)
        assert caught.value.error == "invalid-profile-entry"


def test_sit3_default_is_same_as_account() -> None:
    assert parse_firmware_setting(None) == DEFAULT_FIRMWARE_SETTING
    assert str(DEFAULT_FIRMWARE_SETTING) == "same-as-account"


@pytest.mark.parametrize("keyword", ["same-as-account", "latest", "off"])
def test_sit3_keywords(keyword: str, catalog: Catalog) -> None:
    setting = validate_firmware_setting(keyword, "J179", catalog)
    assert setting.choice == FirmwareChoice(keyword)
    assert setting.version is None
    assert str(setting) == keyword


def test_sit3_specific_version_among_last_five(catalog: Catalog) -> None:
    setting = validate_firmware_setting("4.0.13.0", "J179", catalog)
    assert setting == FirmwareSetting(FirmwareChoice.VERSION, parse_version("4.0.13.0"))
    assert str(setting) == "4.0.13.0"


def test_sit3_version_given_short_stored_in_catalog_spelling(catalog: Catalog) -> None:
    assert str(validate_firmware_setting("4.0.13", "J179", catalog)) == "4.0.13.0"


def test_sit3_version_older_than_last_n_refused(catalog: Catalog) -> None:
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting("4.0.8.0.7", "J179", catalog)
    assert caught.value.error == "firmware-not-offered"
    assert caught.value.value == "4.0.8.0.7"
    assert "4.0.10.0, 4.0.13.0, 4.1.1.0.7, 4.1.3.0, 4.1.11.0.9" in caught.value.detail


def test_sit3_n_is_per_model() -> None:
    narrow = catalog_with("J179", last_n=2)
    validate_firmware_setting("4.1.3.0", "J179", narrow)
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting("4.1.1.0.7", "J179", narrow)
    assert caught.value.error == "firmware-not-offered"
    validate_firmware_setting("4.1.1.0.7", "J169", narrow)


def test_sit3_offered_version_below_minimum_refused() -> None:
    strict = catalog_with("J179", minimum="4.1.3.0")
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting("4.1.1.0.7", "J179", strict)
    assert caught.value.error == "firmware-below-minimum"


@pytest.mark.parametrize("setting", ["newest", "", "4", "v4.1.3.0", 4.1, True])
def test_sit3_unparseable_setting_refused(setting: object, catalog: Catalog) -> None:
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting(setting, "J179", catalog)
    assert caught.value.error == "invalid-firmware-setting"
    assert caught.value.value == setting


def test_sit3_unknown_model_refused(catalog: Catalog) -> None:
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting("latest", "J999", catalog)
    assert caught.value.error == "unknown-model"


def test_sit3_account_level_has_no_same_as_account(catalog: Catalog) -> None:
    assert validate_firmware_setting("latest", "J179", catalog, account_level=True).choice is FirmwareChoice.LATEST
    with pytest.raises(DomainError) as caught:
        validate_firmware_setting("same-as-account", "J179", catalog, account_level=True)
    assert caught.value.error == "invalid-firmware-setting"
