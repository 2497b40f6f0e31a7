"""DEV-11 / LOG-1 filters (parsed by `server.domain.search`) translated into SQL conditions.

The database does the filtering, on indexed columns; nothing is filtered in Python.
Text operators are case-sensitive on every backend (as equality is) and a prefix test stays
sargable: SQLite's LIKE ignores case and cannot use a binary index, so there the operators
compile to GLOB; PostgreSQL gets LIKE, which a C-collation (or pattern_ops) btree serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from server.domain.search import Condition, Group

# A field maps to a column, or to a function building the condition itself (e.g. labels).
Target = ColumnElement[Any] | Callable[[str, Any], ColumnElement[bool]]


def to_sql(node: Group | Condition | None, fields: Mapping[str, Target]) -> ColumnElement[bool]:
    if node is None:
        return true()
    if isinstance(node, Group):
        parts = [to_sql(item, fields) for item in node.items]
        if not parts:
            return true() if node.mode == "all" else false()
        return and_(*parts) if node.mode == "all" else or_(*parts)
    target = fields[node.field]
    if callable(target) and not isinstance(target, ColumnElement):
        return target(node.op, node.value)
    return condition(target, node.op, node.value)


def condition(col: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    if op == "eq":
        return col.is_(None) if value is None else col == value
    if op == "ne":
        return col.is_not(None) if value is None else or_(col != value, col.is_(None))
    if op in ("starts_with", "ends_with", "contains"):
        return text_match(col, op, str(value))
    raise ValueError(f"unknown operator {op}")


def _like_escape(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


_SHAPES = {"starts_with": ("", "{}"), "ends_with": ("{}", ""), "contains": ("{}", "{}")}


class text_match(FunctionElement[Any]):  # noqa: N801 - a SQL construct, named like SQLAlchemy's own
    """`col` starts with / ends with / contains `text`, case-sensitively, compiled per dialect.

    Untyped on purpose: a Boolean type makes SQLite render `… GLOB 'x*' = 1`, which no index serves.
    """

    inherit_cache = True
    name = "text_match"

    def __init__(self, col: Any, op: str, text: str) -> None:
        before, after = _SHAPES[op]
        like = before.format("%") + _like_escape(text) + after.format("%")
        glob = before.format("*") + _glob_escape(text) + after.format("*")
        super().__init__(col, bindparam(None, like, unique=True), bindparam(None, glob, unique=True))


@compiles(text_match)
def _compile_like(element: text_match, compiler: SQLCompiler, **kw: Any) -> str:
    col, like, _glob = element.clauses
    return f"{compiler.process(col, **kw)} LIKE {compiler.process(like, **kw)} ESCAPE '/'"


@compiles(text_match, "sqlite")
def _compile_glob(element: text_match, compiler: SQLCompiler, **kw: Any) -> str:
    col, _like, glob = element.clauses
    return f"{compiler.process(col, **kw)} GLOB {compiler.process(glob, **kw)}"
