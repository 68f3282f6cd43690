"""The asyncio recognition stream: real-time pacing, backpressure, errors, close."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from dragoman.asr import RecognizerConfig, RecognizeStream, StreamingRecognizer, run_realtime
from dragoman.errors import AudioError, BackendError, DragomanError
from dragoman.events import Error, SourceText, SpeechEnded, join_words
from dragoman.textnorm import normalize_text


async def test_realtime_run_commits_soon_after_speech(whisper: Any, speech: Any) -> None:
    _, clip = speech.clip("en", "vm-passchanged")
    audio = np.concatenate([speech.silence(0.5), clip, speech.silence(1.5)])
    recognizer = StreamingRecognizer(whisper, RecognizerConfig(language="en"))
    items = [item async for item in run_realtime(recognizer, audio)]
    committed = [w for i in items if isinstance(i.event, SourceText) for w in i.event.committed]
    assert normalize_text(join_words(committed)) == "your passwords have been changed"
    # Paced at real time, no event comes before the audio it describes was fed, and
    # the utterance's end arrives promptly after the speech ends.
    for item in items:
        if isinstance(item.event, SourceText):
            assert all(item.emitted_at >= w.end / 16000 for w in item.event.committed)
    last = items[-1]
    assert isinstance(last.event, SpeechEnded)
    assert last.event.at / 16000 <= last.emitted_at < last.event.at / 16000 + 3.0


class BrokenTranscriber:
    """A stand-in transcriber that fails: the stage's error path, not a model test."""

    def supports(self, language: str) -> bool:
        return True

    def transcribe(
        self, audio: Any, *, language: str | None, word_times: bool = True,
        retry_loops: bool = True,
    ) -> Any:
        raise BackendError("decoder exploded")


async def test_backend_failure_becomes_an_error_event(speech: Any) -> None:
    _, clip = speech.clip("en", "vm-passchanged")
    stream = RecognizeStream(StreamingRecognizer(BrokenTranscriber(), RecognizerConfig("en")))  # type: ignore[arg-type]
    await stream.push_audio(clip)
    await stream.push_audio(speech.silence(1.0))
    await stream.end_input()
    events = [e async for e in stream]
    assert isinstance(events[-1], Error) and events[-1].code == "backend_failed"
    assert events[-1].retryable


class CrashingTranscriber(BrokenTranscriber):
    """A stand-in transcriber with a bug (not a model test): a TypeError, not a
    DragomanError."""

    def transcribe(
        self, audio: Any, *, language: str | None, word_times: bool = True,
        retry_loops: bool = True,
    ) -> Any:
        raise TypeError("unsupported operand type(s)")


async def test_a_crashed_recognizer_never_blocks_the_producer(speech: Any) -> None:
    """A bug in recognition used to leave `push_audio` waiting forever on the full input
    queue (the pipeline's feeder hung in bench/e2e.py): now the stream ends with an
    Error event and later pushes fail at once."""
    _, clip = speech.clip("en", "vm-passchanged")
    recognizer = StreamingRecognizer(CrashingTranscriber(), RecognizerConfig("en"))  # type: ignore[arg-type]
    stream = RecognizeStream(recognizer, max_pending_chunks=4)
    chunks = np.array_split(np.concatenate([clip, speech.silence(1.0)]), 200)

    async def produce() -> int:
        pushed = 0
        with pytest.raises(DragomanError, match="stopped"):
            for chunk in chunks:
                await stream.push_audio(chunk)
                pushed += 1
        return pushed

    producer = asyncio.create_task(produce())
    events = [e async for e in stream]
    pushed = await asyncio.wait_for(producer, 30)
    assert pushed < len(chunks)
    assert isinstance(events[-1], Error) and events[-1].code == "internal"
    assert "unsupported operand" in events[-1].message


async def test_bad_audio_is_refused_at_push(whisper: Any) -> None:
    stream = RecognizeStream(StreamingRecognizer(whisper, RecognizerConfig("en")))
    with pytest.raises(AudioError):
        await stream.push_audio(np.full(160, np.nan, dtype=np.float32))
    await stream.end_input()
    assert [e async for e in stream] == []


async def test_aclose_stops_promptly(whisper: Any, speech: Any) -> None:
    _, clip = speech.clip("en", "demo-enterkeywords")
    stream = RecognizeStream(StreamingRecognizer(whisper, RecognizerConfig("en")))
    for start in range(0, clip.size, 320):
        await stream.push_audio(clip[start : start + 320])
    await asyncio.wait_for(stream.aclose(), 10)
    with pytest.raises(Exception, match="after end_input"):
        await stream.push_audio(clip[:320])
