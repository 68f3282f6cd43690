"""Which words of the revisable translation captions show.

The canvas revises its uncommitted block on every recognition update, and in a live
stream most of those revisions come from the recognizer's tentative words (an interim
decode hears "desac." where the next hears "désactiver"). Shown whole, the block
flickers: on 40 Asterisk prompts per pair through the real pipeline, 0.57-0.64 words
were erased for every word of final translation (normalized erasure), against the
0.2 target. `CaptionPreview` shows the words of the block that the last update
confirmed (unchanged, with everything before them, since the update before), then at
most `PreviewConfig.new_words` words it has not confirmed yet, and never the block's
last `hidden_tail` words until they are confirmed: the tail is where revisions
happen (the mask-k of re-translation systems, Arivazhagan et al. 2020, on words not
yet seen twice). Committed text is never held back, and speech (which says committed
text only) is not affected. The measurements that chose the defaults are in
docs/benchmarks.md ("End to end", session 13).
"""

from __future__ import annotations

from dataclasses import dataclass

from dragoman.errors import DragomanError


@dataclass(frozen=True, slots=True)
class PreviewConfig:
    """How much of the revisable block captions show.

    new_words: words of the block shown before an update confirms them.
    hidden_tail: the block's last words, shown only once confirmed.
    """

    new_words: int = 2
    hidden_tail: int = 1

    def __post_init__(self) -> None:
        if self.new_words < 0 or self.hidden_tail < 0:
            raise DragomanError("new_words and hidden_tail must be >= 0")


class CaptionPreview:
    """The shown part of each uncommitted block of one utterance in one target
    language. Words are split at whitespace: in a script written without spaces a
    block is one word, shown once an update leaves it unchanged."""

    def __init__(self, config: PreviewConfig | None = None) -> None:
        self.config = config if config is not None else PreviewConfig()
        self._committed: list[str] = []
        self._hypothesis: list[str] = []
        self._seen: list[int] = []  # per hypothesis word: updates it has survived

    def show(self, committed_delta: str, uncommitted: str, *, final: bool = False) -> str:
        """The part of `uncommitted` to display after this update (all of it once final)."""
        if final:
            return uncommitted
        self._committed += committed_delta.split()
        block = uncommitted.split()
        hypothesis = self._committed + block
        same = 0
        for old, new in zip(self._hypothesis, hypothesis, strict=False):
            if old != new:
                break
            same += 1
        self._seen = [self._seen[i] + 1 if i < same else 1 for i in range(len(hypothesis))]
        self._hypothesis = hypothesis
        seen = self._seen[len(self._committed):]
        confirmed = next((i for i, count in enumerate(seen) if count < 2), len(block))
        cfg = self.config
        shown = max(confirmed, min(len(block) - cfg.hidden_tail, confirmed + cfg.new_words))
        if shown == len(block):
            return uncommitted
        return " ".join(block[:shown])
