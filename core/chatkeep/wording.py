"""Counts and articles in messages: "1 message", "2 messages", "an AIMessage".

One helper for every error, log line and CLI message that names a count or a type."""

from __future__ import annotations

__all__ = ["a_or_an", "plural"]

# Words whose first letter is a vowel but whose first sound is not (a user, a UUID).
_CONSONANT_SOUNDS = ("uni", "use", "usu", "uti", "uuid", "utf", "url", "one")


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is exactly one:
    ``plural(1, "message")`` -> ``"1 message"``, ``plural(3, "entry", "entries")`` ->
    ``"3 entries"``. Only the last word of ``noun`` changes ("journaled write")."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form if plural_form is not None else noun + 's'}"


def a_or_an(noun: str) -> str:
    """``noun`` with its indefinite article: ``"an AIMessage"``, ``"a str"``,
    ``"an int"``, ``"a user"``."""
    lowered = noun.lower()
    vowel = lowered[:1] in ("a", "e", "i", "o", "u") and not lowered.startswith(_CONSONANT_SOUNDS)
    return ("an " if vowel else "a ") + noun
