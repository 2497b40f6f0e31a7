"""The server's PKI (with `cryptography`): TLS CA and server certificate, device CA (EST identity
certificates, ENR-8), manufacturer CA (factory certificates of simulated devices, PROTOCOL §1),
revocation with a CRL the device listener checks, and SSLContext builders.

`ensure_pki(data_dir)` is what a server calls on start; see `server.pki.store` for the layout.
"""

from server.pki.authority import CertificateAuthority
from server.pki.factory import FactoryCertificate, issue_factory_certificate
from server.pki.keys import KEY_TYPES, KeyType, thumbprint
from server.pki.store import Pki, PkiLayout, ensure_pki

__all__ = [
    "KEY_TYPES",
    "CertificateAuthority",
    "FactoryCertificate",
    "KeyType",
    "Pki",
    "PkiLayout",
    "ensure_pki",
    "issue_factory_certificate",
    "thumbprint",
]
