"""PRF-5: the basic-configuration zip of a DES site, including hostile archives."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile

import pytest

from server.domain.errors import DomainError
from server.domain.site_config import ALLOWED_EXTENSIONS, extract_site_zip, validate_site_zip

SETTINGS = b'SET SIPDOMAIN "example.com"\nSET TRUSTCERTS "prod-sip-ca.crt"\n'


def make_zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; some tests want them
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


def patch_central_header(data: bytes, index: int, offset: int, fmt: str, value: int) -> bytes:
    """Rewrite one field of the index-th central-directory header (offsets per APPNOTE 4.3.12)."""
    pos = -1
    for _ in range(index + 1):
        pos = data.index(b"PK\x01\x02", pos + 1)
    out = bytearray(data)
    struct.pack_into(fmt, out, pos + offset, value)
    return bytes(out)


def refusal(data: bytes, **limits: int) -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_site_zip(data, **limits)
    assert caught.value.status == 422
    return caught.value


def test_prf5_valid_zip_lists_members_in_order() -> None:
    data = make_zip(
        [
            ("46xxsettings.txt", SETTINGS),
            ("J100Supgrade.xml", b"<x/>"),
            ("K1xxSupgrade.xml", b"<y/>"),
            ("prod-sip-ca.crt.pfx", b"\x30\x82"),
        ]
    )
    assert validate_site_zip(data) == [
        "46xxsettings.txt",
        "J100Supgrade.xml",
        "K1xxSupgrade.xml",
        "prod-sip-ca.crt.pfx",
    ]


def test_prf5_extract_returns_contents() -> None:
    files = extract_site_zip(make_zip([("46xxsettings.txt", SETTINGS), ("logo.png", b"\x89PNG")]))
    assert files == {"46xxsettings.txt": SETTINGS, "logo.png": b"\x89PNG"}


def test_prf5_stored_members_accepted() -> None:
    data = make_zip([("46xxsettings.txt", SETTINGS)], compression=zipfile.ZIP_STORED)
    assert validate_site_zip(data) == ["46xxsettings.txt"]


@pytest.mark.parametrize("ext", sorted(ALLOWED_EXTENSIONS))
def test_prf5_every_allowed_extension_accepted(ext: str) -> None:
    assert validate_site_zip(make_zip([("46xxsettings.txt", SETTINGS), (f"file{ext}", b"x")]))[1] == f"file{ext}"


def test_prf5_extension_match_ignores_case_names_keep_it() -> None:
    assert validate_site_zip(make_zip([("46xxsettings.txt", SETTINGS), ("LOGO.PNG", b"x")])) == [
        "46xxsettings.txt",
        "LOGO.PNG",
    ]


@pytest.mark.parametrize("name", ["setup.exe", "README", "script.sh", ".DS_Store", "settings.txt.exe", ".txt"])
def test_prf5_other_file_types_refused(name: str) -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), (name, b"MZ")]))
    assert err.error == "zip-member-type-not-allowed"
    assert err.value == name


def test_prf5_settings_file_required() -> None:
    err = refusal(make_zip([("J100Supgrade.xml", b"<x/>")]))
    assert err.error == "zip-missing-settings"
    assert err.value == "46xxsettings.txt"


def test_prf5_settings_file_name_is_case_sensitive() -> None:
    err = refusal(make_zip([("46XXSettings.txt", SETTINGS)]))
    assert err.error == "zip-missing-settings"
    assert "46XXSettings.txt" in err.detail
    assert "case-sensitive" in err.detail


def test_prf5_settings_file_must_be_top_level() -> None:
    err = refusal(make_zip([("config/46xxsettings.txt", SETTINGS)]))
    assert err.error == "zip-subdirectory"
    assert err.value == "config/46xxsettings.txt"


@pytest.mark.parametrize("name", ["config/", "__MACOSX/._logo.png", "sub/logo.png"])
def test_prf5_sub_directories_refused(name: str) -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), (name, b"")]))
    assert err.error == "zip-subdirectory"
    assert err.value == name


@pytest.mark.parametrize("name", ["../evil.txt", "../../etc/cron.d/x.txt", "a/../b.txt", ".."])
def test_prf5_path_traversal_refused(name: str) -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), (name, b"x")]))
    assert err.error == "zip-path-traversal"
    assert err.value == name


@pytest.mark.parametrize("name", ["/etc/passwd.txt", "/46xxsettings.txt", "C:/Windows/x.txt", "c:x.txt"])
def test_prf5_absolute_names_refused(name: str) -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), (name, b"x")]))
    assert err.error == "zip-absolute-name"
    assert err.value == name


@pytest.mark.parametrize("name", ["..\\evil.txt", "sub\\logo.png", "C:\\x.txt"])
def test_prf5_backslash_names_refused(name: str) -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), (name, b"x")]))
    assert err.error == "zip-backslash-name"
    assert err.value == name


def test_prf5_control_character_in_name_refused() -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), ("bad\x01name.txt", b"x")]))
    assert err.error == "zip-bad-name"


def test_prf5_duplicate_names_refused() -> None:
    err = refusal(make_zip([("46xxsettings.txt", SETTINGS), ("46xxsettings.txt", b"SET OTHER 1\n")]))
    assert err.error == "zip-duplicate-name"
    assert err.value == "46xxsettings.txt"


def test_prf5_encrypted_member_refused() -> None:
    data = make_zip([("secret.p12", b"x" * 100), ("46xxsettings.txt", SETTINGS)])
    # General-purpose flag bit 0 ("encrypted") of the first member, in its central header.
    data = patch_central_header(data, 0, 8, "<H", 0x0001)
    err = refusal(data)
    assert err.error == "zip-encrypted-member"
    assert err.value == "secret.p12"


def test_prf5_unsupported_compression_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("46xxsettings.txt", SETTINGS, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("big.xml", b"<x/>" * 100, compress_type=zipfile.ZIP_BZIP2)
    err = refusal(buf.getvalue())
    assert err.error == "zip-unsupported-compression"
    assert err.value == "big.xml"


@pytest.mark.parametrize("data", [b"", b"hello, not a zip", b"PK\x03\x04" + b"\x00" * 40, os.urandom(2000)])
def test_prf5_not_a_zip_refused(data: bytes) -> None:
    assert refusal(data).error == "not-a-zip"


def test_prf5_non_bytes_refused() -> None:
    with pytest.raises(DomainError) as caught:
        validate_site_zip("46xxsettings.txt")  # type: ignore[arg-type]
    assert caught.value.error == "not-a-zip"


def test_prf5_empty_zip_refused() -> None:
    assert refusal(make_zip([])).error == "zip-empty"


def test_prf5_too_many_members_refused() -> None:
    members = [("46xxsettings.txt", SETTINGS)] + [(f"f{i}.txt", b"x") for i in range(3)]
    assert validate_site_zip(make_zip(members), max_members=4)
    err = refusal(make_zip(members + [("f9.txt", b"x")]), max_members=4)
    assert err.error == "zip-too-many-members"


def test_prf5_zip_bomb_refused_by_ratio_before_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    zeros = b"\x00" * (20 * 1024 * 1024)
    data = make_zip([("46xxsettings.txt", SETTINGS), ("ringtone.wav", zeros)])
    assert len(data) < 100_000  # a real bomb: tiny on the wire
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def recording_open(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object) -> object:
        opened.append(getattr(name, "filename", str(name)))
        return real_open(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    err = refusal(data)
    assert err.error == "zip-bomb"
    assert err.value == "ringtone.wav"
    assert opened == []  # refused from the declared sizes, nothing decompressed


def test_prf5_declared_total_over_limit_refused_at_offending_member() -> None:
    chunk = os.urandom(40_000)  # incompressible, so only the total can trip
    data = make_zip([("46xxsettings.txt", SETTINGS), ("a.bmp", chunk), ("b.bmp", chunk), ("c.bmp", chunk)])
    assert len(validate_site_zip(data, max_total_uncompressed=200_000)) == 4
    err = refusal(data, max_total_uncompressed=100_000)
    assert err.error == "zip-too-large"
    assert err.value == "c.bmp"


def test_prf5_default_total_limit_is_50_mib() -> None:
    # 51 MiB of zeros would also trip the ratio check; the total check comes first.
    data = make_zip([("46xxsettings.txt", SETTINGS), ("huge.wav", b"\x00" * (51 * 1024 * 1024))])
    assert refusal(data).error == "zip-too-large"


def test_prf5_small_compressible_text_is_not_a_bomb() -> None:
    settings = SETTINGS + b"#" * 60_000  # ratio far above 100, but only 60 KB
    assert validate_site_zip(make_zip([("46xxsettings.txt", settings)])) == ["46xxsettings.txt"]


def test_prf5_member_lying_about_its_size_is_not_inflated_past_it() -> None:
    payload = os.urandom(50_000)
    data = make_zip([("46xxsettings.txt", SETTINGS), ("logo.png", payload)])
    # Declare 10 bytes uncompressed for the second member (central header offset 24).
    data = patch_central_header(data, 1, 24, "<I", 10)
    err = refusal(data)
    assert err.error == "zip-corrupt"
    assert err.value == "logo.png"


def test_prf5_corrupt_member_data_refused() -> None:
    data = bytearray(make_zip([("46xxsettings.txt", SETTINGS)], compression=zipfile.ZIP_STORED))
    start = data.index(SETTINGS)
    data[start] ^= 0xFF  # CRC no longer matches
    err = refusal(bytes(data))
    assert err.error == "zip-corrupt"
    assert err.value == "46xxsettings.txt"


class EndlessStream(io.RawIOBase):
    """A member stream that never ends, as a misbehaving decompressor would produce."""

    def __init__(self) -> None:
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else size
        self.produced += size
        return b"\x00" * size


def test_prf5_actual_bytes_counted_while_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip([("46xxsettings.txt", SETTINGS), ("a.wav", b"\x00" * 1000)])
    stream = EndlessStream()
    real_open = zipfile.ZipFile.open

    def fake_open(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object) -> object:
        if getattr(name, "filename", name) == "a.wav":
            return stream
        return real_open(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", fake_open)
    err = refusal(data, max_total_uncompressed=100_000)
    assert err.error == "zip-too-large"
    assert err.value == "a.wav"
    # Reading stopped one byte past the remaining budget instead of running on.
    assert stream.produced <= 100_000 - len(SETTINGS) + 1
