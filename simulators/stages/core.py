"""What every stage of a phone's run stands on: the run's state, recording events, the phone's
own checks on a server certificate, HTTP, and ending the run with an `Outcome`.

The stages (`boot`, `source`, `enroll`, `firmware`, `redirect`, `provision`) are mixins over
`RunCore`, composed by `simulators.stages.run.Run`; where one stage hands over to another it calls
the composed run (`self.des()`, `self.provision()`), declared here for the type checker only.

Decisions:
- A run that ends without a provisioning server, and settled on none during the run, records
  `provisioning-source` {source: none} before its `outcome`; `Outcome.source` is where the server
  the phone ends with came from (its memory), "none" without one.
- On the `des-first` route (DES_STAT 3 on a Vantage, `simulators.discovery`) the network's server
  is held back while DES runs; an end of the run before DES gave the phone a server raises
  `NoRedirect` instead, and the boot stage goes on with the network's server [inf]. A simulator
  error still ends the run.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from simulators.capabilities import REFUSES_WILDCARDS
from simulators.events import Event
from simulators.mtls import OwnCertificate
from simulators.network import NetworkOffer, NetworkServer
from simulators.phone import TERMINAL_STATE, Memory, Outcome, OutcomeResult, Phone, State
from simulators.provisioning import redact
from simulators.tls import HandshakePolicy
from simulators.transport import Reply, Transport

__all__ = ["Context", "NoRedirect", "RunCore"]

# What a request is made with: a shared context (no client certificate), the phone's own
# certificate (`simulators.mtls`), or None for plain HTTP.
Context = ssl.SSLContext | OwnCertificate | None


class NoRedirect(Exception):
    """DES left the phone without a provisioning server while the network's was held back."""

    def __init__(self, result: OutcomeResult, reason: str | None) -> None:
        super().__init__(f"{result}: {reason}")
        self.result = result
        self.reason = reason


class RunCore:
    """One run of the state machine; dropped at the end, with its contexts."""

    def __init__(self, phone: Phone, transport: Transport) -> None:
        self.phone = phone
        self.env = phone.env
        self.caps = phone.env.capabilities
        self.model = self.caps.model(phone.identity.model)
        self.transport = transport
        self.clock = phone.env.clock
        assert phone._memory is not None
        self.memory: Memory = phone._memory
        self.user = phone.user
        self.faults = phone.faults
        self.code_index = 0
        self.drops_left = phone.faults.drop_connection
        self.upgrades = 0
        self.requested: list[str] = []
        self.fetched: list[str] = []
        self._factory_context: OwnCertificate | None = None
        self.settled = False  # a provisioning-source was recorded in this run
        self.held: NetworkServer | None = None  # the network's server while DES runs first
        self.des_reason = "DES was asked"  # why DES runs, for provisioning-source's `why`
        self.network_error: str | None = None  # the network layer's failure at bring-up

    @property
    def offer(self) -> NetworkOffer | None:
        """What the network offered since power-on (None: no network layer, or not up yet)."""
        return self.phone._offer

    if TYPE_CHECKING:
        # The stages' entry points that other stages call (defined in simulators/stages/*).
        async def des(self) -> Outcome: ...
        async def manual(self, reason: str) -> Outcome: ...
        def settle_des(self, url: str) -> None: ...
        async def upgrade(self, raw: Any, *, in_redirect: bool) -> Outcome | bool: ...
        async def redirect(self, body: Any) -> Outcome: ...
        async def provision(self) -> Outcome: ...

    # -- recording ---------------------------------------------------------------------------

    @property
    def mac(self) -> str:
        return self.phone.identity.mac

    @property
    def firmware(self) -> str:
        return self.memory.firmware

    def record(self, name: str, **detail: Any) -> None:
        events = self.phone._events
        assert events is not None
        events.append(Event(self.clock.now(), self.mac, str(self.phone._state), name, detail))

    def enter(self, state: State, name: str, **detail: Any) -> None:
        self.phone._state = state
        self.record(name, **detail)

    def supports(self, feature: str, firmware: str | None = None) -> bool:
        return self.caps.supports(self.model.name, firmware or self.firmware, feature)

    def finish(self, result: OutcomeResult, reason: str | None = None, **detail: Any) -> Outcome:
        memory = self.memory
        if self.held is not None and not self.settled and result is not OutcomeResult.SIMULATOR_ERROR:
            raise NoRedirect(result, reason)
        if not self.settled and memory.server_url is None:
            ended = f"{result}: {reason}" if reason else str(result)
            self.record("provisioning-source", source="none", url=None,
                        why=f"the run ended ({ended}) without a provisioning server")
        self.enter(TERMINAL_STATE.get(result, State.FAILED), "outcome", result=str(result), reason=reason)
        return Outcome(
            result=result,
            reason=reason,
            firmware=memory.firmware,
            group=memory.group if memory.server_url else None,
            params=dict(memory.params) if result is OutcomeResult.PROVISIONED else {},
            fetched=list(self.fetched),
            requested=list(self.requested),
            server=redact(memory.server_url),
            identity_certificate=memory.identity_cert,
            detail=detail,
            source=(memory.server_source or "none") if memory.server_url else "none",
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def policy(self) -> HandshakePolicy:
        """The phone's own checks on a server certificate (`simulators.tls`): the wildcard quirk
        (or BLOCK_CERTIFICATE_WILDCARDS 1 from its settings), unless the non-conforming knob
        `accept_wildcards` drops it, and its clock skew."""
        refuse = self.caps.has_quirk(self.model.name, self.firmware, REFUSES_WILDCARDS) or self.memory.block_wildcards
        refuse = refuse and not self.faults.accept_wildcards
        return HandshakePolicy(refuse, self.faults.clock_skew)

    def factory_context(self) -> OwnCertificate:
        """Mutual TLS with the factory certificate, trusting the built-in public roots."""
        if self._factory_context is None:
            self._factory_context = OwnCertificate(
                self.env.public_roots, self.phone._cert_pem, self.phone._key_pem, self.policy()
            )
        return self._factory_context

    async def http(
        self, method: str, url: str, context: Context, *, drop: bool = False, **kwargs: Any
    ) -> Reply:
        return await self.transport.request(method, url, context, drop=drop, **kwargs)
