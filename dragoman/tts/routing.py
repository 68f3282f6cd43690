"""Language routing: per target language, the best installed backend and voice.

Backends are tried in the router's order (default: XTTS-v2 when explicitly enabled,
then Kokoro, then espeak-ng); the first that speaks the language wins. The voice is
the backend's voice closest to the speaker's register (median F0), among its voices
in quality order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dragoman.errors import DragomanError, UnsupportedLanguageError
from dragoman.languages import language as language_record
from dragoman.tts.base import SynthesisBackend, SynthesisInputError, Voice
from dragoman.tts.espeak import EspeakBackend
from dragoman.tts.kokoro import KokoroBackend

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """Where one language's speech comes from."""

    language: str
    backend: str
    voice: Voice

    @property
    def neural(self) -> bool:
        return self.voice.neural


def default_backends() -> list[SynthesisBackend]:
    """Kokoro (neural) then espeak-ng (formant). XTTS is opt-in: `XttsBackend()`."""
    return [KokoroBackend(), EspeakBackend()]


def closest_voice(voices: Sequence[Voice], speaker_hz: float | None) -> Voice:
    """The voice nearest the speaker's register; ties keep the quality order."""
    if not voices:
        raise UnsupportedLanguageError("no voices to choose from")
    if speaker_hz is None or not math.isfinite(speaker_hz) or speaker_hz <= 0:
        return voices[0]
    return min(voices, key=lambda v: abs(math.log2(v.pitch_hz / speaker_hz)))


class Router:
    """Chooses a backend and voice per language among installed backends."""

    def __init__(self, backends: Sequence[SynthesisBackend] | None = None) -> None:
        self._backends = list(backends) if backends is not None else default_backends()
        self._started: list[SynthesisBackend] = []

    def start(self) -> None:
        """Start every backend that is installed; skip (and log) the others."""
        if self._started:
            return
        for backend in self._backends:
            if not backend.available():
                logger.info("TTS backend %s is not installed; skipped", backend.name)
                continue
            try:
                backend.start()
            except DragomanError as exc:
                logger.warning("TTS backend %s failed to start: %s", backend.name, exc.message)
                continue
            self._started.append(backend)
        if not self._started:
            raise UnsupportedLanguageError(
                "no speech synthesis backend is installed: pip install 'dragoman[tts]'"
            )

    def close(self) -> None:
        for backend in self._started:
            backend.close()
        self._started = []

    @property
    def backends(self) -> tuple[SynthesisBackend, ...]:
        if not self._started:
            self.start()
        return tuple(self._started)

    def backend(self, name: str) -> SynthesisBackend:
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise UnsupportedLanguageError(f"TTS backend {name!r} is not installed")

    def speakers(self, language: str) -> tuple[SynthesisBackend, ...]:
        """Backends that speak `language`, best first."""
        code = language_record(language).code
        return tuple(b for b in self.backends if code in b.languages())

    def coverage(self) -> dict[str, str]:
        """Canonical code -> name of the backend that would speak it."""
        table: dict[str, str] = {}
        for backend in self.backends:
            for code in backend.languages():
                table.setdefault(code, backend.name)
        return table

    def route(
        self,
        language: str,
        *,
        speaker_hz: float | None = None,
        backend: str | None = None,
        voice: str | None = None,
    ) -> Route:
        """The route for `language`; `UnsupportedLanguageError` if nothing speaks it."""
        code = language_record(language).code
        candidates = (self.backend(backend),) if backend else self.speakers(code)
        for candidate in candidates:
            voices = candidate.voices(code)
            if not voices:
                continue
            if voice is not None:
                named = [v for v in voices if v.name == voice]
                if not named:
                    names = ", ".join(v.name for v in voices)
                    raise SynthesisInputError(
                        f"{candidate.name} has no {code} voice {voice!r}; choose from {names}"
                    )
                return Route(code, candidate.name, named[0])
            return Route(code, candidate.name, closest_voice(voices, speaker_hz))
        where = f"backend {backend!r}" if backend else "any installed TTS backend"
        raise UnsupportedLanguageError(f"{where} cannot speak {code!r}")
