"""Claim proof (DEV-3, PROTOCOL §3, issue 13): what a claimant shows to take an unclaimed device.

- A claim names the device's MAC *and* the serial number printed on its box; the pair is the
  proof of possession (a MAC alone is on every network the phone ever joined).
- A label code is a second secret printed on the box. The account that imported a device may
  add one (`POST /devices/label-codes`); a device with a label code is claimed only with it.
  An account may also require one for its own claims (`PUT /accounts/{id}/claim-policy`,
  binding its subtree): its claims then must carry a label code, so a manifest of MACs and
  serials (what a shipping list holds) is not enough to claim for it.
- Label codes are kept as a SHA-256 of the device's MAC and the normalised code (upper case,
  without blanks and '-'): the store never holds the code, and the MAC as salt keeps one table
  from serving every device. It is a possession proof checked with the serial under a failure
  budget, not a password: a slow hash would make a 100 000-device label upload take hours.
- Neither a label code nor a claim's serial is ever quoted back — not in an answer, not in the
  audit log — malformed ones included (`normalize_label_code`, `no_match`; the admin API's
  schemas mark them `writeOnly`).
- A wrong MAC/serial/label-code combination is indistinguishable from an unknown device: same
  status, error id and detail for every mismatch (`no_match`), and the caller does the same
  look-up and hash work either way (`matches` hashes even when no device was found).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from server.domain.errors import DomainError, invalid, not_found

LABEL_CODE = re.compile(r"^[A-Z0-9]{4,32}$")
# Blanks are spaces and no-break spaces (a code copied from a PDF); `\s` would also drop control
# characters such as NEL (U+0085) and the C0 separators, so a code carrying them would be taken.
_BLANKS = re.compile("[- \u00a0]+")
# What `matches` hashes when there is no device to compare with: same work, never equal.
_NOTHING = "0" * 64


def normalize_label_code(value: str, mac: str | None = None) -> str:
    """A label code as compared: blanks and '-' dropped, upper case; 4-32 letters and digits.
    A refusal never quotes the code, malformed or not (it may be a right code mistyped); `mac`
    names the device it was given for."""
    code = _BLANKS.sub("", value)
    # ASCII before upper-casing: str.upper turns 'ı' into 'I' and 'ﬁ' into 'FI'.
    code = code.upper() if code.isascii() else ""
    if not LABEL_CODE.fullmatch(code):
        for_device = f"The label code given for {mac} is refused: a" if mac else "A"
        raise invalid(
            "invalid-label-code",
            f"{for_device} label code is 4 to 32 letters and digits (blanks and '-' are ignored).",
            mac,
        )
    return code


def label_code_hash(mac: str, code: str) -> str:
    """What the store keeps of a device's label code (module docstring)."""
    return hashlib.sha256(f"{mac}:{normalize_label_code(code)}".encode()).hexdigest().upper()


def matches(
    mac: str,
    serial: str,
    label_code: str | None,
    found_mac: str | None,
    found_serial: str | None,
    stored_hash: str | None,
    code_required: bool,
) -> bool:
    """DEV-3: does the claim prove possession of the device found (None: none was found)?

    The pair must name the same device; a device with a label code needs it. `code_required`
    (the claimant's policy) makes a device without a label code unclaimable for this claimant.
    """
    given = label_code_hash(mac, label_code) if label_code is not None else _NOTHING
    expected = stored_hash or _NOTHING
    same_code = hmac.compare_digest(given, expected)
    if found_mac != mac or found_serial != serial:
        return False
    if stored_hash is None:
        return not code_required
    return same_code


def no_match(mac: str) -> DomainError:
    """DEV-3: the one answer for an unknown device and for a wrong MAC/serial/label code. It names
    the MAC only: the serial is a proof (and may be a right one sent with a wrong label code), and
    the detail goes to the audit log, which the accounts above the claimant read."""
    return not_found(
        "device-not-found",
        f"No claimable device has MAC {mac} and the serial number given"
        " (with the label code printed on its box, where it has one).",
    )


def label_code_required() -> DomainError:
    """An account that requires label codes (or an account above it) claims with one only."""
    return invalid(
        "label-code-required",
        "Your account requires the label code printed on the device's box for every claim.",
    )
