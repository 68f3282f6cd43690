"""Replay a source word stream through a canvas engine (CLI streaming mode, bench, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dragoman.translate.canvas import CanvasEngine, CanvasUpdate


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One source update: the source shown so far and the engine's answer."""

    words: int
    """Source words known at this update (committed + tentative)."""
    committed_source: str
    tentative_source: str
    update: CanvasUpdate


def replay_words(
    engine: CanvasEngine, words: Sequence[str], tentative_words: int = 2
) -> list[ReplayStep]:
    """Feed `words` one at a time; the last `tentative_words` of each update stay
    tentative (as a streaming recognizer would leave them); then end the utterance."""
    if tentative_words < 0:
        raise ValueError("tentative_words must be >= 0")
    steps: list[ReplayStep] = []
    for i in range(1, len(words) + 1):
        split = max(0, i - tentative_words)
        committed, tentative = " ".join(words[:split]), " ".join(words[split:i])
        steps.append(ReplayStep(i, committed, tentative, engine.update(committed, tentative)))
    full = " ".join(words)
    steps.append(ReplayStep(len(words), full, "", engine.finish(full)))
    return steps
