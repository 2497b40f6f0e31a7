"""Appendix A ("Supported devices and features") as data: fixtures/feature-matrix.json and its
loader `fixtures.features` (ENR-4, FW-6), plus the shared `fixtures.versions` (PROTOCOL §1).

The expected table is parsed here from the guide's own text, not copied from the fixture, so
these tests check the fixture against the authority.
"""

from __future__ import annotations

import ast
import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fixtures
from fixtures.features import (
    FEATURES,
    FeatureMatrix,
    FeatureMatrixError,
    UnknownFeature,
    UnknownModel,
)
from fixtures.versions import Version, VersionError
from fixtures.versions import parse_version as fixtures_parse_version
from server.domain import identity
from server.domain.errors import DomainError

MATRIX = FeatureMatrix.load()
MATRIX_DOC: dict[str, Any] = fixtures.load_json("feature-matrix.json")
CATALOG_DOC: dict[str, Any] = fixtures.load_json("firmware-catalog.json")
CATALOG_MODELS: dict[str, Any] = CATALOG_DOC["models"]

# ---------------------------------------------------------------------------------------------
# The guide, read independently of the fixture
# ---------------------------------------------------------------------------------------------

GUIDE_ENV = "ENROLLAB_DES_GUIDE"
_GUIDE_NAME = Path("seeds") / "avaya-des-guide.txt"


def _guide_candidates() -> Iterator[Path]:
    if os.environ.get(GUIDE_ENV):
        yield Path(os.environ[GUIDE_ENV])
    project = Path(__file__).resolve().parents[2]
    yield project.parent / "shared" / _GUIDE_NAME
    yield project / _GUIDE_NAME
    yield project / "tests" / "data" / "des-guide-appendix-a.txt"  # the appendix, vendored for CI


def _expand_heading(heading: str) -> list[str]:
    """A column heading of Appendix A -> the catalog's model names it stands for."""
    name = heading.replace("Avaya Vantage\u2122", "").strip()
    hw3 = name.startswith("HW-3 ")
    name = name.removeprefix("HW-3 ")
    models = [m.strip() for m in name.split(" and ")]
    assert all(re.fullmatch(r"[A-Z]+[0-9]+", m) for m in models), heading
    return [f"{m}-HW3" if hw3 else m for m in models]


def _cell(text: str) -> str | None:
    """A cell of Appendix A -> the version as the fixture writes it, or None for N/A."""
    if text == "N/A":
        return None
    sp = re.fullmatch(r"([0-9.]+) \(Service pack ([0-9]+)\)", text)
    if sp:
        return f"{sp[1]}SP{sp[2]}"
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", text), f"unexpected cell {text!r}"
    return text


def _parse_appendix_a(text: str) -> tuple[list[str], dict[str, dict[str, str | None]]]:
    """(feature labels in the guide's order, {model: {label: minimum or None}})."""
    lines = text.splitlines()
    start = lines.index("# Appendix A: Supported devices and features")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("## Device enrollment feature descriptions"))
    labels: list[str] = []
    table: dict[str, dict[str, str | None]] = {}
    columns: list[list[str]] | None = None
    for line in lines[start:end]:
        cells = line.split("\t")
        if len(cells) < 2:
            continue
        if cells[0] == "Device enrollment features":
            columns = [_expand_heading(h) for h in cells[1:]]
            continue
        assert columns is not None, f"row before a table header: {line!r}"
        label, values = cells[0], cells[1:]
        assert len(values) == len(columns), line
        if label not in labels:
            labels.append(label)
        for group, value in zip(columns, values, strict=True):
            for model in group:
                assert label not in table.setdefault(model, {}), f"{model} {label} given twice"
                table[model][label] = _cell(value)
    return labels, table


@pytest.fixture(scope="module")
def guide() -> tuple[list[str], dict[str, dict[str, str | None]]]:
    for candidate in _guide_candidates():
        if candidate.is_file():
            return _parse_appendix_a(candidate.read_text(encoding="utf-8"))
    pytest.skip(f"the DES guide ({_GUIDE_NAME}) is not found; set {GUIDE_ENV} to its path")


def test_appendix_a_guide_has_16_features_and_13_models(guide: Any) -> None:
    labels, table = guide
    assert len(labels) == 16
    assert len(table) == 13
    assert all(len(cells) == 16 for cells in table.values())


def test_appendix_a_feature_labels_are_the_guides_in_its_order(guide: Any) -> None:
    labels, _ = guide
    assert list(FEATURES.values()) == labels
    assert [f["label"] for f in MATRIX_DOC["features"]] == labels


def test_appendix_a_models_are_the_guides_columns(guide: Any) -> None:
    _, table = guide
    assert list(MATRIX.models()) == list(table)


@pytest.mark.parametrize("model", list(CATALOG_MODELS))
def test_appendix_a_every_cell_matches_the_guide(guide: Any, model: str) -> None:
    _, table = guide
    expected = table[model]
    by_label = {MATRIX.features[fid]: value for fid, value in MATRIX_DOC["models"][model]["minimums"].items()}
    assert by_label == expected
    for label, value in expected.items():
        assert MATRIX.minimum(model, label) == (None if value is None else fixtures_parse_version(value))


def test_appendix_a_column_headings_recorded_expand_to_their_models(guide: Any) -> None:
    for model, raw in MATRIX_DOC["models"].items():
        assert model in _expand_heading(raw["column"])


# ---------------------------------------------------------------------------------------------
# The fixture, its schema and its agreement with the firmware catalog
# ---------------------------------------------------------------------------------------------


def test_schema_is_valid_and_the_fixture_follows_it() -> None:
    schema = fixtures.load_json("schemas/feature-matrix.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(MATRIX_DOC)


def test_source_names_the_guide_issue_and_page() -> None:
    source = MATRIX.source
    assert source["section"] == "Appendix A: Supported devices and features"
    assert source["page"] == 75
    assert source["issue"] == "Issue 22"
    assert "Device Enrollment Services" in source["document"]


def test_feature_ids_are_stable_kebab_case() -> None:
    assert len(FEATURES) == 16
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", fid) for fid in FEATURES)
    assert FEATURES["provisioning-urls"] == "Provisioning URLs"
    assert FEATURES["http-provisioning-url"] == "HTTP provisioning URL"
    assert FEATURES["des-as-provisioning-server"] == "Device Enrollment Services as Provisioning Server"
    assert FEATURES["avaya-cloud-office-support"] == "Avaya Cloud Office\u2122 support"


def test_model_names_and_families_agree_with_the_firmware_catalog() -> None:
    assert list(MATRIX.models()) == list(CATALOG_MODELS)
    for model, raw in CATALOG_MODELS.items():
        assert MATRIX.family(model) == raw["family"]
    assert {MATRIX.family(m) for m in MATRIX.models()} == {"J100", "Vantage", "B199", "CU360"}


@pytest.mark.parametrize("model", list(CATALOG_MODELS))
def test_catalog_minimum_is_provisioning_urls_and_upgradable_is_firmware_upgrade(model: str) -> None:
    raw = CATALOG_MODELS[model]
    assert MATRIX.minimum(model, "provisioning-urls") == fixtures_parse_version(raw["minimum"])
    assert raw["upgradable"] == (MATRIX.minimum(model, "firmware-upgrade") is not None)


def test_guide_quirks_are_recorded() -> None:
    assert MATRIX.minimum("B199", "avaya-cloud-office-support") == fixtures_parse_version("1.0.1.0.9")
    assert MATRIX.minimum("B199", "des-as-provisioning-server") is None
    assert MATRIX.minimum("CU360", "des-as-provisioning-server") == fixtures_parse_version("11.3.0.40")
    assert MATRIX_DOC["models"]["K165"]["minimums"]["http-provisioning-url"] == "1.1SP1"
    b199_notes = " ".join(MATRIX_DOC["models"]["B199"]["notes"])
    assert "1.0.1.0.9" in b199_notes
    assert "Provisioning Server" in b199_notes
    assert any("Provisioning Server" in note for note in MATRIX_DOC["notes"])


def _broken(edit: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    matrix, catalog = copy.deepcopy(MATRIX_DOC), copy.deepcopy(CATALOG_DOC)
    edit(matrix, catalog)
    return matrix, catalog


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda m, c: m["models"]["J179"]["minimums"].pop("device-group-id"), "models.J179"),
        (lambda m, c: m["models"]["J179"]["minimums"].update({"fax": "1.0"}), "models.J179"),
        (lambda m, c: m["models"].pop("K175-HW3"), "models"),
        (lambda m, c: c["models"].pop("CU360"), "models.CU360"),
        (lambda m, c: m["models"]["B199"].update(family="J100"), "models.B199"),
        (lambda m, c: m["models"]["J129"]["minimums"].update({"firmware-upgrade": "3.01"}), "models.J129"),
        (lambda m, c: m["models"]["J129"]["minimums"].update({"firmware-upgrade": "N/A"}), "models.J129"),
        (lambda m, c: m["features"].append(dict(m["features"][0])), "features"),
        (lambda m, c: m["features"][1].update(label="provisioning urls"), "features"),
        (lambda m, c: m.pop("source"), "(top level)"),
    ],
    ids=[
        "feature-missing",
        "feature-unknown",
        "model-missing",
        "model-not-in-catalog",
        "family-differs",
        "bad-version",
        "na-spelled-out",
        "feature-twice",
        "label-twice",
        "no-source",
    ],
)
def test_load_refuses_a_broken_or_disagreeing_fixture(edit: Any, where: str) -> None:
    with pytest.raises(FeatureMatrixError) as caught:
        FeatureMatrix.from_documents(*_broken(edit))
    assert caught.value.where.startswith(where)


def test_load_is_cached() -> None:
    assert FeatureMatrix.load() is FeatureMatrix.load()


# ---------------------------------------------------------------------------------------------
# supports(): both sides of every minimum
# ---------------------------------------------------------------------------------------------

CELLS = [(model, fid) for model in MATRIX.models() for fid in FEATURES]
SUPPORTED_CELLS = [(m, f) for m, f in CELLS if MATRIX.minimum(m, f) is not None]
NA_CELLS = [(m, f) for m, f in CELLS if MATRIX.minimum(m, f) is None]


def _releases(model: str) -> list[Version]:
    return [fixtures_parse_version(v) for v in CATALOG_MODELS[model]["releases"]]


@pytest.mark.parametrize(("model", "feature"), SUPPORTED_CELLS)
def test_supports_from_the_minimum_not_the_release_below(model: str, feature: str) -> None:
    minimum = MATRIX.minimum(model, feature)
    assert minimum is not None
    releases = _releases(model)
    below = [r for r in releases if r < minimum]
    from_minimum = [r for r in releases if r >= minimum]
    # The catalog straddles every minimum, so the lab can simulate both sides of it.
    assert minimum in releases
    assert below, f"the catalog has no {model} release below {minimum}"
    assert MATRIX.supports(model, minimum, feature) is True
    assert MATRIX.supports(model, str(minimum), feature) is True
    assert MATRIX.supports(model, max(below), feature) is False
    assert MATRIX.supports(model, str(max(below)), MATRIX.features[feature]) is False
    assert all(MATRIX.supports(model, r, feature) for r in from_minimum)
    assert not any(MATRIX.supports(model, r, feature) for r in below)


@pytest.mark.parametrize(("model", "feature"), NA_CELLS)
def test_na_is_never_supported(model: str, feature: str) -> None:
    for version in [*_releases(model), Version((99, 99, 99))]:
        assert MATRIX.supports(model, version, feature) is False
        assert feature not in MATRIX.supported_features(model, version)
    assert MATRIX.explain(model, "99.0", feature).endswith("not supported (N/A)")


def test_service_pack_orders_between_release_and_next() -> None:
    assert MATRIX.supports("K165", "1.1", "HTTP provisioning URL") is False
    assert MATRIX.supports("K165", "1.1SP1", "HTTP provisioning URL") is True
    assert MATRIX.supports("K165", "1.1 (Service pack 1)", "http-provisioning-url") is True
    assert MATRIX.supports("K175", "1.1.1", "http-provisioning-url") is True
    assert MATRIX.supports("K165", "1.1", "https-provisioning-url") is True
    assert "http-provisioning-url" not in MATRIX.supported_features("K165", "1.1")
    assert "http-provisioning-url" in MATRIX.supported_features("K165", "1.1SP1")


def test_enr4_examples() -> None:
    for vantage in ("K155", "K165", "K175", "K155-HW3", "K175-HW3"):
        assert not MATRIX.supports(vantage, "3.1", "Provisioning URL with IP address")
    assert MATRIX.supports("J179", "3.0", "Provisioning URL with IP address")


def test_version_order_is_numeric_not_lexical() -> None:
    assert MATRIX.supports("J179", "4.0.10", "Avaya Cloud Office support")  # 4.0.10 > 4.0.6.1.9
    assert not MATRIX.supports("J179", "4.0.6.1", "Avaya Cloud Office support")
    assert MATRIX.supports("J179", "4.0.6", "firmware-manager-tool")  # 4.0.6 == 4.0.6.0


@pytest.mark.parametrize("model", list(CATALOG_MODELS))
def test_supported_features_agrees_with_supports(model: str) -> None:
    for version in _releases(model):
        expected = {fid for fid in FEATURES if MATRIX.supports(model, version, fid)}
        assert MATRIX.supported_features(model, version) == frozenset(expected)


# ---------------------------------------------------------------------------------------------
# Names, aliases, errors and explain()
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", list(FEATURES))
def test_feature_by_id_or_guide_label(feature: str) -> None:
    label = FEATURES[feature]
    assert MATRIX.feature_id(feature) == feature
    assert MATRIX.feature_id(label) == feature
    assert MATRIX.feature_id(label.upper()) == feature
    assert MATRIX.label(feature) == label
    assert MATRIX.minimum("J179", label) == MATRIX.minimum("J179", feature)


def test_catalog_aliases_resolve() -> None:
    assert MATRIX.model("HW-3 K175").name == "K175-HW3"
    assert MATRIX.model("700513893").name == "CU360"
    assert MATRIX.supports("K155HW3", "3.0", "firmware-upgrade")


def test_unknown_model_is_a_key_error_naming_the_models() -> None:
    with pytest.raises(KeyError) as caught:
        MATRIX.supports("J199", "4.0", "firmware-upgrade")
    assert isinstance(caught.value, UnknownModel)
    assert caught.value.choices == MATRIX.models()
    assert "'J199'" in str(caught.value)
    assert "K175-HW3" in str(caught.value)


def test_unknown_feature_is_a_key_error_naming_the_features() -> None:
    with pytest.raises(KeyError) as caught:
        MATRIX.minimum("J179", "Fax")
    assert isinstance(caught.value, UnknownFeature)
    assert caught.value.choices == tuple(FEATURES)
    assert "des-as-provisioning-server" in str(caught.value)
    with pytest.raises(UnknownFeature):
        MATRIX.explain("J179", "4.0", "")


def test_bad_firmware_is_a_version_error() -> None:
    with pytest.raises(VersionError):
        MATRIX.supports("J179", "4.01", "firmware-upgrade")


@pytest.mark.parametrize(
    ("model", "firmware", "feature", "sentence"),
    [
        (
            "B199",
            "1.0.1",
            "12-digit-numeric-enrollment-code",
            "B199 1.0.1: 12-digit numeric enrollment code not supported (N/A)",
        ),
        ("J179", "2.0", "firmware-upgrade", "J179 2.0: Firmware upgrade needs 3.0"),
        ("J179", "3.0", "Firmware upgrade", "J179 3.0: Firmware upgrade supported (from 3.0)"),
        ("K165", "1.1 SP1", "http-provisioning-url", "K165 1.1SP1: HTTP provisioning URL supported (from 1.1SP1)"),
        ("K175", "1.1", "http-provisioning-url", "K175 1.1: HTTP provisioning URL needs 1.1SP1"),
        ("HW-3 K155", "2.2", "provisioning-urls", "K155-HW3 2.2: Provisioning URLs needs 3.0"),
        ("B199", "1.0.1", "avaya-cloud-office-support", "B199 1.0.1: Avaya Cloud Office\u2122 support needs 1.0.1.0.9"),
    ],
)
def test_explain_sentences(model: str, firmware: str, feature: str, sentence: str) -> None:
    assert MATRIX.explain(model, firmware, feature) == sentence


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_interesting = sorted(
    {fixtures_parse_version(v) for raw in CATALOG_MODELS.values() for v in raw["releases"]}
    | {v for m in MATRIX.models() for v in MATRIX.model(m).minimums.values() if v is not None}
)
versions = st.one_of(
    st.sampled_from(_interesting),
    st.builds(
        Version,
        st.lists(st.integers(min_value=0, max_value=12), min_size=2, max_size=6).map(tuple),
        st.integers(min_value=0, max_value=2),
    ),
)


@given(model=st.sampled_from(MATRIX.models()), feature=st.sampled_from(list(FEATURES)), a=versions, b=versions)
def test_supports_is_monotonic_in_firmware(model: str, feature: str, a: Version, b: Version) -> None:
    low, high = sorted([a, b])
    if MATRIX.supports(model, low, feature):
        assert MATRIX.supports(model, high, feature)
    assert MATRIX.supported_features(model, low) <= MATRIX.supported_features(model, high)


@given(model=st.sampled_from(MATRIX.models()), feature=st.sampled_from(list(FEATURES)), v=versions)
def test_explain_agrees_with_supports(model: str, feature: str, v: Version) -> None:
    sentence = MATRIX.explain(model, v, feature)
    assert sentence.startswith(f"{model} {v}: {FEATURES[feature]} ")
    assert sentence.endswith(f"supported (from {MATRIX.minimum(model, feature)})") == MATRIX.supports(model, v, feature)


# ---------------------------------------------------------------------------------------------
# fixtures.versions: the shared Version, and the server's wrapper
# ---------------------------------------------------------------------------------------------


def test_server_reexports_the_shared_version() -> None:
    assert identity.Version is Version
    assert identity.parse_version("1.1SP1") == fixtures_parse_version("1.1 (Service pack 1)")


def test_fixtures_version_error_has_the_stable_id_and_server_translates_it() -> None:
    with pytest.raises(VersionError) as caught:
        fixtures_parse_version("N/A")
    assert isinstance(caught.value, ValueError)
    assert caught.value.error == "invalid-version"
    assert caught.value.value == "N/A"
    with pytest.raises(DomainError) as translated:
        identity.parse_version("N/A")
    assert translated.value.error == "invalid-version"
    assert translated.value.detail == caught.value.detail
    assert translated.value.status == 422


def test_fixtures_imports_none_of_the_layers_above() -> None:
    above = {"server", "simulators", "harness", "conformance"}
    for source in Path(fixtures.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & above, f"{source.name} imports {names}"
