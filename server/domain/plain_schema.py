"""A JSON Schema of flat text fields read once into plain tests, for hot loops (the enrollment
body, every row of a device import): whether a value is valid in a few microseconds, where
jsonschema's validator takes ~0.1 ms. A value the plain tests refuse is validated again by
jsonschema, so what it is told (the error answer, the row errors) is what the schema says.

    valid = PlainCheck.of(schema, formats={"date-time": is_datetime})
    if not valid(value):
        errors = list(validator.iter_errors(value))

Understood, as jsonschema applies them: an object with `required`, `properties` and
`additionalProperties: false`; per property `type` "string" or ["string", "null"], `minLength`,
`maxLength` (`len`), `pattern` (`re.search`), `enum`, `format` (the checker given). Annotations
(`description`, `title`, `x-…`) are ignored. A property with any other keyword is never passed
by the plain tests (the validator decides), and a schema with another keyword at its top makes
`of` raise, so a schema edit cannot silently weaken a check.
tests/unit/test_plain_schema.py and tests/unit/test_enroll_body.py check the answers agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ANNOTATIONS = frozenset({"description", "title", "examples", "default", "$comment"})
TOP = frozenset({"type", "required", "properties", "additionalProperties"})
FIELD = frozenset({"type", "minLength", "maxLength", "pattern", "enum", "format"})


@dataclass(frozen=True)
class _Field:
    nullable: bool
    shortest: int
    longest: int | None
    pattern: re.Pattern[str] | None
    enum: frozenset[str] | None
    format: Callable[[str], bool] | None
    known: bool  # False: a keyword the plain tests do not know; the validator decides

    def passes(self, value: Any) -> bool:
        if value is None and self.nullable:
            return self.known
        if not self.known or not isinstance(value, str):
            return False
        if len(value) < self.shortest or (self.longest is not None and len(value) > self.longest):
            return False
        if self.pattern is not None and self.pattern.search(value) is None:
            return False
        if self.enum is not None and value not in self.enum:
            return False
        if self.format is None:
            return True
        try:
            return bool(self.format(value))
        except (ValueError, TypeError):  # a checker that raises for "malformed"
            return False


def _annotation(key: str) -> bool:
    return key in ANNOTATIONS or key.startswith("x-")


def _field(spec: Mapping[str, Any], formats: Mapping[str, Callable[[str], bool]]) -> _Field:
    types = spec.get("type")
    types = types if isinstance(types, list) else [types]
    enum = spec.get("enum")
    fmt = spec.get("format")
    known = (
        all(key in FIELD or _annotation(key) for key in spec)
        and set(types) in ({"string"}, {"string", "null"})
        and (enum is None or all(isinstance(v, str) for v in enum))
        and (fmt is None or fmt in formats)
    )
    return _Field(
        nullable="null" in types,
        shortest=int(spec.get("minLength", 0)),
        longest=spec.get("maxLength"),
        pattern=re.compile(spec["pattern"]) if "pattern" in spec else None,
        enum=frozenset(enum) if enum is not None else None,
        format=formats.get(fmt) if fmt is not None else None,
        known=known,
    )


@dataclass(frozen=True)
class PlainCheck:
    required: tuple[str, ...]
    fields: Mapping[str, _Field]
    closed: bool  # additionalProperties: false

    @classmethod
    def of(cls, schema: Mapping[str, Any], formats: Mapping[str, Callable[[str], bool]] | None = None) -> PlainCheck:
        unknown = [key for key in schema if key not in TOP and not _annotation(key)]
        extra = schema.get("additionalProperties", True)
        if schema.get("type") != "object" or unknown or extra not in (True, False):
            raise ValueError(f"not a schema of flat text fields: {unknown or schema.get('type')}")
        fields = {name: _field(spec, formats or {}) for name, spec in schema.get("properties", {}).items()}
        return cls(tuple(schema.get("required", ())), fields, extra is False)

    def __call__(self, value: Any) -> bool:
        """True: the schema's validator finds nothing wrong; False: it finds something (or the
        plain tests cannot tell: ask it)."""
        if not isinstance(value, dict) or any(name not in value for name in self.required):
            return False
        fields = self.fields
        for name, item in value.items():
            spec = fields.get(name)
            if spec is None:
                if self.closed:
                    return False
                continue
            if not spec.passes(item):
                return False
        return True
