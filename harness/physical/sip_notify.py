"""SIP `NOTIFY` with `Event: check-sync` over UDP: how a lab reboots a J100 without touching it.

A J100 that is sent an unsolicited NOTIFY check-sync reboots and re-reads its upgrade and
settings files (research §12, observed on a J129). PROTOCOL §5: `enrollab lab reboot` sends it
to the phone's `ip`, port 5060 unless the lab file's `sip.port` says otherwise, and waits for the
final answer.

The request is one RFC 3261 non-INVITE client transaction over UDP (§17.1.2): sent, then sent
again after T1, 2·T1, 4·T1 … capped at T2 (Timer E); after a provisional (1xx) answer only every
T2; given up after 64·T1 (Timer F, 32 s with the default T1 of 500 ms). The issue names these
"timer A/B": those are the INVITE transaction's timers, with the same schedule; a NOTIFY is a
non-INVITE request, so E/F are the right ones. The first final answer (200-699) ends it;
answers to other transactions (another branch or Call-ID) are ignored.

Decisions [inf]: the NOTIFY carries `Subscription-State: terminated` (RFC 6665 wants the header;
an unsolicited check-sync has no subscription to keep alive) and no body. A 2xx means the phone
took it; 481 (Call/Transaction Does Not Exist) is what phones that only accept NOTIFY within a
subscription answer, and is reported as refused, with its reason phrase.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from dataclasses import dataclass

from harness.errors import HarnessError
from simulators.l2.netns import socket_in

__all__ = ["NotifyAnswer", "SipTimers", "check_sync", "notify_request", "options", "transaction"]

SIP_PORT = 5060


@dataclass(frozen=True)
class SipTimers:
    """RFC 3261 §17.1.2.2: T1 (round-trip estimate), T2 (the retransmit cap); F = 64·T1."""

    t1: float = 0.5
    t2: float = 4.0

    @property
    def f(self) -> float:
        return 64 * self.t1


@dataclass(frozen=True)
class NotifyAnswer:
    """The transaction's final answer: status, reason phrase, how many times the request went
    out and how long it took."""

    status: int
    reason: str
    transmissions: int
    seconds: float

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def notify_request(host: str, port: int, local: tuple[str, int], *, user: str | None = None,
                   branch: str, tag: str, call_id: str, method: str = "NOTIFY") -> bytes:
    """The NOTIFY check-sync request (or, with `method="OPTIONS"`, the capabilities query
    `enrollab lab check` uses: it reboots nothing), CRLF line ends, as a phone's SIP stack parses it."""
    target = f"{user}@{host}" if user else host
    local_host, local_port = local
    lines = [
        f"{method} sip:{target}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:enrollab@{local_host}>;tag={tag}",
        f"To: <sip:{target}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:enrollab@{local_host}:{local_port}>",
        *(["Event: check-sync", "Subscription-State: terminated"] if method == "NOTIFY"
          else ["Accept: application/sdp"]),
        "User-Agent: enrollab",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _answer_of(data: bytes, branch: str, call_id: str) -> tuple[int, str] | None:
    """(status, reason) when `data` is a response to this transaction, else None."""
    try:
        text = data.decode("utf-8", "replace")
    except Exception:  # pragma: no cover - decode with "replace" does not raise
        return None
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.replace("\r\n", "\n").split("\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or status_line[0] != "SIP/2.0" or not status_line[1].isascii() \
            or not status_line[1].isdigit():
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers.setdefault({"v": "via", "i": "call-id"}.get(key, key), value.strip())
    if headers.get("call-id") != call_id or f"branch={branch}" not in headers.get("via", ""):
        return None
    return int(status_line[1]), status_line[2].strip() if len(status_line) > 2 else ""


class _Transaction(asyncio.DatagramProtocol):
    def __init__(self, branch: str, call_id: str) -> None:
        self.branch, self.call_id = branch, call_id
        self.provisional = asyncio.Event()
        self.final: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.refused: OSError | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = _answer_of(data, self.branch, self.call_id)
        if answer is None or self.final.done():
            return
        if answer[0] < 200:
            self.provisional.set()
        else:
            self.final.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nothing listens on the phone's SIP port. Timer E keeps sending
        # (a phone that is booting opens its port late); the reason is kept for the final message.
        if isinstance(exc, OSError):
            self.refused = exc


async def check_sync(host: str, port: int = SIP_PORT, *, user: str | None = None,
                     timers: SipTimers | None = None, netns: str | None = None) -> NotifyAnswer:
    """Send NOTIFY check-sync to `host:port` and wait for the final answer (module docstring).

    Raises `HarnessError("sip-no-answer")` after Timer F, naming the transmissions and, when the
    host answered ICMP port unreachable, saying so. `netns`: send from inside that network
    namespace (the harness's side of a lab in a box)."""
    return await transaction("NOTIFY", host, port, user=user, timers=timers, netns=netns)


async def options(host: str, port: int = SIP_PORT, *, user: str | None = None,
                  timers: SipTimers | None = None, netns: str | None = None) -> NotifyAnswer:
    """SIP OPTIONS: is a SIP stack listening there (any final answer says yes)? Reboots nothing."""
    return await transaction("OPTIONS", host, port, user=user, timers=timers, netns=netns)


async def transaction(method: str, host: str, port: int = SIP_PORT, *, user: str | None = None,
                      timers: SipTimers | None = None, netns: str | None = None) -> NotifyAnswer:
    """One non-INVITE client transaction over UDP (module docstring)."""
    timers = timers or SipTimers()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = secrets.token_hex(12) + "@enrollab"
    tag = secrets.token_hex(4)
    loop = asyncio.get_running_loop()
    try:
        sock = socket_in(netns, family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect((host, port))
        except OSError:
            sock.close()
            raise
        transport, proto = await loop.create_datagram_endpoint(lambda: _Transaction(branch, call_id), sock=sock)
    except OSError as exc:
        raise HarnessError("sip-unreachable", f"cannot send to {host}:{port}/udp: {exc.strerror or exc}",
                           value=host) from None
    try:
        local = transport.get_extra_info("sockname")[:2]
        request = notify_request(host, port, local, user=user, branch=branch, tag=tag, call_id=call_id,
                                 method=method)
        started = time.monotonic()
        deadline = started + timers.f
        interval = timers.t1
        sent = 0
        while True:
            transport.sendto(request)
            sent += 1
            wait = min(interval, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                status, reason = await asyncio.wait_for(asyncio.shield(proto.final), wait)
                return NotifyAnswer(status, reason, sent, time.monotonic() - started)
            except TimeoutError:
                pass
            interval = timers.t2 if proto.provisional.is_set() else min(2 * interval, timers.t2)
            if time.monotonic() >= deadline:
                break
        why = " (ICMP: port unreachable, nothing listens there)" if proto.refused is not None else ""
        what = "NOTIFY check-sync" if method == "NOTIFY" else method
        raise HarnessError(
            "sip-no-answer",
            f"no final answer from {host}:{port}/udp to {what} after {sent} transmissions "
            f"in {timers.f:g} s{why}",
            value=host,
        )
    finally:
        transport.close()
