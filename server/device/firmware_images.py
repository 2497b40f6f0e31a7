"""Simulated firmware images (PROTOCOL §2, FW-2..FW-4): small deterministic files per model and
version, their SHA-256, and the URL a device downloads them from.

Decisions:
- An image exists for every release the device-family catalog lists for a model (FW-1, as the
  platform edited it), under the model's catalog name and the version's canonical spelling
  (`4.1.11.0.9`, `1.1SP1`); anything else is 404.
- Content: a text header naming the image, then SHAKE-256 of that header as padding, 4 KiB in
  all. Deterministic, so every server (and any simulator that wants to check) computes the same
  bytes and SHA-256 without storing files; different per (model, version), so a device that
  installs the wrong image notices.
- The `firmware` object of an answer names `<device_url>/device/v1/firmware/<model>/<version>`
  (absolute, on the mutual-TLS listener) and the image's SHA-256 in lower-case hex (as
  `sha256sum` prints it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import quote

from server.domain.enrollment.facts import FirmwareImage
from server.domain.errors import DomainError
from server.domain.firmware import Catalog
from server.domain.identity import parse_version

IMAGE_SIZE = 4096
PATH = "/device/v1/firmware"


def image_bytes(model: str, version: str) -> bytes:
    """The simulated image of `model` at `version` (catalog spellings)."""
    header = (
        "ENROLLAB SIMULATED FIRMWARE IMAGE\n"
        f"model: {model}\n"
        f"version: {version}\n"
        "This is not firmware: a lab stand-in whose SHA-256 the enrollment answer names.\n\n"
    ).encode()
    return header + hashlib.shake_256(header).digest(IMAGE_SIZE - len(header))


class FirmwareImages:
    """Images by (model, version), their SHA-256 computed once, and their URLs."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._sha256: dict[tuple[str, str], str] = {}

    def resolve(self, catalog: Catalog, model: str, version: str) -> tuple[str, str] | None:
        """(catalog model name, canonical version) when the catalog lists that release; else None."""
        try:
            info = catalog.model(model)
            wanted = parse_version(version)
        except DomainError:
            return None
        for release in info.releases:
            if release == wanted:
                return info.name, str(release)
        return None

    def content(self, model: str, version: str) -> bytes:
        return image_bytes(model, version)

    def sha256(self, model: str, version: str) -> str:
        key = (model, version)
        digest = self._sha256.get(key)
        if digest is None:
            digest = hashlib.sha256(image_bytes(model, version)).hexdigest()
            self._sha256[key] = digest
        return digest

    def url(self, model: str, version: str) -> str:
        return f"{self._base_url()}{PATH}/{quote(model, safe='')}/{quote(version, safe='')}"

    def lookup(self, catalog: Catalog) -> Callable[[str, str], FirmwareImage | None]:
        """The `firmware_images` callable of `EnrollmentFacts`: (model, version) -> image or None."""

        def find(model: str, version: str) -> FirmwareImage | None:
            found = self.resolve(catalog, model, version)
            if found is None:
                return None
            name, canonical = found
            return FirmwareImage(self.url(name, canonical), self.sha256(name, canonical))

        return find
