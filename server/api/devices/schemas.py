"""Admin API, devices: request bodies (JSON schema), answer columns and limits shared by the device modules."""

from __future__ import annotations

from server.domain import imports

CHUNK = 500  # MACs per IN (...) query: well under every backend's parameter limit
INLINE_ERRORS = 100  # refused import rows shown in the answer; the job holds them all
NOTIFY_MACS = 10  # MACs named in one notification; the rest are counted
EXPORT_FORMATS = ("json", "csv")
IMPORT_TYPES = (
    "application/json",
    "text/csv",
    "application/zip",
    "application/octet-stream",
    "text/plain",
    "application/vnd.ms-excel",
    "application/x-zip-compressed",
)

_MAC_ITEM = {"type": "string", "minLength": 1, "maxLength": 32}
MACS = {
    "type": "object",
    "required": ["macs"],
    "additionalProperties": False,
    "properties": {"macs": {"type": "array", "items": _MAC_ITEM, "minItems": 1, "maxItems": 10_000}},
}
# Proofs of possession (DEV-3): `writeOnly` makes every refusal of the body quote none of their
# values (`server.domain.inputs.has_secrets`), so none reaches an answer or the audit log.
_SERIAL_PROOF = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "writeOnly": True,
    "description": "the serial number printed on the box: the proof of possession, never echoed",
}
_LABEL_CODE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "writeOnly": True,
    "description": "the label code printed on the box (4-32 letters and digits; blanks and '-' ignored), never echoed",
}
CLAIM = {
    "type": "object",
    "required": ["mac", "serial"],
    "additionalProperties": False,
    "properties": {"mac": _MAC_ITEM, "serial": _SERIAL_PROOF, "label_code": _LABEL_CODE},
}
LABEL_CODES = {
    "type": "object",
    "required": ["codes"],
    "additionalProperties": False,
    "properties": {
        "codes": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "required": ["mac", "label_code"],
                "additionalProperties": False,
                "properties": {"mac": _MAC_ITEM, "label_code": _LABEL_CODE},
            },
        }
    },
}
TOO_MANY_CLAIMS = {
    "429": {
        "description": "too many claims with a wrong MAC, serial number or label code by this account: "
        "`too-many-attempts`",
        "headers": {
            "Retry-After": {
                "description": "seconds until the next claim is let through",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}
CLAIM_POLICY = {
    "type": "object",
    "required": ["label_code_required"],
    "additionalProperties": False,
    "properties": {"label_code_required": {"type": "boolean"}},
}
ASSOCIATE = {
    "type": "object",
    "required": ["macs", "account_id"],
    "additionalProperties": False,
    "properties": {
        "macs": MACS["properties"]["macs"],  # type: ignore[index]
        "account_id": {"type": "string", "pattern": "^[0-9]{8}$"},
        "site_id": {"type": ["integer", "null"], "minimum": 1},
    },
}

DEVICE_COLUMNS = (
    "mac",
    "serial",
    "model",
    "product_id",
    "hardware",
    "thumbprint",
    "manufactured_at",
    *imports.ORDER_FIELDS,
)
STATE_COLUMNS = (
    "approved",
    "owner_id",
    "site_id",
    "associated",
    "activated",
    "synced",
    "firmware",
    "imported_by",
    "enrolled_at",
    "last_contact",
    "created_at",
)


# --- presentation ---------------------------------------------------------------------------------

