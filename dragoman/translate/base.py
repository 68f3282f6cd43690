"""The translation backend protocol and the value types that cross it.

A backend knows how to (1) score a draft target block given the source and a kept
target prefix, (2) fill a block given a kept prefix, and (3) tokenize/detokenize
target text. The canvas engine (`dragoman.translate.canvas`) owns all streaming
state; a backend is stateless between calls, so one started backend can serve
many engines (sessions) at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dragoman.errors import DragomanError


class TranslationInputError(DragomanError):
    """Text that cannot be translated as given (empty, or committed source rewritten)."""

    code = "bad_request"


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Score every token of `block` given `source` and the kept target `prefix`."""

    source_lang: str
    target_lang: str
    source: str
    prefix: tuple[str, ...]
    block: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FillRequest:
    """Produce a new block after `prefix` for `source`.

    `draft` is the previous block and `keep` marks its positions the engine trusts
    (same length as `draft`). An autoregressive backend keeps the leading run of
    kept tokens and continues from ``prefix + kept``; a diffusion backend warm-starts
    its canvas from the draft; a backend without scores re-translates.
    """

    source_lang: str
    target_lang: str
    source: str
    prefix: tuple[str, ...]
    draft: tuple[str, ...] = ()
    keep: tuple[bool, ...] = ()
    max_new_tokens: int | None = None
    """Bound on the tokens generated after ``prefix + kept head`` (an interim update's
    block); None decodes to the end of the sentence (end of utterance). Backends that
    re-translate whole sentences (Apertium) or fill a fixed canvas (DiffusionGemma)
    may ignore it."""

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1 (or None for no bound)")

    def kept_head(self) -> tuple[str, ...]:
        """The leading run of kept draft tokens."""
        head: list[str] = []
        for token, keep in zip(self.draft, self.keep, strict=False):
            if not keep:
                break
            head.append(token)
        return tuple(head)


@runtime_checkable
class TranslationBackend(Protocol):
    """What the canvas engine needs from a translation model or engine."""

    name: str
    has_scores: bool
    """False for engines with no token probabilities (Apertium): commits by agreement."""
    max_source_tokens: int
    """Longest source (in the backend's tokens) one request may carry."""

    def start(self) -> None:
        """Load models / spawn processes. Idempotent."""
        ...

    def close(self) -> None:
        """Release models and processes. Idempotent."""
        ...

    def languages(self) -> tuple[str, ...]:
        """Canonical codes of every language this backend reads or writes."""
        ...

    def supports(self, source_lang: str, target_lang: str) -> bool:
        """True when the direct pair (canonical codes) can be translated."""
        ...

    def tokenize(self, text: str, lang: str) -> tuple[str, ...]: ...

    def detokenize(self, tokens: Sequence[str]) -> str: ...

    def is_word_start(self, token: str) -> bool:
        """True when `token` begins a new word (commits happen only at word starts)."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        """Per-token probability of each request's block (one entry per block token)."""
        ...

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        """The new block (tokens after the prefix) for each request."""
        ...
