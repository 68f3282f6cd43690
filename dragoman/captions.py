"""Which words of the revisable captions show, for the source and each translation.

The recognizer's tentative words and the canvas's uncommitted block are revised on
every update, and in a live stream most revisions come from interim decodes guessing
at the words still being spoken ("desac." before "désactiver"). Shown whole they
flicker: on 100 Asterisk prompts per pair through the real pipeline, 0.56-0.68 words of
translation and 0.68-0.75 words of source were erased for every final word
(normalized erasure), against the 0.2 target; more on a faster machine, whose more
frequent interim decodes revise more often (0.79-0.92). A `CaptionPreview` shows the revisable
words that the last update confirmed (unchanged, with everything before them, since the
update before), then at most `PreviewConfig.new_words` words no update has confirmed
yet, and never the last `hidden_tail` words until they are confirmed: the tail is where
revisions happen (the mask-k of re-translation systems, Arivazhagan et al. 2020, on
words not yet seen twice). Committed text is never held back, and what the pipeline
translates and speaks is not affected: the preview only trims the events that leave.
The measurements that chose the defaults are in docs/benchmarks.md ("End to end",
sessions 13 and 15).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from dragoman.errors import DragomanError
from dragoman.events import SourceText, TranslationText


@dataclass(frozen=True, slots=True)
class PreviewConfig:
    """How much of the revisable text captions show.

    new_words: revisable words shown before an update confirms them (two kept erasure
        under 0.2 on session 13's machine, not on session 15's twice as fast one: 0.23;
        one does on both, 0.07-0.19).
    hidden_tail: the last revisable words, shown only once confirmed.
    """

    new_words: int = 1
    hidden_tail: int = 1

    def __post_init__(self) -> None:
        if self.new_words < 0 or self.hidden_tail < 0:
            raise DragomanError("new_words and hidden_tail must be >= 0")


class CaptionPreview:
    """The shown part of the revisable text of one caption line (the source, or one
    target language), utterance after utterance. Translation text is split into words
    at whitespace: in a script written without spaces a block is one word, shown once
    an update leaves it unchanged."""

    def __init__(self, config: PreviewConfig | None = None) -> None:
        self.config = config if config is not None else PreviewConfig()
        self._utterance = -1
        self._committed: list[str] = []
        self._hypothesis: list[str] = []
        self._seen: list[int] = []  # per hypothesis word: updates it has been in

    def count(
        self, utterance: int, committed: Sequence[str], revisable: Sequence[str], *, final: bool
    ) -> int:
        """How many leading `revisable` words to show after an update that committed
        `committed` (the words new to the committed text) in `utterance`."""
        if utterance != self._utterance:
            self._utterance, self._committed, self._hypothesis, self._seen = utterance, [], [], []
        self._committed += committed
        if final:
            return len(revisable)
        hypothesis = [*self._committed, *revisable]
        same = 0
        for old, new in zip(self._hypothesis, hypothesis, strict=False):
            if old != new:
                break
            same += 1
        self._seen = [self._seen[i] + 1 if i < same else 1 for i in range(len(hypothesis))]
        self._hypothesis = hypothesis
        seen = self._seen[len(self._committed):]
        confirmed = next((i for i, count in enumerate(seen) if count < 2), len(revisable))
        cfg = self.config
        return max(confirmed, min(len(revisable) - cfg.hidden_tail, confirmed + cfg.new_words))

    def translation(self, update: TranslationText) -> TranslationText:
        """`update` with only the part of its uncommitted text that captions show."""
        block = update.uncommitted.split()
        shown = self.count(update.utterance, update.committed_delta.split(), block,
                           final=update.final)
        if shown == len(block):
            return update
        return replace(update, uncommitted=" ".join(block[:shown]))

    def source(self, update: SourceText) -> SourceText:
        """`update` with only the tentative words that captions show."""
        shown = self.count(update.utterance, [w.text.strip() for w in update.committed],
                           [w.text.strip() for w in update.tentative], final=update.final)
        if shown == len(update.tentative):
            return update
        return replace(update, tentative=update.tentative[:shown])
