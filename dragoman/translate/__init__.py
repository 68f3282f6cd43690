"""Translation stage: the canvas revision engine and its backends.

>>> from dragoman.translate import CanvasConfig, CanvasEngine, create_backend
>>> backend = create_backend("apertium"); backend.start()           # doctest: +SKIP
>>> engine = CanvasEngine(backend, "es", "fr", CanvasConfig())       # doctest: +SKIP
>>> engine.update(committed_source="Quiero", tentative_source="reservar")  # doctest: +SKIP
"""

from dragoman.translate.base import (
    FillRequest,
    ScoreRequest,
    TranslationBackend,
    TranslationInputError,
)
from dragoman.translate.canvas import CanvasConfig, CanvasEngine, CanvasUpdate
from dragoman.translate.registry import (
    BACKENDS,
    available_pairs,
    backend_for_pair,
    can_translate,
    create_backend,
)
from dragoman.translate.text import translate_text

__all__ = [
    "BACKENDS",
    "CanvasConfig",
    "CanvasEngine",
    "CanvasUpdate",
    "FillRequest",
    "ScoreRequest",
    "TranslationBackend",
    "TranslationInputError",
    "available_pairs",
    "backend_for_pair",
    "can_translate",
    "create_backend",
    "translate_text",
]
