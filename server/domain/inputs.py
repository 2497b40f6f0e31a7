"""What the server takes from outside, checked once at the boundary: JSON text, integers in URLs,
names. Every admin call's body, path and query go through here (`server.api.routing`), and so
does the DEV-11 filter; nothing that passes can make the store or the parser fail.

Decisions (the admin API's input rules; docs/decisions.md, "Admin API conventions"):
- JSON nests at most `MAX_DEPTH` levels (400 `json-too-deep`); `NaN`/`Infinity` are not JSON
  (400 `invalid-json`). Python's own parser would recurse until it fails, and its integers have
  no size limit short of 4300 digits.
- Every integer in a body lies in the 32-bit signed range (422 `integer-out-of-range`): it is
  what the store's integer columns hold on both backends, and no field needs more. Route schemas
  state it for every integer that names no tighter bound (`bound_integers`).
- Every string in a body, path or query is Unicode text without NUL (422 `invalid-text`): a lone
  surrogate (`"\\ud800"`) cannot be encoded for the store, and PostgreSQL refuses NUL.
- Names people give (accounts, administrators, sites, profiles, labels, jobs) have no control
  characters at all (`name_schema`).
- A schema property marked `writeOnly` is a secret the caller proves something with (a label
  code, a claim's serial): no refusal of a body holding one quotes any value of it — neither a
  schema message nor an out-of-range number (`has_secrets`, `load_json(quote=False)`).
- Integers in paths and queries are ASCII digits only (`str.isdigit` also takes `¹` and `٣`);
  path ids are 1..`ID_MAX`, `offset` 0..`OFFSET_MAX`.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from server.domain.errors import DomainError, bad_request, invalid

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ID_MAX = INT_MAX  # ids are the store's integer primary keys
OFFSET_MAX = INT_MAX
_MAX_INT_CHARS = 11  # '-' and 10 digits: longer text is out of range, refused before converting

# ECMA-262 and Python read this pattern alike: no C0 control, DEL or C1 control character.
NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def name_schema(max_length: int, min_length: int = 0) -> dict[str, Any]:
    """The JSON schema of a name a person gives: text of bounded length, no control characters."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": NAME_PATTERN}
    if min_length:
        schema["minLength"] = min_length
    return schema


# --- JSON ------------------------------------------------------------------------------------------


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise _out_of_range(text)
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _out_of_range(text)
    return value


def _out_of_range(text: str) -> DomainError:
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text.lstrip('-'))} digits)"
    return invalid(
        "integer-out-of-range", f"Integers are {INT_MIN} to {INT_MAX}; the body has {shown}.", shown
    )


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise bad_request("invalid-json", f"The number {text[:24]} is too large.", text[:24])
    return value


def _parse_constant(name: str) -> Any:
    raise bad_request("invalid-json", f"{name} is not JSON.", name)


def load_json(data: bytes | str, what: str = "body", *, quote: bool = True) -> Any:
    """Parse JSON text under this module's rules; a refusal is a `DomainError` (400 or 422).
    `quote=False`: a refusal names no number of the text (it may hold a secret, `has_secrets`)."""
    try:
        document = json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except DomainError as err:
        if quote or err.error not in _UNQUOTED or err.value in _CONSTANTS:
            raise
        raise DomainError(err.error, _UNQUOTED[err.error].format(what=what), err.status) from None
    except RecursionError:
        raise _too_deep(what) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("invalid-json", f"The {what} is not valid JSON: {exc}") from None
    check_document(document, what)
    return document


_CONSTANTS = ("NaN", "Infinity", "-Infinity")  # what `_parse_constant` names: never a secret
_UNQUOTED = {
    "integer-out-of-range": f"Integers are {INT_MIN} to {INT_MAX}; the {{what}} has one outside that range.",
    "invalid-json": "The {what} has a number too large for JSON.",
}


def _too_deep(what: str) -> DomainError:
    return bad_request("json-too-deep", f"The {what} nests deeper than {MAX_DEPTH} levels.", MAX_DEPTH)


def check_document(document: Any, what: str = "body") -> None:
    """Depth and text rules over a parsed document, without recursion (it may be deep)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(document, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, str):
            check_text(node, path)
        elif isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise _too_deep(what)
            if isinstance(node, dict):
                for key, value in node.items():
                    check_text(key, (*path, key))
                    stack.append((value, depth + 1, (*path, key)))
            else:
                stack.extend((value, depth + 1, (*path, i)) for i, value in enumerate(node))


def text_problem(value: str) -> str | None:
    """Why `value` is not storable text (a lone surrogate, NUL), or None."""
    if value.isascii():
        return "it holds NUL" if "\x00" in value else None
    if "\x00" in value:
        return "it holds NUL"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which is not Unicode text"
    return None


def storable(value: str) -> str:
    """`value` with lone surrogates and NUL written as escapes, so a refusal can quote it safely."""
    if text_problem(value) is None:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def check_text(value: str, path: tuple[str | int, ...] | str = ()) -> str:
    problem = text_problem(value)
    if problem is None:
        return value
    where = path if isinstance(path, str) else ".".join(_printable(p) for p in path) or "body"
    shown: Any = path if isinstance(path, str) else [_printable(p) for p in path] or None
    raise invalid("invalid-text", f"{where}: {problem}.", shown)


def _printable(part: str | int) -> str:
    return storable(str(part))


# --- schemas ---------------------------------------------------------------------------------------


def has_secrets(schema: dict[str, Any] | None) -> bool:
    """Does `schema` mark a property `writeOnly`: a secret a refusal must never quote?"""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("writeOnly") is True:
                return True
            stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
    return False


def bound_integers(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` whose integers without a bound of their own get the body's range."""
    result = copy.deepcopy(schema)
    stack: list[Any] = [result]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "integer" or isinstance(kind, list) and "integer" in kind:
            node.setdefault("minimum", INT_MIN)
            node.setdefault("maximum", INT_MAX)
        stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
    return result


# --- URLs ------------------------------------------------------------------------------------------


def ascii_int(text: str, lowest: int, highest: int) -> int | None:
    """`text` as an integer when it is ASCII digits only and within [lowest, highest], else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(highest)):
        return None
    value = int(text)
    return value if lowest <= value <= highest else None
