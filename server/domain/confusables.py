"""Look-alike names (issue 13): a name an administrator picks from a list must not pass for another.

Decision (docs/decisions.md, "Hardening (issue 13)", "Bad input"): the names of accounts, sites
and profiles — what the portal and the API list side by side for someone to choose — are refused
with 422 `confusable-name` when
- one word mixes letters of the look-alike alphabets (Latin, Greek, Cyrillic, Armenian, Cherokee,
  Coptic): `Аcme` with a Cyrillic `А` is how a spoof of `Acme` is spelt, and no real name needs
  it. Words are split at anything that is not a letter or a combining mark, so `Zoë-Ωμέγα` and
  `Acme Россия` (two words, one script each) are fine;
- they hold an invisible or direction-changing format character: bidi controls (U+061C, U+200E,
  U+200F, U+202A-U+202E, U+2066-U+2069), zero-width space U+200B, word joiner U+2060, U+FEFF and
  the soft hyphen U+00AD. ZWNJ and ZWJ (U+200C, U+200D) stay: Persian, Indic scripts and emoji
  need them;
- a letter or digit is a compatibility form that NFKC folds into another (fullwidth `Ａｃｍｅ`,
  mathematical `𝐀𝐜𝐦𝐞`, the ligature `ﬁ`): it looks like the plain letter it is not.
A name written wholly in one script (`Асме`, all Cyrillic) is a real name in that script: it is
allowed and distinct from `Acme`. Names are compared exactly as stored, never folded, so two
accounts never merge; the refusal above is what keeps a mixed spelling from passing for the other.
"""

from __future__ import annotations

import unicodedata

from server.domain.errors import DomainError, invalid

LOOKALIKE_SCRIPTS = frozenset({"LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "CHEROKEE", "COPTIC"})
INVISIBLE = frozenset(
    "\u00ad\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)


def _script(ch: str) -> str | None:
    """The look-alike script of a letter (the first word of its Unicode name), else None."""
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    return first if first in LOOKALIKE_SCRIPTS else None


def confusable_problem(name: str) -> str | None:
    """Why `name` could pass for another name (see the module docstring), or None."""
    scripts: set[str] = set()
    for ch in name + " ":
        category = unicodedata.category(ch)
        if ch in INVISIBLE:
            return f"it holds the invisible format character U+{ord(ch):04X}"
        if (category[0] == "L" or category == "Nd") and unicodedata.normalize("NFKC", ch) != ch:
            folded = unicodedata.normalize("NFKC", ch)
            return f"{ch!r} (U+{ord(ch):04X}) is a compatibility form of {folded!r}; write {folded!r}"
        if category[0] == "L":
            script = _script(ch)
            if script is not None:
                scripts.add(script)
        elif category[0] != "M":  # a word ends
            if len(scripts) > 1:
                return "one word mixes the alphabets " + " and ".join(s.title() for s in sorted(scripts))
            scripts.clear()
    return None


def check_name(name: str, what: str) -> str:
    """Refuse a look-alike `what` name (422 `confusable-name`); return it unchanged otherwise."""
    problem = confusable_problem(name)
    if problem is not None:
        raise confusable(name, what, problem)
    return name


def confusable(name: str, what: str, problem: str) -> DomainError:
    return invalid(
        "confusable-name",
        f"The {what} name could pass for another: {problem}. Write each word in one alphabet, "
        "without invisible characters.",
        value=name.encode("ascii", "backslashreplace").decode("ascii"),
    )
