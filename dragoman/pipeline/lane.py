"""One target language of a session: the translation canvas, then speech.

A lane receives the source state of the current utterance after every recognition
update. Updates wait in a mailbox where a newer interim state of the same
utterance replaces an older one that was not translated yet (final states are
never dropped): when translation falls behind, it revises less often instead of
queueing stale work. Committed translation goes to the synthesizer, whose
watermarked chunks leave through `emit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from dragoman.captions import CaptionPreview, PreviewConfig
from dragoman.errors import DragomanError
from dragoman.events import SAMPLE_RATE, Error, Event, Span, TranslationText
from dragoman.pipeline.resources import Resources
from dragoman.pipeline.source_audio import SourceAudio
from dragoman.translate import CanvasConfig, CanvasEngine
from dragoman.tts import SynthesisConfig, SynthesisStream, Synthesizer, speakable

logger = logging.getLogger(__name__)

Emit = Callable[[Event], Awaitable[None]]

MAX_SPEED_UP = 1.25
"""Speech rate a lane may reach when its speech falls behind the speaker."""
SPEED_UP_AFTER_S = 3.0
"""Speech backlog (seconds of source) after which the rate goes up."""
FAST_VOICE_AFTER_S = 6.0
"""Speech backlog after which a neural voice gives way to espeak-ng (about 1/30 of
Kokoro's compute) until the backlog is back under SPEED_UP_AFTER_S."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """The recognized source of one utterance after an update."""

    utterance: int
    language: str
    committed: str
    tentative: str
    final: bool
    span: Span


class TargetLane:
    """Translation and speech for one target language of one session."""

    def __init__(
        self,
        language: str,
        resources: Resources,
        source_audio: SourceAudio,
        emit: Emit,
        on_failure: Callable[[BaseException], None],
        *,
        canvas: CanvasConfig,
        synthesis: SynthesisConfig | None,
        speak_source_language: bool = True,
        preview: PreviewConfig | None = None,
    ) -> None:
        self.language = language
        self._resources = resources
        self._source_audio = source_audio
        self._emit = emit
        self._on_failure = on_failure
        self._canvas = canvas
        self._synthesis = synthesis
        self._speak_source_language = speak_source_language
        self._preview = CaptionPreview(preview) if preview is not None else None
        self._mailbox: deque[SourceState] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._engine: CanvasEngine | None = None
        self._engine_utterance = -1
        self._skipped_utterance = -1
        self._passthrough_utterance = -1
        self._passthrough_words = 0
        self._speech_from = 0  # source sample where the next spoken phrase starts
        self._unheard: deque[Span] = deque()  # phrases sent to speech, no chunk out yet
        self._source_fed = 0
        self._synth: Synthesizer | None = None
        self._stream: SynthesisStream | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.translated_until = 0
        self.spoken_until = 0
        self.coalesced = 0

    async def start(self) -> None:
        if self._synthesis is not None:
            synth = Synthesizer(self._synthesis, self._resources.watermark_key,
                                self._resources.router)
            await asyncio.to_thread(synth.start)  # fails fast on an unspeakable language
            self._synth = synth
            self._stream = SynthesisStream(synth)
            self._tasks.append(asyncio.create_task(self._forward_audio(), name="lane-audio"))
        self._tasks.append(asyncio.create_task(self._translate_loop(), name="lane-translate"))

    @property
    def speech_rate(self) -> float:
        """The rate set for the backlog, or the last phrase's if it caught up faster."""
        if self._synth is None:
            return 1.0
        return max(self._synth.rate, self._synth.phrase_rate)

    def offer(self, state: SourceState) -> None:
        """Queue a source update (coalescing interim updates of one utterance)."""
        last = self._mailbox[-1] if self._mailbox else None
        if last is not None and not last.final and last.utterance == state.utterance:
            self._mailbox[-1] = state
            self.coalesced += 1
        else:
            self._mailbox.append(state)
        self._wake.set()

    async def close(self) -> None:
        """Translate what is queued, speak it, and wait until everything left."""
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        """Stop at once (time-boxed)."""
        for task in self._tasks:
            task.cancel()
        if self._stream is not None:
            await self._stream.aclose()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    # -- translation ----------------------------------------------------------------

    async def _translate_loop(self) -> None:
        try:
            while True:
                if not self._mailbox:
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._translate(self._mailbox.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("lane %s failed", self.language, exc_info=True)
            self._mailbox.clear()
            self._on_failure(exc)
        if self._stream is not None:  # speak what was committed, then end
            await self._stream.end_input()

    async def _translate(self, state: SourceState) -> None:
        if state.utterance == self._skipped_utterance:
            return
        passing = state.language == self.language
        if passing:
            update = self._pass_through(state)
        else:
            engine = await self._engine_for(state)
            if engine is None:
                return
            result = await asyncio.to_thread(
                engine.update, state.committed, state.tentative, state.final
            )
            update = TranslationText(state.utterance, self.language, result.committed_delta,
                                     result.uncommitted, state.span, state.final)
        if self._preview is not None:
            update = self._preview.translation(update)
        self.translated_until = state.span.end
        await self._emit(update)
        if state.final:
            self._engine = None
        if passing and not self._speak_source_language:
            if self.spoken_until >= self._speech_from:  # nothing of ours left to speak
                self.spoken_until = max(self.spoken_until, state.span.end)  # not a lag
            return
        if self._stream is not None and (update.committed_delta.strip() or state.final):
            await self._speak(update)

    def _pass_through(self, state: SourceState) -> TranslationText:
        """Source already in the target language: its committed words are the text."""
        same = state.utterance == self._passthrough_utterance
        already = self._passthrough_words if same else 0
        words = state.committed.split()
        new = words[already:]
        delta = (" " if already and new else "") + " ".join(new)
        self._passthrough_utterance, self._passthrough_words = state.utterance, len(words)
        tentative = state.tentative if not state.final else ""
        return TranslationText(state.utterance, self.language, delta, tentative, state.span,
                               state.final)

    async def _engine_for(self, state: SourceState) -> CanvasEngine | None:
        if self._engine is not None and self._engine_utterance == state.utterance:
            return self._engine
        try:
            backend = await asyncio.to_thread(
                self._resources.translator, state.language, self.language
            )
            engine = CanvasEngine(backend, state.language, self.language, self._canvas)
        except DragomanError as exc:
            # One utterance in a language this pair cannot serve: say so, go on.
            self._skipped_utterance = state.utterance
            await self._emit(Error(exc.code, f"{self.language}: {exc.message}", exc.retryable))
            return None
        self._engine, self._engine_utterance = engine, state.utterance
        return engine

    # -- speech ---------------------------------------------------------------------

    async def _speak(self, update: TranslationText) -> None:
        assert self._stream is not None
        start = max(self._speech_from, update.source_span.start)
        end = max(start, update.source_span.end)
        audio, audio_start = self._source_audio.since(max(self._source_fed, start), end)
        if audio.size:
            await self._stream.push_source(audio, audio_start)
            self._source_fed = audio_start + audio.size
        if speakable(update.committed_delta):
            # Only words are heard: a span with none (an utterance's end, a "?" after
            # its question) gets no chunk and would count the next pause as backlog.
            self._unheard.append(Span(start, end))
        self._adapt_rate()
        # The synthesizer takes this phrase's own source span (for its prosody).
        await self._stream.push_text(replace(update, source_span=Span(start, end)))
        self._speech_from = end

    @property
    def fast_voice(self) -> bool:
        return self._synth is not None and self._synth.fast

    def _adapt_rate(self) -> None:
        """Speak faster while the newest phrase waits behind more than SPEED_UP_AFTER_S
        of the speaker's speech (in source time) not yet heard, with the cheap voice from
        FAST_VOICE_AFTER_S until it is back under that. A pause of the speaker is no
        backlog once everything before it was heard: the first phrase after it is
        spoken at the normal rate, in the neural voice (measured from the last chunk
        heard, a 1.5 s pause and a 2.5 s sentence made a 4 s "lag").

        Without a live listener (`SynthesisConfig.catch_up_after_s` None: a dub made
        faster than real time) there is no lag to cut: every phrase keeps the speaker's
        pace and the neural voice (fed as fast as possible, a 157 s file had been dubbed
        mostly in espeak-ng at 1.25x)."""
        if self._synth is None or not self._unheard:
            return
        if self._synthesis is not None and self._synthesis.catch_up_after_s is None:
            return
        behind = (self._unheard[-1].start - self._unheard[0].start) / SAMPLE_RATE
        if behind > FAST_VOICE_AFTER_S:
            self._synth.fast = True
        elif behind <= SPEED_UP_AFTER_S:
            self._synth.fast = False
        target = MAX_SPEED_UP if behind > SPEED_UP_AFTER_S else 1.0
        base = self._synthesis.rate if self._synthesis is not None else 1.0
        self._synth.rate = min(2.0, base * target)

    async def _forward_audio(self) -> None:
        """Pass synthesized chunks on. A phrase that fails to synthesize is reported and
        skipped (its captions already went out); the lane goes on with the next one."""
        assert self._stream is not None
        while True:
            try:
                async for chunk in self._stream:
                    self.spoken_until = max(self.spoken_until, chunk.source_span.end)
                    # A phrase is heard from its first chunk on (a phrase that failed
                    # leaves with the next one that is spoken).
                    while self._unheard and self._unheard[0].end <= chunk.source_span.end:
                        self._unheard.popleft()
                    await self._emit(chunk)
                return
            except DragomanError as exc:
                logger.warning("%s: a phrase was not spoken: %s", self.language, exc.message)
                await self._emit(Error(exc.code, f"{self.language}: {exc.message}", exc.retryable))

