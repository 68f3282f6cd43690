"""The synthesis backend protocol, voices, and the checks every request passes.

Every backend hands back mono float32 PCM at `OUTPUT_RATE` (24 kHz: Kokoro's native
rate; espeak-ng's 22.05 kHz is resampled). Backends produce *unmarked* audio and are
private to this package: the only way out is `dragoman.tts.Synthesizer`, which
watermarks every sample it emits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from dragoman.errors import DragomanError
from dragoman.events import FloatAudio

OUTPUT_RATE = 24_000
"""Sample rate of all synthesized speech leaving the TTS stage (samples per second)."""

MIN_RATE = 0.5
MAX_RATE = 2.0
"""Speaking-rate multipliers outside [MIN_RATE, MAX_RATE] are rejected as absurd."""

MAX_TEXT_CHARS = 2_000
"""One phrase longer than this is refused (the pipeline commits phrases, not books)."""

Gender = Literal["female", "male", "unknown"]


class SynthesisInputError(DragomanError):
    """Text or parameters that cannot be synthesized: empty text, absurd rate, bad voice."""

    code = "bad_synthesis_input"


@dataclass(frozen=True, slots=True)
class Voice:
    """One voice of one backend for one language.

    `pitch_hz` is the voice's nominal median F0 (its register), used to pick the
    voice closest to a speaker.
    """

    name: str
    backend: str
    language: str
    gender: Gender
    pitch_hz: float
    neural: bool


class SynthesisBackend(Protocol):
    """What every TTS backend offers. Loading happens in `start()`, never `__init__`."""

    name: str
    neural: bool

    def start(self) -> None:
        """Load the model / library (idempotent)."""

    def close(self) -> None:
        """Release what `start()` acquired (idempotent)."""

    def available(self) -> bool:
        """True when this backend's runtime and weights are installed (no loading)."""

    def languages(self) -> frozenset[str]:
        """Canonical language codes this backend can speak."""

    def voices(self, language: str) -> tuple[Voice, ...]:
        """Voices for a canonical language code (empty when unsupported)."""

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        """Speak `text` with `voice`, yielding *unmarked* PCM pieces at `OUTPUT_RATE`.

        Internal to `dragoman.tts`: only `Synthesizer` may call it, and it marks
        everything before it leaves.
        """


def speakable(text: str) -> bool:
    """Whether `text` holds a letter or a digit: punctuation alone has nothing to say."""
    return any(ch.isalnum() for ch in text)


def check_text(text: str) -> str:
    """The stripped text, or `SynthesisInputError` if there is nothing speakable."""
    if not isinstance(text, str):
        raise SynthesisInputError(f"text must be a string, got {type(text).__name__}")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise SynthesisInputError("text to synthesize is empty")
    if not speakable(cleaned):
        raise SynthesisInputError(f"text to synthesize has no letters or digits: {text!r}")
    if len(cleaned) > MAX_TEXT_CHARS:
        raise SynthesisInputError(
            f"phrase of {len(cleaned)} characters is longer than {MAX_TEXT_CHARS}; split it"
        )
    return cleaned


def check_rate(rate: float) -> float:
    """`rate` as a float, or `SynthesisInputError` outside [MIN_RATE, MAX_RATE]."""
    value = float(rate)
    if not math.isfinite(value) or not MIN_RATE <= value <= MAX_RATE:
        raise SynthesisInputError(
            f"speaking rate {rate!r} is outside [{MIN_RATE}, {MAX_RATE}] (1.0 = normal)"
        )
    return value
