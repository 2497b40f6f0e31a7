"""The basic-configuration zip a site gets with server type DES (PRF-5).

Decisions:
- Flat archives only: a member name with `/` (including directory entries and `__MACOSX/`)
  is refused. The phone asks for files by bare name (`GET 46xxsettings.txt`), so a
  sub-directory could never be served.
- Names are case-sensitive and kept exactly: `46xxsettings.txt` must be present under that
  exact name at the top level; `46XXSettings.txt` does not count. The *extension* check is
  case-insensitive (`LOGO.PNG` is a PNG): the guide's case rule is about the names phones
  request, not about file types.
- Only stored and deflated members (what every zip tool writes); encrypted members are refused.
- Only regular files: a member whose Unix mode says symbolic link (or device, FIFO, socket) is
  refused (`zip-symlink`, `zip-not-a-file`) — served as bytes it would be a broken file, and any
  tool that unpacks the stored zip would follow it out of its directory.
- Zip-bomb guards: the sum of declared uncompressed sizes is checked before anything is
  decompressed, then actual bytes are counted while reading, in chunks, so no more than the
  limit is ever inflated. The compression-ratio limit applies to members larger than 64 KiB:
  a few KiB of blanks compress beyond 100:1 and are harmless; the total limit bounds the rest.
- Each refusal has its own error id; `value` is the offending member name.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from typing import NoReturn

from server.domain.errors import DomainError, invalid

MiB = 1024 * 1024
SETTINGS_FILE = "46xxsettings.txt"
ALLOWED_EXTENSIONS = frozenset(
    {
        ".xml",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".mp3",
        ".wav",
        ".ogg",
        ".pkcs12",
        ".p12",
        ".pfx",
        ".txt",
    }
)
RATIO_FLOOR = 64 * 1024
_CHUNK = 64 * 1024
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refuse(error: str, detail: str, member: str | None) -> NoReturn:
    raise invalid(error, f"{detail} (PRF-5)", value=member)


def _extension(name: str) -> str:
    dot = name.rfind(".")
    # A leading dot is a hidden file's name, not an extension (".txt" has none).
    return name[dot:].lower() if dot > 0 else ""


def check_member_name(name: str) -> None:
    """PRF-5: a member name is a plain top-level file name with an allowed extension.

    Refusals: `zip-bad-name`, `zip-backslash-name`, `zip-absolute-name`, `zip-path-traversal`,
    `zip-subdirectory`, `zip-member-type-not-allowed`.
    """
    if not name or _CONTROL.search(name):
        _refuse("zip-bad-name", "A member has an empty name or a name with control characters", name)
    if "\\" in name:
        _refuse("zip-backslash-name", f"The member name '{name}' contains a backslash", name)
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        _refuse("zip-absolute-name", f"The member name '{name}' is an absolute path", name)
    if ".." in name.split("/"):
        _refuse("zip-path-traversal", f"The member name '{name}' climbs out of the archive with '..'", name)
    if "/" in name:
        _refuse(
            "zip-subdirectory",
            f"The member '{name}' is in a sub-directory; the archive must be flat",
            name,
        )
    if _extension(name) not in ALLOWED_EXTENSIONS:
        _refuse(
            "zip-member-type-not-allowed",
            f"The member '{name}' is not one of the allowed file types (" + " ".join(sorted(ALLOWED_EXTENSIONS)) + ")",
            name,
        )


def member_file_type(info: zipfile.ZipInfo) -> int:
    """The file type bits (`stat.S_IFMT`) of a member's Unix mode; 0 when the archive records none."""
    return stat.S_IFMT(info.external_attr >> 16)


def _open(data: bytes) -> zipfile.ZipFile:
    if not isinstance(data, bytes | bytearray) or not data:
        _refuse("not-a-zip", "The upload is empty", None)
    try:
        return zipfile.ZipFile(io.BytesIO(bytes(data)))
    except Exception:  # any parser failure on untrusted bytes means "not a zip"
        _refuse("not-a-zip", "The upload is not a readable zip archive", None)


def _check_directory(
    infos: list[zipfile.ZipInfo], max_total_uncompressed: int, max_ratio: float, max_members: int
) -> None:
    if not infos:
        _refuse("zip-empty", "The zip archive has no members", None)
    if len(infos) > max_members:
        _refuse("zip-too-many-members", f"The zip archive has {len(infos)} members; at most {max_members}", None)
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        name = info.filename
        check_member_name(name)
        if name in seen:
            _refuse("zip-duplicate-name", f"The member name '{name}' occurs twice", name)
        seen.add(name)
        if info.flag_bits & 0x1:
            _refuse("zip-encrypted-member", f"The member '{name}' is encrypted", name)
        kind = member_file_type(info)
        if kind == stat.S_IFLNK:
            _refuse("zip-symlink", f"The member '{name}' is a symbolic link; only regular files are allowed", name)
        if kind not in (0, stat.S_IFREG):
            _refuse("zip-not-a-file", f"The member '{name}' is not a regular file", name)
        if info.compress_type not in _METHODS:
            _refuse(
                "zip-unsupported-compression",
                f"The member '{name}' uses compression method {info.compress_type}; only stored or deflated",
                name,
            )
        declared_total += info.file_size
        if declared_total > max_total_uncompressed:
            _refuse(
                "zip-too-large",
                f"Uncompressed, the archive exceeds {max_total_uncompressed} bytes at member '{name}'",
                name,
            )
        if info.file_size > RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
            _refuse(
                "zip-bomb",
                f"The member '{name}' expands {info.file_size} bytes from {info.compress_size}; "
                f"the compression ratio limit is {max_ratio}",
                name,
            )
    if SETTINGS_FILE not in seen:
        near = sorted(n for n in seen if n.lower() == SETTINGS_FILE)
        hint = f"; found '{near[0]}', but names are case-sensitive" if near else ""
        _refuse(
            "zip-missing-settings",
            f"The archive must contain '{SETTINGS_FILE}' at the top level{hint}",
            SETTINGS_FILE,
        )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, max_ratio: float) -> bytes:
    name = info.filename
    chunks: list[bytes] = []
    count = 0
    try:
        with zf.open(info) as fh:
            while True:
                # Never ask for more than one byte past what the budget allows.
                chunk = fh.read(min(_CHUNK, budget - count + 1))
                if not chunk:
                    break
                count += len(chunk)
                if count > budget:
                    _refuse("zip-too-large", f"The member '{name}' inflates beyond the size limit", name)
                chunks.append(chunk)
    except DomainError:
        raise
    except Exception:  # CRC errors, truncated or malformed streams
        _refuse("zip-corrupt", f"The member '{name}' cannot be read (corrupt data)", name)
    if count != info.file_size:
        _refuse("zip-corrupt", f"The member '{name}' does not have its declared size", name)
    if count > RATIO_FLOOR and count > max_ratio * max(info.compress_size, 1):
        _refuse("zip-bomb", f"The member '{name}' exceeds the compression ratio limit {max_ratio}", name)
    return b"".join(chunks)


def extract_site_zip(
    data: bytes,
    *,
    max_total_uncompressed: int = 50 * MiB,
    max_ratio: float = 100,
    max_members: int = 500,
) -> dict[str, bytes]:
    """PRF-5: validate a site's basic-configuration zip and return its files by name.

    Allowed members: `.xml .png .jpg .jpeg .gif .bmp .mp3 .wav .ogg .pkcs12 .p12 .pfx .txt`,
    flat, with `46xxsettings.txt`; anything else rejects the whole upload.
    """
    with _open(data) as zf:
        infos = zf.infolist()
        _check_directory(infos, max_total_uncompressed, max_ratio, max_members)
        files: dict[str, bytes] = {}
        remaining = max_total_uncompressed
        for info in infos:
            content = _read_member(zf, info, remaining, max_ratio)
            remaining -= len(content)
            files[info.filename] = content
    return files


def validate_site_zip(
    data: bytes,
    *,
    max_total_uncompressed: int = 50 * MiB,
    max_ratio: float = 100,
    max_members: int = 500,
) -> list[str]:
    """PRF-5: validate a site's basic-configuration zip; return its member names in archive order."""
    return list(
        extract_site_zip(
            data,
            max_total_uncompressed=max_total_uncompressed,
            max_ratio=max_ratio,
            max_members=max_members,
        )
    )
