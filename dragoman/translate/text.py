"""Whole-text translation through the canvas (one final update per text)."""

from __future__ import annotations

from dragoman.translate.base import TranslationBackend, TranslationInputError
from dragoman.translate.canvas import CanvasConfig, CanvasEngine


def translate_text(
    backend: TranslationBackend,
    text: str,
    source_lang: str,
    target_lang: str,
    config: CanvasConfig | None = None,
) -> str:
    """Translate a complete text (split into canvas-sized segments when long)."""
    if not isinstance(text, str) or not text.strip():
        raise TranslationInputError("nothing to translate: the source text is empty")
    engine = CanvasEngine(backend, source_lang, target_lang, config)
    return engine.finish(text).committed_text
