"""Boot: power-on, the auto-provisioning prompt, the network's server, and manual server entry
(research §11.1-§11.5; the prompt's rules are `simulators.discovery`'s).

- A phone that already has a provisioning server (from an earlier boot) goes straight to it:
  "DES discovery is attempted … if there is no configuration file server provisioned"
  [tpl S2:L8759].
- Yes -> enrollment only; No -> the network's server, else manual entry; no answer within the
  model's `prompt_seconds` -> the network's server, else enrollment.
- `reprovision()` (ENR-7) runs enrollment again where "Re-provisioning devices" is supported.
"""

from __future__ import annotations

from simulators.discovery import PromptAnswer, network_server, prompt
from simulators.network import NetworkServer
from simulators.phone import Outcome, OutcomeResult, State
from simulators.provisioning import redact
from simulators.stages.core import RunCore

__all__ = ["BootStage"]


class BootStage(RunCore):
    async def boot(self) -> Outcome:
        self.enter(State.BOOTING, "power-on", model=self.model.name, firmware=self.firmware)
        if self.memory.server_url:
            self.record("configured-server", url=redact(self.memory.server_url))
            return await self.provision()
        self.enter(State.PROMPT, "prompt-shown", timeout=self.model.prompt_seconds)
        answer = await prompt(PromptAnswer(self.user.prompt), self.model.prompt_seconds, self.clock)
        if answer is PromptAnswer.TIMEOUT:
            self.record("prompt-timeout", after=self.model.prompt_seconds)
        else:
            self.record("prompt-answered", answer=str(answer))
        if answer is PromptAnswer.YES:
            return await self.des()
        server = await self.network()
        if server is not None:
            return await self.from_network(server)
        if answer is PromptAnswer.NO:
            return await self.manual("no-provisioning-server")
        return await self.des()

    async def reprovision(self) -> Outcome:
        self.enter(State.BOOTING, "reprovision-requested", firmware=self.firmware)
        feature = "re-provisioning-devices"
        if not self.supports(feature):
            explain = self.caps.explain(self.model.name, self.firmware, feature)
            return self.finish(OutcomeResult.NOT_SUPPORTED, "re-provisioning-not-supported", explain=explain)
        return await self.des()

    async def network(self) -> NetworkServer | None:
        self.enter(State.NETWORK_DISCOVERY, "network-discovery", attached=self.env.network is not None)
        try:
            server = await network_server(self.env.network)
        except Exception as exc:
            self.record("no-network-server", error=repr(exc))
            return None
        if server is None:
            self.record("no-network-server")
        else:
            self.record("network-server", url=redact(server.url), source=server.source)
        return server

    async def from_network(self, server: NetworkServer) -> Outcome:
        self.memory.server_url = server.url
        self.memory.server_type = "HTTPS" if server.url.startswith("https:") else "HTTP"
        self.memory.verify = bool(self.memory.trustcerts)
        return await self.provision()

    async def manual(self, reason: str) -> Outcome:
        self.enter(State.MANUAL_ENTRY, "manual-entry", reason=reason)
        url = self.user.cancel_to_manual
        if not url:
            return self.finish(OutcomeResult.MANUAL_ENTRY, reason)
        self.record("manual-server-entered", url=redact(url))
        self.memory.server_url = url
        self.memory.server_type = "HTTPS" if url.lower().startswith("https:") else "HTTP"
        self.memory.verify = bool(self.memory.trustcerts)
        return await self.provision()
