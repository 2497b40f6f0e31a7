"""Boot: power-on, the network first, DES_STAT and the route it sets, and the auto-provisioning
prompt (research §11; the rules are `simulators.discovery`'s, the per-model data
`simulators.capabilities.DesPolicy`'s).

- A phone with a network layer brings its network up first, once per boot: it needs an address
  before the prompt can lead anywhere [inf]. Each of the offer's notes becomes an event of its
  name, then `network-up` {address, server, source}. `reprovision()` brings it up only when it is
  not up yet. A network layer that raises leaves the phone without a network (`network-failed`).
- A phone that already has a provisioning server (from an earlier boot) brings its network up but
  keeps that server, with no prompt and no DES: "DES discovery is attempted … if there is no
  configuration file server provisioned" [tpl S2:L8759; inf for the network].
- Otherwise: `des-stat` {value, source} (`des-stat-invalid` {value, source} for each value ignored,
  `des-stat-unsupported` {value, firmware} where 3 acts as 2), then the route: the prompt, or
  `prompt-skipped` {reason, des_stat} and the route's way (one method per route below).
- `network-discovery` / `network-server` | `no-network-server` are recorded where the phone uses
  the network's answer; a network server the phone passes over is `network-server-ignored`
  {url, source, reason}.
- `reprovision()` (ENR-7) runs enrollment again where "Re-provisioning devices" is supported,
  whatever DES_STAT says: the administrator asked for it from the menu [inf].
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from simulators.discovery import DES_STAT_DEFAULT, DES_STAT_FORCE, PromptAnswer, Route, des_stat, prompt, route
from simulators.network import NetworkOffer, NetworkServer
from simulators.phone import Outcome, OutcomeResult, State
from simulators.provisioning import redact
from simulators.stages.core import NoRedirect, RunCore
from simulators.stages.source import SourceStage, named

__all__ = ["BootStage"]

# `prompt-skipped`'s reason per route that has no prompt.
_SKIPPED = {
    Route.DES_DISABLED: "des-disabled",
    Route.NETWORK_SERVER: "network-server",
    Route.NETWORK_FIRST: "des-forced",
    Route.DES_FIRST: "des-forced",
}


class BootStage(SourceStage, RunCore):
    async def boot(self) -> Outcome:
        self.enter(State.BOOTING, "power-on", model=self.model.name, firmware=self.firmware)
        await self.bring_up()
        if self.memory.server_url:
            return await self.configured()
        stat = self.des_stat()
        server = self.offer.server if self.offer is not None else None
        way = route(stat, self.caps.des_policy(self.model.name), server is not None)
        if way is not Route.PROMPT:
            self.record("prompt-skipped", reason=_SKIPPED[way], des_stat=stat)
        ways: dict[Route, Callable[[int], Awaitable[Outcome]]] = {
            Route.PROMPT: self.prompted,
            Route.DES_DISABLED: self.des_disabled,
            Route.NETWORK_SERVER: self.network_server_wins,
            Route.NETWORK_FIRST: self.network_first,
            Route.DES_FIRST: self.des_first,
        }
        return await ways[way](stat)

    async def reprovision(self) -> Outcome:
        self.enter(State.BOOTING, "reprovision-requested", firmware=self.firmware)
        feature = "re-provisioning-devices"
        if not self.supports(feature):
            explain = self.caps.explain(self.model.name, self.firmware, feature)
            return self.finish(OutcomeResult.NOT_SUPPORTED, "re-provisioning-not-supported", explain=explain)
        if self.offer is None:
            await self.bring_up()
        self.des_reason = "re-provisioning from the menu asks DES (ENR-7)"
        return await self.des()

    # -- the network first ---------------------------------------------------------------------

    async def bring_up(self) -> None:
        """The network's offer, once (module docstring); nothing without a network layer."""
        network = self.env.network
        if network is None:
            return
        try:
            offer = await network.offer()
        except Exception as exc:  # a broken network layer leaves this phone without a network, not the fleet
            self.network_error = repr(exc)
            self.phone._offer = NetworkOffer()
            self.record("network-failed", error=self.network_error)
            return
        self.phone._offer = offer
        for name, detail in offer.notes:
            self.record(name, **dict(detail))
        server = offer.server
        self.record("network-up", address=offer.address, server=redact(server.url) if server else None,
                    source=server.source if server else "none")

    def network(self) -> NetworkServer | None:
        """The phone uses the network's answer: its server, or None."""
        self.enter(State.NETWORK_DISCOVERY, "network-discovery", attached=self.env.network is not None)
        server = self.offer.server if self.offer is not None else None
        if server is not None:
            self.record("network-server", url=redact(server.url), source=server.source)
        elif self.network_error is not None:
            self.record("no-network-server", error=self.network_error)
        else:
            self.record("no-network-server")
        return server

    def ignore_network_server(self, reason: str) -> None:
        server = self.offer.server if self.offer is not None else None
        if server is not None:
            self.record("network-server-ignored", url=redact(server.url), source=server.source, reason=reason)

    # -- DES_STAT (research §11.6) -------------------------------------------------------------

    def des_stat(self) -> int:
        """The effective DES_STAT, with its events (module docstring)."""
        network = self.offer.params if self.offer is not None else {}
        stat = des_stat(network, self.memory.params)
        for value, source in stat.ignored:
            self.record("des-stat-invalid", value=value, source=source)
        self.record("des-stat", value=stat.value, source=stat.source)
        if stat.value == DES_STAT_FORCE and not self.caps.can_force_des(self.model.name, self.firmware):
            self.record("des-stat-unsupported", value=stat.value, firmware=self.firmware)
            return DES_STAT_DEFAULT
        return stat.value

    # -- the routes (simulators.discovery.route) -----------------------------------------------

    async def prompted(self, stat: int) -> Outcome:
        """research §11.2-§11.5: Yes -> DES only; No -> the network's server, else manual entry;
        no answer -> the network's server, else DES."""
        self.enter(State.PROMPT, "prompt-shown", timeout=self.model.prompt_seconds)
        answer = await prompt(PromptAnswer(self.user.prompt), self.model.prompt_seconds, self.clock)
        if answer is PromptAnswer.TIMEOUT:
            self.record("prompt-timeout", after=self.model.prompt_seconds)
        else:
            self.record("prompt-answered", answer=str(answer))
        if answer is PromptAnswer.YES:
            self.ignore_network_server("prompt-yes")
            self.des_reason = "the prompt was answered Yes, so only DES was asked"
            return await self.des()
        server = self.network()
        if answer is PromptAnswer.NO:
            if server is not None:
                return await self.from_network(server, "the prompt was answered No, so the network's server is used")
            return await self.manual("no-provisioning-server")
        if server is not None:
            because = f"the DES_STAT {stat} prompt timed out, so the network's server wins"
            return await self.from_network(server, because)
        self.des_reason = f"the DES_STAT {stat} prompt timed out and the network named no server, so DES was asked"
        return await self.des()

    async def des_disabled(self, stat: int) -> Outcome:
        """DES_STAT 0 or 1: no prompt, no DES."""
        server = self.network()
        if server is not None:
            return await self.from_network(server, f"DES_STAT {stat} disables DES, so the network's server is used")
        return await self.manual("des-disabled")

    async def network_server_wins(self, stat: int) -> Outcome:
        """DES_STAT 2 on firmware that does not activate DES when the network named a server (Vantage)."""
        server = self.network()
        assert server is not None  # the route is taken only with a network server
        because = f"this firmware does not run DES when the network names a server (DES_STAT {stat}), so it is used"
        return await self.from_network(server, because)

    async def network_first(self, stat: int) -> Outcome:
        """DES_STAT 3 where it means a prompt timeout without the wait (J100 R4.0.0.0+)."""
        server = self.network()
        if server is not None:
            return await self.from_network(server, f"DES_STAT {stat} asks DES only without a network server, "
                                                   "so the network's server is used")
        self.des_reason = f"DES_STAT {stat} forces DES without the prompt and the network named no server"
        return await self.des()

    async def des_first(self, stat: int) -> Outcome:
        """DES_STAT 3 where DES runs even when the network named a server (Vantage R2.1+); that
        server only when DES leaves the phone without one."""
        server = self.offer.server if self.offer is not None else None
        self.held = server
        if server is not None:
            self.des_reason = f"DES_STAT {stat} runs DES before the network's server ({named(server)})"
        else:
            self.des_reason = f"DES_STAT {stat} forces DES without the prompt"
        try:
            return await self.des()
        except NoRedirect as end:
            self.held = None
            self.record("des-no-redirect", result=str(end.result), reason=end.reason)
            ended = f"{end.result}: {end.reason}" if end.reason else str(end.result)
        found = self.network()
        assert found is not None  # only a held server raises NoRedirect
        return await self.from_network(found, f"DES_STAT {stat} ran DES first and it left the phone without a "
                                              f"server ({ended}), so the network's server is used")
