from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dragoman.errors import AudioError, DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    ManualClock,
    SourceText,
    Span,
    Word,
    event_to_dict,
    join_words,
    to_samples,
    to_seconds,
)


def test_time_base() -> None:
    assert SAMPLE_RATE == 16_000
    assert to_samples(1.5) == 24_000 and to_seconds(8_000) == 0.5
    assert Span(10, 30).duration == 20
    with pytest.raises(ValueError):
        Span(30, 10)


def test_manual_clock() -> None:
    clock = ManualClock()
    clock.advance(0.25)
    assert clock.now() == 0.25
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_events_are_frozen_and_serializable() -> None:
    word = Word(" Hola", 0, 8000, 0.9)
    update = SourceText(0, "es", (word,), (Word(" mundo", 8000, 16000, 0.5),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        update.language = "fr"  # type: ignore[misc]
    record = event_to_dict(update)
    assert record["type"] == "SourceText"
    assert record["committed"] == [{"text": "Hola", "start": 0, "end": 8000, "probability": 0.9}]
    chunk = AudioChunk("fr", np.zeros(480, np.float32), 24_000, 0, Span(0, 16000))
    assert event_to_dict(chunk)["samples"] == 480
    assert join_words([word, Word(" mundo", 1, 2)]) == "Hola mundo"


def test_errors_become_events() -> None:
    event = AudioError("audio contains 3 NaN samples").to_event()
    assert (event.code, event.retryable) == ("bad_audio", False)
    assert DragomanError("x", retryable=True).retryable
