"""What the system can do per language: hear (ASR), translate, speak (TTS).

`language_support()` feeds `dragoman languages` and docs/languages.md. Hearing is
Whisper's language list (from faster-whisper). Translation belongs to another stage,
which this package must not import: the caller passes `translatable`, a function
returning the codes the installed translation backends handle (None = unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dragoman.errors import UnsupportedLanguageError
from dragoman.languages import all_languages, normalize_language
from dragoman.tts.routing import Router


@dataclass(frozen=True, slots=True)
class LanguageSupport:
    """One row of the capability table. `speak` is "neural", "formant" or ""."""

    code: str
    name: str
    hear: bool
    translate: bool | None
    speak: str
    speak_backend: str

    @property
    def end_to_end(self) -> bool:
        """Heard, translatable (or unknown) and spoken."""
        return self.hear and self.translate is not False and bool(self.speak)


def whisper_languages() -> frozenset[str]:
    """Canonical codes of the languages Whisper recognizes."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    codes: set[str] = set()
    for code in _LANGUAGE_CODES:
        try:
            codes.add(normalize_language(code))
        except UnsupportedLanguageError:
            continue
    return frozenset(codes)


def language_support(
    router: Router,
    translatable: Callable[[], Iterable[str]] | None = None,
) -> tuple[LanguageSupport, ...]:
    """A row per language of `dragoman.languages.all_languages()`."""
    hear = whisper_languages()
    translate = frozenset(translatable()) if translatable is not None else None
    coverage = router.coverage()
    neural = {b.name for b in router.backends if b.neural}
    rows = []
    for lang in all_languages():
        backend = coverage.get(lang.code, "")
        speak = ("neural" if backend in neural else "formant") if backend else ""
        rows.append(LanguageSupport(
            code=lang.code,
            name=lang.name,
            hear=lang.code in hear,
            translate=None if translate is None else lang.code in translate,
            speak=speak,
            speak_backend=backend,
        ))
    return tuple(rows)
