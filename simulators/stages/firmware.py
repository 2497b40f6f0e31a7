"""Firmware (FW-2, FW-4, FW-6): download, SHA-256 check, reboot into the new version, and whether
that version runs discovery again ("Re-trigger after firmware upgrade").

- Installed only where the running version supports "Firmware upgrade"; in a redirect an
  instruction the phone cannot follow is ignored and provisioning goes on.
- The reboot takes `REBOOT_SECONDS` on the phone's clock; at most `MAX_UPGRADES` per run.
"""

from __future__ import annotations

from typing import Any

from simulators.firmware import MAX_UPGRADES, REBOOT_SECONDS, FirmwareInstruction, corrupt, verify
from simulators.phone import Outcome, OutcomeResult, State
from simulators.stages.core import RunCore
from simulators.transport import TransportError

__all__ = ["FirmwareStage"]


class FirmwareStage(RunCore):
    async def upgrade(self, raw: Any, *, in_redirect: bool) -> Outcome | bool:
        """Install the image; answers whether discovery runs again (FW-6), or how it failed.
        In a redirect, an instruction the phone cannot follow is ignored (False: go on)."""
        instruction = FirmwareInstruction.parse(raw)
        if instruction is None:
            if in_redirect:
                self.record("firmware-ignored", reason="invalid-firmware-object")
                return False
            return self.finish(OutcomeResult.PROTOCOL_ERROR, "invalid-firmware-object")
        if not self.supports("firmware-upgrade"):
            explain = self.caps.explain(self.model.name, self.firmware, "firmware-upgrade")
            self.record("firmware-ignored", reason="firmware-upgrade-not-supported", explain=explain)
            if in_redirect:
                return False
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-upgrade-not-supported")
        self.upgrades += 1
        if self.upgrades > MAX_UPGRADES:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "upgrade-loop", upgrades=self.upgrades - 1)
        self.enter(State.UPGRADING, "firmware-download", version=instruction.version, url=instruction.url)
        try:
            reply = await self.http("GET", instruction.url, self.factory_context())
        except TransportError as exc:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-download-failed", error=exc.reason)
        if reply.status != 200:
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-download-failed", status=reply.status)
        image = corrupt(reply.body) if self.faults.corrupt_firmware else reply.body
        if not verify(image, instruction.sha256):
            self.record("firmware-checksum-mismatch", expected=instruction.sha256, size=len(image))
            return self.finish(OutcomeResult.UPGRADE_FAILED, "firmware-checksum-mismatch")
        self.record("firmware-verified", sha256=instruction.sha256.lower(), size=len(image))
        old, self.memory.firmware = self.memory.firmware, instruction.version
        self._factory_context = None  # the new version may check certificates differently
        self.enter(State.REBOOTING, "reboot", **{"from": old, "to": instruction.version})
        await self.clock.sleep(REBOOT_SECONDS)
        self.enter(State.BOOTING, "booted", firmware=instruction.version)
        feature = "re-trigger-after-firmware-upgrade"
        retrigger = self.supports(feature)
        self.record("re-trigger" if retrigger else "no-re-trigger",
                    explain=self.caps.explain(self.model.name, self.firmware, feature))
        return retrigger
