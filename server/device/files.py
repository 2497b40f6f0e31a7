"""`GET /device/v1/files/{name}` (ENR-6, PRF-5): with server type DES, this server is the
provisioning server and serves the site's basic-configuration files.

Decisions:
- Served only to an enrolled device (approved, claimed, associated, activated, accounts
  enabled; its certificate neither denied nor of a manufacturer its accounts refuse,
  `server.device.admitted`) whose site's current entry has server type DES, and only a member
  of that site's zip with exactly this name (names are case-sensitive, PRF-5). Everything else is 404
  `file-not-found` — the same answer whatever the reason, so nobody learns which devices,
  sites or names exist.
- The zip was validated at upload (PRF-5: flat, allowed types, no zip bomb); a member is read
  from the stored bytes on each request, no copy on disk.
- Content type by extension (`46xxsettings.txt` is text/plain); unknown -> octet-stream.
- Downloads are not audited: a phone fetches several files at every boot, the enrollment
  attempt itself is (ENR-5).
"""

from __future__ import annotations

import io
import mimetypes
import zipfile

from aiohttp import web

from server.device.admitted import admitted_device
from server.device.request import device_ctx, error_response, peer_of
from server.domain.profiles import ServerType
from server.store.enrollment import EnrolledDevice

PATH = "/device/v1/files/{name}"


def read_member(data: bytes, name: str) -> bytes | None:
    """The member `name` of a stored site zip, or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(name)
            return None if info.is_dir() else archive.read(info)
    except (KeyError, zipfile.BadZipFile, ValueError, NotImplementedError, RuntimeError):
        return None


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


async def get_file(request: web.Request) -> web.Response:
    """ENR-6: a file of the enrolled device's DES site configuration."""
    ctx, peer = device_ctx(request), peer_of(request)
    name = request.match_info["name"]
    async with ctx.store.reading() as session:  # nothing is written: no write lock
        found = await admitted_device(session, peer)
        data = None
        if (
            isinstance(found, EnrolledDevice)
            and found.entry is not None
            and found.entry.server_type is ServerType.DES
            and found.site.config_zip
        ):
            data = found.site.config_zip
    content = read_member(data, name) if data else None
    if content is None:
        return error_response("file-not-found", f"No file {name!r} for this device (ENR-6).", 404)
    return web.Response(body=content, content_type=content_type(name))
