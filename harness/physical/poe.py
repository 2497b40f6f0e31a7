"""A PoE power cycle over SNMPv2c: the switch turns the phone's port off, then on again.

PROTOCOL §5: `pethPsePortAdminEnable` (POWER-ETHERNET-MIB, RFC 3621,
`.1.3.6.1.2.1.105.1.1.1.3.<group>.<port>`, group 1 unless the lab file says) is set to
false(2), read back, held off for `off_seconds`, then set to true(1) and read back, over SNMPv2c
with pysnmp. The community comes only from the environment variable the lab file's
`poe.community_env` names; it is never logged, printed or put in an error message.

A v2c agent answers a wrong community with silence (RFC 3584: the message is dropped and
snmpInBadCommunityNames counted), so a timeout says "wrong community, or no SNMP agent there"; a
community that may read but not write is `noAccess`/`notWritable`, said as such.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

__all__ = ["PoePort", "admin_enable_oid", "power_cycle", "read_state"]

ADMIN_ENABLE = "1.3.6.1.2.1.105.1.1.1.3"  # pethPsePortAdminEnable
TRUE, FALSE = 1, 2  # TruthValue


def admin_enable_oid(group: int, port: int) -> str:
    return f"{ADMIN_ENABLE}.{group}.{port}"


@dataclass(frozen=True)
class PoePort:
    """Where a phone draws its power: the switch's SNMP agent and the PSE port (lab file `poe`)."""

    switch: str
    port: int
    community_env: str
    group: int = 1
    snmp_port: int = 161
    off_seconds: float = 5.0
    timeout: float = 2.0
    retries: int = 1

    @classmethod
    def from_lab(cls, poe: Mapping[str, Any], where: str) -> PoePort:
        try:
            return cls(
                switch=str(poe["switch"]),
                port=int(poe["port"]),
                community_env=str(poe["community_env"]),
                group=int(poe.get("group", 1)),
                snmp_port=int(poe.get("snmp_port", 161)),
                off_seconds=float(poe.get("off_seconds", 5.0)),
                timeout=float(poe.get("timeout", 2.0)),
            )
        except KeyError as exc:
            raise HarnessError("poe-not-configured", f"{where}: poe.{exc.args[0]} is needed for reboot = \"poe\"") \
                from None

    def community(self) -> str:
        value = os.environ.get(self.community_env)
        if not value:
            raise HarnessError("poe-community-missing", f"set {self.community_env} to the switch's SNMP write "
                               "community (it is never put in the lab file)")
        return value

    @property
    def oid(self) -> str:
        return admin_enable_oid(self.group, self.port)


async def power_cycle(port: PoePort, *, wait: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                      progress: Callable[[str], None] | None = None) -> None:
    """Off, read back, `off_seconds`, on, read back (module docstring). Raises `HarnessError`
    with a one-line reason; the community never appears in it."""
    say = progress or (lambda _: None)
    community = port.community()
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    engine = SnmpEngine()
    try:
        await _set(engine, port, community, FALSE)
        say(f"port {port.port} on {port.switch}: power off")
        await wait(port.off_seconds)
        await _set(engine, port, community, TRUE)
        say(f"port {port.port} on {port.switch}: power on")
    finally:
        engine.close_dispatcher()


async def read_state(port: PoePort) -> int:
    """pethPsePortAdminEnable of the port now: 1 (on) or 2 (off), for `enrollab lab check`; the
    same one-line `HarnessError`s as `power_cycle`."""
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, ContextData, ObjectIdentity, ObjectType, SnmpEngine, get_cmd

    community = port.community()
    engine = SnmpEngine()
    try:
        target = await _target(port)
        auth = CommunityData(community, mpModel=1)  # noqa: S508 - PROTOCOL §5: SNMPv2c
        error, status, index, binds = await get_cmd(engine, auth, target, ContextData(),
                                                    ObjectType(ObjectIdentity(port.oid)))
        _check(error, status, f"reading pethPsePortAdminEnable.{port.group}.{port.port}",
               f"{port.switch}:{port.snmp_port}")
        return _value(binds, port)
    finally:
        engine.close_dispatcher()


async def _target(port: PoePort) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

    try:
        return await UdpTransportTarget.create((port.switch, port.snmp_port), timeout=port.timeout,
                                               retries=port.retries)
    except Exception as exc:  # pysnmp wraps resolution and socket errors in its own types
        raise HarnessError("poe-unreachable", f"switch {port.switch}:{port.snmp_port}: {exc}") from None


def _value(binds: Any, port: PoePort) -> int:
    got = binds[0][1] if binds else None
    if got is None or got.__class__.__name__ in ("NoSuchInstance", "NoSuchObject", "EndOfMibView"):
        raise HarnessError("poe-no-such-port", f"{port.switch}:{port.snmp_port} has no PoE port "
                           f"{port.group}.{port.port} (pethPsePortAdminEnable missing)")
    return int(got)


async def _set(engine: Any, port: PoePort, community: str, value: int) -> None:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        Integer,
        ObjectIdentity,
        ObjectType,
        get_cmd,
        set_cmd,
    )

    where = f"{port.switch}:{port.snmp_port}"
    target = await _target(port)
    auth = CommunityData(community, mpModel=1)  # noqa: S508 - PROTOCOL §5: SNMPv2c, what PoE switches speak
    word = {TRUE: "true(1)", FALSE: "false(2)"}[value]
    error, status, index, binds = await set_cmd(engine, auth, target, ContextData(),
                                                ObjectType(ObjectIdentity(port.oid), Integer(value)))
    _check(error, status, f"setting pethPsePortAdminEnable.{port.group}.{port.port} to {word}", where)
    error, status, index, binds = await get_cmd(engine, auth, target, ContextData(),
                                                ObjectType(ObjectIdentity(port.oid)))
    _check(error, status, f"reading pethPsePortAdminEnable.{port.group}.{port.port} back", where)
    got = _value(binds, port)
    if got != value:
        raise HarnessError("poe-not-applied",
                           f"{where} port {port.group}.{port.port}: pethPsePortAdminEnable reads {got}, "
                           f"not {word}, after the set")


def _check(error: Any, status: Any, doing: str, where: str) -> None:
    if error:
        text = str(error)
        if "timed out" in text.lower() or "timeout" in text.lower():
            raise HarnessError("poe-no-answer", f"no SNMP answer from switch {where} ({doing}): wrong community, "
                               "or no SNMP agent there")
        raise HarnessError("poe-snmp-error", f"switch {where}, {doing}: {text}")
    if status:
        name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
        hint = {
            "noAccess": "the community may not write",
            "authorizationError": "the community may not write",
            "notWritable": "no such PoE port, or the switch refuses writes to it",
            "noSuchName": "no such port",
            "noCreation": "no such port",
        }.get(name, "")
        raise HarnessError("poe-refused", f"switch {where}, {doing}: {name}" + (f" ({hint})" if hint else ""))
