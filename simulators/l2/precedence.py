"""What a phone makes of its DHCP lease and the LLDP it heard (research §9, §10): parameters, the
source of each, and the provisioning server they name.

    result = combine(siaddr="10.0.0.5", option_43=raw43, option_242="HTTPSRVR=10.0.0.9", lldp=info)
    result.params["HTTPSRVR"], result.sources["HTTPSRVR"]   # "10.0.0.9", "dhcp-242"
    result.server                                            # NetworkServer(url, source, params)

Rules, in the order they are applied:
1. DHCPACK fields: `siaddr`, when non-zero, sets HTTPSRVR and TLSSRVR (source `dhcp-siaddr`) [§9]
   — unless it is the DHCP server's own identifier (option 54): dnsmasq, for one, fills siaddr
   with its own address in every reply, which names no file server [inf].
2. Option 43, only when its first code is 1 = 6889, sets its parameters (`dhcp-43`) [§9].
3. Option 242 (SSON) is processed after the DHCP fields and standard options and supersedes
   them (`dhcp-242`) [§9] — except L2Q, L2QVLAN and PHY2VLAN once LLDP set them [§9].
4. LLDP: the Avaya file-server TLV sets the server only if neither TLSSRVR nor HTTPSRVR is set
   (as HTTPSRVR: no scheme travels in the TLV, the decision of `simulators.network` [inf]); the
   call-server TLV sets MCIPADD if unset; the 802.1Q framing TLV sets L2Q (1 on, 2 off, 3 auto);
   the LLDP-MED network policy sets L2Q/L2QVLAN/DSCPAUD unless its application is not voice or its
   U flag is set; a VLAN name TLV counts only if the name contains "voice" [§10]. LLDP is heard
   after the lease [inf], so it never takes a server DHCP already set.
The server a source names is `simulators.network.sson_server` of the parameters (TLSSRVR before
HTTPSRVR); its source is the source of the parameter that named it.

`voice_vlan(result)` is the VLAN the phone should move to: L2QVLAN > 0 with L2Q not 2 (off) [§10].
Option 242's text is parsed by `simulators.sson.parse_sson` (stray spaces and quotes tolerated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.l2.option43 import decode_option43
from simulators.network import NetworkServer, sson_server
from simulators.sson import parse_sson

__all__ = ["Combined", "combine", "voice_vlan"]

_LLDP_FIRST = ("L2Q", "L2QVLAN", "PHY2VLAN")


@dataclass
class Combined:
    params: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    server: NetworkServer | None = None


def _set(result: Combined, name: str, value: str, source: str) -> None:
    result.params[name] = value
    result.sources[name] = source


def combine(*, siaddr: str | None = None, option_43: bytes | None = None, option_242: str | None = None,
            lldp: Any = None, server_id: str | None = None) -> Combined:
    """The rules of the module docstring; `lldp` is a `simulators.l2.lldp.LldpInfo` or None."""
    result = Combined()
    if siaddr and siaddr != "0.0.0.0" and siaddr != server_id:  # noqa: S104 - an address, not a bind
        _set(result, "HTTPSRVR", siaddr, "dhcp-siaddr")
        _set(result, "TLSSRVR", siaddr, "dhcp-siaddr")
    if option_43 is not None:
        decoded = decode_option43(option_43)
        for name, value in decoded.params.items():
            _set(result, name, value, "dhcp-43")
        if decoded.problems:
            result.notes.append(("option-43-problems", {"problems": list(decoded.problems)}))
    lldp_params = _lldp_params(lldp) if lldp is not None else {}
    if option_242:
        parsed = parse_sson(option_242)
        for name, value in parsed.params.items():
            if name in _LLDP_FIRST and name in lldp_params:
                result.notes.append(("sson-ignored", {"parameter": name, "reason": "set by LLDP"}))
                continue
            other = "HTTPSRVR" if name == "TLSSRVR" else "TLSSRVR"
            if name in ("HTTPSRVR", "TLSSRVR") and result.sources.get(other) == "dhcp-siaddr":
                result.params.pop(other, None)  # a server 242 names replaces siaddr's whole
                result.sources.pop(other, None)
            _set(result, name, value, "dhcp-242")
    files = lldp_params.pop("_FILES", "")
    for name, value in lldp_params.items():
        if name == "MCIPADD" and name in result.params:
            continue
        _set(result, name, value, "lldp")
    if files:
        if result.params.get("TLSSRVR", "").strip() or result.params.get("HTTPSRVR", "").strip():
            result.notes.append(("lldp-file-server-ignored", {"file_server": files,
                                                              "reason": "TLSSRVR or HTTPSRVR already set"}))
        else:
            _set(result, "HTTPSRVR", files, "lldp")
    url = sson_server(result.params)
    if url is not None:
        named_by = "TLSSRVR" if result.params.get("TLSSRVR", "").strip() else "HTTPSRVR"
        result.server = NetworkServer(url, result.sources.get(named_by, "dhcp-242"), dict(result.params))
    return result


def _lldp_params(lldp: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    files = tuple(getattr(lldp, "file_servers", ()) or ())
    if files:
        out["_FILES"] = ",".join(files)
    calls = tuple(getattr(lldp, "call_servers", ()) or ())
    if calls:
        out["MCIPADD"] = ",".join(calls)
    framing = getattr(lldp, "dot1q_framing", None)
    if framing in (1, 2, 3):
        out["L2Q"] = {1: "1", 2: "2", 3: "0"}[framing]
    med = getattr(lldp, "med_policy", None)
    if med is not None and getattr(med, "app_type", 1) == 1 and not getattr(med, "unknown", False):
        out["L2Q"] = "1" if med.tagged else "2"
        out["L2QVLAN"] = str(med.vlan)
        out["DSCPAUD"] = str(med.dscp)
        out["L2QAUD"] = str(med.priority)
    port_vlan = getattr(lldp, "port_vlan", None)
    if port_vlan:
        out["PHY2VLAN"] = str(port_vlan)
    return out


def voice_vlan(result: Combined) -> tuple[int, str] | None:
    """(VLAN id, source) the phone moves to, or None (module docstring)."""
    raw = result.params.get("L2QVLAN", "").strip()
    if not raw.isdigit() or not 0 < int(raw) < 4095:
        return None
    if result.params.get("L2Q", "0").strip() == "2":
        return None
    return int(raw), result.sources.get("L2QVLAN", "dhcp-242")
