"""NTF-1: email notification kinds, per-account switches, rendering without secrets."""

from __future__ import annotations

from typing import Any

import pytest

from server.domain.errors import DomainError
from server.domain.notifications import (
    NotificationKind,
    effective_settings,
    notification_kind,
    render,
    validate_settings_patch,
)

GUIDE_LABELS = [
    "Enrollment Code Usage",
    "Provision Changes",
    "Claiming Device",
    "Associating Device",
    "Device Enrollment Failure",
    "User Password Reset",
    "Account Linking",
]


def test_ntf1_the_seven_kinds_of_the_guide_with_stable_ids() -> None:
    assert [kind.label for kind in NotificationKind] == GUIDE_LABELS
    assert [kind.value for kind in NotificationKind] == [
        "enrollment-code-usage",
        "provision-changes",
        "claiming-device",
        "associating-device",
        "device-enrollment-failure",
        "user-password-reset",
        "account-linking",
    ]
    assert all(kind.purpose.startswith("To ") for kind in NotificationKind)


def test_ntf1_all_on_by_default() -> None:
    assert effective_settings({}) == {kind.value: True for kind in NotificationKind}


def test_ntf1_overrides_switch_kinds_off_and_ignore_stale_keys() -> None:
    settings = effective_settings({"claiming-device": False, "account-linking": True, "retired-kind": False})
    assert settings["claiming-device"] is False
    assert settings["account-linking"] is True
    assert "retired-kind" not in settings
    assert sum(settings.values()) == 6


def test_ntf1_settings_patch_accepts_ids_and_labels() -> None:
    patch = validate_settings_patch({"Claiming Device": False, "provision-changes": True, "USER PASSWORD RESET": False})
    assert patch == {"claiming-device": False, "provision-changes": True, "user-password-reset": False}
    assert validate_settings_patch({}) == {}


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"claiming-device": "off"}, "invalid-notification-settings"),
        ({"claiming-device": 0}, "invalid-notification-settings"),
        ({"claiming-device": None}, "invalid-notification-settings"),
        ({"newsletter": True}, "unknown-notification-kind"),
        (["claiming-device"], "invalid-notification-settings"),
        ("claiming-device=false", "invalid-notification-settings"),
    ],
)
def test_ntf1_settings_patch_refuses_bad_keys_and_values(patch: Any, error: str) -> None:
    with pytest.raises(DomainError) as info:
        validate_settings_patch(patch)
    assert (info.value.error, info.value.status) == (error, 422)


def test_ntf1_kind_by_id_label_or_enum() -> None:
    assert notification_kind("account-linking") is NotificationKind.ACCOUNT_LINKING
    assert notification_kind("Account Linking") is NotificationKind.ACCOUNT_LINKING
    assert notification_kind(NotificationKind.ACCOUNT_LINKING) is NotificationKind.ACCOUNT_LINKING


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_ntf1_every_kind_renders_with_missing_facts_shown_as_unknown(kind: NotificationKind) -> None:
    subject, body = render(kind)
    assert subject and body
    assert "{" not in subject + body
    assert "\n" not in subject


def test_ntf1_device_enrollment_failure_carries_the_reason() -> None:
    subject, body = render(
        "device-enrollment-failure",
        mac="A4251B0C3D5E",
        model="K175",
        firmware="1.0",
        reason="unsupported-url",
        detail="K175 below 1.1SP1 cannot use an HTTP provisioning URL.",
    )
    assert subject == "Enrollment failed for device A4251B0C3D5E"
    assert "Reason: unsupported-url" in body
    assert "K175 below 1.1SP1" in body


def test_ntf1_provision_changes_redacts_url_passwords() -> None:
    _, body = render(
        NotificationKind.PROVISION_CHANGES,
        profile="Main",
        changed_by="alice",
        old_url="https://prov:OldSecret1@files.example.com/$MACADDR.cfg",
        new_url="https://prov:N3wS3cret!@files.example.com/j100/",
    )
    assert "OldSecret1" not in body and "N3wS3cret!" not in body
    assert "https://prov:****@files.example.com/j100/" in body


def test_ntf1_enrollment_code_usage_never_shows_the_code() -> None:
    subject, body = render(
        NotificationKind.ENROLLMENT_CODE_USAGE,
        mac="A4251B0C3D5E",
        model="J179",
        site="HQ",
        code="123456789012",
        pin="9012",
    )
    assert "123456789012" not in body and "9012" not in body
    assert "Code: ****" in body
    assert subject == "Enrollment code used at site HQ"


def test_ntf1_password_reset_never_shows_passwords_or_tokens() -> None:
    subject, body = render(
        "User Password Reset",
        login="bob",
        at="2024-01-01T10:00:00Z",
        password="hunter2",
        token="abc123def456",
    )
    assert "hunter2" not in subject + body and "abc123def456" not in subject + body
    assert "bob" in body


def test_ntf1_subject_stays_one_line() -> None:
    subject, _ = render("claiming-device", mac="A4251B0C3D5E\r\nBcc: victim@example.com")
    assert "\n" not in subject and "\r" not in subject


def test_ntf1_fact_text_is_not_reinterpreted_as_a_template() -> None:
    _, body = render("account-linking", provider="{reseller}", reseller="Acme", status="approved")
    assert "service provider {reseller} to reseller Acme was approved" in body


def test_ntf1_unknown_kind_refused() -> None:
    with pytest.raises(DomainError) as info:
        render("newsletter")
    assert info.value.error == "unknown-notification-kind"
