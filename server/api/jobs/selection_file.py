"""Selecting a job's devices by an uploaded CSV file (`POST /jobs/upload`, DEV-9, DEV-12).

Decisions:
- The body is a CSV file (UTF-8, with or without BOM; `,`, `;` or tab separated) whose header
  names a `mac` and/or a `serial` column (other columns, e.g. an import file's, are ignored).
  Each row selects one device: by its MAC (any PROTOCOL §1 form) or, when the MAC cell is
  empty, by serial number; when both are given they must name the same device (as for a
  claim, DEV-3). A row that selects nothing — no MAC or serial, a malformed MAC, a device not
  found or outside your hierarchy (`device-not-found`, ACC-7), a device an earlier row already
  selects, extra cells — becomes a FAIL result of the job with its row number, field and
  reason, and the other rows still run. Row numbers are those a spreadsheet shows (header row
  1), as for imports (DEV-1).
- An empty body, a header without data rows, or a body that is not such a CSV file (JSON, ZIP,
  no `mac`/`serial` column, not UTF-8) is refused whole with 422 (`job-file-empty`,
  `job-file-not-csv`, `job-file-bad-encoding`); more than `MAX_MACS` rows is 413
  `job-file-too-large`.
- A claim job's file (DEV-3 claim proof, `proof`) needs both a `mac` and a `serial` column
  (else 422 `claim-needs-serial`) and may carry `label_code`; each row names its device by MAC
  and serial (never by serial alone), and its proof is checked as `POST /devices/claim` checks
  it, globally (unclaimed devices belong to no hierarchy yet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from dataclasses import field as _field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices import scope_devices
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac
from server.store.models import Device

MAX_MACS = 100_000
LOOKUP_CHUNK = 500  # values per IN (...) query: well under every backend's parameter limit
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_WIDE_BOMS = ((b"\xff\xfe", "UTF-16/32"), (b"\xfe\xff", "UTF-16"), (b"\x00\x00\xfe\xff", "UTF-32"))
_DELIMITERS = (",", ";", "\t")
SELECT_COLUMNS = ("mac", "serial")
LABEL_CODE_COLUMN = "label_code"  # a claim's label code (DEV-3, `proof`); other jobs ignore it


@dataclass(frozen=True)
class FileRow:
    """One data row of an uploaded selection file; `reason` set when the row selects nothing."""

    row: int | None  # None: an entry of a POST /jobs body, not a file row
    mac: str | None = None
    serial: str | None = None
    field: str | None = None
    reason: str | None = None
    detail: str | None = None
    # A claim's proof (DEV-3, `proof`): as typed, checked and then dropped; never shown.
    label_code: str | None = _field(default=None, repr=False)

    def refused(self, field: str | None, reason: str, detail: str) -> FileRow:
        return replace(self, field=field, reason=reason, detail=detail)


def file_error(error: str, detail: str, value: Any = None) -> DomainError:
    return DomainError(error, detail, 413 if error == "job-file-too-large" else 422, value)


NOT_CSV = "This call takes a CSV file whose header row names a mac and/or serial column."
CLAIM_FILE = (
    "A claim job's file names each device by its MAC and the serial number printed on its box (DEV-3): "
    "its header row needs both a mac and a serial column, and a label_code column where the devices "
    "have label codes or your account requires them."
)


def _header_cells(line: str, delimiter: str) -> list[str]:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []
    return [cell.strip().lower() for cell in cells]


def _delimiter(text: str) -> str | None:
    """The first delimiter that makes the header row name a mac or serial column."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delimiter in _DELIMITERS:
        if set(_header_cells(first, delimiter)) & set(SELECT_COLUMNS):
            return delimiter
    return None


def _decode(data: bytes) -> str:
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise file_error("job-file-bad-encoding", f"The file is {encoding}; save it as UTF-8.", encoding)
    try:
        return data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        # Text with a few bad bytes is a mis-saved CSV; anything else is not a CSV file at all.
        lossy = data.decode("utf-8", errors="replace")
        if "\x00" in lossy or _delimiter(lossy) is None:
            raise file_error("job-file-not-csv", f"The upload is not a text file. {NOT_CSV}") from exc
        raise file_error(
            "job-file-bad-encoding", f"The file is not valid UTF-8 (byte {exc.start}); save it as UTF-8.", exc.start
        ) from exc


def preview(value: str) -> str:
    return value if len(value) <= 80 else value[:79] + "…"


def _file_row(row: int, header: list[str], cells: list[str]) -> FileRow:
    if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
        return FileRow(row).refused(
            None, "extra-cells", f"The row has {len(cells)} cells; the header names {len(header)} columns."
        )
    values = dict(zip(header, (cell.strip() for cell in cells), strict=False))
    mac_cell, serial = values.get("mac") or None, values.get("serial") or None
    label_code = values.get(LABEL_CODE_COLUMN) or None
    if mac_cell is None and serial is None:
        return FileRow(row).refused(
            "mac" if "mac" in header else "serial",
            "missing-field",
            "The row has neither a MAC address nor a serial number.",
        )
    if mac_cell is None:
        return FileRow(row, serial=serial, label_code=label_code)
    try:
        mac = normalize_mac(mac_cell)
    except DomainError as err:
        return FileRow(row, serial=serial).refused("mac", err.error, f"{err.detail} Value: {preview(mac_cell)!r}")
    return FileRow(row, mac=mac, serial=serial, label_code=label_code)


def parse_selection_csv(data: bytes, max_rows: int = MAX_MACS, *, claim: bool = False) -> list[FileRow]:
    """DEV-9: the rows of an uploaded selection file (see the module docstring); whole-file
    problems raise, a bad row is returned refused with its row number. A claim's file must name
    both a mac and a serial column (DEV-3, `proof`)."""
    if not data.removeprefix(_UTF8_BOM).strip():
        raise file_error("job-file-empty", f"The uploaded file is empty. {NOT_CSV}")
    if data.startswith(_ZIP_MAGIC):
        raise file_error("job-file-not-csv", f"The upload is a ZIP archive. {NOT_CSV}", "zip")
    text = _decode(data)
    if text.lstrip().startswith(("{", "[")):
        raise file_error("job-file-not-csv", f"The upload is JSON; send macs in a POST /jobs body instead. {NOT_CSV}")
    delimiter = _delimiter(text)
    if delimiter is None:
        first = next((line for line in text.splitlines() if line.strip()), "")
        raise file_error("job-file-not-csv", f"The header row names no mac or serial column. {NOT_CSV}", preview(first))
    header: list[str] | None = None
    rows: list[FileRow] = []
    line = 0
    try:
        for line, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines count as rows (a spreadsheet shows them) but select nothing
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                for name in (*SELECT_COLUMNS, LABEL_CODE_COLUMN):
                    if header.count(name) > 1:
                        raise file_error("job-file-not-csv", f"The header names the column {name!r} twice.", name)
                if claim and not set(SELECT_COLUMNS) <= set(header):
                    raise file_error("claim-needs-serial", CLAIM_FILE, [c for c in SELECT_COLUMNS if c not in header])
                continue
            rows.append(_file_row(line, header, cells))
            if len(rows) > max_rows:
                raise file_error(
                    "job-file-too-large", f"The file selects more than {max_rows} devices; split it.", max_rows
                )
    except csv.Error as exc:
        raise file_error(
            "job-file-not-csv", f"The CSV file is malformed near row {line + 1}: {exc}.", line + 1
        ) from exc
    if not rows:
        raise file_error("job-file-empty", "The file has a header row but no device rows.")
    return rows


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + LOOKUP_CHUNK] for i in range(0, len(items), LOOKUP_CHUNK)]


async def resolve_rows(
    session: AsyncSession, actor: Actor, rows: list[FileRow], *, anywhere: bool
) -> tuple[list[str], dict[str, int], list[FileRow]]:
    """The MACs a file selects (in row order), each MAC's row, and the refused rows.

    ACC-7: devices outside the actor's hierarchy read as not found; `anywhere` (claim) looks
    them up globally, since unclaimed devices belong to no hierarchy yet.
    """

    def lookup(stmt: Any) -> Any:  # scope_devices is typed for whole-row selects; columns work the same
        return stmt if anywhere else scope_devices(stmt, actor)

    serial_of: dict[str, str] = {}
    for chunk in _chunks(list({r.mac for r in rows if r.mac and not r.reason})):
        serial_of.update(
            (m, s)
            for m, s in await session.execute(lookup(select(Device.mac, Device.serial)).where(Device.mac.in_(chunk)))
        )
    mac_of: dict[str, str] = {}
    for chunk in _chunks(list({r.serial for r in rows if r.serial and not r.mac and not r.reason})):
        mac_of.update(
            (s, m)
            for m, s in await session.execute(lookup(select(Device.mac, Device.serial)).where(Device.serial.in_(chunk)))
        )
    macs: list[str] = []
    row_of: dict[str, int] = {}
    refused: list[FileRow] = []
    for r in rows:
        if r.reason is None:
            r = _check_row(r, serial_of, mac_of, row_of)
        if r.reason is not None:
            refused.append(r)
            continue
        assert r.mac is not None and r.row is not None
        macs.append(r.mac)
        row_of[r.mac] = r.row
    return macs, row_of, refused


def _check_row(r: FileRow, serial_of: dict[str, str], mac_of: dict[str, str], row_of: dict[str, int]) -> FileRow:
    if r.mac is not None:
        field = "mac"
        if r.mac not in serial_of:
            return r.refused("mac", "device-not-found", f"no device {r.mac} in your hierarchy")
        if r.serial is not None and serial_of[r.mac] != r.serial:
            return r.refused(
                "serial", "mac-serial-mismatch", f"MAC {r.mac} and serial number {r.serial} are not the same device"
            )
    else:
        field = "serial"
        found = mac_of.get(r.serial or "")
        if found is None:
            return r.refused("serial", "device-not-found", f"no device with serial number {r.serial} in your hierarchy")
        r = replace(r, mac=found)
    assert r.mac is not None
    if r.mac in row_of:
        return r.refused(field, "duplicate-device", f"row {row_of[r.mac]} already selects device {r.mac}")
    return r


def refused_result(job_id: int, r: FileRow) -> dict[str, Any]:
    subject = r.mac or (r.serial[:64] if r.serial else None) or (f"row {r.row}" if r.row is not None else "?")
    return {
        "job_id": job_id,
        "subject": subject,
        "row": r.row,
        "field": r.field,
        "status": "FAIL",
        "reason": (r.reason or "")[:64],
        "detail": r.detail,
    }
