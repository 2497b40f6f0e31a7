"""Email notifications (NTF-1): the seven kinds, per-account switches, and rendered messages.

All kinds are on by default; an account stores only the switches it turned off (or back on).
Rendered messages never carry secrets: secret facts are masked and every text fact goes
through the audit log's redaction (URL passwords, key=value secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from server.domain.audit import MASK, redact
from server.domain.errors import DomainError


class NotificationKind(StrEnum):
    """NTF-1: the guide's seven email notification settings, by stable id."""

    ENROLLMENT_CODE_USAGE = "enrollment-code-usage"
    PROVISION_CHANGES = "provision-changes"
    CLAIMING_DEVICE = "claiming-device"
    ASSOCIATING_DEVICE = "associating-device"
    DEVICE_ENROLLMENT_FAILURE = "device-enrollment-failure"
    USER_PASSWORD_RESET = "user-password-reset"  # noqa: S105 - a kind's id, not a password
    ACCOUNT_LINKING = "account-linking"

    @property
    def label(self) -> str:
        """The setting's name in the guide and the portal."""
        return _LABELS[self]

    @property
    def purpose(self) -> str:
        """The guide's "Purpose of the email notification"."""
        return _PURPOSES[self]


_LABELS = {
    NotificationKind.ENROLLMENT_CODE_USAGE: "Enrollment Code Usage",
    NotificationKind.PROVISION_CHANGES: "Provision Changes",
    NotificationKind.CLAIMING_DEVICE: "Claiming Device",
    NotificationKind.ASSOCIATING_DEVICE: "Associating Device",
    NotificationKind.DEVICE_ENROLLMENT_FAILURE: "Device Enrollment Failure",
    NotificationKind.USER_PASSWORD_RESET: "User Password Reset",
    NotificationKind.ACCOUNT_LINKING: "Account Linking",
}
_PURPOSES = {
    NotificationKind.ENROLLMENT_CODE_USAGE: (
        "To inform the company and user administrator when a device user has entered an enrollment code."
    ),
    NotificationKind.PROVISION_CHANGES: "To indicate when the provisioning URL has been modified.",
    NotificationKind.CLAIMING_DEVICE: "To provide information about a claimed device.",
    NotificationKind.ASSOCIATING_DEVICE: (
        "To indicate when a device has been associated with an account or a customer site."
    ),
    NotificationKind.DEVICE_ENROLLMENT_FAILURE: (
        "To inform the company administrator that device enrollment failed, with the reason."
    ),
    NotificationKind.USER_PASSWORD_RESET: "To inform a user that their password has been changed.",
    NotificationKind.ACCOUNT_LINKING: "To inform the service provider and reseller when accounts are linked.",
}

# (subject, body); placeholders are facts passed to `render`, a missing one shows as "(unknown)".
_TEMPLATES: dict[NotificationKind, tuple[str, str]] = {
    NotificationKind.ENROLLMENT_CODE_USAGE: (
        "Enrollment code used at site {site}",
        "A device user entered an enrollment code.\n\n"
        "Device: {mac} (model {model})\nSite: {site}\nAccount: {account}\n"
        "Code: {code}\nResult: {result}\nTime: {at}\n",
    ),
    NotificationKind.PROVISION_CHANGES: (
        "Provisioning URL changed in profile {profile}",
        "The provisioning URL of profile {profile} was changed by {changed_by}.\n\n"
        "Before: {old_url}\nAfter: {new_url}\nTime: {at}\n",
    ),
    NotificationKind.CLAIMING_DEVICE: (
        "Device {mac} claimed",
        "Device {mac} (model {model}, serial {serial}) was claimed by account {account} ({changed_by}).\nTime: {at}\n",
    ),
    NotificationKind.ASSOCIATING_DEVICE: (
        "Device {mac} associated",
        "Device {mac} (model {model}) was associated with account {account}, site {site}, by {changed_by}.\n"
        "Time: {at}\n",
    ),
    NotificationKind.DEVICE_ENROLLMENT_FAILURE: (
        "Enrollment failed for device {mac}",
        "Device {mac} (model {model}, firmware {firmware}) could not enroll.\n\n"
        "Reason: {reason}\n{detail}\nClient host: {client_host}\nTime: {at}\n",
    ),
    NotificationKind.USER_PASSWORD_RESET: (
        # Neutral wording: the same kind carries a reset link (USR-2) and the notice of a change.
        "Password reset for user {login}",
        "A password reset was requested for, or completed by, user {login} ({at}).\n"
        "If this was not you, contact your administrator at once.\n",
    ),
    NotificationKind.ACCOUNT_LINKING: (
        "Account linking: {provider} and {reseller}",
        "The linking request from service provider {provider} to reseller {reseller} was {status}.\nTime: {at}\n",
    ),
}

# Facts that are secrets in themselves, whatever their value looks like. An enrollment code is
# masked whole: a PEC's last four digits are the site PIN (EC-6).
SECRET_FACTS = frozenset({"password", "new_password", "old_password", "token", "otp", "code", "pin", "secret"})
_UNKNOWN = "(unknown)"


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return _UNKNOWN


def _invalid(error: str, detail: str, value: Any = None) -> DomainError:
    return DomainError(error, detail, 422, value)


def notification_kind(value: NotificationKind | str) -> NotificationKind:
    """NTF-1: a kind by its id (`claiming-device`) or its label (`Claiming Device`)."""
    if isinstance(value, NotificationKind):
        return value
    key = value.strip().lower() if isinstance(value, str) else ""
    for kind in NotificationKind:
        if key in (kind.value, kind.label.lower()):
            return kind
    raise _invalid(
        "unknown-notification-kind",
        f"{value!r} is not a notification; the notifications are {', '.join(NotificationKind)}.",
        value,
    )


def effective_settings(overrides: Mapping[str, bool]) -> dict[str, bool]:
    """NTF-1: every kind is on unless the account switched it off.

    Stored switches for kinds that no longer exist are ignored rather than refused: they are
    old data, not a request.
    """
    return {kind.value: bool(overrides.get(kind.value, True)) for kind in NotificationKind}


def validate_settings_patch(patch: object) -> dict[str, bool]:
    """NTF-1: a settings change maps kinds (id or label) to true/false; returns it keyed by id."""
    if not isinstance(patch, Mapping):
        raise _invalid(
            "invalid-notification-settings",
            'Notification settings are an object {"<kind>": true|false}.',
            patch,
        )
    result: dict[str, bool] = {}
    for key, value in patch.items():
        kind = notification_kind(key)
        if not isinstance(value, bool):
            raise _invalid(
                "invalid-notification-settings", f"The switch for {kind.value} must be true or false.", value
            )
        result[kind.value] = value
    return result


def render(kind: NotificationKind | str, **facts: object) -> tuple[str, str]:
    """NTF-1: the subject and body of one notification, secrets redacted.

    The subject is kept to one line, so a fact cannot add mail headers.
    """
    subject_template, body_template = _TEMPLATES[notification_kind(kind)]
    safe = _Facts({name: _safe_fact(name, value) for name, value in facts.items()})
    subject = " ".join(subject_template.format_map(safe).split())
    return subject, body_template.format_map(safe)


def _safe_fact(name: str, value: object) -> str:
    if value is None:
        return _UNKNOWN
    if name.lower() in SECRET_FACTS:
        return MASK
    return redact(str(value))
