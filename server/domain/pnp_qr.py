"""PNP-1: the QR onboarding code — its payload (what a scan gives back), its one-time claim token,
and the codes and printable sheet drawn with segno. No I/O: callers write the bytes.

The payload is a URI (docs/pnp.md), ASCII only so every reader gives it back unchanged:

    enrollab:onboard?v=1&b=<batch number>&m=<MAC>&s=<serial>&t=<claim token>

- `v` the format version (1); `b` the batch number (`QR000017`); `m` the canonical MAC
  (PROTOCOL §1); `s` the serial number printed on the box; `t` the one-time claim token:
  `secrets.token_urlsafe(24)` (32 characters, 192 bits). The server keeps only its SHA-256.
- Parameters are percent-encoded (`urllib.parse`); unknown parameters are refused, so a reader
  that altered the text is noticed rather than half-understood.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

import segno
from jinja2 import Environment, select_autoescape

from server.domain.errors import DomainError, invalid
from server.domain.identity import normalize_mac

SCHEME = "enrollab:onboard"
VERSION = "1"
MAX_PAYLOAD = 512
TOKEN_BYTES = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_BATCH = re.compile(r"QR[0-9]{6,12}")
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_KEYS = ("v", "b", "m", "s", "t")


@dataclass(frozen=True)
class Payload:
    batch: str
    mac: str
    serial: str
    token: str

    def text(self) -> str:
        """The payload as the QR code carries it."""
        query = urlencode({"v": VERSION, "b": self.batch, "m": self.mac, "s": self.serial, "t": self.token})
        return f"{SCHEME}?{query}"


def new_token() -> str:
    """A one-time claim token from `secrets` (EC-8's unguessable codes, for QR onboarding)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps of a claim token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def batch_number(pk: int) -> str:
    return f"QR{pk:06d}"


def _bad(detail: str) -> DomainError:
    return invalid("invalid-qr-payload", f"The scanned payload is not an enrollab onboarding code: {detail}.")


def parse_payload(text: object) -> Payload:
    """A scanned payload back to its parts; 422 `invalid-qr-payload` naming what is wrong (never
    quoting the token: a refusal may reach a log)."""
    if not isinstance(text, str) or not text:
        raise _bad("it is empty")
    if len(text) > MAX_PAYLOAD or not text.isascii():
        raise _bad(f"it is over {MAX_PAYLOAD} characters or not ASCII")
    scheme, sep, query = text.strip().partition("?")
    if scheme != SCHEME or not sep:
        raise _bad(f"it does not start with {SCHEME}?")
    try:
        fields = parse_qs(query, keep_blank_values=True, strict_parsing=True, max_num_fields=len(_KEYS) + 1)
    except ValueError:
        raise _bad("its query is not key=value pairs") from None
    unknown = sorted(set(fields) - set(_KEYS))
    if unknown:
        raise _bad(f"unknown parameter {unknown[0][:16]!r}")
    missing = [k for k in _KEYS if k not in fields]
    if missing:
        raise _bad(f"parameter {missing[0]!r} is missing")
    repeated = [k for k, v in fields.items() if len(v) != 1]
    if repeated:
        raise _bad(f"parameter {repeated[0]!r} is given twice")
    value = {k: v[0] for k, v in fields.items()}
    if value["v"] != VERSION:
        raise _bad(f"version {value['v'][:8]!r} is not {VERSION}")
    if not _BATCH.fullmatch(value["b"]):
        raise _bad("b is not a batch number (QR and 6-12 digits)")
    try:
        mac = normalize_mac(value["m"])
    except DomainError:
        raise _bad("m is not a MAC address") from None
    if not _SERIAL.fullmatch(value["s"]):
        raise _bad("s is not a serial number")
    if not _TOKEN.fullmatch(value["t"]):
        raise _bad("t is not a claim token")
    return Payload(value["b"], mac, value["s"], value["t"])


# --- drawing -------------------------------------------------------------------------------------


def qr(payload: Payload) -> segno.QRCode:
    """The QR code of a payload: error correction M (15 %), enough for a printed label."""
    return segno.make_qr(payload.text(), error="m")


def png(payload: Payload, scale: int = 6) -> bytes:
    out = io.BytesIO()
    qr(payload).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def svg(payload: Payload, scale: int = 4) -> bytes:
    out = io.BytesIO()
    qr(payload).save(out, kind="svg", scale=scale, border=4, xmldecl=True, title=f"{payload.batch} {payload.mac}")
    return out.getvalue()


_SHEET = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QR batch {{ batch }}</title>
<style>
 body { font-family: sans-serif; margin: 10mm; }
 h1 { font-size: 14pt; }
 .sheet { display: grid; grid-template-columns: repeat(4, 1fr); gap: 6mm; }
 .label { border: 1px dashed #999; padding: 3mm; text-align: center; break-inside: avoid; font-size: 8pt; }
 .label img { width: 38mm; height: 38mm; image-rendering: pixelated; }
 @media print { .note { display: none; } }
</style></head><body>
<h1>enrollab QR onboarding — batch {{ batch }} ({{ items|length }} devices)</h1>
<p class="note">Each code works once: scanning it onboards the device. Keep this sheet like a key.</p>
<div class="sheet">
{% for item in items %}<div class="label" data-mac="{{ item.mac }}">
<img alt="QR code of {{ item.mac }}" src="data:image/png;base64,{{ item.image }}">
<div>MAC {{ item.mac }}</div><div>S/N {{ item.serial }}</div><div>{{ batch }}</div>
</div>
{% endfor %}</div></body></html>
"""
)


@dataclass(frozen=True)
class _Label:
    mac: str
    serial: str
    image: str


def sheet_html(batch: str, payloads: Sequence[Payload], scale: int = 4) -> str:
    """A printable sheet: one label per device (its QR code as an embedded PNG, MAC, serial, batch)."""
    items = [_Label(p.mac, p.serial, base64.b64encode(png(p, scale)).decode("ascii")) for p in payloads]
    return _SHEET.render(batch=batch, items=items)
