"""The redirect (ENR-2, ENR-4, ENR-8): the provisioning URL with its placeholders expanded and
checked on the phone, the device group, the root CA sent with it, an identity certificate by EST,
and a firmware that comes with it.

- A URL the firmware cannot use is refused on the phone (`simulators.provisioning.url_problem`),
  unless the non-conforming knob `ignore_http_refusal` lets an HTTP one through.
- GROUP is the enrollment's group where "Device group ID" is supported, else 0.
- The root CA is kept where "Certificate with provisioning URL" is supported.
- An identity certificate is requested where instructed and "Avaya issued certificates" is
  supported; a failure is recorded and provisioning goes on with the factory certificate.
- The phone settles on the URL (`provisioning-source` {source: des}) once it is taken, before an
  identity certificate or firmware: what follows may fail, the server is the phone's all the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from simulators import est
from simulators.discovery import parse_answer
from simulators.phone import Outcome, OutcomeResult, State
from simulators.provisioning import expand_url, redact, url_problem
from simulators.stages.core import RunCore
from simulators.tls import split_pem
from simulators.transport import TransportError

__all__ = ["RedirectStage"]


class RedirectStage(RunCore):
    async def redirect(self, body: Mapping[str, Any]) -> Outcome:
        provisioning = body.get("provisioning")
        if not isinstance(provisioning, Mapping) or not isinstance(provisioning.get("url"), str):
            return self.finish(OutcomeResult.PROTOCOL_ERROR, "invalid-redirect")
        raw_url: str = provisioning["url"]
        server_type = str(provisioning.get("server_type") or "")
        group = provisioning.get("group", 0)
        trust = provisioning.get("trust") or []
        firmware = body.get("firmware")
        identity = body.get("identity")
        self.enter(
            State.REDIRECTED,
            "redirect",
            url=redact(raw_url),
            server_type=server_type,
            group=group,
            trust=len(trust) if isinstance(trust, list) else 0,
            firmware=firmware.get("version") if isinstance(firmware, Mapping) else None,
            identity=identity is not None,
        )
        ident = self.phone.identity
        url = expand_url(raw_url, self.model.model4, ident.mac, ident.serial)
        if url != raw_url:
            self.record("url-expanded", url=redact(url))
        problem = url_problem(self.caps, self.model.name, self.firmware, url, server_type)
        if problem == "http-url-not-supported" and self.faults.ignore_http_refusal:
            self.record("non-conforming", behaviour="ignore-http-refusal", reason=problem)
        elif problem is not None:
            self.record("url-refused", reason=problem, url=redact(url))
            return self.finish(OutcomeResult.PROVISIONING_FAILED, problem, url=redact(url))
        self.apply_group(group)
        memory = self.memory
        memory.server_url, memory.server_type, memory.verify = url, server_type.upper() or None, True
        memory.trust = self.enrollment_trust(trust)
        self.settle_des(url)
        if identity is not None:
            await self.identity_certificate(identity)
        if firmware is not None:
            upgraded = await self.upgrade(firmware, in_redirect=True)
            if isinstance(upgraded, Outcome):
                return upgraded
            if upgraded:
                self.enter(State.DES_DISCOVERY, "des-discovery", url=self.env.enrollment_url, after="upgrade")
                return await self.des()
        return await self.provision()

    def apply_group(self, group: Any) -> None:
        """ENR-2/Device group ID: GROUP takes the enrollment's group where supported, else stays 0."""
        offered = group if isinstance(group, int) and not isinstance(group, bool) and 0 <= group <= 999 else 0
        if not self.supports("device-group-id"):
            self.memory.group = 0
            self.record("group-not-supported", offered=offered)
        elif self.faults.ignore_group:
            self.memory.group = 0
            self.record("non-conforming", behaviour="ignore-group", offered=offered)
        else:
            self.memory.group = offered
            self.record("group-applied", group=offered)

    def enrollment_trust(self, trust: Any) -> list[bytes]:
        """The root CA sent with the URL, kept where "Certificate with provisioning URL" is supported."""
        pems = [pem.encode() for pem in trust if isinstance(pem, str)] if isinstance(trust, list) else []
        if not pems:
            return []
        if not self.supports("certificate-with-provisioning-url"):
            reason = "certificate-with-provisioning-url-not-supported"
            self.record("trust-ignored", reason=reason, certificates=len(pems))
            return []
        kept = [cert for pem in pems for cert in split_pem(pem)]
        self.record("trust-added", source="enrollment", certificates=len(kept))
        return kept

    async def identity_certificate(self, identity: Any) -> None:
        """ENR-8: an identity certificate by EST where instructed and supported; a failure is
        recorded and provisioning goes on (the phone keeps its factory certificate)."""
        base = identity.get("est") if isinstance(identity, Mapping) else None
        if not isinstance(base, str) or not base:
            self.record("identity-ignored", reason="invalid-identity-object")
            return
        if not self.supports("avaya-issued-certificates"):
            self.record("identity-ignored", reason="avaya-issued-certificates-not-supported")
            return
        self.enter(State.IDENTITY, "identity-requested", est=base)
        key_pem, csr = est.make_csr(self.mac)
        try:
            reply = await self.http(
                "POST",
                base.rstrip("/") + "/simpleenroll",
                self.factory_context(),
                data=csr,
                headers={"Content-Type": est.CSR_CONTENT_TYPE},
            )
        except TransportError as exc:
            self.record("identity-failed", reason=exc.reason)
            return
        if reply.status != 200:
            error = parse_answer(reply.status, reply.body).error
            self.record("identity-failed", status=reply.status, error=error)
            return
        try:
            certificates = est.read_certificates(reply.body)
        except ValueError as exc:
            self.record("identity-failed", reason="invalid-pkcs7", detail=str(exc))
            return
        leaf = certificates[0]
        self.memory.identity_cert = leaf.public_bytes(serialization.Encoding.PEM)
        self.memory.identity_key = key_pem
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.record("identity-installed", subject_cn=str(cn[0].value) if cn else None,
                    issuer=leaf.issuer.rfc4514_string(), not_after=leaf.not_valid_after_utc.isoformat())
