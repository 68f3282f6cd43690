"""Streaming inside a phrase: split a phrase into segments that are synthesized in turn.

Kokoro renders a whole input at once, and its cost grows with the audio it makes
(about 0.5 CPU-seconds per audio second here, bench/tts.py), so the first audio of a
phrase can leave only once its first segment is rendered. `split_phrase` makes that
first segment short (up to `first_words` words, or less at a clause boundary) and
lets later segments grow: segment k may hold up to `growth` times the words already
spoken, so that each segment is rendered while the ones before it play (no gap while
the real-time factor stays below 1/growth). Cuts prefer clause punctuation; after the
first segment a cut inside a clause is made only when at least as many words remain
(each seam costs a Kokoro call, about 0.28 CPU-s of silence it renders and we trim,
and a join in the intonation). A cut inside a clause is marked (`clause_end=False`)
so that the seam is kept tight.

Each segment carries its share of the phrase (`start`, `end`: fractions of the
phrase's letters), used to give it the matching slice of the source prosody.
"""

from __future__ import annotations

from dataclasses import dataclass

CLAUSE_END = tuple(".,;:!?…。、！？，；：")
"""A word ending in one of these closes a clause."""
_SLACK = 2


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a phrase: its text and where it sits in the phrase (0..1)."""

    text: str
    start: float
    end: float
    clause_end: bool
    """True when the segment ends at clause punctuation (or the phrase end)."""


def _weight(word: str) -> int:
    return max(1, sum(ch.isalnum() for ch in word))


def split_phrase(text: str, *, first_words: int = 3, growth: float = 2.0,
                 inside_clauses: bool = True) -> list[Segment]:
    """`text` in segments (see module doc); `first_words <= 0` keeps it whole;
    `inside_clauses=False` cuts at clause punctuation only."""
    words = text.split()
    if not words:
        return []
    total = sum(_weight(w) for w in words)
    if first_words <= 0 or len(words) <= first_words:
        return [Segment(" ".join(words), 0.0, 1.0, True)]
    if not inside_clauses:
        first_words = len(words)  # no limit: every cut falls on a clause end
    segments: list[Segment] = []
    index, done = 0, 0
    while index < len(words):
        limit = first_words if not segments else max(first_words, round(growth * index))
        stop = min(len(words), index + limit)
        # A clause end (or the phrase end) up to `_SLACK` words past the limit beats
        # a cut inside a clause.
        reach = min(len(words), stop + _SLACK)
        ends = [j + 1 for j in range(index, reach)
                if words[j].endswith(CLAUSE_END) or j + 1 == len(words)]
        # First segment: the first clause end (fast); later ones: the last (natural).
        cut = (ends[0] if not segments else ends[-1]) if ends else stop
        if segments and not ends and len(words) - stop < limit:
            # A later cut inside a clause costs a seam and a call; make it only when
            # what is left is as long again (else speak the rest in one go).
            later = [j + 1 for j in range(reach, len(words)) if words[j].endswith(CLAUSE_END)]
            cut = later[0] if later else len(words)
        piece = words[index:cut]
        weight = sum(_weight(w) for w in piece)
        clause = cut == len(words) or piece[-1].endswith(CLAUSE_END)
        segments.append(Segment(" ".join(piece), done / total, (done + weight) / total, clause))
        done += weight
        index = cut
    return segments
