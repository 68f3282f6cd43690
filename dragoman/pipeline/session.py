"""`Pipeline`: one speech-to-speech session, in-process.

    resources = Resources(); await resources.start()          # once per process
    pipeline = Pipeline(PipelineConfig("es", ("fr", "it")), resources)
    await pipeline.start()
    await pipeline.push_audio(samples)      # float32 mono 16 kHz, any chunk size
    await pipeline.end_input()
    async for event in pipeline: ...        # SourceText, TranslationText, AudioChunk, ...

Audio is recognized once; each target language has its own lane (translation
canvas, then watermarked speech). Stages are joined by bounded queues and run
their inference in worker threads. When compute falls behind, the session
degrades in this order instead of letting latency grow: (1) the recognizer
decodes less often (its cadence follows the measured decode cost, and waiting
audio is decoded as one block); (2) translation skips interim revisions that a
newer one superseded, so commits come in larger blocks; (3) speech is spoken up
to 1.25x faster while a phrase waits behind more than 3 s of the speaker's speech
not yet heard; (4) past 6 s of it a neural voice gives way to espeak-ng until the
backlog is back under 3 s. `Lag` events report
each stage's backlog. If a stage fails, the session ends with an `Error` event
after everything already committed has been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from dragoman.asr import RecognizeStream, StreamingRecognizer
from dragoman.audio import check_audio
from dragoman.captions import CaptionPreview
from dragoman.errors import DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    Error,
    Event,
    FloatAudio,
    Lag,
    SourceText,
    Span,
    Word,
    join_words,
)
from dragoman.languages import normalize_language
from dragoman.pipeline.config import PipelineConfig
from dragoman.pipeline.lane import SourceState, TargetLane
from dragoman.pipeline.resources import Resources
from dragoman.pipeline.source_audio import SourceAudio
from dragoman.tts import SynthesisConfig

logger = logging.getLogger(__name__)

_END = None


class Pipeline:
    """A streaming speech-to-speech translation session (see the module doc)."""

    def __init__(self, config: PipelineConfig, resources: Resources) -> None:
        self.config = config
        self._resources = resources
        self._recognizer: StreamingRecognizer | None = None
        self._asr: RecognizeStream | None = None
        self._lanes: dict[str, TargetLane] = {}
        self._source_audio = SourceAudio()
        self._output: asyncio.Queue[Event | None] = asyncio.Queue(4096)
        self._driver: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None  # a lane's; ASR errors are events
        self._background: set[asyncio.Task[None]] = set()
        self._pushed = 0
        self._next_lag_report = 0
        self._words: dict[int, list[Word]] = {}
        self._current: SourceState | None = None  # the utterance under way, if any
        self._preview = CaptionPreview(config.preview) if config.preview is not None else None
        self._started = False
        self._ended = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Load shared models if needed, check the languages, start the stages."""
        if self._started:
            return
        await self._resources.start()
        cfg = self.config
        recognizer_config = cfg.recognizer
        if cfg.source_language is not None:
            recognizer_config = replace(recognizer_config, language=cfg.source_language)
        self._recognizer = StreamingRecognizer(self._resources.transcriber, recognizer_config)
        self._asr = RecognizeStream(self._recognizer, max_pending_chunks=cfg.max_pending_chunks)
        for language in cfg.target_languages:
            await self.add_target(language)
        self._driver = asyncio.create_task(self._drive(), name="dragoman-session")
        self._started = True

    async def add_target(self, language: str) -> None:
        """Start translating into one more language (takes effect immediately)."""
        code = normalize_language(language)
        if code in self._lanes:
            return
        source = self.config.source_language
        if source is not None and normalize_language(source) != code:
            await asyncio.to_thread(self._resources.translator, normalize_language(source), code)
        synthesis = None
        if self.config.speak:
            synthesis = SynthesisConfig(code, voice=self.config.voice,
                                        backend=self.config.tts_backend,
                                        prosody=self.config.prosody,
                                        cut_inside_clauses=self.config.cut_inside_clauses,
                                        catch_up_after_s=self.config.catch_up_after_s,
                                        payload=self.config.watermark_payload)
        lane = TargetLane(code, self._resources, self._source_audio, self._emit, self._fail,
                          canvas=self.config.canvas, synthesis=synthesis,
                          speak_source_language=self.config.speak_source_language,
                          preview=self.config.preview)
        await lane.start()
        self._lanes[code] = lane
        if self._current is not None:  # join an utterance already under way
            lane.offer(self._current)

    async def remove_target(self, language: str) -> None:
        """Stop translating into `language` (what it committed so far is delivered)."""
        lane = self._lanes.pop(normalize_language(language), None)
        if lane is not None:
            await lane.close()

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self._lanes)

    async def push_audio(self, samples: FloatAudio) -> None:
        """Queue mono float32 audio at 16 kHz. Waits while the recognizer is behind.

        Bad samples raise `AudioError` and are dropped; the session goes on.
        """
        if not self._started or self._asr is None:
            raise DragomanError("push_audio before start()")
        if self._ended:
            raise DragomanError("push_audio after end_input()")
        audio = check_audio(samples, allow_empty=True)
        self._source_audio.append(audio)
        self._pushed += audio.size
        await self._asr.push_audio(audio)
        if self._pushed >= self._next_lag_report:
            self._next_lag_report = self._pushed + self.config.lag_report_ms * SAMPLE_RATE // 1000
            await self._report_lag()

    async def end_input(self) -> None:
        """No more audio: everything recognized is translated, spoken, delivered."""
        if self._asr is not None and not self._ended:
            self._ended = True
            await self._asr.end_input()

    async def aclose(self) -> None:
        """Stop now, dropping work in progress (time-boxed)."""
        self._ended = True
        if self._asr is not None:
            await self._asr.aclose()
        for lane in list(self._lanes.values()):
            await lane.aclose()
        if self._driver is not None and not self._driver.done():
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._driver, 5)
        with contextlib.suppress(asyncio.QueueFull):
            self._output.put_nowait(_END)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self._output.get()
            if event is _END:
                return
            yield event

    # -- internals ------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        await self._output.put(event)

    def _fail(self, exc: BaseException) -> None:
        """A lane failed: end the session (after what was committed is delivered)."""
        if self._failure is None:
            self._failure = exc
            if self._asr is not None and not self._ended:
                self._ended = True
                task = asyncio.get_running_loop().create_task(self._asr.end_input())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _drive(self) -> None:
        assert self._asr is not None
        try:
            async for event in self._asr:
                if isinstance(event, SourceText):
                    shown = self._preview.source(event) if self._preview is not None else event
                    await self._emit(shown)
                    self._on_source(event)  # the lanes translate every tentative word
                else:
                    await self._emit(event)
            for lane in list(self._lanes.values()):
                await lane.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: report it, never hang the consumer
            logger.error("session failed", exc_info=True)
            self._failure = self._failure or exc
        failure = self._failure
        if isinstance(failure, DragomanError):
            await self._emit(failure.to_event())
        elif failure is not None:
            await self._emit(Error("internal", f"session failed: {failure}", retryable=True))
        await self._output.put(_END)

    def _on_source(self, event: SourceText) -> None:
        words = self._words.setdefault(event.utterance, [])
        words.extend(event.committed)
        everything = words + list(event.tentative)
        start = everything[0].start if everything else 0
        end = everything[-1].end if everything else start
        state = SourceState(event.utterance, event.language, join_words(words),
                            join_words(event.tentative), event.final, Span(start, end))
        if event.final:
            self._words.pop(event.utterance, None)
        self._current = None if event.final else state
        for lane in self._lanes.values():
            lane.offer(state)

    async def _report_lag(self) -> None:
        if self._recognizer is None:
            return
        await self._emit(Lag("asr", max(0, self._pushed - self._recognizer.position)))
        recognized = self._current.span.end if self._current is not None else 0
        for code, lane in self._lanes.items():
            degraded: list[str] = []
            if lane.coalesced:
                degraded.append(f"interim_revisions_skipped:{lane.coalesced}")
            if lane.speech_rate > 1.0:
                degraded.append(f"speech_rate:{lane.speech_rate:.2f}")
            if lane.fast_voice:
                degraded.append("fast_voice")
            done = lane.spoken_until if self.config.speak else lane.translated_until
            await self._emit(Lag(f"target:{code}", max(0, recognized - done), tuple(degraded)))
