"""Enrollment (PROTOCOL §2; research §11.3, §11.7): the request with the factory certificate, its
answer, retries, and the enrollment codes the user types (ENR-3).

- Enrollment is retried after connection failures (not after TLS refusals) `len(RETRY_DELAYS)`
  times, waiting on the phone's clock; a 503 (busy) or 429 (a guessing budget spent) answer after
  its Retry-After, up to `BUSY_RETRIES` [inf: what a J100 does with a 429 is not documented].
- The firmware the phone reports is the one it runs, unless the non-conforming fault knob
  `report_firmware` says otherwise.
- Codes never appear in events (only their kind or length).
"""

from __future__ import annotations

from typing import Any

from simulators.discovery import ENROLL_PATH, Answer, code_kind, code_problem, parse_answer
from simulators.phone import BUSY_RETRIES, RETRY_DELAYS, Outcome, OutcomeResult, State
from simulators.stages.core import RunCore
from simulators.transport import TransportError

__all__ = ["EnrollStage"]

_RETRYABLE = frozenset({"connection-dropped", "connection-refused", "connection-failed", "timeout"})


class EnrollStage(RunCore):
    async def des(self) -> Outcome:
        self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url)
        code: str | None = None
        while True:
            answer = await self.enroll(code)
            if isinstance(answer, Outcome):
                return answer
            result = answer.result
            if result == "redirect" and answer.status == 200:
                return await self.redirect(answer.body)
            if result == "upgrade" and answer.status == 200:
                upgraded = await self.upgrade(answer.body.get("firmware"), in_redirect=False)
                if isinstance(upgraded, Outcome):
                    return upgraded
                if not upgraded:
                    return self.finish(OutcomeResult.UPGRADED_NO_RETRIGGER, "re-trigger-not-supported")
                self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url, after="upgrade")
                code = None
                continue
            if result in ("code_required", "code_invalid"):
                typed = await self.ask_code(answer)
                if isinstance(typed, Outcome):
                    return typed
                code = typed
                continue
            if result == "locked":
                return self.finish(OutcomeResult.LOCKED, None, retry_after=answer.body.get("retry_after"))
            if result == "rejected":
                reason = answer.body.get("reason")
                reason = reason if isinstance(reason, str) else None
                return self.finish(OutcomeResult.REJECTED, reason, detail=answer.body.get("detail"))
            if result == "unknown_device":
                return self.finish(OutcomeResult.UNKNOWN_DEVICE, None)
            return self.finish(OutcomeResult.PROTOCOL_ERROR, answer.error or f"http-{answer.status}",
                               status=answer.status, answer=result)

    def enroll_body(self, code: str | None) -> dict[str, Any]:
        identity = self.phone.identity
        return {
            "model": identity.model,
            "firmware": self.faults.report_firmware or self.firmware,
            "mac": identity.mac,
            "serial": identity.serial,
            "code": code,
        }

    async def enroll(self, code: str | None) -> Answer | Outcome:
        """One enrollment attempt, with the retries of the module docstring."""
        url = self.env.enrollment_url + ENROLL_PATH
        body = self.enroll_body(code)
        if self.faults.report_firmware:
            self.record("non-conforming", behaviour="report-firmware", reported=self.faults.report_firmware,
                        running=self.firmware)
        failures = busy = 0
        while True:
            drop = self.drops_left > 0
            self.record("enroll-request", code=None if code is None else code_kind(code), firmware=body["firmware"])
            try:
                reply = await self.http("POST", url, self.factory_context(), json=body, drop=drop)
            except TransportError as exc:
                if drop:
                    self.drops_left -= 1
                self.record("connection-failed", reason=exc.reason, detail=exc.detail)
                if exc.reason in _RETRYABLE and failures < len(RETRY_DELAYS):
                    delay = RETRY_DELAYS[failures]
                    failures += 1
                    self.record("retry", attempt=failures, after=delay)
                    await self.clock.sleep(delay)
                    continue
                return self.finish(OutcomeResult.UNREACHABLE, exc.reason, error=exc.detail)
            answer = parse_answer(reply.status, reply.body)
            self.record("enroll-answer", **answer.summary())
            if reply.status in (429, 503) and answer.result is None and busy < BUSY_RETRIES:
                busy += 1
                delay = _retry_after(reply.headers.get("Retry-After"))
                self.record("retry", attempt=busy, after=delay, reason="busy" if reply.status == 503 else "throttled")
                await self.clock.sleep(delay)
                continue
            return answer

    async def ask_code(self, answer: Answer) -> str | Outcome:
        """ENR-3: the code the user types next, or what happens when they have none left."""
        formats = self.caps.code_formats(self.model.name, self.firmware)
        if answer.result == "code_invalid":
            self.record("code-refused-by-server", attempts_left=answer.body.get("attempts_left"))
        if not formats:
            return await self.manual("codes-not-supported")
        self.enter(State.CODE_ENTRY, "code-prompt", formats=list(formats), offered=answer.body.get("formats"))
        codes = self.user.codes
        while self.code_index < len(codes):
            code = codes[self.code_index]
            self.code_index += 1
            problem = code_problem(code, formats)
            if problem is not None:
                self.record("code-refused", reason=problem, length=len(code))
                continue
            self.record("code-typed", kind=code_kind(code))
            return code
        self.record("code-cancelled")
        if answer.result == "code_invalid" and not self.user.cancel_to_manual:
            return self.finish(OutcomeResult.CODE_INVALID, None, attempts_left=answer.body.get("attempts_left"))
        return await self.manual("code-entry-cancelled")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(300.0, float(value or 1)))
    except ValueError:
        return 1.0
