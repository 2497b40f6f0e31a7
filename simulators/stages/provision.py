"""Provisioning (research §1, §7): the trust a file server is checked against, the context a
request is made with, fetching and interpreting the settings files, and TRUSTCERTS.

- Trust: the built-in public roots, the enrollment's root CA, and TRUSTCERTS; a server reached
  without enrollment is not verified while TRUSTCERTS is empty (ENABLE_PUBLIC_CA_CERTS=0).
- DES (server type) files come over the enrollment's mutual TLS (ENR-6); after EST the identity
  certificate is presented to HTTPS provisioning servers.
- The upgrade script first; where it is not found, the settings file.
"""

from __future__ import annotations

from typing import Any

from simulators.mtls import OwnCertificate
from simulators.phone import Outcome, OutcomeResult, State
from simulators.provisioning import FileFetcher, ProvisioningStop, locate, max_trustcerts, redact, trustcerts_names
from simulators.script import Options, interpret_async
from simulators.stages.core import Context, RunCore
from simulators.tls import TrustStore, split_pem
from simulators.transport import Reply

__all__ = ["ProvisionStage"]


class ProvisionStage(RunCore):
    def trust_store(self) -> TrustStore:
        memory = self.memory
        store = TrustStore(self.env.public_roots, verify=memory.verify or bool(memory.trustcerts))
        for pem in memory.trust:
            store.add(pem, "enrollment")
        for pem in memory.trustcerts:
            store.add(pem, "trustcerts")
        return store

    def provisioning_context(self, https: bool) -> tuple[Context, TrustStore | None]:
        if not https:
            return None, None
        if self.memory.server_type == "DES":
            return self.factory_context(), None  # ENR-6: the same mutual TLS as enrollment
        store = self.trust_store()
        policy = self.policy()
        if self.memory.identity_cert is not None:
            assert self.memory.identity_key is not None
            return OwnCertificate(store.roots(), self.memory.identity_cert, self.memory.identity_key, policy), store
        return self.transport.contexts.get(store.roots(), policy), store

    async def provision(self) -> Outcome:
        memory = self.memory
        assert memory.server_url is not None
        self.enter(State.PROVISIONING, "provisioning", url=redact(memory.server_url), server_type=memory.server_type)
        location = locate(memory.server_url)
        context, store = self.provisioning_context(location.https)
        if store is not None and not store.verify:
            self.record("server-not-verified", reason="trustcerts-empty")

        async def get(url: str) -> Reply:
            return await self.http("GET", url, context)

        fetcher = FileFetcher(location, get, self.record)
        variables = self.caps.variables(
            self.model.name, self.firmware, self.mac, self.phone.identity.serial,
            group=memory.group, hwvers=self.phone.identity.hwvers,
        )
        if location.directory:
            variables["HTTPDIR"] = location.directory
        options = Options(value_lengths=self.model.value_lengths)
        try:
            result = await interpret_async(self.model.first_file, fetcher, variables, options)
            if not result.files and self.model.upgrade_script:
                self.record("upgrade-script-not-found", path=self.model.first_file)
                result = await interpret_async(self.model.settings_file, fetcher, variables, options)
            if not result.files:
                return self.finish_provisioning(fetcher, "settings-not-found")
            params = dict(result.params)
            await self.trustcerts(params, fetcher, location.directory)
        except ProvisioningStop as stop:
            return self.finish_provisioning(fetcher, stop.reason, **stop.detail)
        memory.params = params
        memory.block_wildcards = params.get("BLOCK_CERTIFICATE_WILDCARDS", "0").strip() == "1"
        self.record(
            "settings-applied",
            files=list(result.files),
            parameters=len(params),
            problems=sorted({p.kind for p in result.problems}),
        )
        self.requested, self.fetched = fetcher.requested, fetcher.found
        return self.finish(OutcomeResult.PROVISIONED)

    def finish_provisioning(self, fetcher: FileFetcher, reason: str, **detail: Any) -> Outcome:
        self.requested, self.fetched = fetcher.requested, fetcher.found
        return self.finish(OutcomeResult.PROVISIONING_FAILED, reason, **detail)

    async def trustcerts(self, params: dict[str, str], fetcher: FileFetcher, directory: str) -> None:
        """TRUSTCERTS (research §7): fetch the named files and keep their certificates."""
        names = trustcerts_names(params)
        if not names:
            return
        limit = max_trustcerts(params)
        folder = params.get("HTTPDIR", directory).strip("/")
        kept: list[bytes] = []
        for name in names:
            if name.lower().startswith(("http://", "https://")):
                data = await fetcher.fetch_url(name, name)
            else:
                data = await fetcher(f"{folder}/{name}" if folder else name)
            if data is None:
                continue
            for cert in split_pem(data):
                if len(kept) < limit and cert not in kept:
                    kept.append(cert)
        self.memory.trustcerts = kept
        self.record("trustcerts-fetched", files=len(names), certificates=len(kept), limit=limit)

