"""The Apertium backend on the real engine: persistent null-flush pipelines."""

from __future__ import annotations

import os
import signal

import pytest

from dragoman.corpus import prompt, prompts
from dragoman.translate import CanvasEngine, can_translate
from dragoman.translate.apertium import ApertiumBackend, deformat, installed_pairs, reformat
from dragoman.translate.replay import replay_words


def test_installed_pairs_are_direct_and_routed() -> None:
    pairs = installed_pairs()
    for pair in [("es", "fr"), ("fr", "es"), ("es", "pt"), ("es", "ca"), ("es", "it")]:
        assert pair in pairs
    assert ("es", "en") not in pairs
    assert can_translate("spa", "fr-FR") in {"apertium", "ctranslate2"}
    assert can_translate("es", "es") is None


@pytest.mark.parametrize(
    ("source", "target", "prompt_id", "expected"),
    [
        ("es", "fr", "conf-adminmenu-18", {"conférence", "bloquer", "volume"}),
        ("es", "pt", "conf-adminmenu-18", {"conferência", "bloquear", "volume"}),
        ("es", "ca", "conf-adminmenu-18", {"conferència", "bloquejar", "volum"}),
        ("fr", "es", "conf-userwilljoin", {"conferencia", "usuario"}),
    ],
)
def test_real_sentences_translate_directly(
    apertium: ApertiumBackend, source: str, target: str, prompt_id: str, expected: set[str]
) -> None:
    text = prompt(source, prompt_id).text
    out = apertium.translate(text, source, target)
    words = {w.strip(".,").lower() for w in out.split()}
    assert expected <= words, out
    # The same through the streaming canvas ends with the same last word.
    engine = CanvasEngine(apertium, source, target)
    final = replay_words(engine, text.split())[-1].update
    assert final.committed_text.split()[-1] == out.split()[-1]


def test_escaping_keeps_requests_apart(apertium: ApertiumBackend) -> None:
    assert reformat(deformat("a [b] \\c ^d$ @e/f <g>")[:-1]) == "a [b] \\c ^d$ @e/f <g>"
    odd = apertium.translate("el [coche] ^rojo$ a\\b {x} <y> @z", "es", "fr")
    assert "[voiture]" in odd
    assert apertium.translate("Gracias por su llamada", "es", "fr") == "Merci de son appel"


def test_pipeline_survives_1000_updates_and_restarts_when_killed(
    apertium: ApertiumBackend,
) -> None:
    pipe = apertium.pipeline("es", "pt")
    pipe.start()
    pids = pipe.pids
    texts = [p.text for p in prompts("es")[:50]]
    first = [apertium.translate(t, "es", "pt") for t in texts]
    for i in range(1000):
        out = apertium.translate(texts[i % 50], "es", "pt")
        assert out == first[i % 50]
    assert pipe.pids == pids and pipe.restarts == 0
    os.kill(pids[len(pids) // 2], signal.SIGKILL)
    again = apertium.translate(texts[3], "es", "pt")
    assert again == first[3]
    assert pipe.restarts == 1 and set(pipe.pids).isdisjoint(pids)
