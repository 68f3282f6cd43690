"""Heavy, shareable parts: one set per process, used by every session.

Whisper, the translation backends and the TTS voices are loaded once and shared;
each session only holds its own small streaming state. CTranslate2 and ONNX
Runtime models accept concurrent calls; Apertium pipelines serialize per pair.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from dragoman.asr import WhisperConfig, WhisperTranscriber
from dragoman.errors import UnsupportedLanguageError
from dragoman.runtime import prefer_passive_openmp
from dragoman.translate import (
    TranslationBackend,
    backend_for_pair,
    can_translate,
    create_backend,
)
from dragoman.tts import Router
from dragoman.watermark import WatermarkKey

logger = logging.getLogger(__name__)


class Resources:
    """Models shared by all sessions of a process. `start()` loads them."""

    def __init__(
        self,
        *,
        whisper: WhisperConfig | None = None,
        watermark_key: WatermarkKey | None = None,
        translation_backend: str | None = None,
        router: Router | None = None,
    ) -> None:
        """`translation_backend` forces a registry name (default: best for each pair)."""
        self.transcriber = WhisperTranscriber(whisper)
        self.router = router if router is not None else Router()
        self._key = watermark_key
        self._forced_backend = translation_backend
        self._translators: dict[str, TranslationBackend] = {}
        self._lock = threading.Lock()
        self._started = False

    @property
    def watermark_key(self) -> WatermarkKey:
        if self._key is None:
            self._key = WatermarkKey.load()
        return self._key

    async def start(self) -> None:
        """Load Whisper, the TTS backends and the watermark key, off the event loop."""
        if self._started:
            return
        await asyncio.to_thread(self._start_sync)
        self._started = True

    def _start_sync(self) -> None:
        prefer_passive_openmp()  # before the first native runtime loads
        self.transcriber.start()
        self.router.start()
        _ = self.watermark_key

    def translator(self, source: str, target: str) -> TranslationBackend:
        """A started backend for a direct pair, shared between sessions (blocking)."""
        name = self._forced_backend or can_translate(source, target)
        if name is None:
            backend_for_pair(source, target)  # raises the error that names the fix
            raise UnsupportedLanguageError(f"nothing here translates {source}->{target}")
        with self._lock:
            backend = self._translators.get(name)
            if backend is None:
                if self._forced_backend is not None:
                    backend = create_backend(name)
                else:
                    backend = backend_for_pair(source, target)
                backend.start()
                self._translators[name] = backend
        if not backend.supports(source, target):
            raise UnsupportedLanguageError(
                f"translation backend {name!r} cannot translate {source}->{target} directly"
            )
        return backend

    def close(self) -> None:
        with self._lock:
            for backend in self._translators.values():
                backend.close()
            self._translators.clear()
        self.router.close()
