"""The case folding of ``store.search`` (chatkeep.sessions.search): one table, shipped
in search.lua and read by the Python side, so every backend folds alike."""

from __future__ import annotations

from chatkeep.sessions.search import _FOLD, fold


def _two_byte_lowercase_pairs() -> dict[int, str]:
    """Unicode's one-to-one lower-case mappings between letters UTF-8 writes in two
    bytes (U+0080..U+07FF), as this Python's unicodedata knows them."""
    pairs = {}
    for code in range(0x80, 0x800):
        lower = chr(code).lower()
        if len(lower) == 1 and lower != chr(code) and 0x80 <= ord(lower) < 0x800:
            pairs[code] = lower
    return pairs


def test_the_shipped_table_is_unicodes_two_byte_mappings_plus_ascii() -> None:
    ascii_pairs = {ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    assert {**ascii_pairs, **_two_byte_lowercase_pairs()} == _FOLD


def test_folding_keeps_lengths_and_never_maps_to_ascii() -> None:
    # what lets search.lua use string.lower for ASCII queries
    for code, lower in _FOLD.items():
        assert len(chr(code).encode()) == len(lower.encode())
        assert (code < 0x80) == (ord(lower) < 0x80)


def test_fold_examples() -> None:
    assert fold("Été ÀÖØÞ ЖУК ΣΟΦΊΑ Ա") == "été àöøþ жук σοφία ա"  # noqa: RUF001
    assert fold("Straße İ \u212a 東京 ＡＢＣ") == "straße İ \u212a 東京 ＡＢＣ"  # noqa: RUF001
