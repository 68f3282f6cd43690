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


async def spanish_lane(events: list[Event], failures: list[BaseException],
                       synthesis: SynthesisConfig) -> TargetLane:
    """A started Spanish lane whose events and failures land in the given lists."""
    resources = Resources(watermark_key=WatermarkKey.from_passphrase("lane tests"))

    async def emit(event: Event) -> None:
        events.append(event)

    lane = TargetLane("es", resources, SourceAudio(), emit, failures.append,
                      canvas=CanvasConfig(), synthesis=synthesis)
    await lane.start()
    return lane


def test_an_utterance_that_ends_without_new_words_leaves_no_backlog() -> None:
    """The end of an utterance (its last update adds no word, or only the "?" of a
    question) used to stay "unheard" forever: the pause before the next utterance then
    counted as backlog, and after 9 s of silence the next sentence came faster, in the
    stand-in voice; the lone "?" also reached clients as an Error."""

    async def run() -> tuple[list[Event], bool, float]:
        events: list[Event] = []
        failures: list[BaseException] = []
        lane = await spanish_lane(events, failures, SynthesisConfig("es", backend="espeak-ng"))

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


def _backlog_run(catch_up_after_s: float | None) -> tuple[bool, float, int]:
    """Eight 2 s sentences offered at once, as a file fed faster than real time does:
    whether the lane ever switched to the fast voice, its highest rate, and how many
    sentences were spoken."""

    async def run() -> tuple[bool, float, int]:
        events: list[Event] = []
        failures: list[BaseException] = []
        lane = await spanish_lane(events, failures, SynthesisConfig(
            "es", backend="espeak-ng", catch_up_after_s=catch_up_after_s))
        fast, rate = False, 1.0

        async def watch() -> None:
            nonlocal fast, rate
            while True:
                fast, rate = fast or lane.fast_voice, max(rate, lane.speech_rate)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        for n in range(8):
            lane.offer(SourceState(n, "es", f"Esta es la frase número {n + 1}.", "", True,
                                   Span(2 * n * S, 2 * (n + 1) * S)))
        await lane.close()
        watcher.cancel()
        assert not failures
        spoken = {e.source_span.start // (2 * S) for e in events if isinstance(e, AudioChunk)}
        return fast, rate, len(spoken)

    return asyncio.run(run())


def test_a_live_backlog_speeds_speech_up_and_a_dub_keeps_the_pace() -> None:
    """A live listener far behind hears the backlog faster, in the cheap voice; a dub
    made faster than real time (no live listener: the CLI without --realtime) keeps the
    speaker's pace and voice for every sentence, and drops none."""
    live_fast, live_rate, live_spoken = _backlog_run(0.5)
    dub_fast, dub_rate, dub_spoken = _backlog_run(None)
    assert live_fast and live_rate > 1.0
    assert not dub_fast and dub_rate == 1.0
    assert live_spoken == dub_spoken == 8
