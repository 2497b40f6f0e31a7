"""The bad-input corpus (fixtures/bad-input/): its manifest, and each item made into what is sent —
bytes, JSON values, zip archives, CSRs and certificates. Large items (100k rows, a 60 MiB zip bomb,
10k-character URLs) are described in the data files and generated here, at test time."""

from __future__ import annotations

import base64
import io
import json
import random
import stat
import struct
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "bad-input"


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    spec: dict[str, Any]
    expect: dict[str, Any]  # a single expectation, or one per endpoint ("METHOD path")

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.id}"

    def expectation(self, endpoint: str) -> dict[str, Any]:
        if "status" in self.expect:
            return self.expect
        return dict(self.expect[endpoint])


@cache
def manifest() -> dict[str, Any]:
    return dict(json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8")))


@cache
def data(kind: str) -> dict[str, dict[str, Any]]:
    return dict(json.loads((CORPUS / manifest()["kinds"][kind]["file"]).read_text(encoding="utf-8")))


def items(kind: str) -> list[Item]:
    expects = manifest()["items"]
    return [Item(kind, ident, spec, expects[f"{kind}/{ident}"]) for ident, spec in data(kind).items()]


# --- text and bytes ------------------------------------------------------------------------------------


def generated_text(gen: dict[str, Any]) -> str:
    """`repeat` × `times` (or `times` levels of `wrap`), put into `template` at `%s`."""
    if "wrap" in gen:
        opening, closing = gen["wrap"]
        inner = opening * gen["times"] + closing * gen["times"]
    else:
        inner = gen["repeat"] * gen["times"]
    template = gen.get("template", "%s")
    return str(template.replace("%s", inner, 1))


def garbage_rows(count: int, seed: int) -> bytes:
    """A header and `count` rows of punctuation soup in the mac, serial and model columns."""
    rng = random.Random(seed)
    soup = "@#!$%^&*()+=[]{}|<>?~`'abcxyz"
    lines = ["mac,serial,model"]
    for _ in range(count):
        lines.append(",".join("".join(rng.choice(soup) for _ in range(rng.randint(3, 12))) for _ in range(3)))
    return ("\n".join(lines) + "\n").encode()


def body_bytes(spec: dict[str, Any]) -> bytes:
    """The bytes of a text-ish item: `text` (in `encoding`, default UTF-8), `b64`, or `generate`."""
    if "b64" in spec:
        return base64.b64decode(spec["b64"])
    gen = spec.get("generate")
    if gen is not None:
        if "random_bytes" in gen:
            return random.Random(gen["seed"]).randbytes(gen["random_bytes"])
        if "garbage_rows" in gen:
            return garbage_rows(gen["garbage_rows"], gen["seed"])
        return generated_text(gen).encode()
    text: str = spec["text"]
    # surrogatepass: a JSON body may carry an escape such as \ud800 only as text, never raw.
    return text.encode(spec.get("encoding", "utf-8"), "surrogatepass")


def json_value(spec: dict[str, Any]) -> Any:
    if "generate" in spec:
        return generated_text(spec["generate"])
    return spec["value"]


# --- zip archives --------------------------------------------------------------------------------------


_MODES = {"fifo": stat.S_IFIFO | 0o644}


def zip_bytes(spec: dict[str, Any], main: str, content: bytes) -> bytes:
    """A zip archive from a `zips.json` spec; `{main}` in names is `main`, whose content is `content`."""
    if "raw_text" in spec:
        return str(spec["raw_text"]).encode()
    if "raw_b64" in spec:
        return base64.b64decode(spec["raw_b64"])
    buffer = io.BytesIO()
    lie: tuple[str, int] | None = None
    members = list(spec["members"]) * int(spec.get("copies", 1))
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, member in enumerate(members):
            name = member["name"].replace("{main}", main)
            if spec.get("copies"):
                name = f"{index}-{name}" if index else name
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix: external_attr carries a file mode
            info.compress_type = zipfile.ZIP_BZIP2 if member.get("method") == "bzip2" else zipfile.ZIP_DEFLATED
            payload = content
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            if "symlink" in member:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                payload = member["symlink"].encode()
            elif "mode" in member:
                info.external_attr = _MODES[member["mode"]] << 16
            elif "zeros" in member:
                payload = bytes(member["zeros"])
            elif "zip_of" in member:
                payload = zip_bytes({"members": [{"name": member["zip_of"]}]}, main, content)
            if "declare" in member:
                lie = (name, int(member["declare"]))
            with archive.open(info, "w", force_zip64=False) as stream:
                stream.write(payload)
    data = buffer.getvalue()
    if lie is not None:
        data = _declare_size(data, *lie)
    if "truncate" in spec:
        data = data[: int(len(data) * float(spec["truncate"]))]
    return data


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """The archive with `name`'s uncompressed size rewritten to `size` in its local header and
    central directory entry: a header that lies about what the member inflates to."""
    out = bytearray(data)
    encoded = name.encode()
    for signature, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        at = out.find(signature)
        while at >= 0:
            (length,) = struct.unpack_from("<H", out, at + name_len_at)
            if bytes(out[at + name_at : at + name_at + length]) == encoded:
                struct.pack_into("<I", out, at + size_at, size)
            at = out.find(signature, at + 4)
    return bytes(out)


# --- certificates and CSRs -----------------------------------------------------------------------------


def _name(cn: str | None, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else []
    if "serial_number" in extra:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, extra["serial_number"]))
    if "extra_cn" in extra:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, extra["extra_cn"]))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bad Input Corp"))
    return x509.Name(attributes)


def private_key(kind: str) -> Any:
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.removeprefix("rsa-")))
    if kind == "dsa-2048":
        return dsa.generate_private_key(key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curves = {"ec-p256": ec.SECP256R1(), "ec-p521": ec.SECP521R1(), "ec-secp256k1": ec.SECP256K1()}
    return ec.generate_private_key(curves[kind])


def _hash_for(key: Any) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _tamper(der: bytes) -> bytes:
    """Flip a bit in the last byte: inside the signature of a certificate or a CSR."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


@dataclass(frozen=True)
class Sent:
    """What one device-listener item sends: the body and its content type."""

    body: bytes
    content_type: str = "application/pkcs10"


def csr_item(spec: dict[str, Any], mac: str) -> Sent:
    """A `csrs.json` item for the phone with `mac` ({mac} in names), base64 DER as RFC 7030 wants."""
    if "text" in spec:
        return Sent(spec["text"].encode())
    if "generate" in spec:
        return Sent(generated_text(spec["generate"]).encode())
    if spec.get("certificate"):
        der = self_signed(ca=False).public_bytes(serialization.Encoding.DER)
        return Sent(base64.encodebytes(der))
    key = private_key(spec["key"])
    cn = spec.get("cn", "{mac}")
    extra = {k: str(v).replace("{mac}", mac) for k, v in spec.items() if k in ("serial_number", "extra_cn")}
    subject = _name(cn.replace("{mac}", mac) if cn is not None else None, **extra)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, _hash_for(key))
    der = csr.public_bytes(serialization.Encoding.DER)
    if spec.get("tamper_signature"):
        der = _tamper(der)
    return Sent(base64.encodebytes(der), spec.get("content_type", "application/pkcs10"))


def self_signed(
    *,
    ca: bool,
    days_from: int = -1,
    days_to: int = 365,
    key: Any = None,
    subject: str = "Bad Input Root",
) -> x509.Certificate:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return _certificate(_name(subject), key.public_key(), _name(subject), key, ca=ca, days=(days_from, days_to))


def _certificate(
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    signer: Any,
    *,
    ca: bool,
    days: tuple[int, int] = (-1, 365),
    eku: list[x509.ObjectIdentifier] | None = None,
    key_usage: x509.KeyUsage | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(signer, hashes.SHA256())


def root_ca_text(spec: dict[str, Any], clock_now: datetime) -> str:
    """A `root-cas.json` item as the text of a profile entry's `root_ca_pem`. Validity days count
    from `clock_now` (the server's clock decides what is expired)."""
    if "pem" in spec:
        return str(spec["pem"])
    key = ec.generate_private_key(ec.SECP256R1())
    if spec.get("private_key"):
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    shift = (clock_now - datetime.now(UTC)).days
    days = (spec.get("valid_days_from", -1) + shift, spec.get("valid_days_to", 365) + shift)
    if spec.get("issued_by"):
        other = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(_name("Bad Input Intermediate"), key.public_key(), _name("Other Root"), other, ca=True)
    else:
        cert = _certificate(
            _name("Bad Input Root"), key.public_key(), _name("Bad Input Root"), key, ca=spec["ca"], days=days
        )
    der = cert.public_bytes(serialization.Encoding.DER)
    if spec.get("tamper_signature"):
        der = _tamper(der)
    pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"
    return pem * int(spec.get("copies", 1))


@dataclass(frozen=True)
class ClientIdentity:
    """A factory certificate a phone presents at the device listener (None: it presents none)."""

    cert_pem: bytes | None
    key_pem: bytes | None
    certificate: x509.Certificate | None = None


_KEY_USAGE_CERT_SIGN = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def factory_item(spec: dict[str, Any], mac: str, serial: str, manufacturer: Any) -> ClientIdentity:
    """A `factory-certificates.json` item: a factory certificate with one thing wrong.
    `manufacturer` is the server's own manufacturer CA (`server.pki.authority.CertificateAuthority`).

    Spec keys: `none` (no certificate), `valid_days_from`/`valid_days_to`, `self_signed`,
    `issued_by` (`foreign-ca`: another CA's name and key; `forged`: our CA's name, another key),
    `eku` (`server-auth`), `key_usage` (`cert-sign`: no digitalSignature), `key` (a `private_key`
    kind), `cn` (null: no CN; `{mac}` is `mac`). Items about the server's records (`device`,
    `body_mac`, `revoked`) are arranged by the test; their certificates are made here as valid ones."""
    if spec.get("none"):
        return ClientIdentity(None, None)
    key = private_key(spec["key"]) if "key" in spec else ec.generate_private_key(ec.SECP256R1())
    cn = spec.get("cn", "{mac}")
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn.replace("{mac}", mac))] if cn is not None else []
    subject = x509.Name(
        [
            *attributes,
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bad Input Corp"),
        ]
    )
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if spec.get("eku") == "server-auth" else [ExtendedKeyUsageOID.CLIENT_AUTH]
    days = (spec.get("valid_days_from", -1), spec.get("valid_days_to", 365))
    key_usage = _KEY_USAGE_CERT_SIGN if spec.get("key_usage") == "cert-sign" else None
    if spec.get("self_signed"):
        cert = _certificate(subject, key.public_key(), subject, key, ca=False, days=days, eku=eku)
    elif spec.get("issued_by") in ("foreign-ca", "forged"):
        other = ec.generate_private_key(ec.SECP256R1())
        issuer = (
            _name("Foreign Manufacturer CA") if spec["issued_by"] == "foreign-ca" else manufacturer.certificate.subject
        )
        cert = _certificate(subject, key.public_key(), issuer, other, ca=False, eku=eku)
    else:
        cert = _certificate(
            subject,
            key.public_key(),
            manufacturer.certificate.subject,
            manufacturer.key,
            ca=False,
            days=days,
            eku=eku,
            key_usage=key_usage,
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ClientIdentity(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert)
