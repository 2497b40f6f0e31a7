"""DEV-1: device import files (JSON, CSV, ZIP) — parsing, row errors, whole-file refusals."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from server.domain import imports
from server.domain.errors import DomainError
from server.domain.imports import DeviceRow, RowError, mark_existing, parse_import

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "fixtures" / "samples"
SCHEMA = ROOT / "fixtures" / "schemas" / "device-import.schema.json"


def tp(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest().upper()


def csv_bytes(*lines: str, bom: bool = False) -> bytes:
    text = "\n".join(lines) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def json_bytes(devices: object) -> bytes:
    return json.dumps({"devices": devices}).encode()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buf.getvalue()


def refused(data: bytes, **kwargs: object) -> DomainError:
    with pytest.raises(DomainError) as info:
        parse_import(data, **kwargs)  # type: ignore[arg-type]
    return info.value


def errors_by_row(errors: list[RowError]) -> dict[int, list[tuple[str | None, str]]]:
    result: dict[int, list[tuple[str | None, str]]] = {}
    for error in errors:
        result.setdefault(error.row, []).append((error.field, error.reason))
    return result


HEADER = "mac,serial,model,thumbprint,manufactured_at,reseller_order_id"


# --- samples and schema ------------------------------------------------------------------------


def test_dev1_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_dev1_schema_properties_are_the_protocol_fields() -> None:
    device = json.loads(SCHEMA.read_text())["$defs"]["device"]
    assert list(device["properties"]) == list(imports.FIELDS)
    assert device["required"] == ["mac", "serial", "model"]


def test_dev1_sample_json_validates_against_the_published_schema() -> None:
    document = json.loads((SAMPLES / "devices-import.json").read_text())
    Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)


@pytest.mark.parametrize("name", ["devices-import.csv", "devices-import.json"])
def test_dev1_samples_import_three_devices_without_errors(name: str) -> None:
    result = parse_import((SAMPLES / name).read_bytes(), filename=name)
    assert result.errors == []
    assert [row.model for row in result.rows] == ["J179", "K175", "B199"]
    assert all(row.manufactured_at is not None and row.manufactured_at.tzinfo for row in result.rows)


# --- CSV ---------------------------------------------------------------------------------------


def test_dev1_csv_rows_are_normalised() -> None:
    colons = ":".join(tp("a")[i : i + 2].lower() for i in range(0, 64, 2))
    data = csv_bytes(
        "MAC , Serial,model,thumbprint,manufactured_at,order_id,aco_product_id",
        f" a4:25:1b:0c:3d:5e ,21WZ51234567,J179,{colons},2021-06-14 08:30:00,AV-1,",
    )
    result = parse_import(data)
    assert result.format == "csv"
    assert result.errors == []
    (row,) = result.rows
    assert row == DeviceRow(
        mac="A4251B0C3D5E",
        serial="21WZ51234567",
        model="J179",
        thumbprint=tp("a"),
        manufactured_at=datetime(2021, 6, 14, 8, 30, tzinfo=UTC),
        order_id="AV-1",
        aco_product_id=None,
        file=None,
        row=2,
    )


def test_dev1_csv_offset_datetime_stays_aware() -> None:
    data = csv_bytes("mac,serial,model,manufactured_at", "A4251B0C3D5E,S1,J179,2022-01-20T13:05:00+01:00")
    (row,) = parse_import(data).rows
    assert row.manufactured_at == datetime(2022, 1, 20, 13, 5, tzinfo=timezone(timedelta(hours=1)))


def test_dev1_csv_row_numbers_are_spreadsheet_rows_header_is_row_1() -> None:
    data = csv_bytes(
        HEADER,
        f"A4251B000001,S1,J179,{tp('1')},2021-01-01T00:00:00Z,",  # row 2: fine
        f"A4251B000002,,J179,{tp('2')},,",  # row 3: no serial
        f"A4251B000003,S3,K175,{tp('3')}AB,,",  # row 4: thumbprint too long
        f"ZZ251B000004,S4,B199,{tp('4')},not-a-date,",  # row 5: bad MAC and date
    )
    result = parse_import(data)
    assert [row.row for row in result.rows] == [2]
    assert errors_by_row(result.errors) == {
        3: [("serial", "missing-field")],
        4: [("thumbprint", "invalid-thumbprint")],
        5: [("mac", "invalid-mac"), ("manufactured_at", "invalid-date-time")],
    }
    bad_mac = result.errors[2]
    assert bad_mac.value == "ZZ251B000004"
    assert "MAC" in bad_mac.detail


def test_dev1_csv_blank_lines_count_and_quoted_newlines_do_not() -> None:
    data = b'mac,serial,model,hardware\n\nA4251B000001,S1,J179,"two\nlines"\n,,,\nA4251B000002,S2,BAD MODEL!,\n'
    result = parse_import(data)
    assert [row.row for row in result.rows] == [3]
    assert result.rows[0].hardware == "two\nlines"
    assert errors_by_row(result.errors) == {5: [("model", "invalid-model")]}


def test_dev1_csv_with_utf8_bom() -> None:
    data = csv_bytes("mac,serial,model", "C81FEA12A0B4,22KX60012345,K175", bom=True)
    (row,) = parse_import(data).rows
    assert row.mac == "C81FEA12A0B4"


def test_dev1_csv_semicolon_delimiter() -> None:
    data = csv_bytes("mac;serial;model", "2CF4C5E01F77;20BN71000042;B199")
    (row,) = parse_import(data).rows
    assert (row.mac, row.serial, row.model) == ("2CF4C5E01F77", "20BN71000042", "B199")


def test_dev1_csv_unknown_column_is_a_row_error_naming_the_field() -> None:
    data = csv_bytes("mac,serial,model,colour", "A4251B000001,S1,J179,red", "A4251B000002,S2,J179,")
    result = parse_import(data)
    assert [row.mac for row in result.rows] == ["A4251B000002"]
    (error,) = result.errors
    assert (error.row, error.field, error.reason, error.value) == (2, "colour", "unknown-field", "red")


def test_dev1_csv_extra_cells_is_a_row_error() -> None:
    result = parse_import(csv_bytes("mac,serial,model", "A4251B000001,S1,J179,surplus"))
    (error,) = result.errors
    assert (error.row, error.field, error.reason) == (2, None, "extra-cells")


def test_dev1_csv_missing_required_columns_reported_per_row() -> None:
    result = parse_import(csv_bytes("mac,model", "A4251B000001,J179"))
    assert errors_by_row(result.errors) == {2: [("serial", "missing-field")]}


def test_dev1_csv_duplicate_header_refused() -> None:
    error = refused(csv_bytes("mac,serial,model,mac", "A4251B000001,S1,J179,A4251B000002"))
    assert error.error == "import-unsupported-format"
    assert "'mac'" in error.detail


def test_dev1_csv_without_header_refused() -> None:
    error = refused(csv_bytes("A4251B000001,S1,J179"), filename="devices.csv")
    assert error.error == "import-unsupported-format"
    assert "header" in error.detail


def test_dev1_csv_latin1_is_bad_encoding() -> None:
    data = "mac,serial,model,hardware\nA4251B000001,S1,J179,Révision\n".encode("latin-1")
    assert refused(data).error == "import-bad-encoding"


def test_dev1_csv_utf16_is_bad_encoding() -> None:
    data = "mac,serial,model\nA4251B000001,S1,J179\n".encode("utf-16")
    error = refused(data, filename="d.csv")
    assert error.error == "import-bad-encoding"
    assert "UTF-16" in error.detail


# --- JSON --------------------------------------------------------------------------------------


def test_dev1_json_rows_numbered_from_1_and_nulls_are_absent() -> None:
    data = json_bytes(
        [
            {"mac": "a4-25-1b-0c-3d-5e", "serial": "S1", "model": "J179", "order_id": None},
            {"mac": "A4251B0C3D5F", "serial": 12345, "model": "J179"},
            "not a device",
            {"mac": "A4251B0C3D60", "serial": "S3", "model": "J179", "thumbprint": tp("x")[:40]},
        ]
    )
    result = parse_import(data, content_type="application/json")
    assert result.format == "json"
    assert [(row.row, row.mac, row.order_id) for row in result.rows] == [(1, "A4251B0C3D5E", None)]
    assert errors_by_row(result.errors) == {
        2: [("serial", "invalid-serial")],
        3: [(None, "not-an-object")],
        4: [("thumbprint", "invalid-thumbprint")],
    }
    assert "text" in result.errors[0].detail


def test_dev1_json_unknown_field_is_a_row_error() -> None:
    result = parse_import(json_bytes([{"mac": "A4251B0C3D5E", "serial": "S1", "model": "J179", "colour": "red"}]))
    (error,) = result.errors
    assert (error.row, error.field, error.reason) == (1, "colour", "unknown-field")


def test_dev1_json_missing_required_fields_each_reported() -> None:
    result = parse_import(json_bytes([{"hardware": "1"}]))
    assert errors_by_row(result.errors) == {
        1: [("mac", "missing-field"), ("serial", "missing-field"), ("model", "missing-field")]
    }


def test_dev1_json_too_long_text_field() -> None:
    result = parse_import(json_bytes([{"mac": "A4251B0C3D5E", "serial": "S1", "model": "J179", "order_id": "x" * 129}]))
    (error,) = result.errors
    assert (error.field, error.reason) == ("order_id", "invalid-text")
    assert "128" in error.detail


@pytest.mark.parametrize(
    "document",
    [
        b"[]",
        b'[{"mac": "A4251B0C3D5E"}]',
        b'{"device": []}',
        b'{"devices": {}}',
        b'{"devices": [], "version": 1}',
        b'{"devices": [',
    ],
)
def test_dev1_json_of_the_wrong_shape_refused(document: bytes) -> None:
    assert refused(document).error == "import-unsupported-format"


def test_dev1_json_deeply_nested_refused_not_crashing() -> None:
    assert refused(b"[" * 100_000).error == "import-unsupported-format"


# --- duplicates ----------------------------------------------------------------------------------


def test_dev1_duplicate_mac_in_file_is_an_error_on_the_later_row() -> None:
    data = csv_bytes("mac,serial,model", "A4251B000001,S1,J179", "A4251B000002,S2,J179", "a4:25:1b:00:00:01,S3,K175")
    result = parse_import(data)
    assert [row.serial for row in result.rows] == ["S1", "S2"]
    (error,) = result.errors
    assert (error.row, error.field, error.reason) == (4, "mac", "duplicate-mac")
    assert "row 2" in error.detail


def test_dev1_duplicate_serial_in_file_is_an_error_on_the_later_row() -> None:
    data = json_bytes(
        [
            {"mac": "A4251B000001", "serial": "S1", "model": "J179"},
            {"mac": "A4251B000002", "serial": "S1", "model": "J179"},
        ]
    )
    (error,) = parse_import(data).errors
    assert (error.row, error.field, error.reason) == (2, "serial", "duplicate-serial")


def test_dev1_invalid_first_row_does_not_make_later_row_a_duplicate() -> None:
    data = csv_bytes("mac,serial,model", "A4251B000001,S1,", "A4251B000001,S1,J179")
    result = parse_import(data)
    assert [row.row for row in result.rows] == [3]
    assert errors_by_row(result.errors) == {2: [("model", "missing-field")]}


def test_dev1_mark_existing_refuses_macs_and_serials_already_stored() -> None:
    rows = [
        DeviceRow(mac="A4251B000001", serial="S1", model="J179", row=2),
        DeviceRow(mac="A4251B000002", serial="S2", model="J179", row=3),
        DeviceRow(mac="A4251B000003", serial="S3", model="J179", row=4),
    ]
    kept, errors = mark_existing(rows, {"A4251B000001"}, {"S3", "S9"})
    assert [row.mac for row in kept] == ["A4251B000002"]
    assert [(e.row, e.field, e.reason) for e in errors] == [
        (2, "mac", "duplicate-mac"),
        (4, "serial", "duplicate-serial"),
    ]


# --- whole-file refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"hello, world\nthis is not an import\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"<?xml version='1.0'?><devices/>",
    ],
)
def test_dev1_not_an_import_format_refused(data: bytes) -> None:
    assert refused(data).error == "import-unsupported-format"


def test_dev1_hint_says_json_but_content_is_not() -> None:
    error = refused(b"mac-serial-model", filename="devices.json")
    assert error.error == "import-unsupported-format"
    assert "JSON" in error.detail


def test_dev1_content_wins_over_hint() -> None:
    data = json_bytes([{"mac": "A4251B0C3D5E", "serial": "S1", "model": "J179"}])
    assert parse_import(data, filename="devices.csv", content_type="text/csv").format == "json"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n\t",
        b"\xef\xbb\xbf",
        csv_bytes("mac,serial,model"),
        csv_bytes("mac,serial,model", ",,", ""),
        b'{"devices": []}',
    ],
)
def test_dev1_empty_import_refused(data: bytes) -> None:
    assert refused(data).error == "import-empty"


def test_dev1_too_large_file_refused() -> None:
    data = csv_bytes("mac,serial,model", "A4251B000001,S1,J179")
    error = refused(data, max_bytes=len(data) - 1)
    assert (error.error, error.status, error.value) == ("import-too-large", 413, len(data))


def test_dev1_too_many_rows_refused() -> None:
    data = csv_bytes("mac,serial,model", *(f"A4251B{i:06X},S{i},J179" for i in range(11)))
    assert refused(data, max_rows=10).error == "import-too-large"
    assert len(parse_import(data, max_rows=11).rows) == 11


# --- ZIP ---------------------------------------------------------------------------------------------


def test_dev1_zip_of_csv_and_json_samples() -> None:
    data = zip_bytes(
        {
            "batch/devices-import.csv": (SAMPLES / "devices-import.csv").read_bytes(),
            "batch/devices-import.json": (SAMPLES / "devices-import.json").read_bytes(),
            "batch/": b"",
        }
    )
    result = parse_import(data, filename="batch.zip")
    assert result.format == "zip"
    assert result.errors == []
    assert [(row.file, row.row) for row in result.rows] == [
        ("batch/devices-import.csv", 2),
        ("batch/devices-import.csv", 3),
        ("batch/devices-import.csv", 4),
        ("batch/devices-import.json", 1),
        ("batch/devices-import.json", 2),
        ("batch/devices-import.json", 3),
    ]


def test_dev1_zip_errors_name_the_member_and_duplicates_span_members() -> None:
    data = zip_bytes(
        {
            "a.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179", "A4251B000002,S2,"),
            "b.JSON": json_bytes([{"mac": "A4251B000001", "serial": "S9", "model": "J179"}]),
        }
    )
    result = parse_import(data)
    assert [(e.file, e.row, e.field, e.reason) for e in result.errors] == [
        ("a.csv", 3, "model", "missing-field"),
        ("b.JSON", 1, "mac", "duplicate-mac"),
    ]
    assert "a.csv, row 2" in result.errors[1].detail


def test_dev1_zip_ignores_macos_metadata() -> None:
    data = zip_bytes(
        {
            "devices.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179"),
            "__MACOSX/._devices.csv": b"\x00\x05\x16\x07binary",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    assert len(parse_import(data).rows) == 1


def test_dev1_zip_bomb_refused_by_declared_size() -> None:
    data = zip_bytes({"bomb.csv": b"mac,serial,model\n" + b"0" * (11 * 1024 * 1024)})
    assert len(data) < 100_000
    error = refused(data)
    assert error.error == "import-too-large"


def test_dev1_zip_total_over_limit_across_members_refused() -> None:
    payload = csv_bytes("mac,serial,model", "A4251B000001,S1,J179")
    data = zip_bytes({"a.csv": payload, "b.csv": payload})
    assert refused(data, max_bytes=len(payload) + 10).error == "import-too-large"


def test_dev1_zip_with_lying_size_header_refused() -> None:
    data = bytearray(zip_bytes({"a.csv": b"mac,serial,model\n" + b"x" * 50_000}))
    # Declare 100 bytes in both the local header and the central directory.
    struct.pack_into("<I", data, 22, 100)
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 100)
    assert refused(bytes(data)).error == "import-bad-zip"


def test_dev1_zip_member_inflating_past_its_budget_refused() -> None:
    data = zip_bytes({"a.csv": b"x" * 1000})
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(DomainError) as info:
        imports._read_member(archive, archive.infolist()[0], budget=999)
    assert info.value.error == "import-too-large"


@pytest.mark.parametrize("name", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv", "C:\\evil.csv", "..\\evil.csv"])
def test_dev1_zip_path_traversal_refused(name: str) -> None:
    error = refused(zip_bytes({name: csv_bytes("mac,serial,model", "A4251B000001,S1,J179")}))
    assert (error.error, error.value) == ("import-bad-zip", name)


def test_dev1_nested_zip_refused() -> None:
    inner = zip_bytes({"devices.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179")})
    error = refused(zip_bytes({"inner.zip": inner}))
    assert (error.error, error.value) == ("import-unsupported-format", "inner.zip")


def test_dev1_zip_disguised_as_json_member_refused() -> None:
    inner = zip_bytes({"devices.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179")})
    error = refused(zip_bytes({"devices.json": inner}))
    assert (error.error, error.value) == ("import-unsupported-format", "devices.json")


def test_dev1_zip_other_member_types_refused_naming_the_member() -> None:
    data = zip_bytes({"devices.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179"), "notes.txt": b"hi"})
    error = refused(data)
    assert (error.error, error.value) == ("import-unsupported-format", "notes.txt")
    assert "notes.txt" in error.detail


def test_dev1_zip_encrypted_member_refused() -> None:
    data = bytearray(zip_bytes({"devices.csv": csv_bytes("mac,serial,model", "A4251B000001,S1,J179")}))
    # zipfile cannot write encrypted members: set the "encrypted" flag bit in both headers.
    data[6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    error = refused(bytes(data))
    assert (error.error, error.value) == ("import-bad-zip", "devices.csv")


def test_dev1_zip_member_with_bad_encoding_names_it() -> None:
    error = refused(zip_bytes({"d.csv": "mac,serial,model\nA4251B000001,Sé,J179\n".encode("latin-1")}))
    assert (error.error, error.value) == ("import-bad-encoding", "d.csv")


@pytest.mark.parametrize("data", [b"PK\x03\x04garbage-not-a-zip", b"PK\x05\x06" + b"\x00" * 5])
def test_dev1_broken_zip_refused(data: bytes) -> None:
    assert refused(data).error == "import-bad-zip"


def test_dev1_empty_zip_refused() -> None:
    assert refused(zip_bytes({})).error == "import-empty"


def test_dev1_zip_hint_without_zip_content_refused() -> None:
    assert refused(b"mac,serial,model\nA4251B000001,S1,J179\n", filename="devices.zip").error == "import-bad-zip"


# --- property: nothing but DomainError ------------------------------------------------------------

_fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_hints = st.sampled_from([None, "d.csv", "d.json", "d.zip", "d.bin"])


def _assert_only_domain_errors(data: bytes, filename: str | None) -> None:
    try:
        result = parse_import(data, filename=filename, max_bytes=1_000_000, max_rows=1_000)
    except DomainError as exc:
        assert exc.error.startswith("import-")
        return
    for row in result.rows:
        assert len(row.mac) == 12
    for error in result.errors:
        assert error.reason and error.row >= 1


@_fuzz
@given(data=st.binary(max_size=2_000), filename=_hints)
def test_dev1_arbitrary_bytes_raise_only_domain_errors(data: bytes, filename: str | None) -> None:
    _assert_only_domain_errors(data, filename)


@_fuzz
@given(
    tail=st.binary(max_size=500),
    magic=st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\xef\xbb\xbf{", b"{"]),
)
def test_dev1_arbitrary_bytes_after_magic_raise_only_domain_errors(tail: bytes, magic: bytes) -> None:
    _assert_only_domain_errors(magic + tail, None)


_cell = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@_fuzz
@given(
    header=st.lists(st.sampled_from([*imports.FIELDS, "junk", ""]), min_size=1, max_size=6),
    rows=st.lists(st.lists(_cell, max_size=7), max_size=5),
)
def test_dev1_arbitrary_csv_raises_only_domain_errors(header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join(",".join(cells) for cells in [header, *rows])
    _assert_only_domain_errors(text.encode("utf-8"), "d.csv")


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@_fuzz
@given(
    devices=st.lists(
        st.dictionaries(st.sampled_from([*imports.FIELDS, "junk"]), _json_value, max_size=6) | _json_value,
        max_size=5,
    )
)
def test_dev1_arbitrary_json_devices_raise_only_domain_errors(devices: list[object]) -> None:
    _assert_only_domain_errors(json.dumps({"devices": devices}).encode(), None)


@_fuzz
@given(members=st.dictionaries(st.sampled_from(["a.csv", "b.json", "c.CSV"]), st.binary(max_size=300), max_size=3))
def test_dev1_arbitrary_zip_members_raise_only_domain_errors(members: dict[str, bytes]) -> None:
    _assert_only_domain_errors(zip_bytes(members), "x.zip")
