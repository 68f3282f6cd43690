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
