"""Where the provisioning server comes from, and saying so (research §11; PROTOCOL §5 `source`):
the network's server, a DES redirect, or manual server entry.

- Whenever the phone settles on a server it records `provisioning-source` {source, url (passwords
  as `****`), why}: `source` is the network server's (`dhcp-242`, `dhcp-43`, `dhcp-siaddr`,
  `lldp`), `des` for a redirect, `manual` for a typed URL, or — at a boot with a server from an
  earlier one — where that server came from; `why` is one sentence naming what offered the server
  and the decision that picked it. The phone remembers the source with the server.
- A run ending without a server records source `none` (`simulators.stages.core`).
- With the network's server held back while DES runs (route `des-first`), a dead end in DES
  leads to that server instead of manual server entry [inf].
"""

from __future__ import annotations

from simulators.network import NetworkServer
from simulators.phone import Outcome, OutcomeResult, State
from simulators.provisioning import redact
from simulators.stages.core import NoRedirect, RunCore

__all__ = ["SourceStage", "named"]

# How a `why` names where a network server came from (simulators.network.SOURCES).
_NETWORK_SOURCES = {
    "dhcp-242": "option 242",
    "dhcp-43": "option 43",
    "dhcp-siaddr": "the DHCP server address (siaddr)",
    "lldp": "LLDP",
}


def named(server: NetworkServer) -> str:
    """"option 242 named https://…/": the start of a `why` for a network server."""
    return f"{_NETWORK_SOURCES.get(server.source, server.source)} named {redact(server.url)}"


def _server_type(url: str) -> str:
    return "HTTPS" if url.lower().startswith("https:") else "HTTP"


class SourceStage(RunCore):
    def settle(self, source: str, url: str, why: str) -> None:
        """The phone has a provisioning server from `source`: remember where it came from, and say why."""
        self.memory.server_source = source
        self.settled = True
        self.record("provisioning-source", source=source, url=redact(url), why=why)

    async def from_network(self, server: NetworkServer, because: str) -> Outcome:
        """Provision from the network's server; `because` is the decision that picked it."""
        memory = self.memory
        memory.server_url = server.url
        memory.server_type = _server_type(server.url)
        memory.verify = bool(memory.trustcerts)
        self.settle(server.source, server.url, f"{named(server)}; {because}")
        return await self.provision()

    def settle_des(self, url: str) -> None:
        """A DES redirect the phone took (the redirect stage has set the memory)."""
        held, self.held = self.held, None
        if held is not None:
            self.record("network-server-ignored", url=redact(held.url), source=held.source, reason="des-redirect")
        self.settle("des", url, f"DES redirected to {redact(url)}; {self.des_reason}")

    async def manual(self, reason: str) -> Outcome:
        if self.held is not None:
            raise NoRedirect(OutcomeResult.MANUAL_ENTRY, reason)
        self.enter(State.MANUAL_ENTRY, "manual-entry", reason=reason)
        url = self.user.cancel_to_manual
        if not url:
            return self.finish(OutcomeResult.MANUAL_ENTRY, reason)
        self.record("manual-server-entered", url=redact(url))
        memory = self.memory
        memory.server_url = url
        memory.server_type = _server_type(url)
        memory.verify = bool(memory.trustcerts)
        self.settle("manual", url, f"the user typed {redact(url)} at manual server entry ({reason})")
        return await self.provision()

    async def configured(self) -> Outcome:
        """research §12: a server from an earlier boot is kept; DES runs only without one [tpl S2:L8759]."""
        memory = self.memory
        assert memory.server_url is not None
        self.record("configured-server", url=redact(memory.server_url))
        source = memory.server_source or "none"
        self.settle(source, memory.server_url,
                    f"the server was configured at an earlier boot (from {source}); DES runs only without one")
        return await self.provision()
