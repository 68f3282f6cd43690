"""Streaming recognition with the real Whisper base model on real human speech."""

from __future__ import annotations

from typing import Any

import jiwer
import numpy as np
import pytest

from dragoman.asr import RecognizerConfig, StreamingRecognizer, run_offline
from dragoman.errors import AudioError, UnsupportedLanguageError
from dragoman.events import SAMPLE_RATE, SourceText, SpeechEnded, SpeechStarted, Word, join_words
from dragoman.textnorm import normalize_text

PROMPTS = [
    "confbridge-rest-list-vol-in",
    "vm-tempremoved",
    "confbridge-conf-begin",
    "tt-monkeysintro",
    "vm-prev",
    "vm-undelete",
    "conf-noempty",
    "agent-user",
    "vm-passchanged",
    "demo-enterkeywords",
]
# Streaming WER measured on these ten prompts (Whisper base, int8, greedy):
# en 0.04, es 0.13, fr 0.19 (bench/asr.py has the full-corpus numbers). The
# thresholds leave room for run-to-run variation, not for regressions.
MAX_WER = {"en": 0.12, "es": 0.25, "fr": 0.3}


def stream_words(
    recognizer: StreamingRecognizer, audio: Any
) -> tuple[list[Word], list[SourceText]]:
    committed: list[Word] = []
    updates: list[SourceText] = []
    for item in run_offline(recognizer, audio):
        if isinstance(item.event, SourceText):
            updates.append(item.event)
            committed += item.event.committed
    return committed, updates


@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_streaming_wer_on_real_speech(whisper: Any, speech: Any, language: str) -> None:
    prompts, audio = speech.stream(language, PROMPTS)
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language=language))
    committed, updates = stream_words(recognizer, audio)

    reference = normalize_text(" ".join(p.text for p in prompts))
    hypothesis = normalize_text(join_words(committed))
    error = jiwer.wer(reference, hypothesis)
    assert error <= MAX_WER[language], f"WER {error:.3f}: {hypothesis!r}"
    # Interim updates happened (it streams, not just one decode per utterance) ...
    assert any(not u.final for u in updates)
    # ... and committed words are final: a delta each time, in time order, never repeated.
    starts = [w.start for w in committed]
    assert starts == sorted(starts)
    pairs = zip(committed, committed[1:], strict=False)
    assert all(a.end <= b.start + SAMPLE_RATE // 10 for a, b in pairs)
    # Every utterance ends with a final update, after which it gets nothing more.
    finals = [u.utterance for u in updates if u.final]
    assert len(finals) == len(set(finals)) >= len(PROMPTS) - 1
    for index, update in enumerate(updates):
        if update.final:
            assert not update.tentative
            assert all(later.utterance != update.utterance for later in updates[index + 1 :])


def test_tentative_words_become_committed_without_changing(whisper: Any, speech: Any) -> None:
    _, audio = speech.clip("en", "demo-enterkeywords")
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language="en"))
    committed, updates = stream_words(recognizer, np.concatenate([audio, speech.silence(1)]))
    interim = [u for u in updates if not u.final]
    assert len(interim) >= 2, "a 6 s sentence must be re-decoded while it is spoken"
    final_text = [w.text for w in committed]
    seen: list[str] = []
    for update in updates:  # the committed text so far is always a prefix of the final text
        seen += [w.text for w in update.committed]
        assert final_text[: len(seen)] == seen


def test_detects_language_per_utterance(whisper: Any, speech: Any) -> None:
    _, spanish = speech.clip("es", "demo-enterkeywords")
    _, french = speech.clip("fr", "demo-enterkeywords")
    audio = np.concatenate([spanish, speech.silence(1.0), french, speech.silence(1.0)])
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language=None))
    _, updates = stream_words(recognizer, audio)
    finals = [u for u in updates if u.final]
    assert [u.language for u in finals] == ["es", "fr"]
    assert all(0.5 < u.language_probability <= 1.0 for u in finals)


def _tone(seconds: float) -> Any:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    melody = np.sin(2 * np.pi * (440 + 110 * np.floor(t * 2) % 330) * t)  # music-like steps
    return (0.3 * melody * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("kind", ["silence", "white_noise", "tone"])
def test_no_words_without_speech(whisper: Any, speech: Any, kind: str) -> None:
    rng = np.random.default_rng(7)
    signal = {
        "silence": speech.silence(6.0),
        "white_noise": (0.05 * rng.standard_normal(6 * SAMPLE_RATE)).astype(np.float32),
        "tone": _tone(6.0),
    }[kind]
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language="en"))
    committed, updates = stream_words(recognizer, signal)
    assert committed == [], join_words(committed)
    if kind == "silence":
        assert recognizer.decodes == 0 and updates == []


def test_unknown_language_is_rejected(whisper: Any) -> None:
    with pytest.raises(UnsupportedLanguageError, match="xx"):
        StreamingRecognizer(whisper, RecognizerConfig(language="xx"))
    with pytest.raises(UnsupportedLanguageError):  # a real language Whisper cannot hear
        StreamingRecognizer(whisper, RecognizerConfig(language="ig"))


def test_bad_chunk_is_rejected_and_stream_continues(whisper: Any, speech: Any) -> None:
    _, audio = speech.clip("en", "vm-passchanged")
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language="en"))
    recognizer.start()
    half = audio.size // 2
    recognizer.feed(audio[:half])
    broken = audio[half : half + 800].copy()
    broken[5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        recognizer.feed(broken)
    recognizer.feed(audio[half:])
    recognizer.feed(speech.silence(1.0))
    events = recognizer.events() + recognizer.finish()
    words = [w for e in events if isinstance(e, SourceText) for w in e.committed]
    assert "changed" in normalize_text(join_words(words))
    kinds = [type(e) for e in events]
    assert kinds.count(SpeechStarted) == kinds.count(SpeechEnded) == 1
