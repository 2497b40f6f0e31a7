"""The device application (PROTOCOL §2), served by `server.runner` on its own port with the
mutual-TLS context of `server.pki.tls.device_server_context`.

Routes:
- `POST /device/v1/enroll` — the enrollment answer (`server.device.enroll`)
- `GET  /device/v1/firmware/{model}/{version}` — a simulated firmware image (`firmware_images`)
- `GET  /device/v1/files/{name}` — a DES site file (ENR-6, `server.device.files`)
- `GET  /.well-known/est/cacerts`, `POST /.well-known/est/simpleenroll` — EST (ENR-8)

Every request passes `peer_middleware` (a factory certificate that is not revoked). Firmware
images are looked up in the cached catalog (`server.store.platform_cache`). No
traceback reaches a device: unknown routes and methods answer `{"error", "detail"}` (404/405),
a server fault 500 `internal-error` (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from fixtures.features import FeatureMatrix
from server.api.platform import lockout_policy
from server.context import ServerContext
from server.device import enroll, est, files
from server.device.firmware_images import PATH as FIRMWARE_PATH
from server.device.firmware_images import FirmwareImages
from server.device.request import (
    CTX,
    IMAGES,
    device_ctx,
    domain_error_response,
    error_response,
    firmware_images,
    peer_middleware,
)
from server.domain.errors import DomainError
from server.store import platform_cache
from server.store.enrollment import load_catalog

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # an enrollment body or a CSR; nothing a device sends is larger


async def get_firmware(request: web.Request) -> web.Response:
    """PROTOCOL §2: the image a `firmware` object names; 404 for models and versions the
    catalog does not list."""
    ctx, images = device_ctx(request), firmware_images(request)
    model, version = request.match_info["model"], request.match_info["version"]
    catalog = await platform_cache.cached("catalog", ctx.store, load_catalog)
    found = images.resolve(catalog, model, version)
    if found is None:
        return error_response("firmware-not-found", f"No firmware image {model} {version}.", 404)
    name, canonical = found
    return web.Response(
        body=images.content(name, canonical),
        content_type="application/octet-stream",
        headers={"X-Checksum-Sha256": images.sha256(name, canonical)},
    )


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No traceback ever reaches a device."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        ids = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}
        return error_response(ids.get(exc.status, "http-error"), exc.reason, exc.status)
    except DomainError as err:
        return domain_error_response(err)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response("internal-error", "the server failed; see its log", 500)


async def warm_caches(app: web.Application) -> None:
    """Appendix A, the catalog and the lockout policy read, parsed and checked at start, not while
    the first phone waits (the catalog's check alone takes a few hundred milliseconds)."""
    FeatureMatrix.load()
    store = app[CTX].store
    await platform_cache.cached("catalog", store, load_catalog)
    await platform_cache.cached("lockout", store, lockout_policy)


def create_device_app(ctx: ServerContext, images: FirmwareImages | None = None) -> web.Application:
    """The device listener's application; `images` defaults to images under `ctx.device_url`."""
    app = web.Application(middlewares=[errors_middleware, peer_middleware], client_max_size=MAX_BODY)
    app.on_startup.append(warm_caches)
    app[CTX] = ctx
    app[IMAGES] = images or FirmwareImages(lambda: ctx.device_url)
    app.router.add_post(enroll.PATH, enroll.enroll)
    app.router.add_get(FIRMWARE_PATH + "/{model}/{version}", get_firmware)
    app.router.add_get(files.PATH, files.get_file)
    app.router.add_get(est.ROOT + "/cacerts", est.cacerts)
    app.router.add_post(est.ROOT + "/simpleenroll", est.simpleenroll)
    return app
