"""EST (RFC 7030) from the phone's side (ENR-8): a CSR for a new key with `CN=<MAC>`, and the
certificates of a `simpleenroll` answer (base64 PKCS#7 certs-only).

Decisions: the key is ECDSA P-256 (cheap, accepted by the reference server); the CSR carries
only `CN=<MAC canonical>` and is sent as base64 of its DER with Content-Type
`application/pkcs10`, as RFC 7030 §4.2.1 says.
"""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

__all__ = ["CSR_CONTENT_TYPE", "make_csr", "read_certificates"]

CSR_CONTENT_TYPE = "application/pkcs10"


def make_csr(mac: str) -> tuple[bytes, bytes]:
    """(private key PEM, request body: base64 DER of a CSR with subject CN=mac)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def read_certificates(body: bytes) -> list[x509.Certificate]:
    """The certificates of a base64 PKCS#7 certs-only body; ValueError when it is none."""
    der = base64.b64decode(b"".join(body.split()), validate=True)
    return list(pkcs7.load_der_pkcs7_certificates(der))
