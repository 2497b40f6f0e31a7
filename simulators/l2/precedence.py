"""What a phone makes of its DHCP lease and the LLDP it heard (research §9, §10): parameters, the
source of each, the provisioning server they name, and notes saying what was not taken and why.

    result = combine(siaddr="10.0.0.5", option_43=raw43, option_242="HTTPSRVR=10.0.0.9", lldp=info)
    result.params["HTTPSRVR"], result.sources["HTTPSRVR"]   # "10.0.0.9", "dhcp-242"
    result.server                                            # NetworkServer(url, source, params)
    voice_vlan(result)                                       # (212, "lldp") or None

Rules, in the order they are applied (one function each):
1. `apply_siaddr`: the DHCPACK's `siaddr`, when non-zero, sets HTTPSRVR and TLSSRVR (source
   `dhcp-siaddr`) [§9] — unless it equals the DHCP server's own identifier (option 54): dnsmasq,
   for one, fills siaddr with its own address in every reply, which names no file server; the
   phone would otherwise never listen to LLDP behind dnsmasq [inf]. Dropping it is a note.
2. `apply_option_43`: option 43, only when its first code is 1 = 6889, sets its parameters
   (`dhcp-43`) [§9]; what `decode_option43` found odd is a note.
3. `apply_option_242`: option 242 (SSON) is processed after the DHCP fields and standard options
   and supersedes them (`dhcp-242`) [§9] — except L2Q, L2QVLAN and PHY2VLAN when LLDP set them
   [§9]. Parsed by `simulators.sson.parse_sson` (stray spaces and quotes tolerated, a note each).
   A server named by 43 or 242 replaces both of siaddr's (else siaddr's TLSSRVR would win over a
   HTTPSRVR from 242, TLS being preferred) [inf]; between 43 and 242 each parameter stands alone.
4. `apply_lldp` [§10]:
   - the Avaya file-server TLV sets the server only if neither TLSSRVR nor HTTPSRVR is set — as
     HTTPSRVR only: no scheme travels in the TLV and `simulators.network` makes it `http://` [inf];
     otherwise a note says it was ignored. LLDP is heard after the lease here [inf], so it never
     takes a server DHCP already set;
   - the call-server TLV sets MCIPADD if it is not set;
   - the LLDP-MED network policy sets L2Q (T flag: 1 tagged, 2 untagged), L2QVLAN, L2QAUD
     (priority) and DSCPAUD, unless its application type is not voice or its U flag is set (a
     note); USE_DHCP=0 with a static address does not arise: this phone always uses DHCP [inf];
   - the 802.1Q framing TLV sets the default L2Q for the *next* reboot, so it is a note, not a
     parameter of this boot;
   - the port VLAN ID TLV sets PHY2VLAN;
   - a VLAN name TLV is accepted only if the name contains "voice" (any case): a note, since
     `LldpInfo` carries the name without its VLAN id [inf].
The server is `simulators.network.sson_server` of the parameters (TLSSRVR before HTTPSRVR); its
source is the source of the parameter that named it.

`voice_vlan(result)` is the VLAN the phone moves to: L2QVLAN 1-4094 with L2Q not 2 (off) [§10].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulators.l2.option43 import decode_option43
from simulators.network import NetworkServer, sson_server
from simulators.sson import parse_sson

__all__ = ["Combined", "LLDP_FIRST", "apply_lldp", "apply_option_242", "apply_option_43", "apply_siaddr",
           "combine", "lldp_params", "voice_vlan"]

LLDP_FIRST = ("L2Q", "L2QVLAN", "PHY2VLAN")  # research §9: 242 cannot set these once LLDP did
SERVERS = ("HTTPSRVR", "TLSSRVR")
ZERO = ".".join("0" * 4)
_FRAMING = {1: "1", 2: "2", 3: "0"}  # 802.1Q framing TLV -> L2Q (1 on, 2 off, 3 auto = L2Q 0)


@dataclass
class Combined:
    params: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    server: NetworkServer | None = None

    def set(self, name: str, value: str, source: str) -> None:
        self.params[name] = value
        self.sources[name] = source

    def has_server(self) -> bool:
        return any(self.params.get(name, "").strip() for name in SERVERS)


def apply_siaddr(result: Combined, siaddr: str | None, server_id: str | None) -> None:
    """Rule 1 (module docstring)."""
    if not siaddr or siaddr == ZERO:
        return
    if siaddr == server_id:
        result.notes.append(("siaddr-ignored", {"siaddr": siaddr,
                                                "reason": "equals the DHCP server identifier (option 54)"}))
        return
    for name in SERVERS:
        result.set(name, siaddr, "dhcp-siaddr")


def _replace_siaddr(result: Combined, params: Mapping[str, str]) -> None:
    if any(params.get(name, "").strip() for name in SERVERS):
        for name in SERVERS:
            if result.sources.get(name) == "dhcp-siaddr":
                del result.params[name], result.sources[name]


def apply_option_43(result: Combined, raw: bytes) -> None:
    """Rule 2 (module docstring)."""
    decoded = decode_option43(raw)
    if decoded.problems:
        result.notes.append(("option-43-problems", {"avaya": decoded.avaya, "problems": list(decoded.problems)}))
    _replace_siaddr(result, decoded.params)
    for name, value in decoded.params.items():
        result.set(name, value, "dhcp-43")


def apply_option_242(result: Combined, text: str, lldp_set: Mapping[str, str] | None = None) -> None:
    """Rule 3 (module docstring); `lldp_set` are the parameters LLDP sets."""
    parsed = parse_sson(text)
    if parsed.problems:
        result.notes.append(("option-242-problems", {"problems": [f"{p.kind}: {p.detail}" for p in parsed.problems]}))
    taken = {name: value for name, value in parsed.params.items()
             if not (name in LLDP_FIRST and lldp_set and name in lldp_set)}
    for name in parsed.params:
        if name not in taken:
            result.notes.append(("sson-ignored", {"parameter": name, "value": parsed.params[name],
                                                  "reason": "set by LLDP (research §9)"}))
    _replace_siaddr(result, taken)
    for name, value in taken.items():
        result.set(name, value, "dhcp-242")


def lldp_params(lldp: Any) -> tuple[dict[str, str], list[tuple[str, dict[str, Any]]]]:
    """The parameters an `LldpInfo` sets (rule 4 but the file server), and notes."""
    out: dict[str, str] = {}
    notes: list[tuple[str, dict[str, Any]]] = []
    calls = tuple(getattr(lldp, "call_servers", ()) or ())
    if calls:
        out["MCIPADD"] = ",".join(calls)
    med = getattr(lldp, "med_policy", None)
    if med is not None:
        if med.app_type != 1 or med.unknown:
            notes.append(("lldp-med-policy-ignored", {"app_type": med.app_type, "unknown": med.unknown,
                                                      "reason": "not voice" if med.app_type != 1 else "U flag set"}))
        else:
            out["L2Q"] = "1" if med.tagged else "2"
            out["L2QVLAN"] = str(med.vlan)
            out["L2QAUD"] = str(med.priority)
            out["DSCPAUD"] = str(med.dscp)
    framing = getattr(lldp, "dot1q_framing", None)
    if framing is not None:
        notes.append(("lldp-dot1q-framing", {"framing": framing, "l2q_next_boot": _FRAMING.get(framing)}))
    port_vlan = getattr(lldp, "port_vlan", None)
    if port_vlan:
        out["PHY2VLAN"] = str(port_vlan)
    name = getattr(lldp, "vlan_name", None)
    if name:
        notes.append(("lldp-vlan-name", {"name": name, "accepted": "voice" in name.lower()}))
    return out, notes


def apply_lldp(result: Combined, lldp: Any, params: Mapping[str, str] | None = None,
               notes: list[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Rule 4 (module docstring); `params`/`notes` are `lldp_params(lldp)` when already made."""
    if params is None or notes is None:
        params, notes = lldp_params(lldp)
    result.notes.extend(notes)
    for name, value in params.items():
        if name == "MCIPADD" and result.params.get(name, "").strip():
            result.notes.append(("lldp-call-server-ignored", {"call_servers": value, "reason": "MCIPADD already set"}))
            continue
        result.set(name, value, "lldp")
    files = ",".join(tuple(getattr(lldp, "file_servers", ()) or ()))
    if not files:
        return
    if result.has_server():
        result.notes.append(("lldp-file-server-ignored", {"file_servers": files,
                                                          "reason": "TLSSRVR or HTTPSRVR already set"}))
    else:
        result.set("HTTPSRVR", files, "lldp")


def _choose_server(result: Combined) -> None:
    url = sson_server(result.params)
    if url is None:
        return
    named_by = "TLSSRVR" if result.params.get("TLSSRVR", "").split(",")[0].strip() else "HTTPSRVR"
    result.server = NetworkServer(url, result.sources.get(named_by, "none"), dict(result.params))


def combine(*, siaddr: str | None = None, option_43: bytes | None = None, option_242: str | None = None,
            lldp: Any = None, server_id: str | None = None) -> Combined:
    """The rules of the module docstring; `lldp` is a `simulators.l2.lldp.LldpInfo` or None."""
    result = Combined()
    apply_siaddr(result, siaddr, server_id)
    if option_43 is not None:
        apply_option_43(result, option_43)
    lldp_set, lldp_notes = lldp_params(lldp) if lldp is not None else ({}, [])
    if option_242 is not None:
        apply_option_242(result, option_242, lldp_set)
    if lldp is not None:
        apply_lldp(result, lldp, lldp_set, lldp_notes)
    _choose_server(result)
    return result


def voice_vlan(result: Combined) -> tuple[int, str] | None:
    """(VLAN id, source) the phone moves to, or None (module docstring)."""
    raw = result.params.get("L2QVLAN", "").strip()
    if not raw.isdigit() or not 0 < int(raw) < 4095:
        return None
    if result.params.get("L2Q", "0").strip() == "2":
        return None
    return int(raw), result.sources.get("L2QVLAN", "none")
