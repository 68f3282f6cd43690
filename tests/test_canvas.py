"""The canvas engine driven by a real backend (Apertium processes, real Spanish prompts)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from dragoman.corpus import prompt, prompts
from dragoman.errors import UnsupportedLanguageError
from dragoman.translate import (
    CanvasConfig,
    CanvasEngine,
    FillRequest,
    ScoreRequest,
    TranslationInputError,
    translate_text,
)
from dragoman.translate.apertium import ApertiumBackend, pipeline_commands
from dragoman.translate.replay import replay_words


class RecordingBackend:
    """Not a fake: forwards every call to the real backend and records the languages."""

    def __init__(self, inner: ApertiumBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.has_scores = inner.has_scores
        self.max_source_tokens = inner.max_source_tokens
        self.calls: list[tuple[str, str, str]] = []
        self.outputs: list[str] = []

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def languages(self) -> tuple[str, ...]:
        return self.inner.languages()

    def supports(self, source_lang: str, target_lang: str) -> bool:
        return self.inner.supports(source_lang, target_lang)

    def tokenize(self, text: str, lang: str) -> tuple[str, ...]:
        return self.inner.tokenize(text, lang)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self.inner.detokenize(tokens)

    def is_word_start(self, token: str) -> bool:
        return self.inner.is_word_start(token)

    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        return self.inner.score(requests)

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        for r in requests:
            self.calls.append((r.source_lang, r.target_lang, r.source))
        out = self.inner.fill(requests)
        self.outputs.extend(" ".join(block) for block in out)
        return out


def _words(prompt_id: str) -> list[str]:
    return prompt("es", prompt_id).text.split()


def test_committed_text_only_grows_and_final_commits_everything(
    apertium: ApertiumBackend,
) -> None:
    for item in prompts("es")[:40]:
        engine = CanvasEngine(apertium, "es", "fr")
        steps = replay_words(engine, item.text.split())
        committed = ""
        for step in steps:
            assert step.update.committed_text == committed + step.update.committed_delta
            assert step.update.committed_text.startswith(committed)
            committed = step.update.committed_text
        last = steps[-1].update
        assert last.final and last.uncommitted == ""
        assert engine.committed_text == committed
        # Every word of the full-sentence translation's tail is in the committed text.
        full = apertium.translate(item.text, "es", "fr").split()
        assert committed.split()[-1] == full[-1]


def test_uncommitted_text_is_revised_when_later_source_changes_meaning(
    apertium: ApertiumBackend,
) -> None:
    # "Dos para ..." : Apertium reads "para" as the verb (stops) until "expulsar"
    # arrives and makes it the preposition (pour).
    words = _words("conf-adminmenu-162")
    cut = words.index("Dos") + 2  # "... Dos para"
    engine = CanvasEngine(apertium, "es", "fr")
    before = engine.update(" ".join(words[: cut - 2]), " ".join(words[cut - 2 : cut]))
    shown_before = before.committed_text + " " + before.uncommitted
    assert "arrête" in shown_before.split()[-2:]
    after = engine.update(" ".join(words[: cut - 2]), " ".join(words[cut - 2 : cut + 1]))
    assert "arrête" not in after.uncommitted.split()
    assert "pour" in after.uncommitted.split()
    assert after.erased_words >= 1
    assert after.committed_text.startswith(before.committed_text)


def test_lag_bound_forces_commits(apertium: ApertiumBackend) -> None:
    config = CanvasConfig(stability_updates=10_000, max_uncommitted_words=3)
    engine = CanvasEngine(apertium, "es", "fr", config)
    words = _words("conf-adminmenu-18")
    forced = 0
    for i in range(1, len(words) + 1):
        update = engine.update(" ".join(words[:i]))
        assert len(update.uncommitted.split()) <= 3
        forced += update.forced
    assert forced > 0 and len(engine.committed_text.split()) >= len(words) - 8
    # Without the bound (and never stable) nothing would have been committed.
    free = CanvasEngine(apertium, "es", "fr", CanvasConfig(stability_updates=10_000,
                                                           max_uncommitted_words=1000))
    for i in range(1, len(words) + 1):
        free.update(" ".join(words[:i]))
    assert free.committed_text == ""


def test_spanish_to_french_never_uses_english(apertium: ApertiumBackend) -> None:
    recorder = RecordingBackend(apertium)
    engine = CanvasEngine(recorder, "es", "fr")
    replay_words(engine, _words("conf-adminmenu-18"))
    assert recorder.calls and {(s, t) for s, t, _ in recorder.calls} == {("es", "fr")}
    pipe = apertium.pipeline("es", "fr")
    assert pipe.pair.mode.name == "es-fr.mode"
    for argv in pipeline_commands(pipe.pair.mode):
        for arg in argv[1:]:
            assert "-en" not in arg and "en-" not in arg and "eng" not in arg
    english = {"the", "and", "to", "of", "press", "please", "conference", "user"}
    produced = {w.lower().strip(".,") for out in recorder.outputs for w in out.split()}
    assert not produced & english
    assert {"conférence", "pour"} <= produced


def test_bad_input_is_a_clear_error(apertium: ApertiumBackend) -> None:
    with pytest.raises(UnsupportedLanguageError):
        CanvasEngine(apertium, "es", "klingon")
    with pytest.raises(UnsupportedLanguageError, match="cannot translate es->de"):
        CanvasEngine(apertium, "es", "de")
    with pytest.raises(UnsupportedLanguageError):
        CanvasEngine(apertium, "es", "spa")
    with pytest.raises(TranslationInputError):
        translate_text(apertium, "   ", "es", "fr")
    engine = CanvasEngine(apertium, "es-MX", "fra")
    empty = engine.update("", "")
    assert (empty.committed_delta, empty.uncommitted) == ("", "")
    engine.update("Gracias por", "su llamada")
    with pytest.raises(TranslationInputError, match="committed source text changed"):
        engine.update("Gracias a", "")
    engine.finish("Gracias por su llamada")
    with pytest.raises(TranslationInputError):
        engine.update("Gracias por su llamada y", "")


def test_source_beyond_the_canvas_is_split_not_hung(apertium: ApertiumBackend) -> None:
    text = " ".join(p.text for p in prompts("es")[:60])
    assert len(text.split()) > 500
    config = CanvasConfig(max_source_words=40)
    started = time.monotonic()
    out = translate_text(apertium, text, "es", "fr", config)
    assert time.monotonic() - started < 60
    # Every segment was translated: the output is about as long as the source.
    assert 0.7 < len(out.split()) / len(text.split()) < 1.5
    last_sentence = prompts("es")[59].text
    assert apertium.translate(last_sentence, "es", "fr").split()[-1] == out.split()[-1]
    # Streaming the same long source keeps the block inside the canvas too.
    engine = CanvasEngine(apertium, "es", "fr", config)
    words = text.split()
    for i in range(1, len(words) + 1, 7):
        update = engine.update(" ".join(words[:i]))
        assert len(update.uncommitted.split()) <= config.max_uncommitted_words
    assert len(engine.committed_text.split()) > 400
