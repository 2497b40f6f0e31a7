"""Firmware in the enrollment answer: the gate before anything else (FW-4 below the minimum,
FW-2 an unclaimed device below latest) and which firmware a redirect carries (FW-3, FW-5).

Decisions:
- FW-4: below the catalog minimum, a version that cannot upgrade itself -> 403
  `manual-upgrade-required` ("manual upgrade to 2.0 and factory reset required"); otherwise,
  when the model at that version supports `firmware-upgrade` and the policy gives a version
  (unclaimed: catalog latest, FW-2; claimed: the owner's switch and the site/model setting,
  FW-3) -> 200 `upgrade`, reason `below-minimum`; else 403 `firmware-too-old` (the brief's id;
  `check_minimum` itself says `firmware-below-minimum`). FW-5 does not limit this gate: below
  the minimum nothing else can happen. No image for the version -> 403 `firmware-unavailable`.
- FW-2: an unclaimed device at or above the minimum but below latest whose model at that version
  supports `firmware-upgrade` -> 200 `upgrade` to latest (reason `unclaimed-latest`), before any
  code is looked at (the code is neither checked, counted nor consumed); without an image it
  proceeds at its version.
- FW-3/FW-5/ENR-2: the redirect carries a `firmware` object when the account switch is on and
  the site/model setting resolves to a version other than the device's (a lower one too: SIT-3
  lets a customer pick an earlier release), the model supports `firmware-upgrade`, an image
  exists, and either the server type is DES or this is the first contact of a pre-claimed
  device (FW-5). After a code, the code's account and site decide (the device is claimed by
  then); a device that was unclaimed is not pre-claimed, so it gets firmware only with DES.
- ENR-4, omissions: firmware the device cannot use is left out of a redirect and named in the
  audit message.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.domain.enrollment.facts import AccountFacts, FirmwareImage, SiteFacts
from server.domain.enrollment.features import FIRMWARE_UPGRADE
from server.domain.enrollment.rule import Outcome, RuleContext, parse_version, rejected
from server.domain.errors import DomainError
from server.domain.firmware import check_minimum, firmware_for_unclaimed, resolve_firmware


def gate_firmware(ctx: RuleContext) -> Outcome | None:
    """FW-4, FW-2: below the minimum: upgrade if allowed, else refuse; an unclaimed device below
    latest is sent latest first."""
    if ctx.version < ctx.info.minimum:
        return below_minimum(ctx)
    if ctx.device.owner_id is None and ctx.supports(FIRMWARE_UPGRADE):
        latest = firmware_for_unclaimed(ctx.info.name, ctx.facts.catalog)
        if latest is not None and parse_version(latest) > ctx.version:
            image = _image(ctx, latest)
            if image is not None:
                return _upgrade(ctx, latest, image, "unclaimed-latest", "an unclaimed device is sent latest (FW-2)")
    return None


def below_minimum(ctx: RuleContext) -> Outcome:
    """FW-4, FW-2, FW-3: a device below the minimum version is upgraded when its version can
    and the policy allows (unclaimed: latest; claimed: account switch + site setting)."""
    why = ""
    target: str | None = None
    if not ctx.supports(FIRMWARE_UPGRADE):
        why = f" ({ctx.explain(FIRMWARE_UPGRADE)})"
    elif ctx.device.owner_id is None:
        target = firmware_for_unclaimed(ctx.info.name, ctx.facts.catalog)
    else:
        target = _claimed_policy_version(ctx, ctx.facts.owner, ctx.own_site)
        if target is None:
            why = " (firmware upgrade is not enabled for the owner account, site and model, FW-3)"
    gate = check_minimum(ctx.info.name, ctx.version, ctx.facts.catalog, upgrade_to=target)
    if gate.action == "upgrade" and gate.version is not None:
        image = _image(ctx, gate.version)
        if image is None:
            return rejected(
                "firmware-unavailable",
                f"No firmware image {ctx.info.name} {gate.version} is available for the upgrade.",
            )
        return _upgrade(ctx, gate.version, image, "below-minimum", f"below the minimum {ctx.info.minimum} (FW-4)")
    if gate.reason == "manual-upgrade-required":
        return rejected("manual-upgrade-required", gate.detail or "manual upgrade required")
    return rejected("firmware-too-old", (gate.detail or "firmware below the minimum") + why)


def _upgrade(ctx: RuleContext, version: str, image: FirmwareImage, reason: str, why: str) -> Outcome:
    firmware = {"version": version, "url": image.url, "sha256": image.sha256}
    message = f"upgrade from {ctx.firmware} to {version}: {why}"
    return Outcome(200, "upgrade", {"firmware": firmware, "reason": reason}, reason, message)


def redirect_firmware(
    ctx: RuleContext, site: SiteFacts, account: AccountFacts | None, server_type: str
) -> tuple[dict[str, str] | None, str | None]:
    """FW-3, FW-5, ENR-2, ENR-4: the redirect's firmware object (or None) and, when a version
    was due but is not sent, why."""
    target = _claimed_policy_version(ctx, account, site)
    if target is None or parse_version(target) == ctx.version:
        return None, None
    if server_type != "DES" and not (ctx.device.first_contact and ctx.device.pre_claimed):
        return None, f"firmware {target} (FW-5: not the first contact of a pre-claimed device)"
    if not ctx.supports(FIRMWARE_UPGRADE):
        return None, f"firmware {target} ({ctx.explain(FIRMWARE_UPGRADE)})"
    image = _image(ctx, target)
    if image is None:
        return None, f"firmware {target} (no image available)"
    return {"version": target, "url": image.url, "sha256": image.sha256}, None


def _claimed_policy_version(ctx: RuleContext, account: AccountFacts | None, site: SiteFacts | None) -> str | None:
    """FW-3/SIT-3: the version the account switch and the site/model setting pick, or None."""
    if account is None:
        return None
    try:
        return resolve_firmware(
            account.firmware_upgrade,
            site.firmware_setting if site is not None else None,
            ctx.info.name,
            ctx.facts.catalog,
            account_setting=account.firmware_setting,
        )
    except DomainError:  # a setting that no longer parses sends nothing rather than something odd
        return None


def _image(ctx: RuleContext, version: str) -> FirmwareImage | None:
    images = ctx.facts.firmware_images
    found = images.get(version) if isinstance(images, Mapping) else images(ctx.info.name, version)
    if found is None:
        return None
    url, sha256 = found
    return FirmwareImage(url, sha256)
