"""The redirect (ENR-2): zero-touch for a claimed, associated, activated device (DEV-6), and the
answer a right code leads to; refused when the device cannot use the URL (ENR-4, PRF-4).

Decisions:
- DEV-6/ENR-2: claimed + associated + activated -> redirect for the device's site; a code sent
  anyway is ignored, and so is a leftover lock (locks are about codes). Missing site facts ->
  403 `no-site`; a site without a profile entry -> 403 `no-profile` (PRF-4); a stored URL that
  no longer parses -> 403 `invalid-profile`. The URL is sent in full (placeholders kept, user and
  password included: it is for the device); the audit shows it redacted.
- ENR-4, refusals: a URL form the model at its version cannot use fails the enrollment with 403
  `unsupported-url` (detail from `explain`): no `provisioning-urls` at all, `http` without
  `http-provisioning-url`, `https` without `https-provisioning-url`, an IPv4 host without
  `provisioning-url-with-ip-address`, server type DES without `des-as-provisioning-server`.
- ENR-4, omissions: extras the device cannot use are left out and named in the audit message:
  the group is sent as 0 without `device-group-id`, the root CA without
  `certificate-with-provisioning-url`, identity (null) without `avaya-issued-certificates` or
  when the entry does not ask (or no EST URL is configured), firmware as `firmware_policy` says.
"""

from __future__ import annotations

from dataclasses import replace

from server.domain.devices import DeviceState, zero_touch_ready
from server.domain.enrollment.facts import AccountFacts, SiteFacts
from server.domain.enrollment.features import (
    DES_SERVER,
    GROUP_ID,
    HTTP_URL,
    HTTPS_URL,
    IDENTITY_CERTIFICATES,
    IP_ADDRESS_URL,
    PROVISIONING_URLS,
    ROOT_CA,
)
from server.domain.enrollment.firmware_policy import redirect_firmware
from server.domain.enrollment.rule import Outcome, RuleContext, rejected, validate_provisioning_url
from server.domain.errors import DomainError
from server.domain.profiles import ParsedUrl


def zero_touch(ctx: RuleContext) -> Outcome | None:
    """DEV-6, ENR-2: claimed + associated + activated -> redirect for the device's site."""
    device = ctx.device
    state = DeviceState(
        mac=device.mac,
        serial=device.serial,
        model=device.model,
        approved=device.approved,
        owner_id=device.owner_id,
        site_id=device.site_id,
        associated=device.associated,
        activated=device.activated,
    )
    if not zero_touch_ready(state):
        return None
    site = ctx.own_site
    if site is None:
        return rejected("no-site", f"The device's site {device.site_id} was not found.")
    outcome = build_redirect(ctx, site, ctx.facts.owner)
    return replace(outcome, reason="zero-touch") if outcome.result == "redirect" else outcome


def build_redirect(ctx: RuleContext, site: SiteFacts, account: AccountFacts | None) -> Outcome:
    """ENR-2, ENR-4, PRF-4: the redirect to the site's provisioning entry, refused when the
    device cannot use the URL, leaving out the extras it cannot use."""
    entry = site.entry
    if entry is None:
        return rejected("no-profile", f"The customer site {site.id} has no profile (PRF-4).")
    try:
        parsed = validate_provisioning_url(entry.url)
    except DomainError as exc:
        return rejected("invalid-profile", f"The site's provisioning URL is not valid: {exc.detail}")
    server_type = str(entry.server_type)
    missing = unusable_url_feature(ctx, parsed, server_type)
    if missing is not None:
        return rejected("unsupported-url", f"{ctx.explain(missing)} (ENR-4)")
    left_out: list[str] = []
    group = entry.group
    if not ctx.supports(GROUP_ID):
        if group != 0:
            left_out.append(f"group {group} ({ctx.explain(GROUP_ID)})")
        group = 0
    trust = [entry.root_ca_pem] if entry.root_ca_pem else []
    if trust and not ctx.supports(ROOT_CA):
        left_out.append(f"root CA ({ctx.explain(ROOT_CA)})")
        trust = []
    identity: dict[str, str] | None = None
    if entry.identity_certificates:
        if not ctx.supports(IDENTITY_CERTIFICATES):
            left_out.append(f"identity certificate ({ctx.explain(IDENTITY_CERTIFICATES)})")
        elif not ctx.facts.est_base_url:
            left_out.append("identity certificate (no EST URL configured)")
        else:
            identity = {"est": ctx.facts.est_base_url}
    firmware, firmware_note = redirect_firmware(ctx, site, account, server_type)
    if firmware_note:
        left_out.append(firmware_note)
    body = {
        "provisioning": {"url": parsed.url, "server_type": server_type, "group": group, "trust": trust},
        "firmware": firmware,
        "identity": identity,
    }
    message = f"redirected to {parsed.redacted} ({server_type}, group {group}, site {site.id})"
    if firmware is not None:
        message += f", firmware {firmware['version']}"
    if identity is not None:
        message += ", identity certificate"
    if left_out:
        message += "; left out: " + "; ".join(left_out)
    return Outcome(200, "redirect", body, "redirect", message)


def unusable_url_feature(ctx: RuleContext, url: ParsedUrl, server_type: str) -> str | None:
    """ENR-4: the first feature the URL needs that the model at its version lacks, or None."""
    needed = [PROVISIONING_URLS, HTTPS_URL if url.scheme == "https" else HTTP_URL]
    if url.is_ip:
        needed.append(IP_ADDRESS_URL)
    if server_type == "DES":
        needed.append(DES_SERVER)
    return next((feature for feature in needed if not ctx.supports(feature)), None)
