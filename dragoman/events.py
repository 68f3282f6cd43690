"""The shared vocabulary of every stage: time base, clocks, words and events.

Time inside Dragoman is an integer sample index at 16 kHz counted from the start
of a session (`SAMPLE_RATE`). Seconds appear only at the edges (CLI, wire
protocol, reports). Every event is a frozen dataclass; nothing that flows between
stages is a bare tuple or dict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
"""The pipeline's internal sample rate and time base (samples per second)."""

Samples = int
"""A position in the session, in samples at `SAMPLE_RATE` from the session start."""

FloatAudio = npt.NDArray[np.float32]
"""Mono float32 audio in [-1, 1]."""


def to_seconds(samples: Samples) -> float:
    """Convert a sample index to seconds (edges only)."""
    return samples / SAMPLE_RATE


def to_samples(seconds: float) -> Samples:
    """Convert seconds to the nearest sample index (edges only)."""
    return round(seconds * SAMPLE_RATE)


class Clock(Protocol):
    """A source of monotonic time in seconds. Injected so tests control time."""

    def now(self) -> float: ...


class MonotonicClock:
    """The real clock: `time.monotonic()`."""

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests, offline replay)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open interval [start, end) of session samples."""

    start: Samples
    end: Samples

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends before it starts: {self.start}..{self.end}")

    @property
    def duration(self) -> Samples:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Word:
    """One recognized word with its time span in session samples."""

    text: str
    start: Samples
    end: Samples
    probability: float = 1.0


def join_words(words: tuple[Word, ...] | list[Word]) -> str:
    """Join recognized words into display text (Whisper words carry their own spaces)."""
    return " ".join(w.text.strip() for w in words if w.text.strip())


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Voice activity began at sample `at` (padding included)."""

    at: Samples
    utterance: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """Voice activity of an utterance ended at sample `at` (hangover included)."""

    at: Samples
    utterance: int


@dataclass(frozen=True, slots=True)
class SourceText:
    """Source-side recognition update for one utterance.

    `committed` holds only the words committed by this update (a delta: committed
    words are final and are never repeated or changed); `tentative` is the current
    guess for everything after the committed text, replaced wholesale each update.
    `final` marks the last update of the utterance (nothing tentative remains).
    """

    utterance: int
    language: str
    committed: tuple[Word, ...]
    tentative: tuple[Word, ...]
    final: bool = False
    language_probability: float = 1.0


@dataclass(frozen=True, slots=True)
class TranslationText:
    """Target-side update for one utterance and target language.

    `committed_delta` is appended to the committed target text and never changes;
    `uncommitted` is the current canvas, replaced wholesale on every update.
    `source_span` is the source audio this text translates so far.
    """

    utterance: int
    language: str
    committed_delta: str
    uncommitted: str
    source_span: Span
    final: bool = False


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Synthesized (and watermarked) target speech.

    `pts` is the chunk's position in the target-language output stream, in samples
    of `sample_rate`; `source_span` is the source audio it translates (16 kHz
    session samples), so latency can be measured from outside.
    """

    language: str
    pcm: FloatAudio = field(repr=False)
    sample_rate: int
    pts: int
    source_span: Span


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a stage runs behind the incoming audio, in samples."""

    stage: str
    behind: Samples
    degraded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Error:
    """An error a client should see: stable `code`, human `message`, `retryable`."""

    code: str
    message: str
    retryable: bool = False


SourceEvent = SpeechStarted | SpeechEnded | SourceText | Error
Event = SpeechStarted | SpeechEnded | SourceText | TranslationText | AudioChunk | Lag | Error


def event_to_dict(event: Event) -> dict[str, object]:
    """A JSON-ready view of an event: type name, times in samples and seconds, no PCM."""
    out: dict[str, object] = {"type": type(event).__name__}
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if name == "pcm":
            out["samples"] = int(len(value))
        elif isinstance(value, tuple):
            out[name] = [_word_dict(w) if isinstance(w, Word) else w for w in value]
        elif isinstance(value, Span):
            out[name] = {"start": value.start, "end": value.end}
        else:
            out[name] = value
    return out


def _word_dict(word: Word) -> dict[str, object]:
    return {
        "text": word.text.strip(),
        "start": word.start,
        "end": word.end,
        "probability": round(float(word.probability), 4),
    }
