"""Server suite: who the server is (PROTOCOL §3 `GET /api/v1/info`) and the account hierarchy
(ACC-2), driven from outside through the admin API only — so any server implementing
PROTOCOL.md can be tested (`enrollab conformance run --suite server --server URL`)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from simulators.admin_client import AdminError


@pytest.mark.rule("PROTOCOL-3")
@pytest.mark.steps("ask", "check")
async def test_info_names_the_server_its_version_and_device_url(enrollment_server: Any, step: Any) -> None:
    """`GET /api/v1/info` answers without authentication: name, version, device_url (https)."""
    url = enrollment_server.admin_url.rstrip("/") + "/api/v1/info"
    with step("ask", evidence={"url": url}) as s:
        https = url.startswith("https:")
        connector = aiohttp.TCPConnector(ssl=enrollment_server.ssl_context()) if https else None
        async with aiohttp.ClientSession(connector=connector) as http, http.get(url) as resp:
            status = resp.status
            body = await resp.json(content_type=None)
        s.record(status=status, body=body)
    with step("check"):
        assert status == 200, f"GET /api/v1/info answered {status}"
        assert isinstance(body, dict), f"not a JSON object: {body!r}"
        for name in ("name", "version", "device_url"):
            assert isinstance(body.get(name), str) and body[name], f"{name} missing or empty in {body}"
        device_url = urlsplit(body["device_url"])
        assert device_url.scheme == "https" and device_url.hostname, (
            f"device_url {body['device_url']!r} is not an https URL (PROTOCOL §2: mutual TLS)"
        )


@pytest.mark.rule("ACC-2")
@pytest.mark.steps("arrange", "act", "check")
async def test_acc2_a_reseller_never_creates_a_reseller(platform_admin: Any, step: Any) -> None:
    """ACC-2: a reseller creates customer accounts and never a reseller."""
    tag = secrets.token_hex(4)
    with step("arrange") as s:
        sp_id, provider = await platform_admin.new_administered_account(
            "service_provider", f"ACC-2 provider {tag}", f"acc2-sp-{tag}@enrollab.test"
        )
        reseller_id, reseller = await provider.new_administered_account(
            "reseller", f"ACC-2 reseller {tag}", f"acc2-rs-{tag}@enrollab.test"
        )
        s.record(service_provider=sp_id, reseller=reseller_id)
    with step("act") as s:
        refused: AdminError | None = None
        try:
            created = await reseller.call("POST", "/accounts", {"type": "reseller", "name": f"ACC-2 child {tag}"})
        except AdminError as exc:
            refused = exc
            s.record(status=exc.status, error=exc.error, detail=exc.detail)
        else:
            s.record(created=created)
    with step("check"):
        assert refused is not None, f"the reseller {reseller_id} created a reseller account: {created}"
        assert refused.status in (403, 422), f"refused with {refused.status} {refused.error}, not 403/422"
