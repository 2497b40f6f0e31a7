"""The phone's side of a settings script: its `$NAME` variables and the macros expanded in values.

Research §4 lists what a phone tests with `IF $NAME`; §5 which parameters expand macros, and in
which form; §6 why GROUP cannot be set from a file. The decisions (D-n) are in
`simulators/script.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "GET_MACROS",
    "READ_ONLY",
    "VALUE_MACROS",
    "Variables",
    "bare_mac",
    "expand",
    "macro_forms",
]

# D-12: what the phone reports about itself. A file cannot change these: GROUP by §6, the rest
# because they describe hardware, identity or the running image.
READ_ONLY = frozenset(
    {
        "GROUP",
        "MODEL",
        "MODEL4",
        "MODEL6",
        "GEN",
        "MACADDR",
        "MACADDR_UPPER",
        "SERIALNO",
        "SERIALNO_UPPER",
        "HWVERS",
        "PHONECC",
        "SHA2CAPABLE",
        "SIG_IN_USE",
        "APPNAME_IN_USE",
        "BOOTNAME",
        "IPADD",
        "SUBNET",
        "VPNACTIVE",
    }
)

# §5, D-19: macro name -> the form substituted, per parameter. Longest names first, so that
# `$MACADDR_UPPER` is not read as `$MACADDR` + "_UPPER".
_IDENTITY = {"MACADDR_UPPER": "mac-upper", "MACADDR": "mac-lower", "SERIALNO_UPPER": "serial", "SERIALNO": "serial"}
_PATHS = {"MACADDR": "mac-upper", "MODEL4": "model4", "SERIALNO": "serial"}
VALUE_MACROS: dict[str, dict[str, str]] = {
    "MYCERTCN": _IDENTITY,  # tpl S2:L4878-4889 (MAC in lower case on J100)
    "SCEPPASSWORD": _IDENTITY,  # S2:L5014-5016
    "PKCS12URL": _IDENTITY,  # S2:L5111-5137
    "NVVPNUSER": _IDENTITY,  # S2:L9389-9401
    "HTTPDIR": _PATHS,  # S2:L8616-8620: upper case, MAC without colons
    "TLSDIR": _PATHS,  # S2:L8656-8657
    "FILE_SERVER_URL": _PATHS,  # S2:L8721-8725 (Vantage)
}
# §1: GET expands only $MACADDR, to the 12 lower-case hex digits a real J129 requested (S43).
GET_MACROS: dict[str, str] = {"MACADDR": "mac-lower"}

_MAC_SEPARATORS = re.compile(r"[\s:.\-]")
_HEX12 = re.compile(r"[0-9A-Fa-f]{12}")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bare_mac(mac: str) -> str:
    """A MAC as 12 upper-case hex digits (PROTOCOL §1), from any of `:`/`-`/`.` forms and any case.

    Anything that is not a MAC comes back as written: the phone's value is used, never refused.
    """
    digits = _MAC_SEPARATORS.sub("", mac)
    return digits.upper() if _HEX12.fullmatch(digits) else mac


class Variables(Mapping[str, str]):
    """A phone's variables by name without `$`, looked up case-insensitively; read-only.

    Built from any mapping (`Variables({"MODEL4": "J179", "SIG": 2})`) or with `for_phone`.
    Values become strings; a None value means "not defined", so an IF on it is ignored (§3).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object] | Iterable[tuple[str, object]] = (), /, **more: object) -> None:
        pairs = list(values.items() if isinstance(values, Mapping) else values) + list(more.items())
        self._values = {str(name).upper(): str(value) for name, value in pairs if value is not None}

    @classmethod
    def for_phone(
        cls,
        model4: str,
        *,
        model: str | None = None,
        mac: str | None = None,
        serial: str | None = None,
        group: int | str = 0,
        firmware: str | None = None,
        hwvers: str | int | None = None,
        **extra: object,
    ) -> Variables:
        """The variables a phone defines (§4): MODEL4, MODEL, MACADDR (12 upper-case hex) and
        MACADDR_UPPER, SERIALNO, GROUP (default 0, §6), APPNAME_IN_USE (= firmware), HWVERS, plus
        any `extra` (SIG, SIG_IN_USE, BOOTNAME, APPNAME, PHONECC, SHA2CAPABLE, VPNACTIVE, IPADD, …).
        """
        values: dict[str, object] = {
            "MODEL4": model4,
            "MODEL": model,
            "MACADDR": None if mac is None else bare_mac(mac),
            "MACADDR_UPPER": None if mac is None else bare_mac(mac).upper(),
            "SERIALNO": serial,
            "GROUP": group,
            "APPNAME_IN_USE": firmware,
            "HWVERS": hwvers,
        }
        return cls(values, **extra)

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._values[name.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Variables({self._values!r})"


def macro_forms(variables: Mapping[str, str]) -> dict[str, str]:
    """Every value a macro can be replaced with, by form name (§5); forms the phone lacks are absent."""
    forms: dict[str, str] = {}
    mac = variables.get("MACADDR") or variables.get("MACADDR_UPPER")
    if mac:
        forms["mac-lower"] = bare_mac(mac).lower()
        forms["mac-upper"] = bare_mac(mac).upper()
    serial = variables.get("SERIALNO") or variables.get("SERIALNO_UPPER")
    if serial:
        forms["serial"] = serial.upper()
    if variables.get("MODEL4"):
        forms["model4"] = variables["MODEL4"].upper()
    return forms


def _ascii_upper(text: str) -> str:
    # Only ASCII may match a macro name: str.upper() can change the length of other letters.
    return text.upper() if text.isascii() else ""


def expand(text: str, macros: Mapping[str, str], forms: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """Replace the `$NAME` macros of `macros` in `text` (names matched case-insensitively, longest first).

    Returns the text and what was left as written: ("missing-macro-value" | "unexpanded-macro", "$NAME").
    `$MODEL4dir` becomes `J169dir` (S2:L8620): a macro ends where its known name ends.
    """
    if "$" not in text:
        return text, []
    names = sorted(macros, key=len, reverse=True)
    out: list[str] = []
    left: list[tuple[str, str]] = []
    i = 0
    while True:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            return "".join(out), left
        out.append(text[i:dollar])
        i = dollar + 1
        name = next((n for n in names if _ascii_upper(text[i : i + len(n)]) == n), None)
        if name is not None and macros[name] in forms:
            out.append(forms[macros[name]])
            i += len(name)
            continue
        out.append("$")
        if name is not None:
            left.append(("missing-macro-value", "$" + name))
        elif word := _WORD.match(text, i):
            left.append(("unexpanded-macro", "$" + word.group()))
