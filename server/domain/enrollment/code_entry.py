"""A device that is not zero-touch ready enrolls with a code: the lock (LCK-2), asking for a code
(ENR-3, DEV-7), checking it (EC-1, EC-3, EC-6) and what a right (EC-7) or wrong (LCK-2, LCK-3)
code does.

Decisions:
- LCK-2: only the code path looks at the lock. While locked, every request that needs a code,
  with a code or without, gets 423 with `retry_after`, and nothing changes. A lock whose time
  has passed is lifted (counter back to 0, written by the store) and the request goes on.
  Activation lifts it too; the store does that when an administrator activates.
- ENR-3/DEV-7: no code (null or "") -> 200 `code_required` with the formats the model at its
  version supports (8-digit -> `nec8`, 12-digit -> `nec12`, provisioning enrollment code ->
  `pec12`); none -> 403 `codes-not-supported`.
- A typed code is classified by shape (`classify_code`). Malformed, a format the device does
  not support, unknown, wrong, expired or used up: all are a wrong code -> 422 `code_invalid`
  with `attempts_left`, and the L-th consecutive one -> 423 `locked` (LCK-2). So a code the
  phone should not have offered still counts toward the lockout: no free guesses.
- EC-6: a PEC needs the account found by its first 8 digits, a site of that account whose PIN
  is the last 4; it never expires. NEC: the site's code, neither expired nor used up (EC-3).
  Codes are compared in constant time.
- ACC-5 and the allow-lists for a right code: a disabled account of the code's site or of the
  PEC's account -> 403 `disabled-account`; an allow-list of either that leaves out the
  certificate's manufacturer CA -> 403 `manufacturer-not-allowed`. Neither is a wrong code.
- A right code whose site has no profile -> 403 `no-profile`; for an account other than the
  device owner's -> 403 `claimed-elsewhere` (the code wins only over an unclaimed device or
  one the site's account already holds; a parent account hands its devices on by DEV-4). Neither
  counts as a wrong code nor consumes it.
- EC-7: a right code claims, associates (with the code's site) and activates the device in one
  step, resets the lock counter and, for an NEC, consumes the code. The ENR-4 checks run on
  the resulting redirect first: a refusal there consumes nothing and changes nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import datetime
from typing import Any

from server.domain.codes import CodeKind, classify_code, code_usable
from server.domain.enrollment.admission import manufacturer_refusal
from server.domain.enrollment.decision import Claim, CodeConsumption, LockUpdate
from server.domain.enrollment.facts import CodeMatch
from server.domain.enrollment.features import CODE_FEATURES
from server.domain.enrollment.redirect import build_redirect
from server.domain.enrollment.rule import Outcome, RuleContext, aware, rejected
from server.domain.lockout import after_wrong_code, is_locked, retry_after_seconds


def code_path(ctx: RuleContext) -> Outcome:
    """ENR-3, DEV-7, LCK-2: a device that is not zero-touch ready enrolls only with a code."""
    outcome = check_lock(ctx)
    if outcome is None:
        code = ctx.facts.request.code
        outcome = ask_for_code(ctx) if code is None or code == "" else check_code(ctx, code)
    if outcome.lock is None and ctx.stored_lock.locked_until is not None and not is_locked(ctx.stored_lock, ctx.now):
        outcome = replace(outcome, lock=LockUpdate(0, None))  # LCK-2: the lock's time has passed
    return outcome


def check_lock(ctx: RuleContext) -> Outcome | None:
    """LCK-2: while locked, every request that needs a code is refused, right code or wrong."""
    if not is_locked(ctx.stored_lock, ctx.now):
        return None
    seconds = retry_after_seconds(ctx.stored_lock, ctx.now)
    return Outcome(423, "locked", {"retry_after": seconds}, "locked", f"locked after wrong codes for {seconds} s more")


def supported_formats(ctx: RuleContext) -> list[CodeKind]:
    """ENR-3, Appendix A: the code formats the model at its version can take."""
    return [kind for kind, feature in CODE_FEATURES.items() if ctx.supports(feature)]


def ask_for_code(ctx: RuleContext) -> Outcome:
    """ENR-3, DEV-7: a device that is not zero-touch ready is asked for a code, if it takes one."""
    formats = supported_formats(ctx)
    if not formats:
        detail = (
            f"{ctx.info.name} {ctx.firmware} takes no enrollment code "
            f"({ctx.explain(CODE_FEATURES['nec8'])}); claim, associate and activate it for zero-touch."
        )
        return rejected("codes-not-supported", detail)
    return Outcome(
        200, "code_required", {"formats": list(formats)}, "code-required", "asked for " + ", ".join(formats)
    )


def check_code(ctx: RuleContext, code: str) -> Outcome:
    """EC-3, EC-6, EC-7, LCK-2: a right code enrolls the device; anything else is a wrong code."""
    kind = classify_code(code)
    if kind is None:
        return wrong_code(ctx, "malformed-code", "a code that is not 8 or 12 digits")
    if kind not in supported_formats(ctx):
        return wrong_code(ctx, "unsupported-code-format", f"a {kind} code ({ctx.explain(CODE_FEATURES[kind])})")
    match = ctx.facts.code_match
    problem = nec_problem(code, match, ctx.now) if kind != "pec12" else pec_problem(code, match)
    if problem is not None or match is None:
        reason = problem or "wrong-code"
        return wrong_code(ctx, reason, f"a {kind} code: {reason}")
    return enroll_with_code(ctx, kind, code, match)


def nec_problem(code: str, match: CodeMatch | None, now: datetime) -> str | None:
    """EC-1, EC-3: why an NEC does not enroll: unknown, `expired-code` or `used-up-code`."""
    if match is None or match.nec is None or not hmac.compare_digest(match.nec.code.encode(), code.encode()):
        return "wrong-code"
    nec = replace(match.nec, started_at=aware(match.nec.started_at))
    why = code_usable(nec, now)
    return f"{why}-code" if why else None


def pec_problem(code: str, match: CodeMatch | None) -> str | None:
    """EC-6: a PEC is the account ID of the site's account followed by the site's PIN."""
    if match is None or match.nec is not None or match.site.pin is None:
        return "wrong-code"
    account_ok = match.account.account_id == code[:8] and match.site.account_id == match.account.account_id
    pin_ok = hmac.compare_digest(match.site.pin.encode(), code[8:].encode())
    return None if account_ok and pin_ok else "wrong-code"


def enroll_with_code(ctx: RuleContext, kind: CodeKind, code: str, match: CodeMatch) -> Outcome:
    """EC-7, ACC-5, ENR-4: a right code claims, associates and activates the device in one
    step and redirects it; a refusal on the way consumes and changes nothing."""
    site, account = match.site, match.account
    named: dict[str, Any] = {"code_account": site.account_id, "code_site": site.id}
    if not account.enabled or not site.account_enabled:
        return rejected("disabled-account", f"The account {site.account_id} of the code's site is disabled.", **named)
    refused = manufacturer_refusal(ctx.facts.certificate.manufacturer,
                                   [(account.account_id, account.manufacturers),
                                    (site.account_id, site.account_manufacturers)], **named)
    if refused is not None:
        return refused
    owner = ctx.device.owner_id
    if owner is not None and owner != site.account_id:
        return rejected(
            "claimed-elsewhere",
            f"The device is held by account {owner}, not by the code's account {site.account_id}; "
            "its holder associates it (DEV-4).",
            **named,
        )
    outcome = replace(build_redirect(ctx, site, account), code_account=site.account_id, code_site=site.id)
    if outcome.result != "redirect":
        return outcome
    return replace(
        outcome,
        reason="code-enrolled",
        message=f"{kind} code accepted; {outcome.message}",
        claim=Claim(site.account_id, site.id),
        consume=CodeConsumption(site.id, kind, code) if match.nec is not None else None,
        lock=LockUpdate(0, None),
    )


def wrong_code(ctx: RuleContext, reason: str, what: str) -> Outcome:
    """LCK-2, LCK-3: count a wrong code; the L-th consecutive one locks, and says so."""
    policy = ctx.facts.policy
    counted = after_wrong_code(ctx.lock, policy, ctx.now)
    update = LockUpdate(counted.state.failed, counted.state.locked_until, expected_failed=ctx.stored_lock.failed)
    if counted.locked:
        seconds = retry_after_seconds(counted.state, ctx.now)
        message = f"wrong code ({what}); {counted.state.failed} in a row: locked for {policy.minutes} min"
        return Outcome(423, "locked", {"retry_after": seconds}, reason, message, lock=update)
    message = f"wrong code ({what}); {counted.attempts_left} attempts left"
    return Outcome(422, "code_invalid", {"attempts_left": counted.attempts_left}, reason, message, lock=update)
