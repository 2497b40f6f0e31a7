"""What every stage of a phone's run stands on: the run's state, recording events, the phone's
own checks on a server certificate, HTTP, and ending the run with an `Outcome`.

The stages (`boot`, `enroll`, `firmware`, `redirect`, `provision`) are mixins over `RunCore`,
composed by `simulators.stages.run.Run`; where one stage hands over to another it calls the
composed run (`self.des()`, `self.provision()`), declared here for the type checker only.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from simulators.capabilities import REFUSES_WILDCARDS
from simulators.events import Event
from simulators.mtls import OwnCertificate
from simulators.phone import TERMINAL_STATE, Memory, Outcome, OutcomeResult, Phone, State
from simulators.provisioning import redact
from simulators.tls import HandshakePolicy
from simulators.transport import Reply, Transport

__all__ = ["Context", "RunCore"]

# What a request is made with: a shared context (no client certificate), the phone's own
# certificate (`simulators.mtls`), or None for plain HTTP.
Context = ssl.SSLContext | OwnCertificate | None


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

    if TYPE_CHECKING:
        # The stages' entry points that other stages call (defined in simulators/stages/*).
        async def des(self) -> Outcome: ...
        async def manual(self, reason: str) -> Outcome: ...
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
        self.enter(TERMINAL_STATE.get(result, State.FAILED), "outcome", result=str(result), reason=reason)
        memory = self.memory
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
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def policy(self) -> HandshakePolicy:
        """The phone's own checks on a server certificate (`simulators.tls`): the wildcard quirk
        (or BLOCK_CERTIFICATE_WILDCARDS 1 from its settings) and its clock skew."""
        refuse = self.caps.has_quirk(self.model.name, self.firmware, REFUSES_WILDCARDS) or self.memory.block_wildcards
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
