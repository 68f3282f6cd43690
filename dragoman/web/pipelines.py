"""What the server drives: the pipeline interface, the real factory and a stand-in.

`StandInPipeline` does no ML (its "speech" is digital silence, so no unmarked synthetic
sound can leave). It turns every 0.5 s of pushed audio into one "word" and
produces the same event shapes as `dragoman.pipeline.Pipeline` (speech start/end,
tentative then committed source words, partial then committed translations per target,
24 kHz audio chunks, lag) at the pace the audio arrives. It exists for load tests
(bench/server.py), protocol tests and client development (`dragoman serve --stand-in`);
its words, translations and audio are placeholders, and its audio carries no watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dragoman.audio import check_audio
from dragoman.errors import DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Event,
    FloatAudio,
    Lag,
    SourceText,
    Span,
    SpeechEnded,
    SpeechStarted,
    TranslationText,
    Word,
)

if TYPE_CHECKING:
    from dragoman.pipeline import PipelineConfig, Resources


class PipelineLike(Protocol):
    """The part of `dragoman.pipeline.Pipeline` the server uses."""

    async def start(self) -> None: ...

    async def push_audio(self, samples: FloatAudio) -> None: ...

    async def add_target(self, language: str) -> None: ...

    async def remove_target(self, language: str) -> None: ...

    async def end_input(self) -> None: ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...


PipelineFactory = Callable[["PipelineConfig"], PipelineLike]


def real_pipeline_factory(resources: Resources) -> PipelineFactory:
    """Sessions on the real pipeline, sharing one set of loaded models."""
    from dragoman.pipeline import Pipeline

    def make(config: PipelineConfig) -> PipelineLike:
        return Pipeline(config, resources)

    return make


_WORDS = ("hola", "buenos", "dias", "gracias", "por", "favor", "hasta", "luego")
TTS_RATE = 24_000
_END = None


class StandInPipeline:
    """A no-ML pipeline with the real event shapes (see the module doc)."""

    def __init__(self, config: PipelineConfig, *, word_seconds: float = 0.5,
                 words_per_utterance: int = 6, queue_size: int = 1024) -> None:
        self.config = config
        self.word_samples = round(word_seconds * SAMPLE_RATE)
        self.words_per_utterance = words_per_utterance
        self.targets: list[str] = list(dict.fromkeys(config.target_languages))
        self.translations: Counter[str] = Counter()
        """TranslationText events produced per language (rooms: translated once)."""
        self.target_changes: list[tuple[str, str]] = []
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(queue_size)
        self._pushed = 0
        self._utterance = 0
        self._words: list[Word] = []
        self._pts: Counter[str] = Counter()
        # Digital silence of a word's length: same bytes on the wire as speech, and no
        # synthesized sound that could leave the server without the watermark.
        self._tone = np.zeros(round(word_seconds * TTS_RATE), dtype=np.float32)
        self._started = False
        self._ended = False
        self._next_lag = SAMPLE_RATE

    async def start(self) -> None:
        self._started = True

    async def add_target(self, language: str) -> None:
        if language not in self.targets:
            self.targets.append(language)
            self.target_changes.append(("add", language))

    async def remove_target(self, language: str) -> None:
        if language in self.targets:
            self.targets.remove(language)
            self.target_changes.append(("remove", language))

    async def push_audio(self, samples: FloatAudio) -> None:
        if not self._started or self._ended:
            raise DragomanError("push_audio outside start()..end_input()")
        audio = check_audio(samples, allow_empty=True)
        before = self._pushed
        self._pushed += audio.size
        # A word ends at every multiple of word_samples; a partial at every half.
        half = self.word_samples // 2
        for boundary in range((before // half + 1) * half, self._pushed + 1, half):
            if boundary % self.word_samples:
                await self._partial(boundary)
            else:
                await self._commit_word(boundary)
        if self._pushed >= self._next_lag:
            self._next_lag += SAMPLE_RATE
            await self._put(Lag("asr", 0))

    async def _partial(self, at: int) -> None:
        start = at - self.word_samples // 2
        if not self._words:
            await self._put(SpeechStarted(start, self._utterance))
        word = Word(_WORDS[len(self._words) % len(_WORDS)], start, at, 0.9)
        await self._put(SourceText(self._utterance, self._source, (), (word,)))
        for language in list(self.targets):
            await self._translation(language, "", self._say(language, word), Span(start, at))

    async def _commit_word(self, end: int) -> None:
        start = end - self.word_samples
        word = Word(_WORDS[len(self._words) % len(_WORDS)], start, end, 0.9)
        self._words.append(word)
        final = len(self._words) >= self.words_per_utterance
        await self._put(SourceText(self._utterance, self._source, (word,), (), final=final))
        for language in list(self.targets):
            await self._translation(language, self._say(language, word) + " ", "",
                                    Span(start, end), final=final)
            pts = self._pts[language]
            self._pts[language] += self._tone.size
            await self._put(AudioChunk(language, self._tone, TTS_RATE, pts, Span(start, end)))
        if final:
            await self._put(SpeechEnded(end, self._utterance))
            self._utterance += 1
            self._words = []

    async def _translation(self, language: str, delta: str, rest: str, span: Span,
                           final: bool = False) -> None:
        self.translations[language] += 1
        await self._put(TranslationText(self._utterance, language, delta, rest, span, final))

    @property
    def _source(self) -> str:
        return self.config.source_language or "es"

    @staticmethod
    def _say(language: str, word: Word) -> str:
        return f"{language}:{word.text}"

    async def _put(self, event: Event | None) -> None:
        await self._events.put(event)

    async def end_input(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._words:  # flush the utterance under way
            last = self._words[-1]
            await self._put(SourceText(self._utterance, self._source, (), (), final=True))
            for language in list(self.targets):
                await self._translation(language, "", "", Span(self._words[0].start, last.end),
                                        final=True)
            await self._put(SpeechEnded(last.end, self._utterance))
        await self._put(_END)

    async def aclose(self) -> None:
        self._ended = True
        while True:  # make room for the end marker: dropping is what aclose means
            with contextlib.suppress(asyncio.QueueEmpty):
                self._events.get_nowait()
            try:
                self._events.put_nowait(_END)
                return
            except asyncio.QueueFull:
                continue

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event


def stand_in_factory(**options: float | int) -> PipelineFactory:
    """A factory of `StandInPipeline`s (options: word_seconds, words_per_utterance)."""

    def make(config: PipelineConfig) -> PipelineLike:
        return StandInPipeline(config, word_seconds=float(options.get("word_seconds", 0.5)),
                               words_per_utterance=int(options.get("words_per_utterance", 6)))

    return make
