"""Key pairs: generation, names, PEM encodings and certificate thumbprints.

Only two key families exist in the project's own PKI: ECDSA P-256 (the default) and RSA-2048
(selectable, for peers that cannot do ECDSA). Other keys are *read* (a device's CSR, a foreign
manufacturer CA) and described by `describe_key`, never generated.
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from server.domain.errors import invalid

KeyType = Literal["ecdsa-p256", "rsa-2048"]
KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
DEFAULT_KEY_TYPE: KeyType = "ecdsa-p256"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_CURVE_NAMES = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}


def check_key_type(value: object) -> KeyType:
    """`ecdsa-p256` or `rsa-2048`; anything else is `invalid-key-type`."""
    if value not in KEY_TYPES:
        raise invalid("invalid-key-type", f"The key type is one of {', '.join(KEY_TYPES)}.", value=value)
    return value


def generate_key(key_type: KeyType = DEFAULT_KEY_TYPE) -> PrivateKey:
    """A fresh private key of `key_type`."""
    if check_key_type(key_type) == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def describe_key(key: PublicKeyTypes | PrivateKey) -> str:
    """A short name for any key: `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-4096`, `ed25519`…"""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ecdsa-{_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "ed448"
    return type(key).__name__


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the files are protected by mode 0600, like an SSH host key)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Read a PEM private key; only EC and RSA keys can sign in this PKI."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported private key type {describe_key(key)}")  # type: ignore[arg-type]
    return key


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def thumbprint(cert: x509.Certificate | bytes) -> str:
    """PROTOCOL §1: SHA-256 of the certificate's DER, 64 upper-case hex digits, no separators."""
    if isinstance(cert, bytes):
        return hashlib.sha256(cert).hexdigest().upper()
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def normalize_thumbprint(value: str) -> str | None:
    """Upper-case hex without `:`/blank separators, or None when it is not a SHA-256 thumbprint."""
    text = value.replace(":", "").replace(" ", "").strip().upper()
    if len(text) == 64 and all(c in "0123456789ABCDEF" for c in text):
        return text
    return None


def public_keys_match(key: PrivateKey, cert: x509.Certificate) -> bool:
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.DER, pub) == cert.public_key().public_bytes(
        serialization.Encoding.DER, pub
    )
