"""Drive a recognizer over a whole signal: as fast as possible, or paced at real time.

Each event comes back with `emitted_at`, the stream time in seconds at which it
was available: the audio position fed so far when running as fast as possible,
or the wall time since the start when paced at real time (so compute time
counts, as a live listener would experience it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from dragoman.asr.recognizer import StreamingRecognizer
from dragoman.asr.stream import RecognizeStream
from dragoman.audio import check_audio, frames
from dragoman.events import SAMPLE_RATE, FloatAudio, SourceEvent, to_seconds
from dragoman.pacing import feed


@dataclass(frozen=True, slots=True)
class TimedEvent:
    event: SourceEvent
    emitted_at: float
    """Stream seconds at which the event was available."""


def run_offline(
    recognizer: StreamingRecognizer, audio: FloatAudio, *, chunk_ms: int = 100
) -> Iterator[TimedEvent]:
    """Feed `audio` in chunks without waiting; yield events as they appear."""
    samples = check_audio(audio)
    recognizer.start()
    for chunk in frames(samples, chunk_ms * SAMPLE_RATE // 1000):
        recognizer.feed(chunk)
        now = to_seconds(recognizer.position)
        for event in recognizer.events():
            yield TimedEvent(event, now)
    now = to_seconds(recognizer.position)
    for event in recognizer.finish():
        yield TimedEvent(event, now)


async def run_realtime(
    recognizer: StreamingRecognizer, audio: FloatAudio, *, chunk_ms: int = 20
) -> AsyncIterator[TimedEvent]:
    """Push `audio` at real-time pace (like a microphone); yield events as they appear."""
    samples = check_audio(audio)
    await asyncio.to_thread(recognizer.start)
    stream = RecognizeStream(recognizer)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def pace() -> None:
        await feed(stream.push_audio, samples, chunk_ms=chunk_ms)
        await stream.end_input()

    feeder = asyncio.create_task(pace(), name="dragoman-pace")
    try:
        async for event in stream:
            yield TimedEvent(event, loop.time() - start)
        await feeder
    finally:
        feeder.cancel()
        await stream.aclose()
