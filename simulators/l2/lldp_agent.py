"""A simulated phone's LLDP side: it sends the phone's LLDPDU now and every `interval` seconds
and keeps the neighbours' LLDPDUs it is fed; the link belongs to the caller.

    agent = LldpAgent(link.send, mac="a4:25:1b:00:00:01", system_name="AVA000001",
                      model="J179D01A", firmware="4.1.0.0.10", serial="22WZ00000001")
    link.open(lambda frame, outgoing, at: outgoing or agent.feed(frame, at))
    agent.start()                        # needs a running event loop
    switch = await agent.first(timeout=3)  # the first neighbour's LldpInfo, or None
    agent.set_address("10.213.0.50")      # after DHCP: chassis ID = the IP from now on
    await agent.stop()

Decisions:
- The LLDPDU is `simulators.l2.lldp.phone_lldpdu` (research §10: chassis IP, port MAC, TTL 120,
  system name = the option-12 host name, LLDP-MED inventory). Before an address is known the
  chassis ID is the MAC [inf].
- The Avaya TLVs the phone sends (research §10: IP phone addresses, call server, file server,
  802.1Q framing) carry what the caller says the phone uses (`set_address`, `set_reported`);
  nothing is sent for what it was not told [inf].
- A changed address is sent at once, not at the next interval (802.1AB's
  somethingChangedLocal) [inf: whether a J100 does so is not documented].
- `stop()` sends nothing more: it models power-off or reboot, not an administrative shutdown,
  so there is no TTL-0 shutdown LLDPDU [inf].
- LLDP-MED fast start (TIA-1057) is not simulated: one LLDPDU at start, then one per
  interval [inf].
- `heard` keeps every LLDPDU from another MAC, oldest first. `first()` skips telephones (an
  LLDPDU with the telephone capability enabled or from an LLDP-MED endpoint): on a real switch
  a phone never hears another phone's LLDP, but the lab bridge forwards LLDP between all its
  ports, so the phones of one lab hear each other [inf].
- A failed send (the link went away) is counted in `send_failures`, never raised: LLDP is best
  effort [inf].
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from simulators.l2.lldp import LldpInfo, parse_lldpdu, phone_lldpdu

__all__ = ["LldpAgent"]


class LldpAgent:
    """The phone's LLDP transmitter and receiver (module docstring)."""

    def __init__(self, send: Callable[[bytes], None], *, mac: str, system_name: str, model: str, firmware: str,
                 serial: str, interval: float = 30.0) -> None:
        if interval <= 0:
            raise ValueError(f"LLDP interval {interval}: must be positive")
        digits = "".join(c for c in mac if c.isalnum()).lower()
        if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError(f"{mac!r} is not a MAC address")
        self._send = send
        self._own = bytes.fromhex(digits)  # as it stands in a frame's source field
        self.mac = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
        self.system_name = system_name
        self.model = model
        self.firmware = firmware
        self.serial = serial
        self.interval = interval
        self.ip: str | None = None
        self.netmask: str | None = None
        self.gateway: str | None = None
        self.file_servers: tuple[str, ...] = ()
        self.call_servers: tuple[str, ...] = ()
        self.dot1q_framing: int | None = None
        self.heard: list[tuple[float, LldpInfo]] = []
        self.sent = 0
        self.send_failures = 0
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Event] = []

    # -- receiving ------------------------------------------------------------------------------

    def feed(self, frame: bytes, at: float) -> None:
        """One received frame: LLDPDUs from other MACs are kept, everything else is ignored."""
        if len(frame) < 14 or frame[6:12] == self._own:
            return
        info = parse_lldpdu(frame)
        if info is None:
            return
        self.heard.append((at, info))
        for waiter in self._waiters:
            waiter.set()

    def _first_neighbour(self) -> LldpInfo | None:
        return next((info for _at, info in self.heard if not info.is_telephone), None)

    async def first(self, timeout: float) -> LldpInfo | None:
        """The first neighbour LLDPDU that is not a phone's, heard already or within `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        arrived = asyncio.Event()
        self._waiters.append(arrived)
        try:
            while True:
                found = self._first_neighbour()
                remaining = deadline - loop.time()
                if found is not None or remaining <= 0:
                    return found
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), remaining)
        finally:
            self._waiters.remove(arrived)

    # -- sending --------------------------------------------------------------------------------

    def lldpdu(self) -> bytes:
        """The frame the phone sends now."""
        return phone_lldpdu(self.mac, ip=self.ip, system_name=self.system_name, model=self.model,
                            firmware=self.firmware, serial=self.serial, netmask=self.netmask, gateway=self.gateway,
                            file_servers=self.file_servers, call_servers=self.call_servers,
                            dot1q_framing=self.dot1q_framing)

    def _transmit(self) -> None:
        try:
            self._send(self.lldpdu())
        except OSError:
            self.send_failures += 1
            return
        self.sent += 1

    def set_address(self, ip: str | None, *, netmask: str | None = None, gateway: str | None = None) -> None:
        """The phone's IPv4 address (None: lost), with its mask and router for the Avaya IP phone
        TLV; sent at once when the agent runs and something changed."""
        self._change(ip=ip, netmask=netmask, gateway=gateway)

    def set_reported(self, *, file_servers: Iterable[str] = (), call_servers: Iterable[str] = (),
                     dot1q_framing: int | None = None) -> None:
        """The servers and 802.1Q framing the phone uses, reported in Avaya's TLVs (research §10)."""
        self._change(file_servers=tuple(file_servers), call_servers=tuple(call_servers), dot1q_framing=dot1q_framing)

    def _change(self, **values: Any) -> None:
        if all(getattr(self, name) == value for name, value in values.items()):
            return
        before = {name: getattr(self, name) for name in values}
        for name, value in values.items():
            setattr(self, name, value)
        try:
            self.lldpdu()  # refuse what cannot be encoded, before it is the phone's state
        except ValueError:
            for name, value in before.items():
                setattr(self, name, value)
            raise
        if self._task is not None:
            self._transmit()

    def start(self) -> None:
        """Transmit now and every `interval` seconds (module docstring)."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._transmit()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
