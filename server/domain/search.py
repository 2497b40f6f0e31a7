"""Search filters for devices (DEV-11) and log entries (LOG-1): parsed and checked into a small AST.

A filter is JSON, e.g. `{"all": [{"field": "mac", "op": "starts_with", "value": "A425"},
{"any": [{"field": "model", "op": "eq", "value": "J179"}, ...]}]}`. The store translates the
AST into SQL; this module only decides what a well-formed filter is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeAlias

from server.domain import inputs
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac

Op = Literal["eq", "ne", "starts_with", "ends_with", "contains"]
Mode = Literal["all", "any"]
Value: TypeAlias = str | bool | int | None

OPS: tuple[Op, ...] = ("eq", "ne", "starts_with", "ends_with", "contains")
MAX_DEPTH = 4
MAX_CONDITIONS = 50
MAX_QUERY_CHARS = 16_384
MAX_VALUE_CHARS = 256

# Canonical names plus the guide's labels ("Advanced Search"), compared after `_op_key`.
_OP_ALIASES: dict[str, Op] = {
    "eq": "eq",
    "equals": "eq",
    "ne": "ne",
    "not equals": "ne",
    "starts with": "starts_with",
    "ends with": "ends_with",
    "contains": "contains",
}
_EQUALITY_OPS: frozenset[Op] = frozenset({"eq", "ne"})
_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})
_HEX_SEPARATORS = str.maketrans("", "", ":-. ")
_HEX = re.compile(r"[0-9A-F]+")
_EXAMPLE = '{"all": [{"field": "mac", "op": "starts_with", "value": "A4251B"}]}'


class FieldKind(Enum):
    """How a searchable field's values are typed and normalised."""

    TEXT = "text"
    MAC = "mac"  # 12 hex digits; separators and case ignored
    HEX = "hex"  # hex digits such as a thumbprint; ':' separators and case ignored
    BOOLEAN = "boolean"  # eq/ne only
    INTEGER = "integer"  # eq/ne only


DEVICE_FIELDS: Mapping[str, FieldKind] = {
    "mac": FieldKind.MAC,
    "serial": FieldKind.TEXT,
    "model": FieldKind.TEXT,
    "product_id": FieldKind.TEXT,
    "hardware": FieldKind.TEXT,
    "thumbprint": FieldKind.HEX,
    "reseller_order_id": FieldKind.TEXT,
    "order_id": FieldKind.TEXT,
    "shipment_carrier": FieldKind.TEXT,
    "tracking_id": FieldKind.TEXT,
    "aco_product_id": FieldKind.TEXT,
    "firmware": FieldKind.TEXT,
    "owner_id": FieldKind.TEXT,
    "site_id": FieldKind.INTEGER,
    "approved": FieldKind.BOOLEAN,
    "activated": FieldKind.BOOLEAN,
    "associated": FieldKind.BOOLEAN,
    "enrolled": FieldKind.BOOLEAN,  # has enrolled (ENR-1) at least once: `enrolled_at` is set (issue 16)
    "label": FieldKind.TEXT,
}

LOG_FIELDS: Mapping[str, FieldKind] = {
    "account_id": FieldKind.TEXT,
    "login": FieldKind.TEXT,
    "process": FieldKind.TEXT,
    "client_host": FieldKind.TEXT,
    "action": FieldKind.TEXT,
    "status": FieldKind.TEXT,
    "message": FieldKind.TEXT,
}


@dataclass(frozen=True)
class Condition:
    """One test: `field` `op` `value`. A `None` value with eq/ne means "has no value"."""

    field: str
    op: Op
    value: Value


@dataclass(frozen=True)
class Group:
    """Conditions (or nested groups) joined by AND (`all`) or OR (`any`)."""

    mode: Mode
    items: tuple[Condition | Group, ...]


def _invalid(detail: str, value: Any = None) -> DomainError:
    return DomainError("invalid-filter", detail, 400, value)


def parse_filter(q: str | Mapping[str, Any] | None, fields: Mapping[str, FieldKind]) -> Group | None:
    """DEV-11, LOG-1: parse a JSON filter into a `Group`, checking fields, ops and values.

    No filter (None, blank, or an empty top-level group) gives None: everything matches.
    """
    document = _load(q)
    if document is None:
        return None
    budget = [MAX_CONDITIONS]
    group = _group(document, fields, depth=1, budget=budget)
    return group if group.items else None


def _load(q: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if q is None:
        return None
    if isinstance(q, str):
        if not q.strip():
            return None
        if len(q) > MAX_QUERY_CHARS:
            raise _invalid(f"The filter is longer than {MAX_QUERY_CHARS} characters.", len(q))
        try:
            document = inputs.load_json(q, "filter")
        except DomainError as exc:
            raise _invalid(f"The filter must be JSON, for example {_EXAMPLE}: {exc.detail}", q[:200]) from exc
    else:
        document = q
    if not isinstance(document, Mapping):
        raise _invalid(f'The filter must be a JSON object {{"all"|"any": [...]}}, for example {_EXAMPLE}.', document)
    return document


def _group(node: Any, fields: Mapping[str, FieldKind], *, depth: int, budget: list[int]) -> Group:
    """DEV-11: a group is exactly one of `all` (AND) or `any` (OR) with a list of items."""
    if depth > MAX_DEPTH:
        raise _invalid(f"Filter groups nest at most {MAX_DEPTH} deep.")
    keys = list(node)
    if len(keys) != 1 or keys[0] not in ("all", "any"):
        raise _invalid('A filter group has exactly one key, "all" (AND) or "any" (OR).', keys)
    mode: Mode = "all" if keys[0] == "all" else "any"
    items = node[mode]
    if not isinstance(items, list):
        raise _invalid(f'"{mode}" takes a list of conditions.', items)
    if not items and depth > 1:
        raise _invalid(f'A nested "{mode}" group needs at least one condition.')
    parsed: list[Condition | Group] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise _invalid('Each filter item is a condition {"field", "op", "value"} or a group.', item)
        if {"field", "op", "value"} & set(item):
            budget[0] -= 1
            if budget[0] < 0:
                raise _invalid(f"A filter holds at most {MAX_CONDITIONS} conditions.")
            parsed.append(parse_condition(item, fields))
        else:
            parsed.append(_group(item, fields, depth=depth + 1, budget=budget))
    return Group(mode, tuple(parsed))


def parse_condition(item: Mapping[str, Any], fields: Mapping[str, FieldKind]) -> Condition:
    """DEV-11: a condition names an allowed field, a known op and a value of the field's type."""
    unknown = sorted(set(item) - {"field", "op", "value"})
    if unknown:
        raise _invalid(f"A condition has only field, op and value; found also {', '.join(unknown)}.", unknown)
    field = item.get("field")
    if not isinstance(field, str) or field not in fields:
        raise _invalid(f"{field!r} is not a searchable field; the fields are {', '.join(fields)}.", field)
    op = normalise_op(item.get("op"))
    if "value" not in item:
        raise _invalid(f"The condition on {field!r} has no value.", field)
    return Condition(field, op, normalise_value(field, fields[field], op, item["value"]))


def normalise_op(op: Any) -> Op:
    """DEV-11: ops are eq, ne, starts_with, ends_with, contains, or the guide's labels for them."""
    canonical = _OP_ALIASES.get(_op_key(op)) if isinstance(op, str) else None
    if canonical is None:
        raise _invalid(
            f"{op!r} is not a filter op; use one of {', '.join(OPS)} "
            "(or Equals, Not Equals, Starts With, Ends With, Contains).",
            op,
        )
    return canonical


def _op_key(op: str) -> str:
    return " ".join(op.replace("_", " ").replace("-", " ").lower().split())


def normalise_value(field: str, kind: FieldKind, op: Op, value: Any) -> Value:
    """DEV-11: check a condition's value against its field's kind and put it in stored form."""
    if value is None:
        if op not in _EQUALITY_OPS:
            raise _invalid(f"{op} on {field!r} needs a value; null works with eq and ne only.", field)
        return None
    if kind is FieldKind.BOOLEAN:
        return _boolean_value(field, op, value)
    if kind is FieldKind.INTEGER:
        return _integer_value(field, op, value)
    if not isinstance(value, str):
        raise _invalid(f"The value for {field!r} must be text.", value)
    if len(value) > MAX_VALUE_CHARS:
        raise _invalid(f"The value for {field!r} is longer than {MAX_VALUE_CHARS} characters.", value[:MAX_VALUE_CHARS])
    if kind is FieldKind.MAC:
        return _mac_value(field, op, value)
    if kind is FieldKind.HEX:
        return _hex_value(field, op, value)
    if op not in _EQUALITY_OPS and not value:
        raise _invalid(f"{op} on {field!r} needs a non-empty value.", value)
    return value


def _boolean_value(field: str, op: Op, value: Any) -> bool:
    """DEV-11: boolean fields take eq/ne with true/false (or the portal's Yes/No)."""
    if op not in _EQUALITY_OPS:
        raise _invalid(f"{field!r} is true or false; it takes eq or ne, not {op}.", op)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _invalid(f"The value for {field!r} must be true or false.", value)


def _integer_value(field: str, op: Op, value: Any) -> int:
    """DEV-11: number fields (ids) take eq/ne with a whole number (or its digits as text)."""
    if op not in _EQUALITY_OPS:
        raise _invalid(f"{field!r} is a number; it takes eq or ne, not {op}.", op)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= inputs.ID_MAX:
        return value
    number = inputs.ascii_int(value.strip(), 0, inputs.ID_MAX) if isinstance(value, str) else None
    if number is not None:
        return number
    raise _invalid(f"The value for {field!r} must be a whole number 0..{inputs.ID_MAX}.", value)


def _mac_value(field: str, op: Op, value: str) -> str:
    """DEV-11 with PROTOCOL §1: eq/ne compare a whole canonical MAC; other ops a hex fragment."""
    if op in _EQUALITY_OPS:
        try:
            return normalize_mac(value.strip())
        except DomainError as exc:
            raise _invalid(
                f"{op} on {field!r} needs a whole MAC address (12 hex digits); "
                "use starts_with, ends_with or contains for a part of one.",
                value,
            ) from exc
    digits = value.translate(_HEX_SEPARATORS).upper()
    if not _HEX.fullmatch(digits) or len(digits) > 12:
        raise _invalid(f"{op} on {field!r} needs 1 to 12 hex digits.", value)
    return digits


def _hex_value(field: str, op: Op, value: str) -> str:
    """DEV-11: hex fields (thumbprint) ignore ':' separators and case."""
    digits = value.translate(_HEX_SEPARATORS).upper()
    if not _HEX.fullmatch(digits):
        raise _invalid(f"The value for {field!r} must be hex digits.", value)
    return digits


def filter_to_json(node: Group | Condition) -> dict[str, Any]:
    """The canonical JSON form of a parsed filter (what `parse_filter` reads back unchanged)."""
    if isinstance(node, Condition):
        return {"field": node.field, "op": node.op, "value": node.value}
    return {node.mode: [filter_to_json(item) for item in node.items]}
