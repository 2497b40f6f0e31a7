"""`simulators.capabilities`: what a model at a firmware can do, from data only (Appendix A,
the firmware catalog, fixtures/phone-models.json)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

import fixtures
from fixtures.features import FeatureMatrix
from simulators.capabilities import REFUSES_WILDCARDS, Capabilities, PhoneModelsError


@pytest.fixture(scope="module")
def caps() -> Capabilities:
    return Capabilities.load()


def test_the_three_fixtures_list_the_same_models(caps: Capabilities) -> None:
    assert caps.models() == FeatureMatrix.load().models()
    assert set(caps.models()) == set(fixtures.load_json("firmware-catalog.json")["models"])
    assert caps.model("HW-3 K175").name == "K175-HW3"  # the catalog's aliases resolve
    assert caps.model("700513892").name == "CU360"
    with pytest.raises(KeyError, match="unknown model 'X999'"):
        caps.model("X999")


@pytest.mark.parametrize(
    ("model", "firmware", "feature", "expected"),
    [
        ("J179", "2.0", "provisioning-urls", True),
        ("J179", "2.0", "http-provisioning-url", False),
        ("J179", "3.0", "http-provisioning-url", True),
        ("K165", "1.1", "http-provisioning-url", False),
        ("K165", "1.1SP1", "HTTP provisioning URL", True),  # by label, service pack ordering
        ("K175", "3.1", "provisioning-url-with-ip-address", False),  # N/A
        ("K175-HW3", "3.0", "re-trigger-after-firmware-upgrade", True),
        ("B199", "1.0.4.0", "device-group-id", False),
        ("CU360", "11.4.0.20", "re-trigger-after-firmware-upgrade", False),
        ("CU360", "11.4.0.20", "des-as-provisioning-server", True),
    ],
)
def test_supports_is_appendix_a(caps: Capabilities, model: str, firmware: str, feature: str, expected: bool) -> None:
    assert caps.supports(model, firmware, feature) is expected
    assert caps.supports(model, firmware, feature) is expected  # memoised answer agrees


@pytest.mark.parametrize(
    ("model", "firmware", "formats"),
    [
        ("J179", "4.1.11.0.9", ("nec8", "nec12", "pec12")),
        ("J179", "4.0.3", ("nec8", "nec12")),  # PEC from 4.0.4
        ("J129", "2.0", ()),  # codes from 3.0
        ("K175", "3.1", ("nec8", "nec12")),  # PEC N/A on Vantage
        ("K155", "1.1SP1", ()),
        ("B199", "1.0.4.0", ("nec8",)),  # 12-digit N/A
        ("CU360", "11.3.0.40", ("nec8", "nec12", "pec12")),
    ],
)
def test_enr3_code_formats_come_from_the_matrix(
    caps: Capabilities, model: str, firmware: str, formats: tuple[str, ...]
) -> None:
    assert caps.code_formats(model, firmware) == formats


def test_upgrade_scripts_per_family(caps: Capabilities) -> None:
    """research §1: J100Supgrade.txt / K1xxSupgrade.txt; B199 and CU360 start at 46xxsettings.txt."""
    first = {name: caps.model(name).first_file for name in caps.models()}
    assert {first[m] for m in ("J129", "J139", "J159", "J169", "J179", "J189")} == {"J100Supgrade.txt"}
    assert {first[m] for m in ("K155", "K165", "K175", "K155-HW3", "K175-HW3")} == {"K1xxSupgrade.txt"}
    assert first["B199"] == first["CU360"] == "46xxsettings.txt"
    assert caps.model("B199").upgrade_script is None


@pytest.mark.parametrize(
    ("model", "firmware", "refuses"),
    [
        ("K155", "2.2", True),
        ("K175", "2.2", True),
        ("K175", "3.0", False),  # R3.0 added wildcard support
        ("K165", "3.1", False),
        ("K175-HW3", "3.2", False),
        ("B199", "1.0.4.0", True),
        ("CU360", "11.4.0.20", True),
        ("J179", "4.1.11.0.9", False),
        ("J129", "2.0", False),
    ],
)
def test_prf6_wildcard_quirk_by_model_and_version(caps: Capabilities, model: str, firmware: str, refuses: bool) -> None:
    assert caps.has_quirk(model, firmware, REFUSES_WILDCARDS) is refuses
    if refuses:
        assert all(q.source for q in caps.model(model).quirks)


def test_variables_a_script_sees(caps: Capabilities) -> None:
    """research §4: $MODEL4/$MODEL/$MACADDR/$SERIALNO/$GROUP/$APPNAME_IN_USE/$HWVERS; $MODEL6
    and $GEN only on Vantage from 3.0; data-defined SIG/SIG_IN_USE."""
    j179 = caps.variables("J179", "4.1.3.0", "A4251B0C3D5E", "21wz51234567", group=7)
    assert j179 == {
        "MODEL4": "J179",
        "MODEL": "J179D02A",
        "MACADDR": "A4251B0C3D5E",
        "MACADDR_UPPER": "A4251B0C3D5E",
        "SERIALNO": "21WZ51234567",
        "SERIALNO_UPPER": "21WZ51234567",
        "GROUP": "7",
        "APPNAME_IN_USE": "4.1.3.0",
        "HWVERS": "1",
        "SIG": "2",
        "SIG_IN_USE": "SIP",
    }
    assert "MODEL6" not in caps.variables("K175", "2.2", "A4251B0C3D5E", "S")
    new = caps.variables("K175", "3.1", "A4251B0C3D5E", "S", hwvers="9")
    assert (new["MODEL6"], new["GEN"], new["HWVERS"]) == ("K175CW", "B", "9")
    assert caps.variables("CU360", "11.4.0.20", "A4251B0C3D5E", "S")["MODEL4"] == "CU36"
    assert caps.model("K175").value_lengths == {"TRUSTCERTS": 1024}
    assert caps.model("J179").value_lengths == {}


def test_random_mac_uses_the_models_ouis(caps: Capabilities) -> None:
    rng = random.Random(4)
    macs = [caps.random_mac("J179", rng) for _ in range(50)]
    assert all(len(m) == 12 and m[:6] in caps.model("J179").ouis for m in macs)
    again = random.Random(4)
    assert [caps.random_mac("J179", again) for _ in range(50)] == macs  # deterministic from the seed


def _doc() -> dict[str, Any]:
    return copy.deepcopy(fixtures.load_json("phone-models.json"))


def test_broken_phone_models_are_refused() -> None:
    doc = _doc()
    doc["models"]["J179"]["quirks"] = [{"id": "refuses-everything", "source": "x"}]
    with pytest.raises(PhoneModelsError, match="refuses-everything"):
        Capabilities.from_documents(doc)
    doc = _doc()
    del doc["models"]["CU360"]
    with pytest.raises(PhoneModelsError, match=r"missing \['CU360'\]"):
        Capabilities.from_documents(doc)
    doc = _doc()
    doc["models"]["K175-HW3"]["model4"] = "K176"
    with pytest.raises(PhoneModelsError, match="differs from firmware-catalog.json's 'K175'") as err:
        Capabilities.from_documents(doc)
    assert err.value.where == "models.K175-HW3.model4"
    doc = _doc()
    doc["models"]["J179"]["prompt_seconds"] = 0
    with pytest.raises(PhoneModelsError):
        Capabilities.from_documents(doc)
