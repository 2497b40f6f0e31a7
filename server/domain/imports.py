"""Device import files (DEV-1): JSON, CSV or a ZIP of those, parsed into validated rows.

Whole-file problems raise `DomainError` (`import-unsupported-format`, `import-empty`,
`import-too-large`, `import-bad-zip`, `import-bad-encoding`); problems of one row become a
`RowError` and the rest of the file still imports.

Row numbers are what a person sees when they open the file:
- CSV: the row number a spreadsheet shows, so the header is row 1 and the first data row is
  row 2; blank lines count (a spreadsheet shows them too), a quoted cell spanning several
  lines does not add rows.
- JSON: the 1-based position in the `devices` array.
Within a ZIP each error also names the member file.

Rows are checked by `fixtures/schemas/device-import.schema.json` (Draft 2020-12); this module
only normalises values before that check (trims cells, drops empty ones, writes MAC and
thumbprint canonically) and maps the validator's findings to (field, reason).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import stat
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from server.domain.devices import ORDER_FIELDS
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac
from server.domain.inputs import storable
from server.domain.plain_schema import PlainCheck
from server.domain.site_config import member_file_type

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
MAX_ZIP_MEMBERS = 1_000
SCHEMA_RESOURCE = ("fixtures", "schemas/device-import.schema.json")

REQUIRED_FIELDS = ("mac", "serial", "model")
FIELDS = (*REQUIRED_FIELDS, "product_id", "hardware", "thumbprint", "manufactured_at", *ORDER_FIELDS)

Format = Literal["json", "csv", "zip"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}
_CSV_DELIMITERS = (",", ";", "\t")
_JSON_TYPES = frozenset({"application/json", "text/json"})
# Browsers on Windows label .csv uploads as an Excel type.
_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"})
_ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "multipart/x-zip"})
_EXTENSIONS: tuple[tuple[str, Format], ...] = ((".zip", "zip"), (".json", "json"), (".csv", "csv"))
_VALUE_PREVIEW = 80
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DeviceRow:
    """One valid, normalised device of an import file, with where it came from."""

    mac: str
    serial: str
    model: str
    product_id: str | None = None
    hardware: str | None = None
    thumbprint: str | None = None
    manufactured_at: datetime | None = None
    reseller_order_id: str | None = None
    order_id: str | None = None
    shipment_carrier: str | None = None
    tracking_id: str | None = None
    aco_product_id: str | None = None
    file: str | None = None
    row: int = 0

    def order(self) -> dict[str, str | None]:
        """The order fields, as `DeviceState.order` holds them."""
        return {name: getattr(self, name) for name in ORDER_FIELDS}


@dataclass(frozen=True)
class RowError:
    """A rejected row: where (`file` within a ZIP or None, `row`), which `field`, and why.

    `reason` is a stable kebab-case id (e.g. `missing-field`, `invalid-mac`, `duplicate-mac`),
    `detail` a sentence for a person, `value` the offending value (shortened).
    """

    file: str | None
    row: int
    field: str | None
    reason: str
    detail: str
    value: str | None = None

    def __post_init__(self) -> None:
        # What a row error quotes from the file is stored with the job: no NUL, no lone surrogate.
        for name in ("file", "field", "detail", "value"):
            text = getattr(self, name)
            if isinstance(text, str):
                object.__setattr__(self, name, storable(text))

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "row": self.row,
            "field": self.field,
            "reason": self.reason,
            "detail": self.detail,
            "value": self.value,
        }


@dataclass(frozen=True)
class ImportParse:
    """What an import file holds: the devices to import and the rows refused."""

    format: Format
    rows: list[DeviceRow]
    errors: list[RowError]


@dataclass(frozen=True)
class _RawRow:
    file: str | None
    row: int
    values: Any
    problem: RowError | None = None


def _refuse(error: str, detail: str, value: Any = None) -> DomainError:
    status = {"import-too-large": 413, "import-unsupported-format": 415}.get(error, 422)
    return DomainError(error, detail, status, value)


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _VALUE_PREVIEW else text[: _VALUE_PREVIEW - 1] + "…"


# --- the public entry points -------------------------------------------------------------------


def parse_import(
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
) -> ImportParse:
    """DEV-1: parse an import file (JSON, CSV or ZIP of those) into valid rows and row errors.

    The format is detected from the content; `filename` and `content_type` are hints that
    sharpen the error when the content is not what they announce.
    """
    check_size(len(data), max_bytes)
    if not data.removeprefix(_UTF8_BOM).strip():
        raise _refuse("import-empty", "The import file is empty.")
    kind = detect_format(data, filename=filename, content_type=content_type)
    members: list[tuple[str | None, Format, bytes]] = (
        read_zip_members(data, max_bytes=max_bytes) if kind == "zip" else [(None, kind, data)]
    )
    raw: list[_RawRow] = []
    for name, member_kind, payload in members:
        for record in _records(payload, member_kind, name):
            raw.append(record)
            if len(raw) > max_rows:
                raise _refuse(
                    "import-too-large",
                    f"The import file holds more than {max_rows} devices; split it into smaller files.",
                    max_rows,
                )
    if not raw:
        raise _refuse("import-empty", "The import file holds no devices.")
    rows, errors = _validate_rows(raw)
    rows, duplicate_errors = reject_duplicates_in_file(rows)
    errors = sorted([*errors, *duplicate_errors], key=lambda e: _position(e.file, e.row, members))
    return ImportParse(format=kind, rows=rows, errors=errors)


def mark_existing(
    rows: list[DeviceRow], existing_macs: set[str], existing_serials: set[str]
) -> tuple[list[DeviceRow], list[RowError]]:
    """DEV-1: a row whose MAC or serial number is already in the store is refused, the rest kept."""
    kept: list[DeviceRow] = []
    errors: list[RowError] = []
    for row in rows:
        row_errors = []
        if row.mac in existing_macs:
            row_errors.append(
                RowError(
                    row.file,
                    row.row,
                    "mac",
                    "duplicate-mac",
                    "A device with this MAC address is already imported.",
                    row.mac,
                )
            )
        if row.serial in existing_serials:
            row_errors.append(
                RowError(
                    row.file,
                    row.row,
                    "serial",
                    "duplicate-serial",
                    "A device with this serial number is already imported.",
                    row.serial,
                )
            )
        if row_errors:
            errors.extend(row_errors)
        else:
            kept.append(row)
    return kept, errors


def reject_duplicates_in_file(rows: list[DeviceRow]) -> tuple[list[DeviceRow], list[RowError]]:
    """DEV-1: within the file(s), the first valid row with a MAC or serial wins; later ones are refused.

    Only rows that passed validation compete: a refused row imports nothing, so it cannot
    make a later, valid row a duplicate.
    """
    first_mac: dict[str, DeviceRow] = {}
    first_serial: dict[str, DeviceRow] = {}
    kept: list[DeviceRow] = []
    errors: list[RowError] = []
    for row in rows:
        row_errors = []
        if row.mac in first_mac:
            row_errors.append(_duplicate_error(row, "mac", row.mac, first_mac[row.mac]))
        if row.serial in first_serial:
            row_errors.append(_duplicate_error(row, "serial", row.serial, first_serial[row.serial]))
        if row_errors:
            errors.extend(row_errors)
            continue
        first_mac[row.mac] = row
        first_serial[row.serial] = row
        kept.append(row)
    return kept, errors


def _duplicate_error(row: DeviceRow, field: str, value: str, first: DeviceRow) -> RowError:
    where = f"row {first.row}" if first.file == row.file else f"{first.file}, row {first.row}"
    label = "MAC address" if field == "mac" else "serial number"
    return RowError(
        row.file,
        row.row,
        field,
        f"duplicate-{field}",
        f"The {label} already appears in {where} of this import.",
        value,
    )


def _position(file: str | None, row: int, members: list[tuple[str | None, Format, bytes]]) -> tuple[int, int]:
    names = [name for name, _, _ in members]
    return (names.index(file) if file in names else len(names), row)


# --- whole-file decisions ----------------------------------------------------------------------


def check_size(size: int, max_bytes: int) -> None:
    """DEV-1: an import file (or a ZIP's unpacked content) larger than `max_bytes` is refused."""
    if size > max_bytes:
        raise _refuse(
            "import-too-large",
            f"The import is {size} bytes; the limit is {max_bytes} bytes.",
            size,
        )


def detect_format(data: bytes, *, filename: str | None = None, content_type: str | None = None) -> Format:
    """DEV-1: tell a ZIP, a JSON and a CSV import apart by their content; hints sharpen errors.

    Content wins over hints: a file named `.csv` that holds JSON is read as JSON.
    """
    hint = _hint(filename, content_type)
    if data.startswith(_ZIP_MAGIC):
        return "zip"
    if hint == "zip":
        raise _refuse("import-bad-zip", "The file is announced as a ZIP archive but is not one.", filename)
    text = decode_text(data, hint=hint)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "json"
    if hint == "json":
        raise _refuse(
            "import-unsupported-format",
            'The file is announced as JSON but does not start with {"devices": [...]}.',
            filename,
        )
    if _csv_header_delimiter(stripped) is not None:
        return "csv"
    if hint == "csv":
        raise _refuse(
            "import-unsupported-format",
            f"The CSV file must start with a header row naming its columns ({', '.join(FIELDS)}).",
            filename,
        )
    raise _refuse(
        "import-unsupported-format",
        'The file is neither JSON ({"devices": [...]}), CSV with a header row, nor a ZIP of those.',
        filename,
    )


def looks_like_text_import(text: str) -> bool:
    """DEV-1: JSON starts with an object or array; CSV with a header naming known columns."""
    return text.startswith(("{", "[")) or _csv_header_delimiter(text) is not None


def _hint(filename: str | None, content_type: str | None) -> Format | None:
    name = (filename or "").lower()
    for ext, kind in _EXTENSIONS:
        if name.endswith(ext):
            return kind
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _ZIP_TYPES:
        return "zip"
    if media in _JSON_TYPES:
        return "json"
    if media in _CSV_TYPES:
        return "csv"
    return None


def decode_text(data: bytes, *, hint: Format | None = None, name: str | None = None) -> str:
    """DEV-1: JSON and CSV imports are UTF-8, with or without a byte-order mark."""
    for bom, encoding in _OTHER_BOMS.items():
        if data.startswith(bom):
            raise _refuse(
                "import-bad-encoding",
                f"The file is {encoding}; save it as UTF-8 (with or without BOM).",
                name,
            )
    if _looks_wide(data):
        raise _refuse(
            "import-bad-encoding",
            "The file looks like UTF-16 or UTF-32 without a byte-order mark (every other byte is NUL); "
            "save it as UTF-8.",
            name,
        )
    try:
        return data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        # Without a hint, only what still reads as JSON or a CSV header is mis-encoded text;
        # anything else is some other format altogether.
        lossy = data.decode("utf-8", errors="replace").lstrip()
        if hint is None and name is None and not looks_like_text_import(lossy):
            raise _refuse(
                "import-unsupported-format",
                'The file is neither JSON ({"devices": [...]}), CSV with a header row, nor a ZIP of those.',
                None,
            ) from exc
        raise _refuse(
            "import-bad-encoding",
            f"The file is not valid UTF-8 (byte {exc.start}); save it as UTF-8.",
            name if name is not None else exc.start,
        ) from exc


def _looks_wide(data: bytes) -> bool:
    """UTF-16 or UTF-32 text without a BOM: nearly every code unit of its start is one ASCII byte
    and NUL padding. (A NUL here and there in a cell is a row error, `invalid-text`.)"""
    sample = data[:256]
    for width in (2, 4):
        units = [sample[i : i + width] for i in range(0, len(sample) - width + 1, width)]
        if len(units) < 4:
            continue
        for ascii_at in (0, width - 1):  # little-endian, big-endian
            narrow = sum(
                1
                for unit in units
                if 0x09 <= unit[ascii_at] < 0x7F and not any(b for i, b in enumerate(unit) if i != ascii_at)
            )
            if narrow * 10 >= len(units) * 9:
                return True
    return False


# --- ZIP ---------------------------------------------------------------------------------------


def read_zip_members(data: bytes, *, max_bytes: int) -> list[tuple[str | None, Format, bytes]]:
    """DEV-1: the .json and .csv members of a ZIP import, read safely.

    Refused: encrypted or broken archives, path traversal, symbolic links, members of any other
    type (nested ZIPs included), and unpacked content over `max_bytes` — checked on the sizes the archive
    declares and again on the bytes actually inflated, so a lying header cannot slip a bomb by.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse("import-bad-zip", f"The ZIP archive cannot be read: {exc}.") from exc
    with archive:
        infos = [info for info in archive.infolist() if not _ignored_member(info)]
        check_zip_listing(infos, max_bytes)
        members: list[tuple[str | None, Format, bytes]] = []
        total = 0
        for info in infos:
            payload = _read_member(archive, info, max_bytes - total)
            total += len(payload)
            members.append((info.filename, _member_format(info.filename, payload), payload))
    return members


def _ignored_member(info: zipfile.ZipInfo) -> bool:
    # Directory entries and the resource forks macOS's archiver adds carry no devices.
    name = info.filename.replace("\\", "/")
    return info.is_dir() or name.startswith("__MACOSX/") or posixpath.basename(name) == ".DS_Store"


def check_zip_listing(infos: list[zipfile.ZipInfo], max_bytes: int) -> None:
    """DEV-1: refuse a ZIP by its listing: count, declared size, names, member types, encryption."""
    if len(infos) > MAX_ZIP_MEMBERS:
        raise _refuse(
            "import-too-large",
            f"The ZIP archive holds {len(infos)} files; the limit is {MAX_ZIP_MEMBERS}.",
            len(infos),
        )
    check_size(sum(info.file_size for info in infos), max_bytes)
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if _unsafe_member_name(name):
            raise _refuse("import-bad-zip", f"The ZIP member name {name!r} points outside the archive.", name)
        if name in seen:
            raise _refuse("import-bad-zip", f"The ZIP archive holds {name!r} twice.", name)
        seen.add(name)
        if info.flag_bits & 0x1:
            raise _refuse("import-bad-zip", f"The ZIP member {name!r} is encrypted.", name)
        if member_file_type(info) not in (0, stat.S_IFREG):
            raise _refuse("import-bad-zip", f"The ZIP member {name!r} is a symbolic link or other non-file.", name)
        if not name.lower().endswith((".json", ".csv")):
            raise _refuse(
                "import-unsupported-format",
                f"The ZIP member {name!r} is not a .json or .csv file (nested archives are not read).",
                name,
            )


def _unsafe_member_name(name: str) -> bool:
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or "\x00" in path:
        return True
    return ".." in path.split("/")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_READ_CHUNK):
                size += len(chunk)
                if size > budget:
                    raise _refuse(
                        "import-too-large",
                        f"The ZIP member {info.filename!r} unpacks beyond the size limit.",
                        info.filename,
                    )
                chunks.append(chunk)
    except DomainError:
        raise
    except Exception as exc:
        # zipfile and its decompressors raise a zoo of types (BadZipFile, zlib.error, EOFError,
        # NotImplementedError for unknown methods, ...) on hostile input; all mean "broken archive".
        raise _refuse(
            "import-bad-zip", f"The ZIP member {info.filename!r} cannot be unpacked: {exc}.", info.filename
        ) from exc
    return b"".join(chunks)


def _member_format(name: str, payload: bytes) -> Format:
    if payload.startswith(_ZIP_MAGIC):
        raise _refuse("import-unsupported-format", f"The ZIP member {name!r} is itself a ZIP archive.", name)
    return "json" if name.lower().endswith(".json") else "csv"


# --- records: JSON and CSV into raw rows ---------------------------------------------------------


def _records(payload: bytes, kind: Format, name: str | None) -> Iterator[_RawRow]:
    if not payload.removeprefix(_UTF8_BOM).strip():
        return iter(())
    text = decode_text(payload, hint=kind, name=name)
    return _json_records(text, name) if kind == "json" else _csv_records(text, name)


def _json_records(text: str, name: str | None) -> Iterator[_RawRow]:
    where = f" ({name})" if name else ""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _refuse("import-unsupported-format", f"The JSON file{where} cannot be parsed: {exc}.", name) from exc
    if not (isinstance(document, dict) and isinstance(document.get("devices"), list)):
        raise _refuse(
            "import-unsupported-format", f'A JSON import{where} must be an object {{"devices": [...]}}.', name
        )
    extra = sorted(set(document) - {"devices"})
    if extra:
        raise _refuse(
            "import-unsupported-format",
            f'A JSON import{where} holds only "devices"; found also {", ".join(map(repr, extra))}.',
            name,
        )
    for index, item in enumerate(document["devices"], start=1):
        yield _RawRow(name, index, item)


def _csv_header_delimiter(text: str) -> str | None:
    """The delimiter that splits the first line into the most known column names, if any."""
    first_line = text.split("\n", 1)[0]
    best, best_count = None, 0
    for delimiter in _CSV_DELIMITERS:
        cells = {_header_name(cell) for cell in first_line.split(delimiter)}
        count = len(cells & set(FIELDS))
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _header_name(cell: str) -> str:
    return cell.strip().strip('"').strip().lower()


def _csv_records(text: str, name: str | None) -> Iterator[_RawRow]:
    where = f" ({name})" if name else ""
    delimiter = _csv_header_delimiter(text.lstrip())
    if delimiter is None:
        raise _refuse(
            "import-unsupported-format",
            f"The CSV file{where} must start with a header row naming its columns ({', '.join(FIELDS)}).",
            name,
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    line = 0
    try:
        for line, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _csv_header(cells, name)
                continue
            yield _csv_row(header, cells, name, line)
    except csv.Error as exc:
        raise _refuse(
            "import-unsupported-format", f"The CSV file{where} is malformed near row {line + 1}: {exc}.", name
        ) from exc


def _csv_header(cells: list[str], name: str | None) -> list[str]:
    header = [_header_name(cell) or f"column {index}" for index, cell in enumerate(cells, start=1)]
    for column in header:
        if header.count(column) > 1:
            raise _refuse(
                "import-unsupported-format",
                f"The CSV header names the column {column!r} twice.",
                name or column,
            )
    return header


def _csv_row(header: list[str], cells: list[str], name: str | None, line: int) -> _RawRow:
    if len(cells) > len(header):
        problem = RowError(
            name,
            line,
            None,
            "extra-cells",
            f"The row has {len(cells)} cells; the header names {len(header)} columns.",
            _preview(cells[len(header) :]),
        )
        return _RawRow(name, line, None, problem)
    return _RawRow(name, line, dict(zip(header, cells, strict=False)))


# --- rows: normalise, validate against the schema, convert ----------------------------------------


@cache
def _row_validator() -> Draft202012Validator:
    package, path = SCHEMA_RESOURCE
    schema = json.loads(resources.files(package).joinpath(path).read_text(encoding="utf-8"))
    row_schema = _inline_refs(schema["$defs"]["device"], schema["$defs"])
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    return Draft202012Validator(row_schema, format_checker=checker)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    # Resolving the schema's local "#/$defs/..." references once, up front, saves a quarter of
    # the validation time per row; a 100 000-row import spends most of its time here.
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _inline_refs(value, defs) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**_inline_refs(defs[ref.removeprefix("#/$defs/")], defs), **result}
    return result


@cache
def _row_is_valid() -> PlainCheck:
    """The row schema as plain tests (server.domain.plain_schema): a 100,000-row import spent four
    fifths of its parse in jsonschema; rows they refuse are validated again for their errors."""
    return PlainCheck.of(_row_validator().schema, formats={"date-time": _is_datetime})


def _validate_rows(raw: list[_RawRow]) -> tuple[list[DeviceRow], list[RowError]]:
    validator = _row_validator()
    valid = _row_is_valid()
    rows: list[DeviceRow] = []
    errors: list[RowError] = []
    for record in raw:
        if record.problem is not None:
            errors.append(record.problem)
            continue
        values = normalise_row(record.values)
        row_errors = [] if valid(values) else schema_errors(validator, values, record.file, record.row)
        if row_errors:
            errors.extend(row_errors)
        else:
            rows.append(_device_row(values, record.file, record.row))
    return rows, errors


def normalise_row(values: Any) -> Any:
    """DEV-1: trim text, drop empty values, put MAC and thumbprint in canonical form.

    Anything that is not text is left alone for the schema to refuse.
    """
    if not isinstance(values, dict):
        return values
    result: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = value.strip()
            if key == "mac":
                value = _canonical_mac(value)
            elif key == "thumbprint":
                value = value.replace(":", "").replace(" ", "").upper()
        if value is None or value == "":
            continue
        result[key] = value
    return result


def _canonical_mac(value: str) -> str:
    # A MAC that identity.normalize_mac refuses stays as written, for the schema to report.
    try:
        return normalize_mac(value)
    except DomainError:
        return value


def schema_errors(validator: Draft202012Validator, values: Any, file: str | None, row: int) -> list[RowError]:
    """DEV-1: each schema finding of one row as (field, reason), one per field."""
    found: dict[str | None, RowError] = {}
    for error in validator.iter_errors(values):
        for row_error in _map_schema_error(error, file, row):
            found.setdefault(row_error.field, row_error)
    return sorted(found.values(), key=lambda e: _field_order(e.field))


def _field_order(field: str | None) -> tuple[int, str]:
    if field is None:
        return (-1, "")
    return (FIELDS.index(field), field) if field in FIELDS else (len(FIELDS), field)


def _map_schema_error(error: ValidationError, file: str | None, row: int) -> list[RowError]:
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return [
            RowError(file, row, name, "missing-field", f"The field {name!r} is required.")
            for name in error.validator_value
            if name not in present
        ]
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        return [
            RowError(
                file,
                row,
                name,
                "unknown-field",
                f"{name!r} is not an import field; the fields are {', '.join(FIELDS)}.",
                _preview(error.instance[name]),
            )
            for name in error.instance
            if name not in known
        ]
    field = str(error.path[0]) if error.path else None
    reason = error.schema.get("x-error") if isinstance(error.schema, Mapping) else None
    if field is None:
        return [
            RowError(
                file,
                row,
                None,
                reason or "not-an-object",
                "A device must be an object of fields.",
                _preview(error.instance),
            )
        ]
    return [
        RowError(
            file,
            row,
            field,
            reason or f"invalid-{field}",
            _schema_sentence(field, error),
            _preview(error.instance),
        )
    ]


def _schema_sentence(field: str, error: ValidationError) -> str:
    description = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    if error.validator == "type":
        return f"The field {field!r} must be text."
    if error.validator == "maxLength":
        return f"The field {field!r} is longer than {error.validator_value} characters."
    if description:
        return f"The field {field!r} is malformed; expected: {description}"
    return f"The field {field!r} is malformed: {error.message}."


def _is_datetime(value: object) -> bool:
    # Like the standard format checkers, leave non-text to the "type" keyword.
    return not isinstance(value, str) or bool(_parse_datetime(value))


def _parse_datetime(value: str) -> datetime:
    """DEV-1: manufacturing date-time, ISO 8601; without an offset it is UTC (our decision)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _device_row(values: dict[str, Any], file: str | None, row: int) -> DeviceRow:
    made = values.get("manufactured_at")
    return DeviceRow(
        mac=values["mac"],
        serial=values["serial"],
        model=values["model"],
        product_id=values.get("product_id"),
        hardware=values.get("hardware"),
        thumbprint=values.get("thumbprint"),
        manufactured_at=_parse_datetime(made) if made is not None else None,
        reseller_order_id=values.get("reseller_order_id"),
        order_id=values.get("order_id"),
        shipment_carrier=values.get("shipment_carrier"),
        tracking_id=values.get("tracking_id"),
        aco_product_id=values.get("aco_product_id"),
        file=file,
        row=row,
    )
