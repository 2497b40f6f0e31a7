"""Profiles: provisioning entries, the provisioning URL grammar, redaction (PRF-1, PRF-2, PRF-6, LOG-1).

Decisions (where the guide is silent or loose):
- Server type: the guide offers `DES` and `HTTP(S)`. An entry stores `DES`, `HTTPS` or `HTTP`;
  `HTTP(S)` is accepted on input and becomes the URL's scheme. An explicit `HTTP`/`HTTPS` must
  agree with the scheme. `DES` needs an `https` URL (DES is an HTTPS provisioning server).
- URL grammar (PRF-2), from the guide's "Provisioning URL formats" table:
  `http[s]://[user:password@]host[:port][/path]`, host a fully qualified domain name (two labels
  or more) or a dotted-quad IPv4 address. Refused: IPv6 (no phone in Appendix A parses it),
  single-label names (the table says FQDN), a trailing dot, an empty port (the table's
  `http://10.10.10.10:` is a typo for a port), query strings and fragments (the URL names a
  directory to which the phone appends file names), spaces (the table's `/ J100/` is a
  typesetting artefact), control and non-ASCII characters, `@` after the host (an unencoded
  `/` or `@` in a password; write `%2F`, `%40`), and `$` other than `$MODEL4`, `$MACADDR`,
  `$SERIALNO`, which may appear in the path only. At most 255 characters: phones keep the URL
  in a settings parameter, and parameter values never exceed 255 characters.
- The scheme and host are case-insensitive and stored in lower case; the path is kept as given.
- A root CA is allowed on every entry, HTTP included: the phone installs it in its trust store
  ("Certificate with provisioning URL"), where it also serves e.g. SIP over TLS.
- A profile holds 1-20 entries; a group is an integer 0-999 (booleans are not integers here).
- Redaction (LOG-1) errs on the side of hiding: after `scheme://user:` everything up to the
  last `@` of the same word becomes `****`, so an unencoded `/` in a password does not leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from server.domain import confusables
from server.domain.errors import DomainError, invalid

URL_MAX = 255
PLACEHOLDERS = ("$MODEL4", "$MACADDR", "$SERIALNO")
REDACTED = "****"


class ServerType(StrEnum):
    DES = "DES"
    HTTPS = "HTTPS"
    HTTP = "HTTP"


@dataclass(frozen=True)
class ParsedUrl:
    """A provisioning URL that passed PRF-2. `str()` is the redacted form (LOG-1); `url` the real one."""

    scheme: str
    host: str
    port: int | None
    path: str
    username: str | None = None
    password: str | None = None
    placeholders: tuple[str, ...] = ()

    def _build(self, password: str | None) -> str:
        auth = f"{self.username}:{password}@" if self.username is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{auth}{self.host}{port}{self.path}"

    @property
    def url(self) -> str:
        return self._build(self.password)

    @property
    def redacted(self) -> str:
        return self._build(REDACTED)

    @property
    def is_ip(self) -> bool:
        return _IPV4_SHAPE.fullmatch(self.host) is not None

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"ParsedUrl({self.redacted!r})"


def _bad_url(url: object, detail: str) -> DomainError:
    # The offending value is redacted: error bodies end up in logs and browser consoles.
    shown = redact_url(url) if isinstance(url, str) else url
    return invalid("invalid-url", f"Provisioning URL refused: {detail} (PRF-2).", value=shown)


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_IPV4_SHAPE = re.compile(r"[0-9.]+")
_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_USER_CHARS = _UNRESERVED | _SUB_DELIMS
_PASSWORD_CHARS = _USER_CHARS | {":"}
_PATH_CHARS = (_UNRESERVED | _SUB_DELIMS | {":", "/"}) - {"$"}
_HEX = frozenset("0123456789abcdefABCDEF")
_PLACEHOLDER = re.compile(r"\$([A-Za-z0-9_]*)")


def _first_bad_char(url: str) -> str | None:
    for i, ch in enumerate(url):
        if ch == " ":
            return f"it contains a space at position {i + 1}"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"it contains a control character (U+{ord(ch):04X}) at position {i + 1}"
        if ord(ch) > 0x7E:
            return (
                f"it contains the non-ASCII character {ch!r} at position {i + 1}; "
                "use the punycode form of the host name and percent-encoding in the path"
            )
    return None


def _check_escapes(part: str, allowed: frozenset[str], what: str) -> str | None:
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "%":
            escape = part[i + 1 : i + 3]
            if len(escape) < 2 or not all(c in _HEX for c in escape):
                return f"the {what} has an invalid percent-escape '{part[i : i + 3]}' (write '%' as %25)"
            i += 3
            continue
        if ch not in allowed:
            return f"the character {ch!r} is not allowed in the {what}; percent-encode it"
        i += 1
    return None


def _check_userinfo(userinfo: str) -> tuple[str, str]:
    if ":" not in userinfo:
        raise ValueError("a user name without a password; write user:password@host")
    user, password = userinfo.split(":", 1)
    if not user:
        raise ValueError("the user name before ':' is empty")
    if not password:
        raise ValueError("the password after ':' is empty")
    problem = _check_escapes(user, _USER_CHARS, "user name") or _check_escapes(password, _PASSWORD_CHARS, "password")
    if problem:
        raise ValueError(problem)
    return user, password


def _check_port(text: str) -> int:
    if not text:
        raise ValueError("the port after ':' is empty")
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"the port '{text}' is not a number")
    if len(text) > 1 and text[0] == "0":
        raise ValueError(f"the port '{text}' has a leading zero")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"the port {port} is outside 1-65535")
    return port


def _check_host(host: str) -> str:
    if not host:
        raise ValueError("the host name is missing")
    if "$" in host:
        raise ValueError("placeholders such as $MODEL4 are allowed in the path only, not in the host")
    if _IPV4_SHAPE.fullmatch(host):
        octets = host.split(".")
        if len(octets) != 4 or not all(_OCTET.fullmatch(o) and int(o) <= 255 for o in octets):
            raise ValueError(f"'{host}' is not a valid IPv4 address (four numbers 0-255 without leading zeros)")
        return host
    if len(host) > 253:
        raise ValueError(f"the host name is {len(host)} characters long; at most 253 are allowed")
    if host.endswith("."):
        raise ValueError(f"the host name '{host}' ends with a dot")
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError(f"'{host}' is not a fully qualified domain name; use the FQDN or an IPv4 address")
    for label in labels:
        if not label:
            raise ValueError(f"the host name '{host}' has an empty label (two dots in a row)")
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"'{label}' is not a valid host name label (letters, digits and inner hyphens, at most 63 characters)"
            )
    if labels[-1].isdigit():
        raise ValueError(f"'{host}' is neither a valid IPv4 address nor a domain name")
    return host.lower()


def _check_path(path: str) -> tuple[str, ...]:
    found: list[str] = []
    rest: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(path):
        placeholder = match.group(0)
        if placeholder == "$":
            raise ValueError("the path contains a lone '$'; only $MODEL4, $MACADDR and $SERIALNO may follow '$'")
        if placeholder not in PLACEHOLDERS:
            raise ValueError(
                f"the path contains the unknown placeholder '{placeholder}'; allowed are " + ", ".join(PLACEHOLDERS)
            )
        found.append(placeholder)
        rest.append(path[last : match.start()])
        last = match.end()
    rest.append(path[last:])
    for piece in rest:
        problem = _check_escapes(piece, _PATH_CHARS, "path")
        if problem:
            raise ValueError(problem)
    return tuple(dict.fromkeys(found))


def validate_provisioning_url(url: object) -> ParsedUrl:
    """PRF-2: accept `http`/`https` URLs with an FQDN or IPv4 host, optional port 1-65535,
    optional `user:password@`, optional path with `$MODEL4`/`$MACADDR`/`$SERIALNO`.

    Anything else is `invalid-url`, whose detail says exactly what is wrong and whose value
    is the URL with its password redacted.
    """
    if not isinstance(url, str):
        raise _bad_url(url, "it must be a string")
    if not url:
        raise _bad_url(url, "it is empty")
    if len(url) > URL_MAX:
        raise _bad_url(url, f"it is {len(url)} characters long; phones accept at most {URL_MAX}")
    bad = _first_bad_char(url)
    if bad:
        raise _bad_url(url, bad)
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        raise _bad_url(url, "it must start with http:// or https://")
    scheme = scheme_match.group(1).lower()
    if scheme not in ("http", "https"):
        raise _bad_url(url, f"the scheme '{scheme}' is not allowed; use http or https")
    at = url.rfind("@")
    if any(0 <= url.find(ch) < at for ch in "#?"):
        raise _bad_url(url, "a '#' or '?' comes before '@'; percent-encode it in the password (%23, %3F)")
    if "#" in url:
        raise _bad_url(url, "fragments ('#...') are not allowed")
    if "?" in url:
        raise _bad_url(url, "query strings ('?...') are not allowed; the URL names a directory")
    rest = url[scheme_match.end() :]
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in path:
        raise _bad_url(
            url,
            "an '@' follows the host; a user name or password containing '/' or '@' must be percent-encoded (%2F, %40)",
        )
    try:
        username: str | None = None
        password: str | None = None
        if "@" in authority:
            if authority.count("@") > 1:
                raise ValueError("it contains more than one '@'; write '@' in a password as %40")
            userinfo, authority = authority.split("@")
            username, password = _check_userinfo(userinfo)
        if authority.startswith("[") or authority.count(":") > 1:
            raise ValueError("IPv6 addresses are not supported; use an FQDN or an IPv4 address")
        port: int | None = None
        if ":" in authority:
            authority, port_text = authority.split(":")
            port = _check_port(port_text)
        host = _check_host(authority)
        placeholders = _check_path(path)
    except ValueError as exc:
        raise _bad_url(url, str(exc)) from None
    return ParsedUrl(scheme, host, port, path, username, password, placeholders)


_PASSWORD_IN_URL = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:\"'<>]*):(?P<password>[^\s\"'<>]*)@")


def redact_text(text: str) -> str:
    """LOG-1: replace the password of every `scheme://user:password@` URL in `text` with ****."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)


def redact_url(url: str) -> str:
    """LOG-1: the URL with its password replaced by ****, also when the URL is malformed."""
    return redact_text(url)


def is_ip_host(url: str | ParsedUrl) -> bool:
    """PRF-2/ENR-4: does the provisioning URL name its server by IPv4 address?

    Appendix A: Vantage phones cannot use such a URL.
    """
    parsed = url if isinstance(url, ParsedUrl) else validate_provisioning_url(url)
    return parsed.is_ip


def parse_server_type(raw: object, url: ParsedUrl) -> ServerType:
    """PRF-1: `DES`, `HTTP(S)`, `HTTPS` or `HTTP` (any case). `HTTP(S)` follows the URL scheme;
    an explicit `HTTP`/`HTTPS` must match it, and `DES` needs https (`server-type-mismatch`)."""
    text = raw.strip().upper() if isinstance(raw, str) else None
    if text not in ("DES", "HTTP(S)", "HTTPS", "HTTP"):
        raise invalid(
            "invalid-server-type",
            "The server type must be DES or HTTP(S) (or HTTP / HTTPS).",
            value=raw,
        )
    scheme_type = ServerType(url.scheme.upper())
    if text == "HTTP(S)":
        return scheme_type
    if text == "DES":
        if url.scheme != "https":
            raise invalid("server-type-mismatch", "Server type DES needs an https:// provisioning URL.", value=raw)
        return ServerType.DES
    if text != scheme_type.value:
        raise invalid(
            "server-type-mismatch",
            f"Server type {text} does not match the URL scheme {url.scheme}://.",
            value=raw,
        )
    return scheme_type


def validate_root_ca(pem: object, *, now: datetime | None = None) -> str:
    """PRF-1: an optional root CA is exactly one PEM certificate with basicConstraints CA:TRUE,
    self-signed (issuer = subject, and the signature verifies with its own key: an intermediate
    is not a trust anchor a phone can install alone), and, when `now` is given, valid at `now`.
    Returns it re-encoded as clean PEM. Refusal: `invalid-root-ca`."""
    if not isinstance(pem, str):
        raise invalid("invalid-root-ca", "The root CA certificate must be PEM text.")
    count = pem.count("-----BEGIN CERTIFICATE-----")
    if count != 1:
        raise invalid(
            "invalid-root-ca",
            f"The root CA field must hold exactly one PEM certificate; it holds {count}.",
        )
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise invalid("invalid-root-ca", "The root CA is not a readable PEM certificate.") from None
    subject = cert.subject.rfc4514_string()
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise invalid(
            "invalid-root-ca",
            "The certificate is not a CA certificate (basicConstraints CA:TRUE is missing).",
            value=subject,
        )
    if cert.issuer != cert.subject:
        raise invalid(
            "invalid-root-ca",
            f"The certificate is not a root: it is issued by {cert.issuer.rfc4514_string()}; "
            "give the self-signed root CA of that chain.",
            value=subject,
        )
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise invalid(
            "invalid-root-ca", "The root CA's self-signature does not verify (a damaged certificate).", value=subject
        ) from None
    if now is not None and not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise invalid(
            "invalid-root-ca",
            f"The root CA is not valid now (valid from {cert.not_valid_before_utc.isoformat()} "
            f"to {cert.not_valid_after_utc.isoformat()}).",
            value=subject,
        )
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def is_wildcard_certificate(cert: x509.Certificate) -> bool:
    """PRF-6: does the certificate name its host with a wildcard (`*.domain.com`)?"""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any("*" in name for name in names)


def wildcard_certificate_warning(url: ParsedUrl, cert: x509.Certificate) -> str | None:
    """PRF-6: warning id `wildcard-certificate` when an HTTPS provisioning server presents a
    wildcard certificate, which some devices refuse; None otherwise."""
    if url.scheme == "https" and is_wildcard_certificate(cert):
        return "wildcard-certificate"
    return None


@dataclass(frozen=True)
class ProfileEntry:
    """PRF-1: one provisioning entry of a profile."""

    server_type: ServerType
    url: str
    identity_certificates: bool = False
    root_ca_pem: str | None = None
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "server_type": self.server_type.value,
            "url": self.url,
            "identity_certificates": self.identity_certificates,
            "root_ca_pem": self.root_ca_pem,
            "group": self.group,
        }


MAX_ENTRIES = 20
_ENTRY_FIELDS = frozenset({"server_type", "url", "identity_certificates", "root_ca_pem", "group"})


def validate_group(group: object) -> int:
    """PRF-1: a phone group is an integer 0-999 (default 0). Refusal: `invalid-group`."""
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group <= 999:
        raise invalid("invalid-group", "The phone group must be an integer from 0 to 999.", value=group)
    return group


def _entry(raw: Mapping[str, Any], now: datetime | None) -> ProfileEntry:
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    if unknown:
        raise invalid(
            "unknown-field",
            f"'{unknown[0]}' is not a provisioning entry field; known are " + ", ".join(sorted(_ENTRY_FIELDS)) + ".",
            value=unknown[0],
        )
    for required in ("server_type", "url"):
        if required not in raw:
            raise invalid("missing-field", f"The field '{required}' is required.", value=required)
    parsed = validate_provisioning_url(raw["url"])
    server_type = parse_server_type(raw["server_type"], parsed)
    identity = raw.get("identity_certificates", False)
    if not isinstance(identity, bool):
        raise invalid("invalid-identity-certificates", "identity_certificates must be true or false.", value=identity)
    root_ca = raw.get("root_ca_pem")
    root_ca_pem = validate_root_ca(root_ca, now=now) if root_ca not in (None, "") else None
    return ProfileEntry(server_type, parsed.url, identity, root_ca_pem, validate_group(raw.get("group", 0)))


def validate_entries(raw: object, *, now: datetime | None = None) -> list[ProfileEntry]:
    """PRF-1: a profile has 1-20 provisioning entries, each with a server type, a PRF-2 URL,
    the identity-certificate flag (default off), an optional root CA (PEM, a CA certificate)
    and a phone group 0-999 (default 0).

    An error names the failing entry's index in its detail and in `entry`.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        raise invalid("profile-without-entries", "A profile needs at least one provisioning entry.", value=None)
    if len(raw) > MAX_ENTRIES:
        raise invalid(
            "too-many-entries",
            f"A profile has at most {MAX_ENTRIES} provisioning entries; this one has {len(raw)}.",
            value=len(raw),
        )
    entries: list[ProfileEntry] = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, Mapping):
                raise invalid("invalid-entry", "A provisioning entry must be an object.", value=None)
            entries.append(_entry(item, now))
        except DomainError as err:
            raise DomainError(
                err.error,
                f"Entry {index}: {err.detail}",
                err.status,
                err.value,
                {**err.extra, "entry": index},
            ) from None
    return entries


_NAME_MAX = 128


def validate_profile_name(name: object) -> str:
    """PRF-1: a profile name is 1-128 characters after trimming, without control characters."""
    if not isinstance(name, str) or not name.strip():
        raise invalid("invalid-profile-name", "The profile name must be a non-empty string.", value=name)
    trimmed = name.strip()
    if len(trimmed) > _NAME_MAX:
        raise invalid(
            "invalid-profile-name",
            f"The profile name is {len(trimmed)} characters long; the limit is {_NAME_MAX}.",
            value=name,
        )
    if re.search(r"[\x00-\x1f\x7f]", trimmed):
        raise invalid("invalid-profile-name", "The profile name contains a control character.", value=name)
    return confusables.check_name(trimmed, "profile")
