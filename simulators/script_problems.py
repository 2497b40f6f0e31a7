"""What the settings-script interpreter reports: each problem kind, with the sentence a person reads.

A kind is a stable kebab-case id that tests and reports key on; the sentence cites the research
spec (`/work/shared/research/avaya-settings-spec.md`, "§n") or the decision in `simulators/script.py`
("D-n") that makes the line behave as it does. The offending value travels separately, as `detail`.
"""

from __future__ import annotations

__all__ = ["PROBLEMS"]

PROBLEMS: dict[str, str] = {
    # Lines that are comments by §2.2 but look like an attempt at a statement (D-1).
    "indented-statement": "A statement must start in the first column; this indented line is a comment (§2.2).",
    "bare-parameter": "A parameter without SET is a comment, so this value is not applied (§2.2, §13).",
    "orphan-value": "A quoted value alone on a line is a comment; it probably belongs to the SET above (§2.1, §13).",
    "stray-text": "This line is not a statement, so it is a comment (§2.2).",
    # SET (§3).
    "malformed-set": "SET needs a parameter name and a value; the statement is ignored (§2.1, §3).",
    "set-without-value": "SET has no value; it is ignored and the parameter keeps its earlier value (§3, D-8).",
    "set-equals-form": "SET NAME=VALUE is not SET syntax; the statement is ignored (§13, D-9).",
    "set-colon-form": "SET NAME: VALUE is not SET syntax; the statement is ignored (§13, D-9).",
    "invalid-name": "A parameter name is ASCII letters, digits and underscores; the statement is ignored (§2.4, D-10).",
    "name-too-long": "The parameter name is longer than the limit; the statement is ignored (§2.7, D-11).",
    "value-too-long": "The value is longer than this parameter allows; the statement is ignored (§2.7, D-11).",
    "unterminated-quote": "A quoted value has no closing quote; the statement is ignored (§2.6).",
    "text-after-quoted-value": "Text after the closing quote is ignored; the quoted value is applied (§2.6, D-6).",
    "unquoted-value-with-spaces": "An unquoted value holds spaces; the rest of the line is its value (§14.2, D-7).",
    "smart-quotes": "Curly quotation marks are not quotes; they stay part of the value (§2.6).",
    "read-only-parameter": "A settings file cannot set this phone variable; the statement is ignored (§6, D-12).",
    "missing-macro-value": "The phone has no value for this macro; it is kept as written (§5, D-19).",
    "unexpanded-macro": "This $NAME is not a macro in this place; it is kept as written (§1, §5, D-19).",
    # IF / GOTO / labels (§3).
    "malformed-if": "IF must read IF $NAME SEQ value GOTO tag; the statement is ignored (§3).",
    "unknown-operator": "SEQ is the only IF operator; the statement is ignored (§3).",
    "undefined-variable": "IF tests a variable the phone does not define; the whole IF is ignored (§3, §4).",
    "malformed-goto": "GOTO needs a label; the statement is ignored (§3).",
    "label-not-found": "No such label follows this GOTO in the file; the rest of the file is skipped (§3).",
    "backward-goto": "GOTO searches forward only and this label is above it; the rest of the file is skipped (D-15).",
    "label-with-spaces": "A label has no spaces; the first word is the label and the rest is ignored (§3, D-16).",
    "trailing-text": "Text after the statement is ignored (§2.1, D-13).",
    # GET (§1, §3).
    "malformed-get": "GET needs a file name; the statement is ignored (§3).",
    "file-not-found": "The file server has no such file; interpretation goes on with the next line (§3).",
    "first-file-not-found": "The file server has no such file, so there is nothing to interpret (§1).",
    "already-fetched": "This file was already interpreted in this pass; the GET is refused (§14.4, D-18).",
    "file-limit": "The GET chain reached its file limit; the GET is refused (§14.4, D-18).",
    "fetch-limit": "The pass reached its request limit; the GET is refused (§14.4, D-18).",
    "invalid-fetch-result": "The fetch answered something other than bytes or None; it counts as not found (D-22).",
    # Bytes (§2.8).
    "not-utf8": "This statement is not valid UTF-8; it was read as Windows-1252 (§2.8, D-2).",
}
