"""HTTP(S) for simulated phones: one aiohttp session per `PhoneEnvironment`, shared by its phones;
requests presenting the phone's own certificate (an `OwnCertificate` in place of the context) go
to `simulators.mtls` (pyOpenSSL; Python's ssl makes such contexts dear, see there).

Each request names its own `ssl.SSLContext`; aiohttp pools connections per context, so a phone
reuses its own connections during a boot and never another phone's. Idle connections close
after `keepalive` seconds, so a large fleet does not sit on thousands of sockets.

With `netns`, every connection is made from inside that network namespace (a phone on a lab
network of its own, `simulators.l2.netns`), while the process stays where it is.

Every failure below HTTP becomes a `TransportError` with a stable reason id:
`server-certificate-untrusted`, `server-certificate-expired`, `server-certificate-not-yet-valid`,
`server-certificate-name-mismatch`, `wildcard-certificate-refused` (the phone refused the
server; the last by its own checks, `simulators.tls.HandshakePolicy`), `tls-handshake-failed` (the
server refused the phone, e.g. an expired or foreign factory certificate), `connection-refused`,
`connection-dropped` (the fault knob, or the server closed early), `timeout`,
`connection-failed` (anything else), `invalid-url`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict

from simulators.l2.netns import socket_factory
from simulators.mtls import OwnCertificate, OwnCertificateClient
from simulators.network import HostMapResolver
from simulators.replies import VERIFY_REASONS, Reply, TransportError
from simulators.tls import ContextCache

__all__ = ["Reply", "Transport", "TransportError"]


class Transport:
    """The shared session (module docstring); created inside the running event loop."""

    def __init__(
        self,
        hosts: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
        keepalive: float = 2.0,
        netns: str | None = None,
    ) -> None:
        self.resolver = HostMapResolver(hosts)
        extra: dict[str, Any] = {}
        if netns is not None:
            extra["socket_factory"] = socket_factory(netns)
        connector = aiohttp.TCPConnector(
            resolver=self.resolver, limit=0, keepalive_timeout=keepalive, ttl_dns_cache=None, use_dns_cache=False,
            **extra,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "enrollab-phone/1"},
        )
        self.contexts = ContextCache()
        self.own = OwnCertificateClient(self.resolver, timeout=timeout, keepalive=keepalive, netns=netns)

    async def close(self) -> None:
        await self.own.close()
        await self.session.close()
        await self.resolver.close()

    async def request(
        self,
        method: str,
        url: str,
        context: ssl.SSLContext | OwnCertificate | None,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        drop: bool = False,
    ) -> Reply:
        """One request; `drop` closes the connection without reading the answer (fault knob)."""
        if isinstance(context, OwnCertificate):
            if url.startswith("https:"):
                return await self.own.request(context, method, url, json=json, data=data, headers=headers, drop=drop)
            context = None
        kwargs: dict[str, Any] = {"headers": dict(headers or {}), "allow_redirects": False}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        if url.startswith("https:"):
            kwargs["ssl"] = context if context is not None else self.contexts.get(None)
        try:
            async with self.session.request(method, url, **kwargs) as resp:
                if drop:
                    resp.close()
                    raise TransportError("connection-dropped", "the phone closed the connection before the answer")
                body = await resp.read()
                return Reply(resp.status, CIMultiDict(resp.headers), body)
        except TransportError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "phone_reason", None)
            if reason is None:
                code = getattr(exc.certificate_error, "verify_code", None)
                reason = VERIFY_REASONS.get(code or 0, "server-certificate-untrusted")
            raise TransportError(reason, str(exc.certificate_error)) from None
        except (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise TransportError("tls-handshake-failed", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            # Connected, then reset while connecting: the server ended the TLS handshake.
            reset = isinstance(exc.os_error, ConnectionResetError | ConnectionAbortedError | BrokenPipeError)
            if _ssl_cause(exc) or (url.startswith("https:") and reset):
                reason = "tls-handshake-failed"
            elif isinstance(exc.os_error, ConnectionRefusedError):
                reason = "connection-refused"
            else:
                reason = "connection-failed"
            raise TransportError(reason, str(exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise TransportError("connection-dropped", str(exc) or type(exc).__name__) from None
        except aiohttp.InvalidURL as exc:
            raise TransportError("invalid-url", str(exc)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TransportError("timeout", str(exc) or "no answer in time") from None
        except aiohttp.ClientError as exc:
            reason = "tls-handshake-failed" if _ssl_cause(exc) else "connection-failed"
            raise TransportError(reason, str(exc) or type(exc).__name__) from None
        except OSError as exc:
            reason = "tls-handshake-failed" if _ssl_cause(exc) else "connection-failed"
            raise TransportError(reason, str(exc)) from None


def _ssl_cause(exc: BaseException) -> bool:
    """Whether an SSL alert or error is somewhere in the exception chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        nested = getattr(current, "os_error", None)
        current = nested if isinstance(nested, BaseException) else (current.__cause__ or current.__context__)
    return False
