"""What the store looked up for one enrollment request: the decision's only input besides `now`.

Decisions:
- Datetimes without a time zone are taken as UTC.
- The imported model is the one the rules use (capabilities, catalog); the body's model only
  shows in the audit message when it names another model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from server.domain.codes import NecState
from server.domain.firmware import Catalog
from server.domain.identity import Version
from server.domain.lockout import LockoutPolicy
from server.domain.profiles import ProfileEntry


class Capabilities(Protocol):
    """Appendix A as the rules need it (`fixtures.features.FeatureMatrix` is one). The rules pass
    the firmware already parsed; its `str()` is the canonical spelling."""

    def supports(self, model: str, firmware: Version | str, feature: str) -> bool: ...

    def explain(self, model: str, firmware: Version | str, feature: str) -> str: ...


class FirmwareImage(NamedTuple):
    """Where a device downloads a firmware image, and its SHA-256 (PROTOCOL §2)."""

    url: str
    sha256: str


# Version (catalog spelling) -> image for the device's model, or a lookup (model, version) -> image.
FirmwareImages = Mapping[str, FirmwareImage] | Callable[[str, str], FirmwareImage | None]


@dataclass(frozen=True)
class RequestFacts:
    """The JSON body of the request (PROTOCOL §2) and where it came from."""

    model: str
    firmware: str
    mac: str
    serial: str
    code: str | None = field(default=None, repr=False)
    client_host: str | None = None


@dataclass(frozen=True)
class CertificateFacts:
    """ENR-1: the client certificate of the mutual-TLS handshake (already chain-checked)."""

    cn: str
    thumbprint: str
    subject: str | None = None
    manufacturer: str | None = None  # the label of the manufacturer CA that issued it (`Pki.manufacturer_of`)


@dataclass(frozen=True)
class DeviceRecord:
    """The imported device with this MAC. `first_contact`: no earlier contact was recorded;
    `pre_claimed`: claimed before its first contact (FW-5)."""

    mac: str
    serial: str
    model: str
    thumbprint: str | None
    approved: bool = False
    owner_id: str | None = None
    site_id: int | None = None
    associated: bool = False
    activated: bool = False
    failed_attempts: int = 0
    locked_until: datetime | None = None
    first_contact: bool = False
    pre_claimed: bool = False


@dataclass(frozen=True)
class AccountFacts:
    """An account as enrollment sees it: enabled (ACC-5), firmware switch and setting (FW-3)."""

    account_id: str
    enabled: bool = True
    firmware_upgrade: bool = False
    firmware_setting: str | None = None
    manufacturers: tuple[str, ...] | None = None  # the manufacturer-CA allow-list; None: any trusted one


@dataclass(frozen=True)
class SiteFacts:
    """A customer site: its account, PIN, chosen profile entry, firmware setting for the model."""

    id: int
    account_id: str
    account_enabled: bool = True
    pin: str | None = field(default=None, repr=False)
    entry: ProfileEntry | None = None
    firmware_setting: str | None = None
    account_manufacturers: tuple[str, ...] | None = None  # the site's account's allow-list (AccountFacts)


@dataclass(frozen=True)
class CodeMatch:
    """What the store found for a typed code: an NEC with its site (`nec` set), or for a PEC the
    account of its first 8 digits and that account's site with the PIN (`nec` None)."""

    site: SiteFacts
    account: AccountFacts
    nec: NecState | None = None


@dataclass(frozen=True, kw_only=True)
class EnrollmentFacts:
    """Everything the decision needs, as the store looked it up for one request.

    `owner` is the device owner's account, `site` the device's site; `code_match` what the
    typed code found (None: nothing). Datetimes without a time zone are taken as UTC.
    """

    request: RequestFacts
    certificate: CertificateFacts
    device: DeviceRecord | None = None
    owner: AccountFacts | None = None
    site: SiteFacts | None = None
    code_match: CodeMatch | None = None
    policy: LockoutPolicy = field(default_factory=LockoutPolicy)
    catalog: Catalog
    capabilities: Capabilities
    est_base_url: str | None = None
    firmware_images: FirmwareImages = field(default_factory=dict)
    denied: str | None = None  # the deny-list's reason when the certificate's thumbprint is on it
