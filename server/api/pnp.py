"""Admin API, PNP-1 (issue 15): plug-and-play onboarding — `pnp_registrations` (pre-registration),
`pnp_qr_batches` (QR codes, the scan, batch monitoring), `pnp_devices` (detail with history,
completing details, reprovisioning, replacement); shared: `pnp_common`. Contract: docs/pnp.md."""

from __future__ import annotations

from server.api import pnp_devices, pnp_qr_batches, pnp_registrations
from server.api.routing import Api

api = Api()
api.routes = [*pnp_registrations.api.routes, *pnp_qr_batches.api.routes, *pnp_devices.api.routes]
