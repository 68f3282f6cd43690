"""One target lane driven directly: its speech backlog (real espeak-ng voice, source
already in the target language, so no translation engine is involved)."""

from __future__ import annotations

import asyncio

from dragoman.events import SAMPLE_RATE, AudioChunk, Error, Event, Span
from dragoman.pipeline.lane import SourceState, TargetLane
from dragoman.pipeline.resources import Resources
from dragoman.pipeline.source_audio import SourceAudio
from dragoman.translate import CanvasConfig
from dragoman.tts import SynthesisConfig
from dragoman.watermark import WatermarkKey

S = SAMPLE_RATE


def test_an_utterance_that_ends_without_new_words_leaves_no_backlog() -> None:
    """The end of an utterance (its last update adds no word, or only the "?" of a
    question) used to stay "unheard" forever: the pause before the next utterance then
    counted as backlog, and after 9 s of silence the next sentence came faster, in the
    stand-in voice; the lone "?" also reached clients as an Error."""

    async def run() -> tuple[list[Event], bool, float]:
        resources = Resources(watermark_key=WatermarkKey.from_passphrase("lane tests"))
        events: list[Event] = []
        failures: list[BaseException] = []

        async def emit(event: Event) -> None:
            events.append(event)

        lane = TargetLane("es", resources, SourceAudio(), emit, failures.append,
                          canvas=CanvasConfig(),
                          synthesis=SynthesisConfig("es", backend="espeak-ng"))
        await lane.start()

        async def spoken(after: int) -> None:
            for _ in range(300):
                if any(isinstance(e, AudioChunk) and e.source_span.start >= after
                       for e in events):
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("nothing was spoken")

        lane.offer(SourceState(0, "es", "¿Dónde está la sala", "", False, Span(0, S)))
        await spoken(0)  # (offered together, the two updates would be coalesced)
        lane.offer(SourceState(0, "es", "¿Dónde está la sala ?", "", True, Span(0, 2 * S)))
        await asyncio.sleep(0.5)  # the "?" and the end are through the lane
        lane.offer(SourceState(1, "es", "Buenos días", "", True, Span(10 * S, 11 * S)))
        await spoken(10 * S)
        fast, rate = lane.fast_voice, lane.speech_rate
        await lane.close()
        assert not failures
        return events, fast, rate

    events, fast, rate = asyncio.run(run())
    assert [e for e in events if isinstance(e, Error)] == []
    assert not fast and rate == 1.0
