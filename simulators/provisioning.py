"""After the redirect (ENR-2): the provisioning URL, what the firmware lets the phone use, and
fetching the settings-file chain through the interpreter (`simulators.script`).

Decisions:
- Placeholders (PRF-2): `$MODEL4` becomes the model's `$MODEL4`, `$MACADDR` the MAC as 12
  upper-case hex digits (the template's form for HTTPDIR/TLSDIR/FILE_SERVER_URL macros,
  S2:L8616-8617), `$SERIALNO` the serial in upper case. Nothing else is expanded.
- ENR-4 on the phone (`url_problem`): a URL from enrollment is refused, with the reason
  recorded, when the firmware lacks what it needs — in this order: "Provisioning URLs"
  (`provisioning-urls-not-supported`), "HTTPS provisioning URL" (`https-url-not-supported`) or
  "HTTP provisioning URL" (`http-url-not-supported`), "Provisioning URL with IP address" for an
  IPv4/IPv6 literal host (`ip-address-url-not-supported`), and for server type DES "Device
  Enrollment Services as Provisioning Server" (`des-server-not-supported`). A scheme other than
  http/https, or no host, is `invalid-provisioning-url`. These features are about enrollment:
  servers from the network or typed by hand are not checked against them.
- The URL's path is the directory the phone starts in: the interpreter sees it as `$HTTPDIR`
  (D-17), so `SET HTTPDIR` in a script moves later GETs the way it would on a phone; files are
  requested from the URL's scheme, credentials, host and port.
- Every request goes through `FileFetcher`, the interpreter's `afetch`: 200 -> the bytes, 404 ->
  not found (None); another status is not found too, recorded with its status. A transport
  failure (TLS refused — also by the phone's own checks, e.g. `wildcard-certificate-refused` —
  connection lost) stops provisioning: `ProvisioningStop` with the transport's reason.
- TRUSTCERTS: a comma-separated list of file names or URLs; names are requested in the final
  HTTPDIR, like a GET; at most MAX_TRUSTCERTS certificates (default 6, 1-10) are kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from simulators.capabilities import Capabilities
from simulators.network import is_ip
from simulators.transport import Reply, TransportError

__all__ = [
    "FileFetcher",
    "Location",
    "ProvisioningStop",
    "expand_url",
    "locate",
    "redact",
    "trustcerts_names",
    "url_problem",
]

DEFAULT_MAX_TRUSTCERTS = 6


class ProvisioningStop(Exception):
    """Provisioning cannot go on: a stable reason id and details for the event."""

    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def expand_url(url: str, model4: str, mac: str, serial: str) -> str:
    """PRF-2 placeholders (module docstring)."""
    return url.replace("$MODEL4", model4).replace("$MACADDR", mac.upper()).replace("$SERIALNO", serial.upper())


def url_problem(caps: Capabilities, model: str, firmware: str, url: str, server_type: str | None) -> str | None:
    """ENR-4 on the phone: why the firmware cannot use this URL from enrollment, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "invalid-provisioning-url"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return "invalid-provisioning-url"
    needed = [
        ("provisioning-urls", "provisioning-urls-not-supported"),
        (f"{scheme}-provisioning-url", f"{scheme}-url-not-supported"),
    ]
    if is_ip(host):
        needed.append(("provisioning-url-with-ip-address", "ip-address-url-not-supported"))
    if (server_type or "").upper() == "DES":
        needed.append(("des-as-provisioning-server", "des-server-not-supported"))
    for feature, reason in needed:
        if not caps.supports(model, firmware, feature):
            return reason
    return None


def redact(url: str | None) -> str | None:
    """The URL with its password shown as `****` (LOG-1's habit, for events and outcomes)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True, slots=True)
class Location:
    """A provisioning URL split for the interpreter: `origin` (scheme, credentials, host, port,
    ending in `/`) and `directory` (the path without its slashes: the starting `$HTTPDIR`)."""

    origin: str
    directory: str

    @property
    def https(self) -> bool:
        return self.origin.startswith("https:")

    def url(self, path: str) -> str:
        return self.origin + quote(path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")


def locate(url: str) -> Location:
    parts = urlsplit(url)
    return Location(f"{parts.scheme.lower()}://{parts.netloc}/", parts.path.strip("/"))


def trustcerts_names(params: dict[str, str]) -> list[str]:
    value = params.get("TRUSTCERTS", "")
    return [name.strip() for name in value.split(",") if name.strip()]


def max_trustcerts(params: dict[str, str]) -> int:
    try:
        return min(10, max(1, int(params.get("MAX_TRUSTCERTS", DEFAULT_MAX_TRUSTCERTS))))
    except ValueError:
        return DEFAULT_MAX_TRUSTCERTS


Request = Callable[[str], Awaitable[Reply]]
Record = Callable[..., None]


class FileFetcher:
    """The interpreter's `afetch` for one provisioning server (module docstring).

    `request(url)` performs a GET (the phone's transport with its context).
    """

    def __init__(self, location: Location, request: Request, record: Record) -> None:
        self.location = location
        self._request = request
        self._record = record
        self.requested: list[str] = []
        self.found: list[str] = []

    async def fetch_url(self, url: str, label: str) -> bytes | None:
        self.requested.append(label)
        try:
            reply = await self._request(url)
        except TransportError as exc:
            self._record("fetch-failed", path=label, reason=exc.reason, detail=exc.detail)
            raise ProvisioningStop(exc.reason, path=label, detail=exc.detail) from None
        if reply.status == 200:
            self.found.append(label)
            self._record("file-fetched", path=label, bytes=len(reply.body))
            return reply.body
        self._record("file-not-found", path=label, status=reply.status)
        return None

    async def __call__(self, path: str) -> bytes | None:
        return await self.fetch_url(self.location.url(path), path)
