"""The whole speech-to-speech pipeline on real speech, with every real stage."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from watermark_check import assert_watermarked

from dragoman.captions import PreviewConfig
from dragoman.errors import AudioError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Error,
    Event,
    SourceText,
    TranslationText,
    join_words,
)
from dragoman.pacing import feed
from dragoman.pipeline import Pipeline, PipelineConfig, Resources
from dragoman.pipeline.output import DubTrack
from dragoman.textnorm import normalize_text
from dragoman.watermark import WatermarkKey

KEY = WatermarkKey.from_passphrase("pipeline tests")


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    shared = Resources(watermark_key=KEY)
    asyncio.run(shared.start())
    yield shared
    shared.close()


async def run_session(
    resources: Resources, config: PipelineConfig, audio: Any, *, during: Any = None,
    realtime: bool = False,
) -> list[Event]:
    pipeline = Pipeline(config, resources)
    await pipeline.start()

    async def pump() -> None:
        await feed(pipeline.push_audio, audio, chunk_ms=100, realtime=realtime)
        if during is not None:
            await during(pipeline)
        await pipeline.end_input()

    feeder = asyncio.create_task(pump())
    events = [event async for event in pipeline]
    await asyncio.wait_for(feeder, 5)
    await pipeline.aclose()
    return events


def committed_translation(events: list[Event], language: str) -> str:
    return "".join(
        e.committed_delta
        for e in events
        if isinstance(e, TranslationText) and e.language == language
    )


def committed_source(events: list[Event]) -> str:
    return join_words([w for e in events if isinstance(e, SourceText) for w in e.committed])


def content_words(text: str) -> set[str]:
    return {w for w in normalize_text(text).split() if len(w) > 3}


@pytest.mark.parametrize(
    ("source", "targets", "prompt_id"),
    [("es", ("fr", "it"), "conf-noempty"), ("fr", ("es",), "vm-passchanged")],
)
def test_speech_to_speech_end_to_end(
    resources: Resources,
    whisper: Any,
    speech: Any,
    source: str,
    targets: tuple[str, ...],
    prompt_id: str,
) -> None:
    _, clip = speech.clip(source, prompt_id)
    audio = np.concatenate([speech.silence(0.5), clip, speech.silence(1.0)])
    config = PipelineConfig(source, targets, session_id="e2e")
    events = asyncio.run(run_session(resources, config, audio))
    assert not [e for e in events if isinstance(e, Error)]
    for target in targets:
        text = committed_translation(events, target)
        assert text.strip(), f"no {target} translation"
        track = DubTrack(target)
        for event in events:
            track.add(event)
        out = track.audio()
        chunks = [e for e in events if isinstance(e, AudioChunk) and e.language == target]
        assert chunks and all(c.sample_rate == 24_000 for c in chunks)
        assert float(np.sqrt(np.mean(out**2))) > 0.01, "the translation must be audible"
        assert_watermarked(out, KEY, 24_000, config.watermark_payload)
        heard = whisper.transcribe(
            np.interp(np.arange(0, out.size, 1.5), np.arange(out.size), out).astype(np.float32),
            language=None,
        )
        assert heard.language == target
        spoken = join_words(list(heard.words))
        overlap = content_words(spoken) & content_words(text)
        assert len(overlap) >= 2, (spoken, text)
        if target != "it":  # the Asterisk prompts exist in en, es and fr only
            reference = speech.clip(target, prompt_id)[0].text
            assert content_words(spoken) & content_words(reference), (spoken, reference)
        # Each chunk says which source audio it translates.
        assert all(0 <= c.source_span.start < c.source_span.end <= audio.size for c in chunks)


def test_add_target_mid_session_and_mid_word_cut(resources: Resources, speech: Any) -> None:
    _, first = speech.clip("es", "vm-passchanged")
    _, second = speech.clip("es", "conf-noempty")
    cut = second[: int(second.size * 0.6)]  # stops in the middle of a word
    audio = np.concatenate([first, speech.silence(1.0), cut])

    async def join(pipeline: Pipeline) -> None:
        await pipeline.add_target("pt")

    events = asyncio.run(
        run_session(resources, PipelineConfig("es", ("fr",), speak=False), audio, during=join)
    )
    assert not [e for e in events if isinstance(e, Error)]
    assert "han sido cambiadas" in normalize_text(committed_source(events))
    assert committed_translation(events, "fr").strip()
    finals = [e for e in events if isinstance(e, SourceText) and e.final]
    assert len(finals) == 2, "the cut utterance is closed and committed at the end"
    assert not [e for e in events if isinstance(e, AudioChunk)]  # captions only


def test_long_silences_and_ten_minute_stream_keep_memory_flat(
    resources: Resources, speech: Any
) -> None:
    _, clip = speech.clip("es", "vm-passchanged")
    minute = np.concatenate([clip, speech.silence(60.0 - clip.size / SAMPLE_RATE)])

    async def session() -> tuple[int, int, int]:
        pipeline = Pipeline(PipelineConfig("es", ("fr",), speak=False), resources)
        await pipeline.start()
        counts = {"final": 0}

        async def drain() -> None:
            async for event in pipeline:
                if isinstance(event, SourceText) and event.final:
                    counts["final"] += 1

        reader = asyncio.create_task(drain())
        tracemalloc.start()
        sizes = []
        for _ in range(10):
            await feed(pipeline.push_audio, minute, chunk_ms=500, realtime=False)
            await asyncio.sleep(0)
            sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        await pipeline.end_input()
        await asyncio.wait_for(reader, 120)
        await pipeline.aclose()
        return sizes[2], sizes[-1], counts["final"]

    early, late, finals = asyncio.run(session())
    assert finals == 10, "one utterance per minute, nothing invented in the silences"
    assert late - early < 8_000_000, f"memory grew by {(late - early) / 1e6:.1f} MB"


def test_a_pause_of_the_speaker_is_no_backlog(resources: Resources, speech: Any) -> None:
    """The same sentence after an 8 s pause, once the first was heard, is spoken like
    the first: no catch-up rate, no stand-in voice (the lag used to be measured from
    the last chunk heard, so the pause counted as 8 s of backlog). The clip is one that
    Whisper hears the same at any offset; speech time is compared per character of the
    spoken translation, so a recognizer that did hear the two apart still compares like
    with like (catching up at MAX_SPEED_UP would be 20 % faster)."""
    _, clip = speech.clip("es", "agent-newlocation")
    utterance = np.concatenate([clip, speech.silence(1.0)])

    async def session() -> tuple[list[float], list[str]]:
        pipeline = Pipeline(PipelineConfig("es", ("fr",)), resources)
        await pipeline.start()
        loop = asyncio.get_running_loop()
        # Per sentence, told apart by source position: seconds of speech, committed text.
        heard: list[float] = [0.0, 0.0]
        said = ["", ""]
        last_chunk = [loop.time()]

        async def drain() -> None:
            async for event in pipeline:
                if isinstance(event, AudioChunk):
                    second = event.source_span.start >= utterance.size
                    heard[second] += event.pcm.size / event.sample_rate
                    last_chunk[0] = loop.time()
                elif isinstance(event, TranslationText):
                    said[event.source_span.start >= utterance.size] += event.committed_delta

        reader = asyncio.create_task(drain())
        await feed(pipeline.push_audio, utterance, chunk_ms=100, realtime=False)
        # Until the first sentence is spoken whole and a listener has heard it.
        deadline = loop.time() + 90
        while heard[0] == 0.0 or loop.time() - last_chunk[0] < 3.0 + heard[0]:
            assert loop.time() < deadline, "the first sentence was never spoken"
            await asyncio.sleep(0.1)
        await feed(pipeline.push_audio, speech.silence(8.0), chunk_ms=100, realtime=False)
        await feed(pipeline.push_audio, utterance, chunk_ms=100, realtime=False)
        await pipeline.end_input()
        await asyncio.wait_for(reader, 120)
        await pipeline.aclose()
        return heard, said

    heard, said = asyncio.run(session())
    assert heard[0] > 1.0 and all(said), (heard, said)
    pace = [seconds / len(text) for seconds, text in zip(heard, said, strict=True)]
    assert pace[1] == pytest.approx(pace[0], rel=0.08), (heard, said)


class ExplodingBackend:
    """A stand-in translation backend that fails on its third call (error path only)."""

    name = "exploding"
    has_scores = False

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls = 0

    def __getattr__(self, item: str) -> Any:
        return getattr(self._real, item)

    def fill(self, requests: Any) -> Any:
        self.calls += 1
        if self.calls >= 3:
            raise RuntimeError("translation engine crashed")
        return self._real.fill(requests)


def test_a_failing_stage_ends_the_session_with_an_error_and_keeps_commits(
    resources: Resources, speech: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exploding = ExplodingBackend(resources.translator("es", "fr"))
    monkeypatch.setattr(resources, "translator", lambda s, t: exploding)
    prompts, audio = speech.stream("es", ["vm-passchanged", "conf-noempty", "vm-undelete"])
    events = asyncio.run(
        asyncio.wait_for(
            run_session(resources, PipelineConfig("es", ("fr",), speak=False), audio), 240
        )
    )
    errors = [e for e in events if isinstance(e, Error)]
    assert errors and errors[-1].code == "internal" and "crashed" in errors[-1].message
    assert events.index(errors[-1]) == len(events) - 1  # the last word of the session
    assert committed_translation(events, "fr").strip()  # what was committed was delivered
    assert "han sido cambiadas" in normalize_text(committed_source(events))


def test_bad_configuration_and_audio(resources: Resources) -> None:
    with pytest.raises(UnsupportedLanguageError):
        PipelineConfig("es", ("klingon",))

    async def unsupported_pair() -> None:
        await Pipeline(PipelineConfig("es", ("ja",)), resources).start()

    with pytest.raises(ModelNotFoundError, match="dragoman models pull"):
        asyncio.run(unsupported_pair())

    async def unknown_voice_backend() -> None:
        await Pipeline(PipelineConfig("es", ("fr",), tts_backend="nope"), resources).start()

    with pytest.raises(UnsupportedLanguageError, match="'nope' is not installed"):
        asyncio.run(unknown_voice_backend())

    async def nan_audio() -> list[Event]:
        pipeline = Pipeline(PipelineConfig("es", ("fr",), speak=False), resources)
        await pipeline.start()
        with pytest.raises(AudioError):
            await pipeline.push_audio(np.full(320, np.nan, dtype=np.float32))
        await pipeline.push_audio(np.zeros(16000, dtype=np.float32))  # the session goes on
        await pipeline.end_input()
        return [event async for event in pipeline]

    assert not [e for e in asyncio.run(nan_audio()) if isinstance(e, Error)]


def test_captions_show_revisable_words_once_confirmed(resources: Resources, speech: Any) -> None:
    """With no unconfirmed words allowed, an utterance's first source and translation
    updates show no revisable text: nothing in them has been confirmed by a second
    update yet; the lanes still translate the tentative words. Paced at real time, so
    that interim decodes run while the speaker talks."""
    _, clip = speech.clip("es", "conf-noempty")
    audio = np.concatenate([clip, speech.silence(1.0)])
    config = PipelineConfig("es", ("fr",), speak=False,
                            preview=PreviewConfig(new_words=0, hidden_tail=0))
    events = asyncio.run(run_session(resources, config, audio, realtime=True))
    updates = [e for e in events if isinstance(e, TranslationText)]
    interim = [e for e in updates if not e.final]
    assert interim, "the recognizer's interim decodes reach translation"
    assert interim[0].uncommitted == ""
    heard = [e for e in events if isinstance(e, SourceText) and not e.final]
    assert heard and heard[0].tentative == ()
    assert committed_translation(events, "fr").strip()


def test_source_already_in_the_target_language_passes_through(
    resources: Resources, speech: Any
) -> None:
    _, clip = speech.clip("es", "vm-passchanged")
    audio = np.concatenate([clip, speech.silence(1.0)])
    events = asyncio.run(run_session(resources, PipelineConfig(None, ("es",), speak=False), audio))
    assert not [e for e in events if isinstance(e, Error)]
    source = committed_source(events)
    assert source and committed_translation(events, "es") == source


def test_source_language_is_not_re_voiced_when_asked(resources: Resources, speech: Any) -> None:
    """A conversation (dragoman listen): the speaker's own language gets captions only."""
    _, clip = speech.clip("es", "vm-passchanged")
    audio = np.concatenate([clip, speech.silence(1.0)])
    config = PipelineConfig(None, ("es", "fr"), tts_backend="espeak-ng",
                            speak_source_language=False)
    events = asyncio.run(run_session(resources, config, audio))
    assert not [e for e in events if isinstance(e, Error)]
    spoken = {e.language for e in events if isinstance(e, AudioChunk)}
    assert spoken == {"fr"}
    assert committed_translation(events, "es") == committed_source(events)
