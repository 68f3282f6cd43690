"""The explicit backend registry and language-pair routing.

Backends are listed here by name (no registration by import side effect); each
entry is a factory that imports its heavy runtime only when called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dragoman.errors import DragomanError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.languages import normalize_language
from dragoman.translate.base import TranslationBackend

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "nllb-200-distilled-600M"
NEURAL_MODELS = (
    ("nllb-200-distilled-600M-hf", "torch"),
    ("nllb-200-distilled-600M", "ctranslate2"),
    ("nllb-200-distilled-1.3B", "ctranslate2"),
    ("nllb-200-3.3B", "ctranslate2"),
    ("m2m100_418M", "ctranslate2"),
    ("m2m100_1.2B", "ctranslate2"),
)
"""Installed neural models in order of preference, with the backend that runs each: the
parallel-prefix `torch` backend first (its updates cost a fraction of CTranslate2's,
docs/translation.md), when its checkpoint is installed."""


def _ctranslate2(**options: Any) -> TranslationBackend:
    from dragoman.translate.ct2_backend import CTranslate2Backend

    return CTranslate2Backend(**options)


def _diffusion(**options: Any) -> TranslationBackend:
    from dragoman.translate.diffusion import DiffusionBackend

    return DiffusionBackend(**options)


def _torch(**options: Any) -> TranslationBackend:
    from dragoman.translate.torch_backend import TorchSeq2SeqBackend

    return TorchSeq2SeqBackend(**options)


def _apertium(**options: Any) -> TranslationBackend:
    from dragoman.translate.apertium import ApertiumBackend

    return ApertiumBackend(**options)


BACKENDS: dict[str, Callable[..., TranslationBackend]] = {
    "ctranslate2": _ctranslate2,
    "torch": _torch,
    "diffusion": _diffusion,
    "apertium": _apertium,
}
"""Every translation backend by name. `create_backend` looks names up here."""


def create_backend(name: str, **options: Any) -> TranslationBackend:
    """A backend by registry name, not yet started (call `start()` to load it)."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise DragomanError(f"unknown translation backend {name!r}; known: {known}") from None
    return factory(**options)


def installed_neural_model() -> tuple[str, str] | None:
    """(model, backend) of the first NLLB/M2M100 model whose weights are on this
    machine (no download)."""
    from dragoman.models import ModelStore

    store = ModelStore()
    for name, backend in NEURAL_MODELS:
        if name in store.catalogue and store.find(name) is not None:
            return name, backend
    return None


def _neural_codes(model: str, backend: str) -> frozenset[str]:
    if backend == "torch":
        from dragoman.translate.torch_backend import checkpoint_language_codes

        return checkpoint_language_codes(model)
    from dragoman.translate.ct2_backend import model_language_codes

    return model_language_codes(model)


def _apertium_pairs() -> set[tuple[str, str]]:
    from dragoman.translate.apertium import installed_pairs

    return set(installed_pairs())


def available_pairs() -> dict[tuple[str, str], str]:
    """Every direct pair translatable here -> the backend that would serve it.

    Apertium pairs are listed explicitly; an installed NLLB/M2M100 model serves any
    pair of its languages (listed only through `can_translate`, since 200 languages
    make 40,000 pairs).
    """
    return {pair: "apertium" for pair in sorted(_apertium_pairs())}


def _route(source_lang: str, target_lang: str) -> tuple[str, str | None] | None:
    """(backend name, neural model or None) for a direct pair here, or None."""
    src, tgt = normalize_language(source_lang), normalize_language(target_lang)
    if src == tgt:
        return None
    installed = installed_neural_model()
    if installed is not None and {src, tgt} <= _neural_codes(*installed):
        return installed[1], installed[0]
    if (src, tgt) in _apertium_pairs():
        return "apertium", None
    return None


def can_translate(source_lang: str, target_lang: str) -> str | None:
    """The backend name that would translate this direct pair here, or None.

    Prefers an installed neural model (NLLB-200 / M2M100, `NEURAL_MODELS` order), then
    Apertium.
    """
    route = _route(source_lang, target_lang)
    return route[0] if route is not None else None


def backend_for_pair(source_lang: str, target_lang: str) -> TranslationBackend:
    """A (not yet started) backend for a pair, or a clear error naming the fix."""
    route = _route(source_lang, target_lang)
    if route is not None:
        name, model = route
        return create_backend(name, model=model) if model is not None else create_backend(name)
    src, tgt = normalize_language(source_lang), normalize_language(target_lang)
    if src == tgt:
        raise UnsupportedLanguageError(f"source and target are both {src!r}")
    raise ModelNotFoundError(
        f"nothing here translates {src}->{tgt}: run `dragoman models pull {DEFAULT_MODEL}` "
        f"(NLLB-200, 200 languages), or install an Apertium pair "
        f"(apt-get install apertium-{src}-{tgt}) if one exists"
    )
