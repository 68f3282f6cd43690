"""Text normalization for comparing words: agreement between hypotheses and WER."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w\s']|_")


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_word(word: str) -> str:
    """Case-, accent- and punctuation-insensitive form of one word ("Locked," -> "locked")."""
    return strip_accents(_NON_WORD.sub("", word.casefold())).strip().strip("'")


def normalize_text(text: str) -> str:
    """Lower-case, accent-free, punctuation-free, single-spaced text (for WER)."""
    words = (normalize_word(w) for w in _NON_WORD.sub(" ", text.casefold()).split())
    return " ".join(w for w in words if w)


_DIGIT_GAP = re.compile(r"(?<=\d) (?=\d)")


def join_digit_runs(text: str) -> str:
    """Normalized text (`normalize_text`) with adjacent digit groups written together.

    A spoken digit string comes out of Whisper as "1234", "12 34" or "1 2 3 4" from one
    decode to the next, and references write it either way too ("28.8" normalizes to
    "28 8"): for a word error rate that counts what was heard, not how it was
    spelled, every run becomes one token ("dial 1 2 3 4" -> "dial 1234").
    """
    return _DIGIT_GAP.sub("", normalize_text(text))
