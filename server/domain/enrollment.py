"""The device's enrollment answer (PROTOCOL §2): one pure decision per `POST /device/v1/enroll`.

`decide_enrollment(facts, now)` takes what the store looked up and returns the answer (HTTP
status, `result`, the exact JSON body), the state changes for the store to apply, the
notifications to queue and the audit record to write (ENR-5). No I/O: the same facts give the
same decision, so re-running discovery (ENR-7) needs nothing special and always reflects the
current state. The rules run in this order; the first that answers wins:

1. ENR-1 identity (and the deny-list), 2. DEV-2 approval, 3. ACC-5 accounts and their
manufacturer-CA allow-lists, 4. FW-1 model and version known,
5. FW-4/FW-2 firmware gate, 6. DEV-6/ENR-2 zero-touch redirect, 7. LCK-2 lock,
8. ENR-3/DEV-7 code asked for, 9. EC code check -> EC-7 claim + redirect, or LCK-2 wrong code.

Decisions:
- ENR-1: no device with the body's MAC -> 404 `unknown_device`. The certificate CN differs from
  the body's MAC -> 403 `certificate-mismatch` (the device exists, the caller is not it). The
  certificate thumbprint differs from the imported one, or none was imported -> 404
  `unknown_device`. MACs compare in canonical form, thumbprints as upper-case hex without `:`.
- Issue 13: a certificate on the platform's deny-list -> 403 `certificate-denied` (after the
  identity checks: an unknown device stays 404). An account with a manufacturer-CA allow-list
  (its owner, its site's account, the account of a right code and of that code's site) refuses
  a factory certificate of another CA -> 403 `manufacturer-not-allowed`; never a wrong code.
- The imported model is the one the rules use (capabilities, catalog); the body's model only
  shows in the audit message when it names another model. An imported model missing from the
  catalog -> 403 `unknown-model`; a body firmware that is no version -> 403 `invalid-firmware`.
- ACC-5: a disabled owner account, or a disabled account of the device's site or of the
  site a right code names -> 403 `disabled-account` (a right code is not counted as wrong).
- FW-4: below the catalog minimum, a version that cannot upgrade itself -> 403
  `manual-upgrade-required` ("manual upgrade to 2.0 and factory reset required"); otherwise,
  when the model at that version supports `firmware-upgrade` and the policy gives a version
  (unclaimed: catalog latest, FW-2; claimed: the owner's switch and the site/model setting,
  FW-3) -> 200 `upgrade`, reason `below-minimum`; else 403 `firmware-too-old` (the brief's id;
  `check_minimum` itself says `firmware-below-minimum`). FW-5 does not limit this gate: below
  the minimum nothing else can happen. No image for the version -> 403 `firmware-unavailable`.
- FW-2: an unclaimed device at or above the minimum but below latest whose model at that version
  supports `firmware-upgrade` -> 200 `upgrade` to latest (reason `unclaimed-latest`), before any
  code is looked at (the code is neither checked, counted nor consumed); without an image it
  proceeds at its version.
- FW-3/FW-5/ENR-2: the redirect carries a `firmware` object when the account switch is on and
  the site/model setting resolves to a version other than the device's (a lower one too: SIT-3
  lets a customer pick an earlier release), the model supports `firmware-upgrade`, an image
  exists, and either the server type is DES or this is the first contact of a pre-claimed
  device (FW-5). After a code, the code's account and site decide (the device is claimed by
  then); a device that was unclaimed is not pre-claimed, so it gets firmware only with DES.
- DEV-6/ENR-2: claimed + associated + activated -> redirect for the device's site; a code sent
  anyway is ignored, and so is a leftover lock (locks are about codes). Missing site facts ->
  403 `no-site`; a site without a profile entry -> 403 `no-profile` (PRF-4); a stored URL that
  no longer parses -> 403 `invalid-profile`. The URL is sent in full (placeholders kept, user and
  password included: it is for the device); the audit shows it redacted.
- ENR-4, refusals: a URL form the model at its version cannot use fails the enrollment with 403
  `unsupported-url` (detail from `explain`): no `provisioning-urls` at all, `http` without
  `http-provisioning-url`, `https` without `https-provisioning-url`, an IPv4 host without
  `provisioning-url-with-ip-address`, server type DES without `des-as-provisioning-server`.
- ENR-4, omissions: extras the device cannot use are left out and named in the audit message:
  the group is sent as 0 without `device-group-id`, the root CA without
  `certificate-with-provisioning-url`, identity (null) without `avaya-issued-certificates` or
  when the entry does not ask (or no EST URL is configured), firmware as above.
- LCK-2: only the code path looks at the lock. While locked, every request that needs a code,
  with a code or without, gets 423 with `retry_after`, and nothing changes. A lock whose time
  has passed is lifted (counter back to 0, written by the store) and the request goes on.
  Activation lifts it too; the store does that when an administrator activates.
- ENR-3/DEV-7: no code (null or "") -> 200 `code_required` with the formats the model at its
  version supports (8-digit -> `nec8`, 12-digit -> `nec12`, provisioning enrollment code ->
  `pec12`); none -> 403 `codes-not-supported`.
- A typed code is classified by shape (`classify_code`). Malformed, a format the device does
  not support, unknown, wrong, expired or used up: all are a wrong code -> 422 `code_invalid`
  with `attempts_left`, and the L-th consecutive one -> 423 `locked` (LCK-2). So a code the
  phone should not have offered still counts toward the lockout: no free guesses.
- EC-6: a PEC needs the account found by its first 8 digits, a site of that account whose PIN
  is the last 4; it never expires. NEC: the site's code, neither expired nor used up (EC-3).
  Codes are compared in constant time.
- A right code whose site has no profile -> 403 `no-profile`; for an account other than the
  device owner's -> 403 `claimed-elsewhere` (the code wins only over an unclaimed device or
  one the site's account already holds; a parent account hands its devices on by DEV-4). Neither
  counts as a wrong code nor consumes it.
- EC-7: a right code claims, associates (with the code's site) and activates the device in one
  step, resets the lock counter and, for an NEC, consumes the code. The ENR-4 checks run on
  the resulting redirect first: a refusal there consumes nothing and changes nothing.
- EC-3 under concurrency: `consume_code` is applied by the store with a conditional update
  (`UPDATE … SET enrolled = enrolled + 1 WHERE site_id = :site AND code = :code AND enrolled <
  total AND (expires_at IS NULL OR expires_at > :now)`) in the transaction that writes the
  rest of the decision. If it changes no row, the store rolls back, reloads the facts (the NEC
  now used up, expired or regenerated) and calls `decide_enrollment` again, which answers
  `code_invalid`: never one device more than the total.
- LCK-3 likewise: a `LockUpdate` with `expected_failed` is written only `WHERE failed_attempts =
  :expected_failed`; no row -> reload and decide again. Resets (`expected_failed` None) are
  unconditional.
- Notifications (NTF-1): "Device Enrollment Failure" for every refusal (`rejected`,
  `code_invalid`, `locked`, and `unknown_device` for a device that exists) to the device's
  owner and to the account a right code named; nobody when neither exists. "Enrollment Code
  Usage" to the code's account on a code enrollment. Facts never carry the code.
- Audit (ENR-5/LOG-1): process ENROLLMENT, the body's MAC, the certificate subject, the client
  host, SUCCESS for `redirect`, `upgrade` and `code_required`, FAIL otherwise, a reason id and
  a message without secrets (URL password redacted, never the code's digits, only its kind).
- Device updates (for a verified device only): last contact and reported firmware always;
  `enrolled_at` on a redirect; claim and lock changes as above.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple, Protocol

from server.domain.codes import CodeKind, NecState, classify_code, code_usable
from server.domain.devices import DeviceState, zero_touch_ready
from server.domain.errors import DomainError
from server.domain.firmware import Catalog, ModelFirmware, check_minimum, firmware_for_unclaimed, resolve_firmware
from server.domain.identity import Version, normalize_mac
from server.domain.identity import parse_version as _parse_version
from server.domain.lockout import (
    LockoutPolicy,
    LockState,
    after_wrong_code,
    current_state,
    is_locked,
    retry_after_seconds,
)
from server.domain.notifications import NotificationKind
from server.domain.profiles import ParsedUrl, ProfileEntry
from server.domain.profiles import validate_provisioning_url as _validate_provisioning_url

# Appendix A feature ids (fixtures/feature-matrix.json).
PROVISIONING_URLS = "provisioning-urls"
HTTPS_URL = "https-provisioning-url"
HTTP_URL = "http-provisioning-url"
IP_ADDRESS_URL = "provisioning-url-with-ip-address"
FIRMWARE_UPGRADE = "firmware-upgrade"
ROOT_CA = "certificate-with-provisioning-url"
GROUP_ID = "device-group-id"
IDENTITY_CERTIFICATES = "avaya-issued-certificates"
DES_SERVER = "des-as-provisioning-server"
CODE_FEATURES: Mapping[CodeKind, str] = {
    "nec8": "8-digit-numeric-enrollment-code",
    "nec12": "12-digit-numeric-enrollment-code",
    "pec12": "provisioning-enrollment-code",
}

# Pure functions of a string whose answers are immutable, asked on every request for the same few
# values (firmware versions, a site's URL): remembered, within bounds. Refusals are not kept.
parse_version = lru_cache(maxsize=4096)(_parse_version)
validate_provisioning_url = lru_cache(maxsize=4096)(_validate_provisioning_url)

Result = Literal["redirect", "upgrade", "code_required", "code_invalid", "locked", "rejected", "unknown_device"]
_SUCCESSES = frozenset({"redirect", "upgrade", "code_required"})
_REFUSALS = frozenset({"rejected", "code_invalid", "locked", "unknown_device"})


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


# --- facts ---------------------------------------------------------------------------------------


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


# --- the decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeConsumption:
    """EC-3: count one enrollment on the site's NEC — conditionally, see the module docstring."""

    site_id: int
    kind: CodeKind
    code: str = field(repr=False)


@dataclass(frozen=True)
class Claim:
    """EC-7: the device becomes the account's, associated with the site, activated — one step."""

    owner_id: str
    site_id: int


@dataclass(frozen=True)
class LockUpdate:
    """LCK-2/LCK-3: new wrong-code counter and lock. With `expected_failed`, written only while
    the stored counter still equals it (else reload and decide again); None: unconditional."""

    failed: int
    locked_until: datetime | None
    expected_failed: int | None = None


@dataclass(frozen=True)
class DeviceUpdates:
    """What the store writes on the device record, in the decision's transaction."""

    last_contact: datetime
    firmware: str
    enrolled_at: datetime | None = None
    claim: Claim | None = None
    lock: LockUpdate | None = None


class Notice(NamedTuple):
    """NTF-1: a notification kind id and the facts its template shows (`account_id`: recipient)."""

    kind: str
    facts: Mapping[str, str]


@dataclass(frozen=True)
class EnrollmentAudit:
    """ENR-5/LOG-1: the log entry of this enrollment attempt (message free of secrets)."""

    mac: str
    subject: str
    client_host: str | None
    status: Literal["SUCCESS", "FAIL"]
    reason: str
    message: str
    account_id: str | None
    process: str = "ENROLLMENT"
    action: str = "enroll"


@dataclass(frozen=True)
class Decision:
    """The answer (PROTOCOL §2) and what the store does about it."""

    status: int
    result: Result
    body: dict[str, Any]
    audit: EnrollmentAudit
    consume_code: CodeConsumption | None = None
    device_updates: DeviceUpdates | None = None
    notify: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class _Outcome:
    """One rule's answer, before the shared parts (updates, notices, audit) are added."""

    status: int
    result: Result
    body: dict[str, Any]
    reason: str
    message: str
    claim: Claim | None = None
    consume: CodeConsumption | None = None
    lock: LockUpdate | None = None
    code_account: str | None = None
    code_site: int | None = None


def _rejected(reason: str, detail: str, **extra: Any) -> _Outcome:
    return _Outcome(403, "rejected", {"reason": reason, "detail": detail}, reason, detail, **extra)


@dataclass(frozen=True)
class _Ctx:
    """A verified device with a known model and version, and its current lock."""

    facts: EnrollmentFacts
    now: datetime
    device: DeviceRecord
    info: ModelFirmware
    version: Version
    stored_lock: LockState

    @property
    def firmware(self) -> str:
        return str(self.version)

    @property
    def lock(self) -> LockState:
        return current_state(self.stored_lock, self.now)

    def supports(self, feature: str) -> bool:
        try:
            return bool(self.facts.capabilities.supports(self.info.name, self.version, feature))
        except (KeyError, ValueError):  # a model or feature the matrix does not know: not supported
            return False

    def explain(self, feature: str) -> str:
        try:
            return str(self.facts.capabilities.explain(self.info.name, self.version, feature))
        except (KeyError, ValueError):
            return f"{self.info.name} {self.firmware}: {feature} not supported"


# --- entry point ---------------------------------------------------------------------------------


def decide_enrollment(facts: EnrollmentFacts, now: datetime) -> Decision:
    """ENR-1..7: the answer to one enrollment request; the rules run in the module's order."""
    now = _aware(now)
    identity = check_identity(facts)
    if identity is not None:
        return _finish(facts, now, identity, verified=False)
    device = facts.device
    assert device is not None  # check_identity answered otherwise
    early = check_approved(device) or check_accounts_enabled(facts) or check_manufacturer(facts)
    if early is not None:
        return _finish(facts, now, early, verified=True)
    known = check_model_and_firmware(facts)
    if isinstance(known, _Outcome):
        return _finish(facts, now, known, verified=True)
    info, version = known
    stored_lock = LockState(max(0, device.failed_attempts), _aware_or_none(device.locked_until))
    ctx = _Ctx(facts, now, device, info, version, stored_lock)
    outcome = gate_firmware(ctx) or zero_touch(ctx) or _code_path(ctx)
    return _finish(facts, now, outcome, verified=True)


def _code_path(ctx: _Ctx) -> _Outcome:
    """ENR-3, DEV-7, LCK-2: a device that is not zero-touch ready enrolls only with a code."""
    outcome = check_lock(ctx)
    if outcome is None:
        code = ctx.facts.request.code
        outcome = ask_for_code(ctx) if code is None or code == "" else check_code(ctx, code)
    if outcome.lock is None and ctx.stored_lock.locked_until is not None and not is_locked(ctx.stored_lock, ctx.now):
        outcome = replace(outcome, lock=LockUpdate(0, None))  # LCK-2: the lock's time has passed
    return outcome


# --- ENR-1, DEV-2, ACC-5, FW-1 -------------------------------------------------------------------


def check_identity(facts: EnrollmentFacts) -> _Outcome | None:
    """ENR-1: the caller must be an imported device: its MAC, its certificate, its thumbprint."""
    device = facts.device
    if device is None:
        return _Outcome(404, "unknown_device", {}, "unknown-device", "no imported device has this MAC")
    if _mac(facts.certificate.cn) != _mac(facts.request.mac):
        return _rejected(
            "certificate-mismatch",
            "The client certificate was issued to another device: its CN differs from the MAC in the request.",
        )
    if not device.thumbprint or _thumbprint(device.thumbprint) != _thumbprint(facts.certificate.thumbprint):
        reason = "thumbprint-mismatch" if device.thumbprint else "no-thumbprint"
        return _Outcome(
            404, "unknown_device", {}, reason, "the certificate is not the imported factory certificate of this MAC"
        )
    if facts.denied is not None:
        return _rejected("certificate-denied", f"This factory certificate is on the deny-list: {facts.denied}")
    return None


def check_approved(device: DeviceRecord) -> _Outcome | None:
    """DEV-2: imported devices enroll only once a platform administrator approved them."""
    if device.approved:
        return None
    return _rejected("not-approved", "The device is not approved by a platform administrator yet.")


def check_accounts_enabled(facts: EnrollmentFacts) -> _Outcome | None:
    """ACC-5: a disabled account's devices do not enroll (its owner's or its site's account)."""
    device = facts.device
    assert device is not None
    if device.owner_id is not None and facts.owner is not None and not facts.owner.enabled:
        return _rejected("disabled-account", f"The account {device.owner_id} that holds the device is disabled.")
    site = facts.site
    if device.site_id is not None and site is not None and site.id == device.site_id and not site.account_enabled:
        return _rejected("disabled-account", f"The account {site.account_id} of the device's site is disabled.")
    return None


def check_manufacturer(facts: EnrollmentFacts) -> _Outcome | None:
    """The allow-lists of the accounts that hold the device (its owner, its site's account)."""
    device = facts.device
    assert device is not None
    lists: list[tuple[str, tuple[str, ...] | None]] = []
    if device.owner_id is not None and facts.owner is not None:
        lists.append((device.owner_id, facts.owner.manufacturers))
    if facts.site is not None and facts.site.id == device.site_id:
        lists.append((facts.site.account_id, facts.site.account_manufacturers))
    return manufacturer_refusal(facts.certificate.manufacturer, lists)


def manufacturer_refusal(manufacturer: str | None, lists: Iterable[tuple[str, tuple[str, ...] | None]],
                         **extra: Any) -> _Outcome | None:
    """403 `manufacturer-not-allowed` when an account's allow-list leaves out the manufacturer CA
    that issued the certificate (an account without a list allows every CA the platform trusts)."""
    for account_id, allowed in lists:
        if allowed is not None and manufacturer not in allowed:
            return _rejected(
                "manufacturer-not-allowed",
                f"Account {account_id} accepts factory certificates of {', '.join(allowed) or 'no manufacturer'} only; "
                f"this one was issued by {manufacturer or 'an unlisted CA'}.",
                **extra,
            )
    return None


def check_model_and_firmware(facts: EnrollmentFacts) -> tuple[ModelFirmware, Version] | _Outcome:
    """FW-1: the imported model must be in the catalog and the reported firmware a version."""
    device = facts.device
    assert device is not None
    try:
        info = facts.catalog.model(device.model)
    except DomainError:
        return _rejected("unknown-model", f"The model {device.model!r} is not in the device-family catalog.")
    try:
        version = parse_version(facts.request.firmware)
    except DomainError:
        return _rejected("invalid-firmware", f"{facts.request.firmware!r} is not a firmware version.")
    return info, version


# --- FW-4, FW-2 ----------------------------------------------------------------------------------


def gate_firmware(ctx: _Ctx) -> _Outcome | None:
    """FW-4, FW-2: below the minimum: upgrade if allowed, else refuse; an unclaimed device below
    latest is sent latest first."""
    if ctx.version < ctx.info.minimum:
        return below_minimum(ctx)
    if ctx.device.owner_id is None and ctx.supports(FIRMWARE_UPGRADE):
        latest = firmware_for_unclaimed(ctx.info.name, ctx.facts.catalog)
        if latest is not None and parse_version(latest) > ctx.version:
            image = _image(ctx, latest)
            if image is not None:
                return _upgrade(ctx, latest, image, "unclaimed-latest", "an unclaimed device is sent latest (FW-2)")
    return None


def below_minimum(ctx: _Ctx) -> _Outcome:
    """FW-4, FW-2, FW-3: a device below the minimum version is upgraded when its version can
    and the policy allows (unclaimed: latest; claimed: account switch + site setting)."""
    why = ""
    target: str | None = None
    if not ctx.supports(FIRMWARE_UPGRADE):
        why = f" ({ctx.explain(FIRMWARE_UPGRADE)})"
    elif ctx.device.owner_id is None:
        target = firmware_for_unclaimed(ctx.info.name, ctx.facts.catalog)
    else:
        target = _claimed_policy_version(ctx, ctx.facts.owner, _own_site(ctx))
        if target is None:
            why = " (firmware upgrade is not enabled for the owner account, site and model, FW-3)"
    gate = check_minimum(ctx.info.name, ctx.version, ctx.facts.catalog, upgrade_to=target)
    if gate.action == "upgrade" and gate.version is not None:
        image = _image(ctx, gate.version)
        if image is None:
            return _rejected(
                "firmware-unavailable",
                f"No firmware image {ctx.info.name} {gate.version} is available for the upgrade.",
            )
        return _upgrade(ctx, gate.version, image, "below-minimum", f"below the minimum {ctx.info.minimum} (FW-4)")
    if gate.reason == "manual-upgrade-required":
        return _rejected("manual-upgrade-required", gate.detail or "manual upgrade required")
    return _rejected("firmware-too-old", (gate.detail or "firmware below the minimum") + why)


def _upgrade(ctx: _Ctx, version: str, image: FirmwareImage, reason: str, why: str) -> _Outcome:
    firmware = {"version": version, "url": image.url, "sha256": image.sha256}
    message = f"upgrade from {ctx.firmware} to {version}: {why}"
    return _Outcome(200, "upgrade", {"firmware": firmware, "reason": reason}, reason, message)


# --- DEV-6, ENR-2, ENR-4 -------------------------------------------------------------------------


def zero_touch(ctx: _Ctx) -> _Outcome | None:
    """DEV-6, ENR-2: claimed + associated + activated -> redirect for the device's site."""
    device = ctx.device
    state = DeviceState(
        mac=device.mac,
        serial=device.serial,
        model=device.model,
        approved=device.approved,
        owner_id=device.owner_id,
        site_id=device.site_id,
        associated=device.associated,
        activated=device.activated,
    )
    if not zero_touch_ready(state):
        return None
    site = _own_site(ctx)
    if site is None:
        return _rejected("no-site", f"The device's site {device.site_id} was not found.")
    outcome = build_redirect(ctx, site, ctx.facts.owner)
    return replace(outcome, reason="zero-touch") if outcome.result == "redirect" else outcome


def build_redirect(ctx: _Ctx, site: SiteFacts, account: AccountFacts | None) -> _Outcome:
    """ENR-2, ENR-4, PRF-4: the redirect to the site's provisioning entry, refused when the
    device cannot use the URL, leaving out the extras it cannot use."""
    entry = site.entry
    if entry is None:
        return _rejected("no-profile", f"The customer site {site.id} has no profile (PRF-4).")
    try:
        parsed = validate_provisioning_url(entry.url)
    except DomainError as exc:
        return _rejected("invalid-profile", f"The site's provisioning URL is not valid: {exc.detail}")
    server_type = str(entry.server_type)
    missing = unusable_url_feature(ctx, parsed, server_type)
    if missing is not None:
        return _rejected("unsupported-url", f"{ctx.explain(missing)} (ENR-4)")
    left_out: list[str] = []
    group = entry.group
    if not ctx.supports(GROUP_ID):
        if group != 0:
            left_out.append(f"group {group} ({ctx.explain(GROUP_ID)})")
        group = 0
    trust = [entry.root_ca_pem] if entry.root_ca_pem else []
    if trust and not ctx.supports(ROOT_CA):
        left_out.append(f"root CA ({ctx.explain(ROOT_CA)})")
        trust = []
    identity: dict[str, str] | None = None
    if entry.identity_certificates:
        if not ctx.supports(IDENTITY_CERTIFICATES):
            left_out.append(f"identity certificate ({ctx.explain(IDENTITY_CERTIFICATES)})")
        elif not ctx.facts.est_base_url:
            left_out.append("identity certificate (no EST URL configured)")
        else:
            identity = {"est": ctx.facts.est_base_url}
    firmware, firmware_note = redirect_firmware(ctx, site, account, server_type)
    if firmware_note:
        left_out.append(firmware_note)
    body = {
        "provisioning": {"url": parsed.url, "server_type": server_type, "group": group, "trust": trust},
        "firmware": firmware,
        "identity": identity,
    }
    message = f"redirected to {parsed.redacted} ({server_type}, group {group}, site {site.id})"
    if firmware is not None:
        message += f", firmware {firmware['version']}"
    if identity is not None:
        message += ", identity certificate"
    if left_out:
        message += "; left out: " + "; ".join(left_out)
    return _Outcome(200, "redirect", body, "redirect", message)


def unusable_url_feature(ctx: _Ctx, url: ParsedUrl, server_type: str) -> str | None:
    """ENR-4: the first feature the URL needs that the model at its version lacks, or None."""
    needed = [PROVISIONING_URLS, HTTPS_URL if url.scheme == "https" else HTTP_URL]
    if url.is_ip:
        needed.append(IP_ADDRESS_URL)
    if server_type == "DES":
        needed.append(DES_SERVER)
    return next((feature for feature in needed if not ctx.supports(feature)), None)


def redirect_firmware(
    ctx: _Ctx, site: SiteFacts, account: AccountFacts | None, server_type: str
) -> tuple[dict[str, str] | None, str | None]:
    """FW-3, FW-5, ENR-2, ENR-4: the redirect's firmware object (or None) and, when a version
    was due but is not sent, why."""
    target = _claimed_policy_version(ctx, account, site)
    if target is None or parse_version(target) == ctx.version:
        return None, None
    if server_type != "DES" and not (ctx.device.first_contact and ctx.device.pre_claimed):
        return None, f"firmware {target} (FW-5: not the first contact of a pre-claimed device)"
    if not ctx.supports(FIRMWARE_UPGRADE):
        return None, f"firmware {target} ({ctx.explain(FIRMWARE_UPGRADE)})"
    image = _image(ctx, target)
    if image is None:
        return None, f"firmware {target} (no image available)"
    return {"version": target, "url": image.url, "sha256": image.sha256}, None


def _claimed_policy_version(ctx: _Ctx, account: AccountFacts | None, site: SiteFacts | None) -> str | None:
    """FW-3/SIT-3: the version the account switch and the site/model setting pick, or None."""
    if account is None:
        return None
    try:
        return resolve_firmware(
            account.firmware_upgrade,
            site.firmware_setting if site is not None else None,
            ctx.info.name,
            ctx.facts.catalog,
            account_setting=account.firmware_setting,
        )
    except DomainError:  # a setting that no longer parses sends nothing rather than something odd
        return None


def _own_site(ctx: _Ctx) -> SiteFacts | None:
    site = ctx.facts.site
    return site if site is not None and ctx.device.site_id is not None and site.id == ctx.device.site_id else None


def _image(ctx: _Ctx, version: str) -> FirmwareImage | None:
    images = ctx.facts.firmware_images
    found = images.get(version) if isinstance(images, Mapping) else images(ctx.info.name, version)
    if found is None:
        return None
    url, sha256 = found
    return FirmwareImage(url, sha256)


# --- LCK-2, ENR-3, EC ----------------------------------------------------------------------------


def check_lock(ctx: _Ctx) -> _Outcome | None:
    """LCK-2: while locked, every request that needs a code is refused, right code or wrong."""
    if not is_locked(ctx.stored_lock, ctx.now):
        return None
    seconds = retry_after_seconds(ctx.stored_lock, ctx.now)
    return _Outcome(423, "locked", {"retry_after": seconds}, "locked", f"locked after wrong codes for {seconds} s more")


def supported_formats(ctx: _Ctx) -> list[CodeKind]:
    """ENR-3, Appendix A: the code formats the model at its version can take."""
    return [kind for kind, feature in CODE_FEATURES.items() if ctx.supports(feature)]


def ask_for_code(ctx: _Ctx) -> _Outcome:
    """ENR-3, DEV-7: a device that is not zero-touch ready is asked for a code, if it takes one."""
    formats = supported_formats(ctx)
    if not formats:
        detail = (
            f"{ctx.info.name} {ctx.firmware} takes no enrollment code "
            f"({ctx.explain(CODE_FEATURES['nec8'])}); claim, associate and activate it for zero-touch."
        )
        return _rejected("codes-not-supported", detail)
    return _Outcome(
        200, "code_required", {"formats": list(formats)}, "code-required", "asked for " + ", ".join(formats)
    )


def check_code(ctx: _Ctx, code: str) -> _Outcome:
    """EC-3, EC-6, EC-7, LCK-2: a right code enrolls the device; anything else is a wrong code."""
    kind = classify_code(code)
    if kind is None:
        return wrong_code(ctx, "malformed-code", "a code that is not 8 or 12 digits")
    if kind not in supported_formats(ctx):
        return wrong_code(ctx, "unsupported-code-format", f"a {kind} code ({ctx.explain(CODE_FEATURES[kind])})")
    match = ctx.facts.code_match
    problem = nec_problem(code, match, ctx.now) if kind != "pec12" else pec_problem(code, match)
    if problem is not None or match is None:
        reason = problem or "wrong-code"
        return wrong_code(ctx, reason, f"a {kind} code: {reason}")
    return enroll_with_code(ctx, kind, code, match)


def nec_problem(code: str, match: CodeMatch | None, now: datetime) -> str | None:
    """EC-1, EC-3: why an NEC does not enroll: unknown, `expired-code` or `used-up-code`."""
    if match is None or match.nec is None or not hmac.compare_digest(match.nec.code.encode(), code.encode()):
        return "wrong-code"
    nec = replace(match.nec, started_at=_aware(match.nec.started_at))
    why = code_usable(nec, now)
    return f"{why}-code" if why else None


def pec_problem(code: str, match: CodeMatch | None) -> str | None:
    """EC-6: a PEC is the account ID of the site's account followed by the site's PIN."""
    if match is None or match.nec is not None or match.site.pin is None:
        return "wrong-code"
    account_ok = match.account.account_id == code[:8] and match.site.account_id == match.account.account_id
    pin_ok = hmac.compare_digest(match.site.pin.encode(), code[8:].encode())
    return None if account_ok and pin_ok else "wrong-code"


def enroll_with_code(ctx: _Ctx, kind: CodeKind, code: str, match: CodeMatch) -> _Outcome:
    """EC-7, ACC-5, ENR-4: a right code claims, associates and activates the device in one
    step and redirects it; a refusal on the way consumes and changes nothing."""
    site, account = match.site, match.account
    named: dict[str, Any] = {"code_account": site.account_id, "code_site": site.id}
    if not account.enabled or not site.account_enabled:
        return _rejected("disabled-account", f"The account {site.account_id} of the code's site is disabled.", **named)
    refused = manufacturer_refusal(ctx.facts.certificate.manufacturer,
                                   [(account.account_id, account.manufacturers),
                                    (site.account_id, site.account_manufacturers)], **named)
    if refused is not None:
        return refused
    owner = ctx.device.owner_id
    if owner is not None and owner != site.account_id:
        return _rejected(
            "claimed-elsewhere",
            f"The device is held by account {owner}, not by the code's account {site.account_id}; "
            "its holder associates it (DEV-4).",
            **named,
        )
    outcome = replace(build_redirect(ctx, site, account), code_account=site.account_id, code_site=site.id)
    if outcome.result != "redirect":
        return outcome
    return replace(
        outcome,
        reason="code-enrolled",
        message=f"{kind} code accepted; {outcome.message}",
        claim=Claim(site.account_id, site.id),
        consume=CodeConsumption(site.id, kind, code) if match.nec is not None else None,
        lock=LockUpdate(0, None),
    )


def wrong_code(ctx: _Ctx, reason: str, what: str) -> _Outcome:
    """LCK-2, LCK-3: count a wrong code; the L-th consecutive one locks, and says so."""
    policy = ctx.facts.policy
    counted = after_wrong_code(ctx.lock, policy, ctx.now)
    update = LockUpdate(counted.state.failed, counted.state.locked_until, expected_failed=ctx.stored_lock.failed)
    if counted.locked:
        seconds = retry_after_seconds(counted.state, ctx.now)
        message = f"wrong code ({what}); {counted.state.failed} in a row: locked for {policy.minutes} min"
        return _Outcome(423, "locked", {"retry_after": seconds}, reason, message, lock=update)
    message = f"wrong code ({what}); {counted.attempts_left} attempts left"
    return _Outcome(422, "code_invalid", {"attempts_left": counted.attempts_left}, reason, message, lock=update)


# --- the shared parts: updates, notifications, audit ---------------------------------------------


def _finish(facts: EnrollmentFacts, now: datetime, outcome: _Outcome, *, verified: bool) -> Decision:
    """ENR-5, NTF-1: add the device updates, notifications and audit record to a rule's answer."""
    device = facts.device
    firmware = _reported_firmware(facts.request.firmware)
    updates = None
    if verified and device is not None:
        updates = DeviceUpdates(
            last_contact=now,
            firmware=firmware,
            enrolled_at=now if outcome.result == "redirect" else None,
            claim=outcome.claim,
            lock=outcome.lock,
        )
    model = device.model if device is not None else facts.request.model
    message = f"{model} {firmware}: {outcome.message}"
    if device is not None and facts.request.model != device.model:
        message += f" (the device says model {facts.request.model!r})"
    owner = device.owner_id if device is not None else None
    audit = EnrollmentAudit(
        mac=_mac(facts.request.mac),
        subject=facts.certificate.subject or f"CN={facts.certificate.cn}",
        client_host=facts.request.client_host,
        status="SUCCESS" if outcome.result in _SUCCESSES else "FAIL",
        reason=outcome.reason,
        message=message,
        account_id=outcome.code_account if outcome.claim is not None else owner or outcome.code_account,
    )
    return Decision(
        status=outcome.status,
        result=outcome.result,
        body={"result": outcome.result, **outcome.body},
        audit=audit,
        consume_code=outcome.consume,
        device_updates=updates,
        notify=_notices(facts, now, outcome, audit, firmware),
    )


def _notices(
    facts: EnrollmentFacts, now: datetime, outcome: _Outcome, audit: EnrollmentAudit, firmware: str
) -> tuple[Notice, ...]:
    """NTF-1: "Device Enrollment Failure" on refusals of a known device, "Enrollment Code
    Usage" on a code enrollment."""
    device = facts.device
    if device is None or (outcome.claim is None and outcome.result not in _REFUSALS):
        return ()
    common = {"mac": audit.mac, "model": device.model, "at": now.isoformat()}
    if outcome.claim is not None and outcome.code_account is not None:
        usage = {
            **common,
            "account_id": outcome.code_account,
            "account": outcome.code_account,
            "site": str(outcome.code_site),
            "result": "enrolled",
        }
        return (Notice(NotificationKind.ENROLLMENT_CODE_USAGE.value, usage),)
    if outcome.result not in _REFUSALS:
        return ()
    recipients = dict.fromkeys(r for r in (device.owner_id, outcome.code_account) if r is not None)
    detail = outcome.body.get("detail", outcome.message)
    failure = {
        **common,
        "firmware": firmware,
        "reason": outcome.reason,
        "detail": str(detail),
        "client_host": facts.request.client_host or "(unknown)",
    }
    return tuple(
        Notice(NotificationKind.DEVICE_ENROLLMENT_FAILURE.value, {**failure, "account_id": r}) for r in recipients
    )


def _mac(text: str) -> str:
    try:
        return normalize_mac(text)
    except DomainError:
        return text.strip().upper() if isinstance(text, str) else str(text)


def _thumbprint(text: str) -> str:
    return re.sub(r"[\s:]", "", text).upper() if isinstance(text, str) else ""


def _reported_firmware(text: str) -> str:
    try:
        return str(parse_version(text))
    except DomainError:
        return str(text)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None and moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)
