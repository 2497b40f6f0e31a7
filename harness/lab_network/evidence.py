"""Evidence from a lab network capture: the frames of a pcap file that say something about
enrollment, as dicts a report keeps (shape as `harness.observers`: `at` ISO 8601 UTC).

    entries = read_evidence(Path("network.pcap"), mac="A4:25:1B:00:00:01")
    summarise(entries)      # one line each: 'DHCPACK 10.213.0.50 to a4:25:1b:00:00:01, option 242 = "…" (10:31:02.123)'

Each entry: `{"at", "proto": "dhcp"|"lldp"|"http"|"tls"|"other", "src_mac", "dst_mac", "src",
"dst", "vlan", "summary", "detail"}`.

Decisions:
- DHCP (UDP 67/68): message type, xid, ciaddr/yiaddr/siaddr, chaddr and the options that matter
  for an Avaya phone (research §9): 242 as text (byte-exact, with its raw hex), 43 decoded by
  `simulators.l2.option43`, 12 host name, 55 request list, 50, 54, 51, 1, 3, 6, 15, 60.
- LLDP (ethertype 88cc): `simulators.l2.lldp.parse_lldpdu` (research §10); its fields as detail.
- HTTP: the first TCP payload segment of a connection direction that starts with a request
  method or `HTTP/` gives the request line and Host, or the status line; segments that follow
  are not reassembled [inf].
- TLS: a handshake record with a ClientHello gives its SNI (RFC 6066 §3) and version; other
  TLS records are not shown.
- `mac` keeps the frames from or to that MAC, and DHCP whose chaddr is it (a relay or a
  broadcast reply still names the client); any notation (A4-25-1B…, a425.1b00…, colons).
- A report shows an entry as `summary_line`: the summary, then the time of day in UTC (as `at`)
  in brackets; the date is the run's, in its provenance [inf].
- `since` (a UNIX time) drops earlier frames; a frame stamped at `since` itself is kept.
  Frames of no protocol above are left out unless `include_other=True` (proto "other",
  summary the ethertype).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.lab_network.capture import read_pcap
from harness.lab_network.dhcp_responder import ZERO, MalformedDhcp, is_dhcp_frame, mac_text, parse_dhcp_frame

__all__ = ["describe_frame", "read_evidence", "summarise", "summary_line"]

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_evidence(path: Path, *, mac: str | None = None, since: float | None = None,
                  include_other: bool = False) -> list[dict[str, Any]]:
    """The capture's evidence entries, oldest first (module docstring)."""
    wanted = mac_text(mac) if mac else None
    entries = []
    for at, frame in sorted(read_pcap(Path(path)), key=lambda record: record[0]):
        if since is not None and at < since:
            continue
        entry = describe_frame(frame, at)
        if entry is None or (entry["proto"] == "other" and not include_other):
            continue
        if wanted and wanted not in (entry["src_mac"], entry["dst_mac"], entry["detail"].get("chaddr")):
            continue
        entries.append(entry)
    return entries


def summary_line(entry: Mapping[str, Any]) -> str:
    """An entry as a report step: its summary, then the time of day (UTC) in brackets:
    `DHCPACK 10.213.0.50 to a4:25:1b:00:00:01, option 242 = "HTTPSRVR=…" (10:31:02.123)`."""
    at = str(entry.get("at") or "")
    clock = at[11:23] if len(at) >= 23 and at[10:11] == "T" else at
    return f"{entry.get('summary', '')} ({clock})" if clock else str(entry.get("summary", ""))


def summarise(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per entry (`summary_line`)."""
    return [summary_line(entry) for entry in entries]


def describe_frame(frame: bytes, at: float) -> dict[str, Any] | None:
    """One frame as an evidence entry; None for a runt."""
    if len(frame) < 14:
        return None
    dst_mac, src_mac = mac_text(frame[0:6]), mac_text(frame[6:12])
    offset, vlan = 12, None
    ethertype = struct.unpack_from("!H", frame, offset)[0]
    while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 6:
        vlan = struct.unpack_from("!H", frame, offset + 2)[0] & 0x0FFF
        offset += 4
        ethertype = struct.unpack_from("!H", frame, offset)[0]
    entry: dict[str, Any] = {"at": _iso(at), "proto": "other", "src_mac": src_mac, "dst_mac": dst_mac,
                             "src": None, "dst": None, "vlan": vlan, "summary": f"ethertype 0x{ethertype:04x}",
                             "detail": {}}
    payload = frame[offset + 2 :]
    if ethertype == 0x88CC:
        _lldp(frame, entry)
    elif ethertype == 0x0800 and len(payload) >= 20:
        entry["src"] = str(ipaddress.IPv4Address(payload[12:16]))
        entry["dst"] = str(ipaddress.IPv4Address(payload[16:20]))
        if is_dhcp_frame(frame):
            _dhcp(frame, entry)
        elif payload[9] == 6:
            _tcp(payload, entry)
    return entry


def _dhcp(frame: bytes, entry: dict[str, Any]) -> None:
    entry["proto"] = "dhcp"
    try:
        message = parse_dhcp_frame(frame)
    except (MalformedDhcp, ValueError, struct.error) as exc:
        entry["summary"] = f"malformed DHCP from {entry['src_mac']}: {exc}"
        entry["detail"] = {"malformed": str(exc)}
        return
    options = message.options
    detail: dict[str, Any] = {"message_type": message.type_name, "op": message.op, "xid": message.xid,
                              "chaddr": message.chaddr, "ciaddr": message.ciaddr, "yiaddr": message.yiaddr,
                              "siaddr": message.siaddr, "options": sorted(options)}
    for code, name in ((50, "requested_ip"), (54, "server_id"), (1, "subnet_mask"), (3, "router")):
        value = message.option_ip(code)
        if value:
            detail[name] = value
    if 51 in options and len(options[51]) == 4:
        detail["lease_time"] = struct.unpack("!I", options[51])[0]
    if 6 in options:
        raw = options[6]
        detail["dns"] = [str(ipaddress.IPv4Address(raw[i : i + 4])) for i in range(0, len(raw) - 3, 4)]
    for code, name in ((12, "host_name"), (15, "domain"), (60, "vendor_class")):
        if code in options:
            detail[name] = options[code].decode("utf-8", "replace")
    if 55 in options:
        detail["parameter_request_list"] = list(options[55])
    if 242 in options:
        detail["option_242"] = options[242].decode("utf-8", "replace")
        detail["option_242_hex"] = options[242].hex()
    if 43 in options:
        from simulators.l2.option43 import decode_option43

        decoded = decode_option43(options[43])
        detail["option_43"] = {"params": dict(decoded.params), "avaya": decoded.avaya,
                               "problems": list(decoded.problems), "hex": options[43].hex()}
    entry["detail"] = detail
    kind = message.type_name
    if message.op == 2:
        address = message.yiaddr if message.yiaddr != ZERO else ""
        text = f"{kind} {address + ' ' if address else ''}to {message.chaddr}"
    else:
        text = f"{kind} from {message.chaddr}"
        if "requested_ip" in detail:
            text += f" for {detail['requested_ip']}"
        if "host_name" in detail:
            text += f" (host name {detail['host_name']})"
    if "option_242" in detail:
        text += f', option 242 = "{detail["option_242"]}"'
    if "option_43" in detail:
        params = ",".join(f"{k}={v}" for k, v in detail["option_43"]["params"].items())
        text += f', option 43 = "{params}"'
    if 242 in options.get(55, b""):
        text += ", asks for option 242"
    entry["summary"] = text


def _lldp(frame: bytes, entry: dict[str, Any]) -> None:
    entry["proto"] = "lldp"
    try:
        from simulators.l2.lldp import parse_lldpdu
    except ImportError:
        entry["summary"] = f"LLDPDU from {entry['src_mac']} (no LLDP decoder available)"
        return
    info = parse_lldpdu(frame)
    if info is None:
        entry["summary"] = f"unreadable LLDPDU from {entry['src_mac']}"
        entry["detail"] = {"malformed": True}
        return
    med = info.med_policy
    detail: dict[str, Any] = {
        "chassis_id": info.chassis_id, "port_id": info.port_id, "ttl": info.ttl, "system_name": info.system_name,
        "file_servers": list(info.file_servers), "call_servers": list(info.call_servers),
        "dot1q_framing": info.dot1q_framing, "vlan_name": info.vlan_name, "port_vlan": info.port_vlan,
        "inventory": dict(info.inventory or {}),
        "med_policy": None if med is None else {"app_type": med.app_type, "unknown": med.unknown,
                                                "tagged": med.tagged, "vlan": med.vlan,
                                                "priority": med.priority, "dscp": med.dscp},
    }
    entry["detail"] = detail
    text = f"LLDPDU from {entry['src_mac']}: chassis {info.chassis_id}, port {info.port_id}, ttl {info.ttl}"
    if info.system_name:
        text += f", system name {info.system_name}"
    if info.file_servers:
        text += f", file servers {','.join(info.file_servers)}"
    if info.call_servers:
        text += f", call servers {','.join(info.call_servers)}"
    if med is not None:
        text += f", MED policy VLAN {med.vlan} priority {med.priority} DSCP {med.dscp}"
    entry["summary"] = text


def _tcp(packet: bytes, entry: dict[str, Any]) -> None:
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0] or len(packet)
    tcp = packet[ihl:total]
    if len(tcp) < 20:
        return
    sport, dport = struct.unpack_from("!HH", tcp)
    data = tcp[(tcp[12] >> 4) * 4 :]
    entry["src"] = f"{entry['src']}:{sport}"
    entry["dst"] = f"{entry['dst']}:{dport}"
    if data.startswith(HTTP_METHODS) or data.startswith(b"HTTP/"):
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        entry["proto"] = "http"
        if data.startswith(b"HTTP/"):
            entry["detail"] = {"status_line": lines[0], "status": _status(lines[0])}
            entry["summary"] = f"HTTP {lines[0]} from {entry['src']}"
            return
        host = next((line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("host:")), None)
        entry["detail"] = {"request_line": lines[0], "method": lines[0].split(" ", 1)[0], "host": host}
        entry["summary"] = f"HTTP {lines[0]} (Host {host}) from {entry['src']}"
        return
    hello = _client_hello(data)
    if hello is not None:
        entry["proto"] = "tls"
        entry["detail"] = hello
        entry["summary"] = f"TLS ClientHello from {entry['src']} to {entry['dst']}, SNI {hello['sni'] or 'none'}"


def _status(line: str) -> int | None:
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _client_hello(data: bytes) -> dict[str, Any] | None:
    """SNI and versions of a TLS ClientHello at the start of `data`; None when it is not one."""
    if len(data) < 9 or data[0] != 0x16 or data[5] != 0x01:
        return None
    try:
        body = data[9 : 9 + int.from_bytes(data[6:9], "big")]
        version = struct.unpack_from("!H", body, 0)[0]
        i = 2 + 32
        i += 1 + body[i]  # session id
        i += 2 + struct.unpack_from("!H", body, i)[0]  # cipher suites
        i += 1 + body[i]  # compression methods
        sni = None
        if i + 2 <= len(body):
            end = i + 2 + struct.unpack_from("!H", body, i)[0]
            i += 2
            while i + 4 <= min(end, len(body)):
                kind, length = struct.unpack_from("!HH", body, i)
                value = body[i + 4 : i + 4 + length]
                if kind == 0 and len(value) >= 5 and value[2] == 0:
                    name_len = struct.unpack_from("!H", value, 3)[0]
                    sni = value[5 : 5 + name_len].decode("ascii", "replace")
                i += 4 + length
        return {"sni": sni, "client_version": f"0x{version:04x}"}
    except (IndexError, struct.error):
        return None
