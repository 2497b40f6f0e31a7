"""Tables of the reference server (SQLAlchemy 2 declarative). Migrations live in `migrations/`.

Columns that searches filter on (DEV-11, LOG-1) are indexed; counters that must never overshoot
(EC-3, LCK-3) are plain integers updated with conditional UPDATEs by the repositories.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    type: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # Materialised path "/00000001/12345678/": subtree queries (ACC-7) are one prefix match.
    path: Mapped[str] = mapped_column(String(400), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    bp_link_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    sap_id: Mapped[str | None] = mapped_column(String(64))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    firmware_upgrade: Mapped[bool] = mapped_column(Boolean, default=False)  # FW-3 Decision: off
    two_factor: Mapped[bool] = mapped_column(Boolean, default=False)  # ACC-10
    two_factor_children: Mapped[bool] = mapped_column(Boolean, default=False)  # ACC-10 (SP → resellers)
    switch_approved: Mapped[bool] = mapped_column(Boolean, default=False)  # ACC-9
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The manufacturer CAs (labels, `Pki.manufacturer_of`) whose factory certificates its devices may
    # enroll with; None: any the platform trusts (issue 13).
    manufacturers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # DEV-3 claim proof (issue 13, 0006): this account's claims (and its subtree's) need a label code.
    label_code_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # USR-3 certificate login (issue 16, 0012): the client root CA issuing its administrators' user certificates.
    login_ca_pem: Mapped[str | None] = mapped_column(Text, nullable=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    password_temporary: Mapped[bool] = mapped_column(Boolean, default=True)  # USR-1
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # USR-4: a code works once
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Token(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    acting_account_id: Mapped[str | None] = mapped_column(String(8))  # ACC-9 switch account
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ResetToken(Base):
    """USR-2: a password reset token (digest only), 5 minutes, once."""

    __tablename__ = "reset_tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Profile(Base):
    __tablename__ = "profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_profiles_account_name"),)


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="SET NULL"), index=True)
    entry: Mapped[int] = mapped_column(Integer, default=0)
    pin: Mapped[str | None] = mapped_column(String(4))
    config_zip: Mapped[bytes | None] = mapped_column(LargeBinary)
    config_members: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("account_id", "name", name="uq_sites_account_name"),
        # EC-6: a PEC is account ID + PIN, so a PIN is unique within its account.
        UniqueConstraint("account_id", "pin", name="uq_sites_account_pin"),
    )


class SiteFirmware(Base):
    """SIT-3: firmware setting per site and model."""

    __tablename__ = "site_firmware"
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(16), primary_key=True)
    setting: Mapped[str] = mapped_column(String(32))


class EnrollmentCode(Base):
    """EC-1: one numeric enrollment code per site."""

    __tablename__ = "enrollment_codes"
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)  # EC-8
    length: Mapped[int] = mapped_column(Integer)
    total_devices: Mapped[int] = mapped_column(Integer)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    expiry_unit: Mapped[str | None] = mapped_column(String(8))
    expiry_value: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Device(Base):
    __tablename__ = "devices"
    mac: Mapped[str] = mapped_column(String(12), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(16), index=True)
    product_id: Mapped[str | None] = mapped_column(String(64))
    hardware: Mapped[str | None] = mapped_column(String(64))
    thumbprint: Mapped[str | None] = mapped_column(String(64), index=True)
    manufactured_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reseller_order_id: Mapped[str | None] = mapped_column(String(64), index=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    shipment_carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_id: Mapped[str | None] = mapped_column(String(64))
    aco_product_id: Mapped[str | None] = mapped_column(String(64))
    approved: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    previous_owner_id: Mapped[str | None] = mapped_column(String(8))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"), index=True)
    associated: Mapped[bool] = mapped_column(Boolean, default=False)
    activated: Mapped[bool] = mapped_column(Boolean, default=False)
    synced: Mapped[bool] = mapped_column(Boolean, default=False)
    firmware: Mapped[str | None] = mapped_column(String(32))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_contact: Mapped[datetime | None] = mapped_column(UtcDateTime)
    imported_by: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # DEV-3 claim proof (issue 13, 0006): SHA-256 of the MAC and the label code (claim_proof).
    label_code_hash: Mapped[str | None] = mapped_column(String(64))
    # Issue 16 (0011): when EST last issued it an identity certificate (the timeline's stage counts).
    identity_issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceEvent(Base):
    """Issue 16 (S15): one step of a device's enrollment as the server saw it — approved, claimed,
    associated, activated (admin calls and jobs), first contact, redirect delivered (its profile
    URL), refusals (enrollment), identity certificate issued or refused (EST) — written in the
    transaction of the change (`server.store.timeline`). `id` orders them: the fleet status cursor (0011)."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_mac_id", "mac", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mac: Mapped[str] = mapped_column(ForeignKey("devices.mac", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(24))
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    login: Mapped[str | None] = mapped_column(String(254))  # the administrator, when one did it
    account_id: Mapped[str | None] = mapped_column(String(8))  # the account it went to / acted in
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(256), default="")
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_labels_account_name"),)


class DeviceLabel(Base):
    __tablename__ = "device_labels"
    mac: Mapped[str] = mapped_column(ForeignKey("devices.mac", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))  # import | devices | profile-association
    actions: Mapped[list[str]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="IN PROGRESS")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # DEV-10: a background job's liveness, so a job whose server stopped can be failed (0004).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    runner_id: Mapped[str | None] = mapped_column(String(64))


class JobResult(Base):
    __tablename__ = "job_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(64))  # MAC, site id, or "file:row"
    file: Mapped[str | None] = mapped_column(String(256))
    row: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # SUCCESS | FAIL
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    """LOG-1 and ENR-5."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    account_id: Mapped[str | None] = mapped_column(String(8), index=True)
    account_path: Mapped[str | None] = mapped_column(String(400), index=True)
    login: Mapped[str | None] = mapped_column(String(254), index=True)
    acting_as: Mapped[str | None] = mapped_column(String(8))
    process: Mapped[str] = mapped_column(String(32), index=True)
    client_host: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(8), index=True)
    message: Mapped[str] = mapped_column(Text, default="")


class Notification(Base):
    """NTF-1 outbox."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(48), index=True)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class NotificationSetting(Base):
    __tablename__ = "notification_settings"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(48), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class DeniedCertificate(Base):
    """Factory certificates refused at enrollment (the deny-list, issue 13), by SHA-256 thumbprint."""

    __tablename__ = "denied_certificates"
    thumbprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    denied_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    denied_by: Mapped[str | None] = mapped_column(String(128))


class Setting(Base):
    """Platform settings (LCK-1 lockout), JSON values by key. SIT-3's N per model is `device_families.data.last_n`."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class DeviceFamily(Base):
    """FW-1: the catalog as the platform edits it; seeded from fixtures/firmware-catalog.json."""

    __tablename__ = "device_families"
    model: Mapped[str] = mapped_column(String(16), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class LinkRequest(Base):
    """ACC-8."""

    __tablename__ = "link_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="PENDING")  # PENDING|APPROVED|REJECTED
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)



class OrderSystem(Base):
    """DEP-1: an upstream order system of an account, with its API token and optional key (0007)."""

    __tablename__ = "order_systems"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the token
    key: Mapped[str | None] = mapped_column(String(64))  # Fernet key: batches must be encrypted
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OrderBatch(Base):
    """DEP-1: one request batch of an order system; its batch id is unique per order system."""

    __tablename__ = "order_batches"
    __table_args__ = (UniqueConstraint("order_system_id", "batch_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_system_id: Mapped[int] = mapped_column(ForeignKey("order_systems.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    customer_account: Mapped[str] = mapped_column(String(8))
    site_id: Mapped[int | None] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical batch: replays compare it
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OrderDevice(Base):
    """DEP-1: one device of a batch, as requested, and its outcome once processed (null before)."""

    __tablename__ = "order_devices"
    __table_args__ = (UniqueConstraint("batch_pk", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_pk: Mapped[int] = mapped_column(ForeignKey("order_batches.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(12))
    serial: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(16))
    request_type: Mapped[str] = mapped_column(String(2))
    outcome: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


# --- PNP-1 (pre-registration, QR batches, replacement) -------------------------------------


class PnpRegistration(Base):
    """PNP-1: a device's onboarding data registered before the device is at hand (0008): where it
    goes (account, site). `pending` until the device is imported and approved, then `ready`."""

    __tablename__ = "pnp_registrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mac: Mapped[str] = mapped_column(String(12), unique=True)
    serial: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(16))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    registrant_id: Mapped[str] = mapped_column(String(8))  # the account that registered it (ACC-7)
    registered_by: Mapped[str] = mapped_column(String(254))
    # DEV-3: the label code given with it (`claim_proof.label_code_hash`), until the device is placed
    label_code_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | ready
    detail: Mapped[str | None] = mapped_column(Text)  # why it is still pending
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class QrBatch(Base):
    """PNP-1: a batch of QR onboarding codes, monitored by its batch number (0008)."""

    __tablename__ = "qr_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(254))
    target_account_id: Mapped[str | None] = mapped_column(String(8), index=True)
    target_site_id: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QrCode(Base):
    """PNP-1: one device's one-time claim token (its SHA-256 only) in a QR batch (0008)."""

    __tablename__ = "qr_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_pk: Mapped[int] = mapped_column(ForeignKey("qr_batches.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str] = mapped_column(String(12), index=True)
    serial: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scanned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scanned_by: Mapped[str | None] = mapped_column(String(254))
    account_id: Mapped[str | None] = mapped_column(String(8))  # where the scan onboarded the device
    site_id: Mapped[int | None] = mapped_column(Integer)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # another code of the MAC was used


class PnpEvent(Base):
    """PNP-1: a device's placement history — pre-registered, onboarded by QR, reprovisioned,
    replaced (`other_mac`: the device on the other side of a replacement) (0008)."""

    __tablename__ = "pnp_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(12), index=True)
    other_mac: Mapped[str | None] = mapped_column(String(12), index=True)
    from_account: Mapped[str | None] = mapped_column(String(8))
    from_site: Mapped[int | None] = mapped_column(Integer)
    to_account: Mapped[str | None] = mapped_column(String(8))
    to_site: Mapped[int | None] = mapped_column(Integer)
    by_login: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)



# --- FF-1 (slots, direct additions, billing) --------------------------------------------------


class ProvisioningSlot(Base):
    """FF-1 two-step: a place an administrator prepared for one device (named by MAC or serial),
    filled when that device reports in (`POST /device/v1/enroll`); open while `filled_at` is null (0009)."""

    __tablename__ = "ff_slots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str | None] = mapped_column(String(12), index=True)
    serial: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    filled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    filled_mac: Mapped[str | None] = mapped_column(String(12))


class DirectDevice(Base):
    """FF-1 direct addition: a device added by its reporting id (the MAC) without reporting in,
    and its version for optimistic concurrency (`v`); goes with the device (0009)."""

    __tablename__ = "ff_direct_devices"
    mac: Mapped[str] = mapped_column(ForeignKey("devices.mac", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    added_by: Mapped[str] = mapped_column(String(254))
    added_via: Mapped[str] = mapped_column(String(16))  # rest | websocket
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BillingEntry(Base):
    """FF-1 billing ledger: one row per direct addition, kept when the device (or its account) is
    deleted — no foreign keys on purpose; `month` is the UTC month of the addition (0009)."""

    __tablename__ = "billing_ledger"
    __table_args__ = (Index("ix_billing_ledger_account_month", "account_id", "month"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(8))
    account_path: Mapped[str] = mapped_column(String(400), index=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    mac: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    added_by: Mapped[str] = mapped_column(String(254))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)


Index("ix_audit_account_at", AuditLog.account_path, AuditLog.at)


# --- signed webhooks (issue 16) -------------------------------------------------------------------


class Webhook(Base):
    """A receiver URL an account registered for some event types; its signing secret is kept to
    sign with (it cannot be hashed) and is shown only when created or rotated (0010)."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    account_path: Mapped[str] = mapped_column(String(400), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(256), default="")
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """The outbox and delivery log: one event for one webhook, written in the transaction of the
    change that caused it; `delivery_id` is the same on every attempt (0010)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    event: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(8))  # the account the event is filed under
    body: Mapped[str] = mapped_column(Text)  # the exact JSON text every attempt sends and signs
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status, if any
    last_error: Mapped[str | None] = mapped_column(String(256))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """One attempt of a delivery, as the delivery log shows it (0010)."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(256))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
