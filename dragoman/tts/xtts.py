"""coqui-tts XTTS-v2: voice-cloning TTS in 17 languages, for GPU deployments.

Optional (`pip install 'dragoman[xtts]'` on a machine with CUDA torch/torchaudio; the
weights come from the hub at load time). It cannot run on the CPU-only development
machine: coqui-tts 0.28 does not import without a CPU torchaudio. So this adapter is
kept small; what runs here is tested (language table, availability check, errors).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dragoman.audio import resample
from dragoman.errors import BackendError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.events import FloatAudio
from dragoman.languages import normalize_language
from dragoman.tts.base import OUTPUT_RATE, Voice, check_rate, check_text

logger = logging.getLogger(__name__)

XTTS_LANGUAGES: dict[str, str] = {
    "en": "en", "es": "es", "fr": "fr", "de": "de", "it": "it", "pt": "pt", "pl": "pl",
    "tr": "tr", "ru": "ru", "nl": "nl", "cs": "cs", "ar": "ar", "zh": "zh-cn", "ja": "ja",
    "hu": "hu", "ko": "ko", "hi": "hi",
}
"""Canonical code -> XTTS-v2 language id (its 17 languages)."""
XTTS_RATE = 24_000
MODEL_NAME = "tts_models/multilingual/multi-dataset/xtts_v2"


@dataclass(frozen=True, slots=True)
class XttsConfig:
    """`speaker_wav`: reference audio for cloning (else XTTS's built-in `speaker`)."""

    speaker_wav: str | None = None
    speaker: str = "Ana Florence"
    device: str = "cuda"


class XttsBackend:
    """Adapter over `TTS.api.TTS` (coqui-tts)."""

    name = "xtts"
    neural = True

    def __init__(self, config: XttsConfig | None = None) -> None:
        self.config = config or XttsConfig()
        self._tts: Any = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        return importlib.util.find_spec("TTS") is not None

    def start(self) -> None:
        with self._lock:
            if self._tts is not None:
                return
            try:
                from TTS.api import TTS
            except Exception as exc:  # ImportError, or torchaudio's OSError on CPU builds
                raise ModelNotFoundError(
                    f"XTTS-v2 needs coqui-tts with torch and torchaudio (GPU): {exc}"
                ) from exc
            self._tts = TTS(MODEL_NAME).to(self.config.device)

    def close(self) -> None:
        with self._lock:
            self._tts = None

    def languages(self) -> frozenset[str]:
        return frozenset(XTTS_LANGUAGES)

    def voices(self, language: str) -> tuple[Voice, ...]:
        code = normalize_language(language)
        if code not in XTTS_LANGUAGES:
            return ()
        name = "clone" if self.config.speaker_wav else self.config.speaker
        return (Voice(name, self.name, code, "unknown", 160.0, neural=True),)

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        cleaned = check_text(text)
        speed = check_rate(rate)
        if voice.language not in XTTS_LANGUAGES:
            raise UnsupportedLanguageError(f"XTTS-v2 cannot speak {voice.language!r}")
        if self._tts is None:
            self.start()
        options: dict[str, Any] = {"language": XTTS_LANGUAGES[voice.language], "speed": speed}
        if self.config.speaker_wav:
            options["speaker_wav"] = self.config.speaker_wav
        else:
            options["speaker"] = self.config.speaker
        try:
            wav = self._tts.tts(text=cleaned, **options)
        except Exception as exc:  # torch raises many types
            raise BackendError(f"XTTS-v2 synthesis failed: {exc}") from exc
        yield resample(np.asarray(wav, dtype=np.float32), XTTS_RATE, OUTPUT_RATE)
