"""The translation canvas: block re-translation with confidence re-masking.

State per (utterance, target language): a committed target prefix ``C`` that only
grows and an uncommitted block ``B`` with a confidence and a stability count per
token. Every source update runs score -> re-noise -> denoise -> commit (DESIGN.md
section 3; docs/translation.md has the algorithm as built and its measured
defaults). The engine is synchronous and does no I/O; the backend does the math.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from dragoman.errors import UnsupportedLanguageError
from dragoman.languages import normalize_language
from dragoman.translate.base import (
    FillRequest,
    ScoreRequest,
    TranslationBackend,
    TranslationInputError,
)

logger = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"[.!?;:]$")


@dataclass(frozen=True, slots=True)
class CanvasConfig:
    """Commit rules. Defaults measured with `bench/translate.py` (docs/translation.md)."""

    stability_updates: int = 2
    """k: a token commits only after it survived this many consecutive updates."""
    confidence_threshold: float = 0.5
    """A token commits only if the backend's probability for it is at least this
    (backends without scores commit by agreement alone)."""
    keep_threshold: float = 0.2
    """Re-noise: block tokens scored below this are masked and re-generated."""
    max_uncommitted_words: int = 6
    """Lag bound: when the block holds more words, its head is committed anyway."""
    max_source_words: int = 60
    """Canvas size in source words: longer sources are split into segments, at the
    last sentence end when there is one."""
    max_block_tokens: int | None = 12
    """Denoise bound: an interim update generates at most this many tokens after the
    committed prefix and the kept head (the end of the utterance always completes the
    sentence). 12 tokens is about 8 words of NLLB French/Spanish, above the
    6-word lag bound, so it only cuts a continuation that runs past what the block
    can show; None decodes every interim update to the end of the sentence."""

    def __post_init__(self) -> None:
        if self.stability_updates < 1:
            raise ValueError("stability_updates must be >= 1")
        if not 0.0 <= self.keep_threshold <= 1.0 or not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError("thresholds are probabilities in [0, 1]")
        if self.max_uncommitted_words < 1 or self.max_source_words < 2:
            raise ValueError("max_uncommitted_words >= 1 and max_source_words >= 2")
        if self.max_block_tokens is not None and self.max_block_tokens < 1:
            raise ValueError("max_block_tokens must be >= 1 (or None for no bound)")


@dataclass(frozen=True, slots=True)
class CanvasUpdate:
    """The result of one source update."""

    committed_delta: str
    """Text appended to the committed target by this update (may be empty)."""
    uncommitted: str
    """The current revisable block, replacing the previous one wholesale."""
    committed_text: str
    """All committed target text of the utterance so far."""
    final: bool = False
    erased_words: int = 0
    """Displayed words (committed delta + block) of the previous update that this one
    deleted or changed: the numerator of normalized erasure."""
    kept_tokens: int = 0
    """Block tokens kept by re-noising (not regenerated)."""
    forced: bool = False
    """True when the lag bound or a segment split forced a commit."""


@dataclass(slots=True)
class _Segment:
    start: int = 0
    """Index of the first source word of this segment."""
    committed: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)
    stability: list[int] = field(default_factory=list)
    confidence: list[float | None] = field(default_factory=list)


def _split_words(text: str) -> list[str]:
    if not isinstance(text, str):
        raise TranslationInputError("source text must be a string")
    return text.replace("\0", " ").split()


class CanvasEngine:
    """Streaming translation of one utterance into one target language."""

    def __init__(
        self,
        backend: TranslationBackend,
        source_lang: str,
        target_lang: str,
        config: CanvasConfig | None = None,
    ) -> None:
        self.backend = backend
        self.source_lang = normalize_language(source_lang)
        self.target_lang = normalize_language(target_lang)
        self.config = config if config is not None else CanvasConfig()
        if self.source_lang == self.target_lang:
            raise UnsupportedLanguageError(
                f"source and target are both {self.source_lang!r}: nothing to translate"
            )
        if not backend.supports(self.source_lang, self.target_lang):
            raise UnsupportedLanguageError(
                f"backend {backend.name!r} cannot translate {self.source_lang}->"
                f"{self.target_lang} directly; run `dragoman translate-text --list` for pairs"
            )
        self._committed_source: list[str] = []
        self._segment = _Segment()
        self._committed_text = ""
        self._displayed: list[str] = []
        self._finished = False
        self.updates = 0

    @property
    def committed_text(self) -> str:
        """The whole committed target so far (never changes, only grows)."""
        return self._committed_text

    @property
    def uncommitted_text(self) -> str:
        return self.backend.detokenize(self._segment.block)

    @property
    def finished(self) -> bool:
        return self._finished

    # -- public API -------------------------------------------------------------------

    def update(
        self, committed_source: str = "", tentative_source: str = "", final: bool = False
    ) -> CanvasUpdate:
        """Feed the whole source so far (committed + tentative) and get the new target.

        `committed_source` is the utterance's full committed source text; it may only
        grow. With `final=True` everything is committed after a last denoise.
        """
        if self._finished:
            raise TranslationInputError("this utterance is finished; start a new CanvasEngine")
        committed = _split_words(committed_source)
        tentative = _split_words(tentative_source)
        if committed[: len(self._committed_source)] != self._committed_source:
            raise TranslationInputError(
                "committed source text changed: committed words are final and may only grow"
            )
        self._committed_source = committed
        words = committed + tentative
        stable_words = len(words) if final else len(committed)
        self.updates += 1

        delta_parts: list[str] = []
        forced = False
        # Split off full segments while the stable source exceeds the canvas.
        while stable_words - self._segment.start > self.config.max_source_words:
            end = self._split_point(words, stable_words)
            delta_parts.append(self._finish_segment(words[self._segment.start : end]))
            self._segment = _Segment(start=end)
            forced = True

        active = words[self._segment.start : self._segment.start + self.config.max_source_words]
        kept = 0
        if not active:
            block_delta = self._commit_all() if final else ""
        else:
            kept = self._revise(" ".join(active), complete=final)
            if final:
                block_delta = self._commit_all()
            else:
                block_delta, lag_forced = self._commit_stable()
                forced = forced or lag_forced
        delta_parts.append(block_delta)
        delta = self._append_committed(delta_parts)
        if final:
            self._finished = True
        uncommitted = self.backend.detokenize(self._segment.block)
        shown = (delta + " " + uncommitted).split()
        common = 0
        for old, new in zip(self._displayed, shown, strict=False):
            if old != new:
                break
            common += 1
        erased = len(self._displayed) - common
        self._displayed = uncommitted.split()
        return CanvasUpdate(
            committed_delta=delta,
            uncommitted=uncommitted,
            committed_text=self._committed_text,
            final=final,
            erased_words=erased,
            kept_tokens=kept,
            forced=forced,
        )

    def finish(self, committed_source: str) -> CanvasUpdate:
        """End of utterance: translate the complete source and commit everything."""
        return self.update(committed_source, "", final=True)

    # -- the four steps -----------------------------------------------------------------

    def _revise(self, source: str, complete: bool) -> int:
        """Score, re-noise and denoise the block; returns how many tokens were kept.

        `complete` (end of utterance or of a segment) decodes to the end of the
        sentence; otherwise the continuation is bounded by `max_block_tokens`."""
        seg = self._segment
        prefix = tuple(seg.committed)
        old = tuple(seg.block)
        scores: tuple[float | None, ...] = (None,) * len(old)
        if old and self.backend.has_scores:
            scores = self.backend.score(
                [ScoreRequest(self.source_lang, self.target_lang, source, prefix, old)]
            )[0]
        keep = tuple(s is None or s >= self.config.keep_threshold for s in scores)
        bound = None if complete else self.config.max_block_tokens
        request = FillRequest(self.source_lang, self.target_lang, source, prefix, old, keep,
                              max_new_tokens=bound)
        new = self.backend.fill([request])[0]
        kept = len(request.kept_head()) if self.backend.has_scores else 0
        stability: list[int] = []
        confidence: list[float | None] = []
        same = True
        for i, token in enumerate(new):
            same = same and i < len(old) and old[i] == token
            stability.append(seg.stability[i] + 1 if same else 1)
            confidence.append(scores[i] if same else None)
        seg.block, seg.stability, seg.confidence = list(new), stability, confidence
        return kept

    def _confident(self, i: int) -> bool:
        if not self.backend.has_scores:
            return True
        value = self._segment.confidence[i]
        return value is not None and value >= self.config.confidence_threshold

    def _commit_stable(self) -> tuple[str, bool]:
        seg = self._segment
        k = self.config.stability_updates
        n = 0
        while n < len(seg.block) and seg.stability[n] >= k and self._confident(n):
            n += 1
        n = self._word_boundary(n)
        forced = False
        starts = [i for i, t in enumerate(seg.block) if i == 0 or self.backend.is_word_start(t)]
        excess = len(starts) - self.config.max_uncommitted_words
        if excess > 0 and starts[excess] > n:
            n = starts[excess]
            forced = True
        return self._commit(n), forced

    def _word_boundary(self, n: int) -> int:
        """Largest m <= n where block[m] exists and starts a word (never a partial word)."""
        block = self._segment.block
        while n > 0 and (n >= len(block) or not self.backend.is_word_start(block[n])):
            n -= 1
        return n

    def _commit_all(self) -> str:
        return self._commit(len(self._segment.block))

    def _commit(self, n: int) -> str:
        seg = self._segment
        if n <= 0:
            return ""
        before = self.backend.detokenize(seg.committed)
        seg.committed.extend(seg.block[:n])
        after = self.backend.detokenize(seg.committed)
        del seg.block[:n], seg.stability[:n], seg.confidence[:n]
        if after.startswith(before):
            return after[len(before) :]
        # A detokenizer that rewrites earlier text: committed text is never changed,
        # so only the new tokens' own text is appended.
        return " " + self.backend.detokenize(seg.committed[-n:])

    # -- segments ----------------------------------------------------------------------

    def _split_point(self, words: list[str], stable_words: int) -> int:
        start = self._segment.start
        limit = start + self.config.max_source_words
        for i in range(limit, start + self.config.max_source_words // 2, -1):
            if i <= stable_words and _SENTENCE_END.search(words[i - 1]):
                return i
        return limit

    def _finish_segment(self, source_words: list[str]) -> str:
        self._revise(" ".join(source_words), complete=True)
        return self._commit_all()

    def _append_committed(self, parts: list[str]) -> str:
        out = ""
        for part in parts:
            if not part.strip():
                continue
            if not (self._committed_text + out):
                part = part.lstrip()
            elif not part[0].isspace():
                part = " " + part  # a new segment's first words
            out += part
        self._committed_text += out
        return out
