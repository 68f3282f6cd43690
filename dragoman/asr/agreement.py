"""Local agreement: commit the words on which a hypothesis agrees with a recent one.

Words are compared in normalized form (case, accents and punctuation ignored), so
"locked." and "locked," agree, and letter by letter across word splits, so "6 00" and
"600" agree. Hypotheses pass a repetition guard first: Whisper
sometimes loops ("un un un un ..."), and such loops must never become final text.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from itertools import islice

from dragoman.events import SAMPLE_RATE, Word
from dragoman.textnorm import normalize_word

OVERLAP_TOLERANCE = SAMPLE_RATE // 10
"""A re-recognized word may start this much before the last committed end."""


MIN_ANCHOR_LETTERS = 4
"""A single committed word marks where the new words start only if it is this long."""

MAX_ANCHOR_GAP = 3 * SAMPLE_RATE // 2
"""A run of the last committed words found in a hypothesis is their restatement only if
it ends at most this long before the committed end (interpolated times run up to 0.8 s
early)."""


def guard_repetitions(words: Sequence[Word], *, max_repeats: int = 2) -> list[Word]:
    """Cut a hypothesis where an n-gram (n <= 4) repeats more than `max_repeats` times.

    The first `max_repeats` occurrences are kept (people do say "no, no"); the loop
    and everything after it are dropped.
    """
    norm = [normalize_word(w.text) for w in words]
    for i in range(len(words)):
        for n in range(1, 5):
            gram = norm[i : i + n]
            if len(gram) < n or not any(gram):
                continue
            repeats = 1
            j = i + n
            while norm[j : j + n] == gram:
                repeats += 1
                j += n
            if repeats > max_repeats:
                return list(words[: i + n * max_repeats])
    return list(words)


def guard_speaking_rate(words: Sequence[Word], *, max_words_per_second: float = 7.0) -> list[Word]:
    """Drop a hypothesis tail that packs words faster than anyone speaks (hallucination)."""
    kept: list[Word] = []
    for word in words:
        if kept:
            span = (word.end - kept[0].start) / SAMPLE_RATE
            if len(kept) + 1 > max(3.0, span * max_words_per_second):
                break
        kept.append(word)
    return kept


def guard_trailing(words: Sequence[Word], *, speech_end: int, min_probability: float,
                   confirmed: int = 0) -> list[Word]:
    """Drop hallucinated words at the end of a final hypothesis.

    Whisper tends to add a word over the trailing pause ("y", "un", "Adios!") with
    a probability of 0.01-0.3; real final words score far higher. Words that start
    after the last speech frame are dropped too. The first `confirmed` words are kept
    whatever their probability: an earlier decode heard them too (the last word of the
    Spanish "... la tecla de número", cut tight at the end of a file, came out of the
    final decode as "numeró." at 0.31, after an interim decode had read "número.").
    """
    kept = list(words)
    while kept and (kept[-1].start >= speech_end or (
            kept[-1].probability < min_probability and len(kept) > confirmed)):
        kept.pop()
    return kept


def _spelled_alike(a: str, b: str) -> bool:
    """Two spellings of one heard word: a shared beginning of at least 4 letters that
    covers three quarters of the longer ("numeron" / "numero"; not "enum" / "numero")."""
    x, y = normalize_word(a), normalize_word(b)
    return len(os.path.commonprefix([x, y])) >= max(4, 0.75 * max(len(x), len(y)))


def agreed_words(new: Sequence[Word], old: Sequence[Word]) -> int:
    """How many words of `new` the two hypotheses agree on.

    They agree on the longest stretch whose normalized letters are the same and that
    ends on a word boundary in both: "dial 6 00 this" and "dial 600 this" agree on all
    four words of the first (Whisper writes numbers and compounds differently from one
    decode to the next: "5-0-0" / "500", "voice mail" / "voicemail", and word-by-word
    agreement stalled on them until a force-commit).
    """
    new_norm = [normalize_word(w.text) for w in new]
    old_norm = [normalize_word(w.text) for w in old]
    new_text, old_text = "".join(new_norm), "".join(old_norm)
    common = 0
    for a, b in zip(new_text, old_text, strict=False):
        if a != b:
            break
        common += 1
    old_ends: set[int] = set()
    position = 0
    for word in old_norm:
        position += len(word)
        old_ends.add(position)
    count = position = 0
    for index, word in enumerate(new_norm):
        position += len(word)
        if position > common:
            break
        if position in old_ends:
            count = index + 1
    return count


def _restatement_end(said: Sequence[str], heard: Sequence[str], ends: Sequence[int],
                     committed_end: int) -> int | None:
    """Where the restatement of the committed words `said` ends in the normalized
    hypothesis `heard` (whose decoded audio starts where `said` does), or None if the
    hypothesis does not restate them closely enough to tell.

    The committed words are aligned, with word edits, against every prefix of the
    hypothesis; the prefix that costs fewest edits is the restatement (ties: the one
    ending nearest the committed end). At most one edit in three words is accepted,
    none for one or two words: a decode that rehears "in new" as "a new" still marks
    where "extension" starts, where the word times of interim decodes (interpolated,
    up to a second off) dropped it. A word split in two or two words written as one
    ("forevermore" / "forever more") cost no edit: as a substitution, the second half
    came back as a new word ("now and forevermore, more").
    """
    size = len(said)
    allowed = size // 3
    width = min(len(heard), 2 * size + allowed)
    before: list[int] | None = None
    row = list(range(width + 1))
    for i, word in enumerate(said, 1):
        previous, row = row, [i] * (width + 1)
        for j in range(1, width + 1):
            cost = min(previous[j - 1] + (word != heard[j - 1]), previous[j] + 1, row[j - 1] + 1)
            if j >= 2 and word == heard[j - 2] + heard[j - 1]:
                cost = min(cost, previous[j - 2])
            if before is not None and said[i - 2] + word == heard[j - 1]:
                cost = min(cost, before[j - 1])
            row[j] = cost
        before = previous

    def distance(j: int) -> int:  # how far the restatement ends from the committed end
        return abs(ends[j - 1] - committed_end) if j else committed_end

    best = min(range(width + 1), key=lambda j: (row[j], distance(j)))
    return best if row[best] <= allowed else None


class LocalAgreement:
    """Keeps the committed boundary and the recent hypotheses of one utterance.

    `history` = 1 is LocalAgreement-2 proper: a new hypothesis commits what it shares
    with the one before. With more, it commits the longest prefix it shares with any
    of the last `history` hypotheses, so a decoder that alternates between two
    readings of a word (A, B, A, ...) commits at the second A instead of stalling
    until the buffer limit forces everything out.
    """

    def __init__(self, history: int = 1) -> None:
        if history < 1:
            raise ValueError("history must be at least 1")
        self._committed: list[Word] = []
        self._previous: list[Word] = []
        self._history: deque[tuple[tuple[Word, ...], int | None]] = deque(maxlen=history)

    @property
    def committed(self) -> tuple[Word, ...]:
        return tuple(self._committed)

    @property
    def committed_end(self) -> int:
        return self._committed[-1].end if self._committed else 0

    @property
    def tentative(self) -> tuple[Word, ...]:
        return tuple(self._previous)

    def new_part(self, hypothesis: Sequence[Word], buffer_start: int | None = None) -> list[Word]:
        """The words of a hypothesis that come after what is already committed.

        A re-decode restates committed words before the new ones. They are found by
        text first: the last committed words (3, else 2, else the last one if it is a
        long word: the decoder may hear an earlier word differently, "contraiseñas"
        then "con tres señas") as a run in the hypothesis where the committed words end.
        By time, the run starts before the committed end (a later run is the speaker
        saying the same words again: "2 to kick all non administrator users, 3 to mute
        all non administrator users") and ends at most `MAX_ANCHOR_GAP` before it (an
        earlier run is the same word said before: with the last committed "marque"
        reheard as "marca", the "marque" of the sentence before matched, and the words
        in between were committed twice). By count, with `buffer_start` (where the
        decoded audio begins), the committed words from that point on end where the run
        ends: interim decodes interpolate word times, up to a second off. Of the runs
        that fit, the one ending nearest the committed end wins. With none, the
        committed words from `buffer_start` on are aligned with the start of the
        hypothesis, a few reheard words allowed (`_restatement_end`). Only when that
        fails too (the decoder rephrased or skipped them) do the word times alone decide.
        """
        if not self._committed:
            return list(hypothesis)
        norm = [normalize_word(w.text) for w in hypothesis]
        end = self.committed_end
        restated = -1 if buffer_start is None else sum(
            1 for w in self._committed if w.end > buffer_start + OVERLAP_TOLERANCE)

        def fits(i: int, size: int) -> bool:
            by_time = hypothesis[i].start < end < hypothesis[i + size - 1].end + MAX_ANCHOR_GAP
            by_count = restated >= size and abs(i + size - restated) <= max(2, restated // 4)
            return by_time or by_count

        for size in (3, 2, 1):
            tail = [normalize_word(w.text) for w in self._committed[-size:]]
            if len(tail) < size or (size == 1 and len(tail[0]) < MIN_ANCHOR_LETTERS):
                continue
            runs = [i for i in range(len(norm) - size + 1)
                    if norm[i : i + size] == tail and fits(i, size)]
            if runs:
                best = min(runs, key=lambda i: abs(hypothesis[i + size - 1].end - end))
                return list(hypothesis[best + size :])
        if restated > 0:
            said = [normalize_word(w.text) for w in self._committed[-restated:]]
            aligned = _restatement_end(said, norm, [w.end for w in hypothesis], end)
            if aligned is not None:
                return list(hypothesis[aligned:])
        cutoff = self.committed_end - OVERLAP_TOLERANCE
        fresh = [w for w in hypothesis if w.start >= cutoff]
        # A re-decoded buffer may repeat the last committed words: drop that overlap.
        recent = [normalize_word(w.text) for w in self._committed[-5:]]
        for n in range(min(5, len(fresh)), 0, -1):
            if [normalize_word(w.text) for w in fresh[:n]] == recent[-n:]:
                return fresh[n:]
        return fresh

    def insert(self, hypothesis: Sequence[Word], *, hold_after: int | None = None,
               buffer_start: int | None = None) -> list[Word]:
        """Add a new hypothesis (of the audio from `buffer_start`, when known); return
        the words it commits (possibly none).

        With `hold_after`, agreed words that end later than that sample stay tentative:
        Whisper's guess at a word with little audio after it is the least reliable,
        and two decodes a moment apart can make the same wrong guess.
        """
        fresh = self.new_part(hypothesis, buffer_start)
        count = agreed_words(fresh, self._previous)
        for older, start in islice(self._history, 1, None):  # the newest is `_previous`
            count = max(count, agreed_words(fresh, self.new_part(older, start)))
        if hold_after is not None:
            while count and fresh[count - 1].end > hold_after:
                count -= 1
        agreed = self._commit(fresh[:count])
        self._previous = fresh[len(agreed) :]
        self._history.appendleft((tuple(hypothesis), buffer_start))
        return agreed

    def confirmed(self, hypothesis: Sequence[Word], buffer_start: int | None = None) -> int:
        """How many words of `hypothesis` (counted from its start, restated committed
        words included) an earlier, different hypothesis heard too: the words they agree
        on, and the next one if both spell it alike (`_spelled_alike`: Whisper's spelling
        of an unsure word drifts, "numerón." then "numeró.")."""
        fresh = self.new_part(hypothesis, buffer_start)
        heard = tuple(hypothesis)
        count = 0
        for older, start in self._history:
            if older == heard:  # a prefetched final decode is in the history
                continue
            before = self.new_part(older, start)
            agreed = agreed_words(fresh, before)
            if agreed < min(len(fresh), len(before)) and _spelled_alike(
                    fresh[agreed].text, before[agreed].text):
                agreed += 1
            count = max(count, agreed)
        return len(hypothesis) - len(fresh) + count

    def flush(self, hypothesis: Sequence[Word] | None = None,
              buffer_start: int | None = None) -> list[Word]:
        """Commit everything: the final hypothesis if given, else the last tentative one."""
        rest = (self.new_part(hypothesis, buffer_start) if hypothesis is not None
                else self._previous)
        self._previous = []
        self._history.clear()
        return self._commit(rest)

    def _commit(self, words: Sequence[Word]) -> list[Word]:
        """Append to the committed words, keeping their times in order.

        Interim decodes interpolate word times (no alignment pass); clamping each
        start to the previous committed end keeps committed time monotonic.
        """
        out = []
        for word in words:
            start = max(word.start, self.committed_end)
            fixed = Word(word.text, start, max(word.end, start), word.probability)
            self._committed.append(fixed)
            out.append(fixed)
        return out
