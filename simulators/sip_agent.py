"""A simulated phone's SIP stack, as far as a lab reboots phones with it: UDP port 5060, where an
unsolicited `NOTIFY` with `Event: check-sync` is answered `200 OK` and makes the phone reboot
(research §12: a J129 sent check-sync reboots and re-reads its files). Anything else is answered
as a phone without that feature would: another NOTIFY event `489 Bad Event` (RFC 6665), OPTIONS
`200 OK` (it is there), any other method `501 Not Implemented`; a retransmission of a request
already answered gets the same answer again and does not reboot the phone twice (RFC 3261
§17.2.2).

    async with SipAgent(on_check_sync=reboot, netns="enrollab-t1-phone"):
        ...   # the harness's PhysicalDevice sends NOTIFY; `reboot()` boots the phone again

With `netns`, the socket is made inside that network namespace (the phone's own), bound to all
its addresses, so it answers once DHCP has given the phone one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

from simulators.l2.netns import socket_in

__all__ = ["SipAgent", "answer_to"]


def _headers(head: str) -> tuple[str, list[tuple[str, str]]]:
    lines = head.replace("\r\n", "\n").split("\n")
    out = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return lines[0], out


_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "o": "event"}


def answer_to(request: bytes, tag: str) -> tuple[bytes | None, bool]:
    """The response to one request datagram and whether it is a check-sync to act on; (None,
    False) for what is not a SIP request."""
    text = request.decode("utf-8", "replace")
    head, _, _ = text.partition("\r\n\r\n")
    start, headers = _headers(head)
    parts = start.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0":
        return None, False
    method = parts[0]
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(_COMPACT.get(name.lower(), name.lower()), []).append(value)
    event = (by_name.get("event") or [""])[0].split(";")[0].strip().lower()
    if method == "NOTIFY" and event == "check-sync":
        status, act = "200 OK", True
    elif method == "NOTIFY":
        status, act = "489 Bad Event", False
    elif method == "OPTIONS":
        status, act = "200 OK", False
    else:
        status, act = "501 Not Implemented", False
    lines = [f"SIP/2.0 {status}"]
    for via in by_name.get("via", []):
        lines.append(f"Via: {via}")
    for name in ("from", "call-id", "cseq"):
        for value in by_name.get(name, []):
            lines.append(f"{name.title() if name != 'call-id' else 'Call-ID'}: {value}".replace("Cseq", "CSeq"))
    to = (by_name.get("to") or [""])[0]
    lines.append(f"To: {to}" + ("" if ";tag=" in to else f";tag={tag}"))
    lines += ["User-Agent: enrollab-phone", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode(), act


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: SipAgent) -> None:
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.agent._received(data, addr, self.transport)


class SipAgent:
    """The phone's SIP port (module docstring). `notifies` counts the check-syncs acted on."""

    def __init__(self, on_check_sync: Callable[[], Any], *, netns: str | None = None, port: int = 5060,
                 host: str = "0.0.0.0") -> None:  # noqa: S104 - the phone's own namespace, all its addresses
        self.on_check_sync = on_check_sync
        self.netns, self.port, self.host = netns, port, host
        self.notifies = 0
        self.requests: list[bytes] = []
        self._answered: dict[tuple[str, str], bytes] = {}  # (branch, method) -> response
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> SipAgent:
        sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _received(self, data: bytes, addr: tuple[str, int], transport: asyncio.DatagramTransport | None) -> None:
        self.requests.append(data)
        key = _transaction(data)
        if key in self._answered:
            if transport is not None:
                transport.sendto(self._answered[key], addr)  # a retransmission: the same answer, no new reboot
            return
        answer, act = answer_to(data, tag=f"phone{len(self._answered) + 1}")
        if answer is None or transport is None:
            return
        self._answered[key] = answer
        transport.sendto(answer, addr)
        if act:
            self.notifies += 1
            self.on_check_sync()


def _transaction(data: bytes) -> tuple[str, str]:
    text = data.decode("utf-8", "replace")
    method = text.split(" ", 1)[0]
    for line in text.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in ("via", "v") and "branch=" in value:
            return value.split("branch=", 1)[1].split(";")[0].strip(), method
    return text, method
