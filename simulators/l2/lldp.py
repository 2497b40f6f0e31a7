"""LLDP frames (IEEE 802.1AB) with LLDP-MED (ANSI/TIA-1057) and Avaya's proprietary TLVs: built
for a simulated phone and for the lab's voice-switch advertiser, and read back from any peer.

    frame = phone_lldpdu("a4:25:1b:00:00:01", ip="10.213.0.50", system_name="AVA000001",
                         model="J179D01A", firmware="4.1.0.0.10", serial="22WZ00000001")
    frame = switch_lldpdu("02:00:00:00:00:01", port="br0", system_name="lab-switch",
                          file_servers=("10.213.0.1",), med=MedPolicy(1, False, True, 212, 5, 46))
    info = parse_lldpdu(frame)       # LldpInfo, or None for a frame that is not a readable LLDPDU
    info.file_servers                # ("10.213.0.1",)

Decisions:
- Avaya TLVs are organisationally specific (type 127) with OUI 00-04-0D; subtypes 1 PoE
  conservation, 3 call server, 4 IP phone addresses, 5 CNA server, 6 file server, 7 802.1Q
  framing (1 tagging, 2 no tagging; the phone also takes 3 as auto) (research §10, S36, S38).
  Subtype 4 is the phone's own addresses, not 802.1Q framing: Wireshark's `avaya_subtypes`
  table agrees with Avaya's (§10).
- Call and file server TLVs are a run of IPv4 addresses, four octets each (§10: Wireshark
  decodes them so, S38). A switch sends up to 4 file servers and 8 call servers (§10, S37);
  `switch_lldpdu` lets a lab send more, to test how a phone copes [inf].
- What the phone sends (§10, S36): chassis ID = its IPv4 address (subtype 5, network address,
  IANA family 1) once it has one, its MAC (subtype 4) before [inf: no address yet]; port ID = its
  MAC (subtype 3); TTL 120; system name = the option-12 host name (§9); LLDP-MED inventory with
  hardware revision = MODEL and model name = MODEL without the final `Dxxx` (`J179D01A` ->
  `J179`); firmware and software revision = the firmware version [inf], serial number,
  manufacturer "Avaya". Of Avaya's own TLVs (§10: "sent as well") the IP phone addresses
  (subtype 4: address, mask, gateway, 0.0.0.0 for what is unknown [inf]) whenever the phone has
  an IPv4 address; call server, file server and 802.1Q framing when the caller gives them (the
  phone reports what it uses) [inf].
- The phone's LLDPDU also carries the optional system capabilities (telephone, enabled), a
  management address when it has an IPv4 address, the 802.3 MAC/PHY TLV that TIA-1057
  requires of every MED endpoint, and LLDP-MED capabilities (class III, communication device)
  first among the MED TLVs (TIA-1057) [inf: §10 does not list these].
- The switch's LLDPDU: chassis = its MAC (subtype 4), port = the interface name (subtype 5),
  system capabilities bridge; with a `MedPolicy`, LLDP-MED capabilities (class IV, network
  connectivity) and a network policy TLV (TIA-1057: app type, U, T, X, 12-bit VLAN,
  3-bit L2 priority, 6-bit DSCP) [inf: TIA-1057 lets a switch wait for an MED endpoint first;
  the lab sends at once].
- Frames go to 01:80:c2:00:00:0e (nearest bridge) with ethertype 88CC, padded to the
  60-byte Ethernet minimum after the End TLV [inf].
- Reading: the frame may carry 802.1Q/802.1ad tags. Chassis ID, port ID and TTL must come first
  and in that order (802.1AB); without them the frame is unreadable (None). Anything odd
  after them (a TLV running past the end, a wrong length, an unknown type, OUI or subtype, no End
  TLV, a repeated mandatory TLV) is noted in `problems` and reading goes on: a phone tolerates
  a switch's oddities [inf]. `parse_lldpdu` never raises.
- Of several network policy TLVs the voice one (application type 1) is kept, else the first
  (§10: the phone uses voice only).
- struct, not scapy: a small, byte-exact codec without scapy's start-up cost; the unit tests
  check it against scapy's dissector [inf].
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "AVAYA_OUI",
    "ETH_P_LLDP",
    "IEEE_8021_OUI",
    "IEEE_8023_OUI",
    "LLDP_MULTICAST",
    "TIA_OUI",
    "UNKNOWN_IPV4",
    "LldpInfo",
    "MedPolicy",
    "build_lldpdu",
    "is_lldp_frame",
    "model_name",
    "parse_lldpdu",
    "phone_lldpdu",
    "switch_lldpdu",
]

LLDP_MULTICAST = "01:80:c2:00:00:0e"
ETH_P_LLDP = 0x88CC
AVAYA_OUI = b"\x00\x04\x0d"
IEEE_8021_OUI = b"\x00\x80\xc2"
IEEE_8023_OUI = b"\x00\x12\x0f"
TIA_OUI = b"\x00\x12\xbb"

# 802.1AB TLV types
END, CHASSIS_ID, PORT_ID, TTL, PORT_DESCRIPTION, SYSTEM_NAME, SYSTEM_DESCRIPTION = 0, 1, 2, 3, 4, 5, 6
SYSTEM_CAPABILITIES, MANAGEMENT_ADDRESS, ORG_SPECIFIC = 7, 8, 127
# chassis ID and port ID subtypes (802.1AB)
CHASSIS_MAC, CHASSIS_NETWORK_ADDRESS = 4, 5
PORT_MAC, PORT_NETWORK_ADDRESS, PORT_INTERFACE_NAME = 3, 4, 5
CHASSIS_TEXT_SUBTYPES = (1, 2, 3, 6, 7)
PORT_TEXT_SUBTYPES = (1, 2, 5, 6, 7)
# system capabilities bits (802.1AB)
CAP_BRIDGE, CAP_TELEPHONE = 0x0004, 0x0020
# Avaya subtypes (research §10)
AVAYA_POE, AVAYA_CALL_SERVER, AVAYA_IP_PHONE, AVAYA_CNA_SERVER, AVAYA_FILE_SERVER, AVAYA_DOT1Q = 1, 3, 4, 5, 6, 7
# TIA-1057 subtypes and values
MED_CAPABILITIES, MED_NETWORK_POLICY, MED_LOCATION, MED_POWER = 1, 2, 3, 4
MED_CAP_LLDP_MED, MED_CAP_NETWORK_POLICY, MED_CAP_INVENTORY = 0x01, 0x02, 0x20
MED_CLASS_III, MED_NETWORK_CONNECTIVITY = 3, 4
APP_VOICE = 1
INVENTORY_FIELDS = {5: "hardware_revision", 6: "firmware_revision", 7: "software_revision", 8: "serial_number",
                    9: "manufacturer", 10: "model", 11: "asset_id"}
KNOWN_8021 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
KNOWN_8023 = {1, 2, 3, 4, 5, 6, 7, 8}
ETHERNET_MIN = 60
UNKNOWN_IPV4 = "0.0.0.0"  # noqa: S104 (an address field's "not known", not a bind address)
_MAX_INFO = 511  # a TLV's information string has a 9-bit length


@dataclass(frozen=True)
class MedPolicy:
    """An LLDP-MED network policy (TIA-1057): application type (1 = voice), the U
    (policy unknown) and T (tagged) flags, VLAN id, 802.1p priority and DSCP."""

    app_type: int
    unknown: bool
    tagged: bool
    vlan: int
    priority: int
    dscp: int


@dataclass(frozen=True)
class LldpInfo:
    """What one LLDPDU says. `chassis_id` / `port_id` are text: a MAC in lower case with colons,
    an IP address, or the string sent; `problems` lists what was odd in it."""

    src_mac: str
    chassis_id: str
    chassis_subtype: int
    port_id: str
    port_subtype: int
    ttl: int
    system_name: str | None = None
    file_servers: tuple[str, ...] = ()
    call_servers: tuple[str, ...] = ()
    dot1q_framing: int | None = None
    vlan_name: str | None = None
    port_vlan: int | None = None
    inventory: Mapping[str, str] | None = None
    med_policy: MedPolicy | None = None
    problems: tuple[str, ...] = ()
    system_capabilities: int | None = None
    enabled_capabilities: int | None = None
    med_device_class: int | None = None
    management_addresses: tuple[str, ...] = ()
    port_description: str | None = None
    vlan: int | None = None  # the frame's 802.1Q VLAN id, None when untagged
    phone_addresses: tuple[str, str, str] | None = None  # Avaya subtype 4: address, mask, gateway

    @property
    def is_telephone(self) -> bool:
        """The sender says it is a telephone (capability enabled) or an LLDP-MED endpoint."""
        enabled = self.enabled_capabilities or 0
        return bool(enabled & CAP_TELEPHONE) or self.med_device_class in (1, 2, 3)


# -- building ----------------------------------------------------------------------------------


def _mac_bytes(mac: str) -> bytes:
    digits = "".join(c for c in mac if c.isalnum()).lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{mac!r} is not a MAC address")
    return bytes.fromhex(digits)


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _tlv(kind: int, value: bytes) -> bytes:
    if len(value) > _MAX_INFO:
        raise ValueError(f"LLDP TLV type {kind}: {len(value)} bytes of information (at most {_MAX_INFO})")
    return struct.pack("!H", (kind << 9) | len(value)) + value


def _org(oui: bytes, subtype: int, info: bytes) -> bytes:
    return _tlv(ORG_SPECIFIC, oui + bytes([subtype]) + info)


def _text(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw:
        raise ValueError(f"{what}: an empty string")
    return raw


def _ipv4s(addresses: Iterable[str], what: str) -> bytes:
    try:
        return b"".join(ipaddress.IPv4Address(a).packed for a in addresses)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _network_address(ip: str) -> bytes:
    address = ipaddress.ip_address(ip)
    return bytes([1 if address.version == 4 else 2]) + address.packed  # IANA address family


def _capabilities(capable: int, enabled: int) -> bytes:
    return _tlv(SYSTEM_CAPABILITIES, struct.pack("!HH", capable, enabled))


def _management_address(ip: str) -> bytes:
    address = _network_address(ip)
    # address string length, address; interface numbering unknown (1), number 0; no OID
    return _tlv(MANAGEMENT_ADDRESS, bytes([len(address)]) + address + b"\x01" + b"\x00" * 4 + b"\x00")


def _med_policy(med: MedPolicy) -> bytes:
    for name, value, top in (("app_type", med.app_type, 255), ("vlan", med.vlan, 4095),
                             ("priority", med.priority, 7), ("dscp", med.dscp, 63)):
        if not 0 <= value <= top:
            raise ValueError(f"MED network policy {name} {value}: not in 0-{top}")
    bits = (med.unknown << 23) | (med.tagged << 22) | (med.vlan << 9) | (med.priority << 6) | med.dscp
    return _org(TIA_OUI, MED_NETWORK_POLICY, bytes([med.app_type]) + bits.to_bytes(3, "big"))


def _avaya(file_servers: Iterable[str], call_servers: Iterable[str], dot1q_framing: int | None,
           ip_phone: tuple[str, str, str] | None = None) -> bytes:
    out = b""
    calls = _ipv4s(call_servers, "call servers")
    if calls:
        out += _org(AVAYA_OUI, AVAYA_CALL_SERVER, calls)
    if ip_phone is not None:
        out += _org(AVAYA_OUI, AVAYA_IP_PHONE, _ipv4s(ip_phone, "IP phone addresses"))
    files = _ipv4s(file_servers, "file servers")
    if files:
        out += _org(AVAYA_OUI, AVAYA_FILE_SERVER, files)
    if dot1q_framing is not None:
        if not 0 <= dot1q_framing <= 255:
            raise ValueError(f"802.1Q framing {dot1q_framing}: not one octet")
        out += _org(AVAYA_OUI, AVAYA_DOT1Q, bytes([dot1q_framing]))
    return out


def _frame(src_mac: str, lldpdu: bytes) -> bytes:
    frame = _mac_bytes(LLDP_MULTICAST) + _mac_bytes(src_mac) + struct.pack("!H", ETH_P_LLDP) + lldpdu
    return frame + b"\x00" * max(0, ETHERNET_MIN - len(frame))


def _mandatory(chassis: bytes, port: bytes, ttl: int) -> bytes:
    if not 0 <= ttl <= 0xFFFF:
        raise ValueError(f"TTL {ttl}: not in 0-65535")
    return _tlv(CHASSIS_ID, chassis) + _tlv(PORT_ID, port) + _tlv(TTL, struct.pack("!H", ttl))


def model_name(model: str) -> str:
    """MODEL without its final `Dxxx` (research §10): `J179D01A` -> `J179`."""
    return re.sub(r"D[0-9A-Z]{3}$", "", model) or model


def switch_lldpdu(src_mac: str, *, port: str, system_name: str | None, file_servers: Iterable[str] = (),
                  call_servers: Iterable[str] = (), dot1q_framing: int | None = None, med: MedPolicy | None = None,
                  ttl: int = 120) -> bytes:
    """A voice switch's LLDP frame (module docstring); `system_name` None leaves the TLV out."""
    body = _mandatory(bytes([CHASSIS_MAC]) + _mac_bytes(src_mac), bytes([PORT_INTERFACE_NAME]) + _text(port, "port"),
                      ttl)
    if system_name is not None:
        body += _tlv(SYSTEM_NAME, _text(system_name, "system name"))
    body += _capabilities(CAP_BRIDGE, CAP_BRIDGE)
    if med is not None:
        body += _org(TIA_OUI, MED_CAPABILITIES,
                     struct.pack("!HB", MED_CAP_LLDP_MED | MED_CAP_NETWORK_POLICY, MED_NETWORK_CONNECTIVITY))
        body += _med_policy(med)
    body += _avaya(file_servers, call_servers, dot1q_framing)
    return _frame(src_mac, body + _tlv(END, b""))


def phone_lldpdu(mac: str, *, ip: str | None, system_name: str, model: str, firmware: str, serial: str,
                 manufacturer: str = "Avaya", ttl: int = 120, netmask: str | None = None, gateway: str | None = None,
                 file_servers: Iterable[str] = (), call_servers: Iterable[str] = (),
                 dot1q_framing: int | None = None) -> bytes:
    """An Avaya phone's LLDP frame (module docstring, research §10). With an IPv4 address it
    carries the Avaya IP phone addresses TLV (address, `netmask`, `gateway`; 0.0.0.0 when unknown)."""
    raw_mac = _mac_bytes(mac)
    chassis = bytes([CHASSIS_NETWORK_ADDRESS]) + _network_address(ip) if ip else bytes([CHASSIS_MAC]) + raw_mac
    body = _mandatory(chassis, bytes([PORT_MAC]) + raw_mac, ttl)
    body += _tlv(SYSTEM_NAME, _text(system_name, "system name"))
    body += _capabilities(CAP_TELEPHONE, CAP_TELEPHONE)
    if ip:
        body += _management_address(ip)
    # 802.3 MAC/PHY: autonegotiation supported and enabled, 10/100 half and full advertised,
    # operational MAU type 16 (100BASE-TX full duplex)
    body += _org(IEEE_8023_OUI, 1, struct.pack("!BHH", 0x03, 0x6C00, 16))
    body += _org(TIA_OUI, MED_CAPABILITIES,
                 struct.pack("!HB", MED_CAP_LLDP_MED | MED_CAP_NETWORK_POLICY | MED_CAP_INVENTORY, MED_CLASS_III))
    inventory = ((5, model), (6, firmware), (7, firmware), (8, serial), (9, manufacturer), (10, model_name(model)))
    for subtype, value in inventory:
        if value:
            body += _org(TIA_OUI, subtype, value.encode("utf-8"))
    ipv4 = ip is not None and ipaddress.ip_address(ip).version == 4
    addresses = (ip, netmask or UNKNOWN_IPV4, gateway or UNKNOWN_IPV4) if ipv4 and ip else None
    body += _avaya(file_servers, call_servers, dot1q_framing, addresses)
    return _frame(mac, body + _tlv(END, b""))


def build_lldpdu(src_mac: str, *, chassis_mac: str | None = None, port_name: str = "eth0",
                 system_name: str | None = None, ttl: int = 120) -> bytes:
    """A plain LLDP frame: chassis = `chassis_mac` (default `src_mac`), port = `port_name`."""
    body = _mandatory(bytes([CHASSIS_MAC]) + _mac_bytes(chassis_mac or src_mac),
                      bytes([PORT_INTERFACE_NAME]) + _text(port_name, "port"), ttl)
    if system_name is not None:
        body += _tlv(SYSTEM_NAME, _text(system_name, "system name"))
    return _frame(src_mac, body + _tlv(END, b""))


# -- reading -----------------------------------------------------------------------------------


def _payload(frame: bytes) -> tuple[bytes, int | None] | None:
    """(LLDPDU, VLAN id or None) of an Ethernet frame carrying LLDP, else None."""
    if len(frame) < 14:
        return None
    offset, vlan = 12, None
    ethertype = struct.unpack_from("!H", frame, offset)[0]
    while ethertype in (0x8100, 0x88A8, 0x9100) and len(frame) >= offset + 8:
        vlan = struct.unpack_from("!H", frame, offset + 2)[0] & 0x0FFF
        offset += 4
        ethertype = struct.unpack_from("!H", frame, offset)[0]
    if ethertype != ETH_P_LLDP:
        return None
    return frame[offset + 2 :], vlan


def is_lldp_frame(frame: bytes) -> bool:
    """Ethertype 88CC (after any VLAN tags)."""
    return _payload(frame) is not None


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _decode_address(raw: bytes) -> str | None:
    """An IANA-family-prefixed network address as text; None if not IPv4/IPv6 of the right size."""
    if len(raw) == 5 and raw[0] == 1:
        return str(ipaddress.IPv4Address(raw[1:]))
    if len(raw) == 17 and raw[0] == 2:
        return str(ipaddress.IPv6Address(raw[1:]))
    return None


def _decode_id(subtype: int, raw: bytes, mac: int, address: int, text_subtypes: tuple[int, ...]) -> str:
    if subtype == mac and len(raw) == 6:
        return _mac_text(raw)
    if subtype == address:
        decoded = _decode_address(raw)
        if decoded is not None:
            return decoded
    if subtype in text_subtypes and raw:
        return _decode_text(raw)
    return raw.hex(":")


def _split_tlvs(body: bytes, problems: list[str]) -> list[tuple[int, bytes]]:
    """The TLVs up to End (or the last whole one), noting truncation and a missing End."""
    tlvs: list[tuple[int, bytes]] = []
    i = 0
    while True:
        if i + 2 > len(body):
            problems.append("no End of LLDPDU TLV")
            return tlvs
        header = struct.unpack_from("!H", body, i)[0]
        kind, length = header >> 9, header & 0x1FF
        if kind == END:
            if length:
                problems.append(f"End of LLDPDU TLV with length {length}")
            return tlvs
        if i + 2 + length > len(body):
            problems.append(f"TLV type {kind} at offset {i} runs past the end ({length} bytes, "
                            f"{len(body) - i - 2} left)")
            return tlvs
        tlvs.append((kind, body[i + 2 : i + 2 + length]))
        i += 2 + length


class _Reader:
    """Collects the optional TLVs of one LLDPDU."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.fields: dict[str, Any] = {}
        self.inventory: dict[str, str] = {}
        self.policies: list[MedPolicy] = []
        self.management: list[str] = []

    def tlv(self, kind: int, value: bytes) -> None:
        if kind in (CHASSIS_ID, PORT_ID, TTL):
            self.problems.append(f"a second TLV of type {kind} (chassis ID, port ID and TTL come once)")
        elif kind == PORT_DESCRIPTION:
            self.fields["port_description"] = _decode_text(value)
        elif kind == SYSTEM_NAME:
            self.fields["system_name"] = _decode_text(value)
        elif kind == SYSTEM_DESCRIPTION:
            pass
        elif kind == SYSTEM_CAPABILITIES:
            if len(value) == 4:
                capable, enabled = struct.unpack("!HH", value)
                self.fields["system_capabilities"], self.fields["enabled_capabilities"] = capable, enabled
            else:
                self.problems.append(f"system capabilities TLV of {len(value)} bytes (4 expected)")
        elif kind == MANAGEMENT_ADDRESS:
            self._management(value)
        elif kind == ORG_SPECIFIC:
            self._org(value)
        else:
            self.problems.append(f"reserved TLV type {kind} ({len(value)} bytes)")

    def _management(self, value: bytes) -> None:
        if not value or len(value) < 1 + value[0]:
            self.problems.append("management address TLV too short")
            return
        decoded = _decode_address(value[1 : 1 + value[0]])
        if decoded is not None:
            self.management.append(decoded)

    def _org(self, value: bytes) -> None:
        if len(value) < 4:
            self.problems.append(f"organisationally specific TLV of {len(value)} bytes (at least 4)")
            return
        oui, subtype, info = value[:3], value[3], value[4:]
        if oui == AVAYA_OUI:
            self._avaya(subtype, info)
        elif oui == TIA_OUI:
            self._tia(subtype, info)
        elif oui == IEEE_8021_OUI:
            self._ieee_8021(subtype, info)
        elif oui == IEEE_8023_OUI:
            if subtype not in KNOWN_8023:
                self.problems.append(f"unknown IEEE 802.3 subtype {subtype}")
        else:
            self.problems.append(f"unknown OUI {oui.hex('-')} subtype {subtype} ({len(info)} bytes)")

    def _servers(self, name: str, what: str, info: bytes) -> None:
        if not info or len(info) % 4:
            self.problems.append(f"Avaya {what} TLV of {len(info)} bytes (a multiple of 4 expected)")
        whole = info[: len(info) - len(info) % 4]
        found = tuple(str(ipaddress.IPv4Address(whole[i : i + 4])) for i in range(0, len(whole), 4))
        self.fields[name] = tuple(self.fields.get(name, ())) + found

    def _avaya(self, subtype: int, info: bytes) -> None:
        if subtype == AVAYA_FILE_SERVER:
            self._servers("file_servers", "file server", info)
        elif subtype == AVAYA_CALL_SERVER:
            self._servers("call_servers", "call server", info)
        elif subtype == AVAYA_DOT1Q:
            if len(info) == 1:
                self.fields["dot1q_framing"] = info[0]
            else:
                self.problems.append(f"Avaya 802.1Q framing TLV of {len(info)} bytes (1 expected)")
        elif subtype == AVAYA_IP_PHONE:
            if len(info) == 12:
                self.fields["phone_addresses"] = tuple(str(ipaddress.IPv4Address(info[i : i + 4])) for i in (0, 4, 8))
            else:
                self.problems.append(f"Avaya IP phone addresses TLV of {len(info)} bytes (12 expected)")
        elif subtype not in (AVAYA_POE, AVAYA_CNA_SERVER):
            self.problems.append(f"unknown Avaya subtype {subtype} ({len(info)} bytes)")

    def _tia(self, subtype: int, info: bytes) -> None:
        if subtype == MED_CAPABILITIES:
            if len(info) == 3:
                self.fields["med_device_class"] = info[2]
            else:
                self.problems.append(f"LLDP-MED capabilities TLV of {len(info)} bytes (3 expected)")
        elif subtype == MED_NETWORK_POLICY:
            if len(info) != 4:
                self.problems.append(f"LLDP-MED network policy TLV of {len(info)} bytes (4 expected)")
                return
            bits = int.from_bytes(info[1:4], "big")
            self.policies.append(MedPolicy(app_type=info[0], unknown=bool(bits >> 23 & 1),
                                           tagged=bool(bits >> 22 & 1), vlan=bits >> 9 & 0x0FFF,
                                           priority=bits >> 6 & 0x07, dscp=bits & 0x3F))
        elif subtype in INVENTORY_FIELDS:
            self.inventory[INVENTORY_FIELDS[subtype]] = _decode_text(info)
        elif subtype not in (MED_LOCATION, MED_POWER):
            self.problems.append(f"unknown LLDP-MED subtype {subtype}")

    def _ieee_8021(self, subtype: int, info: bytes) -> None:
        if subtype == 1:
            if len(info) == 2:
                self.fields["port_vlan"] = struct.unpack("!H", info)[0]
            else:
                self.problems.append(f"port VLAN ID TLV of {len(info)} bytes (2 expected)")
        elif subtype == 3:
            if len(info) >= 3 and len(info) >= 3 + info[2]:
                self.fields["vlan_name"] = _decode_text(info[3 : 3 + info[2]])
            else:
                self.problems.append(f"VLAN name TLV of {len(info)} bytes, too short")
        elif subtype not in KNOWN_8021:
            self.problems.append(f"unknown IEEE 802.1 subtype {subtype}")

    def policy(self) -> MedPolicy | None:
        voice = [p for p in self.policies if p.app_type == APP_VOICE]
        chosen = voice or self.policies
        return chosen[0] if chosen else None


def parse_lldpdu(frame: bytes) -> LldpInfo | None:
    """What a whole Ethernet frame's LLDPDU says; None if it is not LLDP or has no readable
    chassis ID, port ID and TTL (module docstring). Never raises."""
    try:
        return _parse(bytes(frame))
    except (ValueError, IndexError, struct.error, TypeError):  # a safety net; _parse checks lengths
        return None


def _parse(frame: bytes) -> LldpInfo | None:
    found = _payload(frame)
    if found is None:
        return None
    body, vlan = found
    problems: list[str] = []
    tlvs = _split_tlvs(body, problems)
    if len(tlvs) < 3 or [kind for kind, _ in tlvs[:3]] != [CHASSIS_ID, PORT_ID, TTL]:
        return None
    (_, chassis), (_, port), (_, ttl_raw) = tlvs[:3]
    if len(chassis) < 2 or len(port) < 2 or len(ttl_raw) < 2:
        return None
    if len(ttl_raw) != 2:
        problems.append(f"TTL TLV of {len(ttl_raw)} bytes (2 expected)")
    reader = _Reader(problems)
    for kind, value in tlvs[3:]:
        reader.tlv(kind, value)
    fields = reader.fields
    return LldpInfo(
        src_mac=_mac_text(frame[6:12]),
        chassis_id=_decode_id(chassis[0], chassis[1:], CHASSIS_MAC, CHASSIS_NETWORK_ADDRESS, CHASSIS_TEXT_SUBTYPES),
        chassis_subtype=chassis[0],
        port_id=_decode_id(port[0], port[1:], PORT_MAC, PORT_NETWORK_ADDRESS, PORT_TEXT_SUBTYPES),
        port_subtype=port[0],
        ttl=struct.unpack_from("!H", ttl_raw)[0],
        inventory=MappingProxyType(dict(reader.inventory)) if reader.inventory else None,
        med_policy=reader.policy(),
        management_addresses=tuple(reader.management),
        problems=tuple(problems),
        vlan=vlan,
        **fields,
    )
