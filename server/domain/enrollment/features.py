"""The Appendix A feature ids (fixtures/feature-matrix.json) the enrollment rules ask about."""

from __future__ import annotations

from collections.abc import Mapping

from server.domain.codes import CodeKind

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
