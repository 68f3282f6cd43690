"""The synchronous TTS core: committed phrases in, watermarked `AudioChunk`s out.

This is the single output path of the TTS stage. Every backend's audio, with or
without prosody transfer, goes through `_MarkedOutput`, one `StreamingEmbedder` per
output stream, before it can become an `AudioChunk`: no unmarked sample leaves.
The embedder delays its output by one 32 ms frame; each phrase is followed by 32 ms
of silence (marking leaves silence silent) so that a phrase is complete as soon as
it is synthesized. Output: mono float32 at 24 kHz (`OUTPUT_RATE`), chunks of
`chunk_ms`, `pts` counted in output samples from the start of the stream.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dragoman.audio import check_audio
from dragoman.errors import DragomanError
from dragoman.events import SAMPLE_RATE, AudioChunk, FloatAudio, Span, TranslationText
from dragoman.languages import normalize_language
from dragoman.tts.base import OUTPUT_RATE, check_rate, check_text
from dragoman.tts.prosody import ProsodyConfig, ProsodyProfile, extract_prosody, transfer_prosody
from dragoman.tts.routing import Route, Router

if TYPE_CHECKING:
    from dragoman.watermark import WatermarkKey

logger = logging.getLogger(__name__)

_PHRASE_END = tuple(".,;:!?…。、！？")


@dataclass(frozen=True, slots=True)
class SynthesisConfig:
    """Options of one synthesis stream (one target language).

    language: target language (any accepted spelling). backend / voice: force a
    backend or voice (default: routed). rate: speaking-rate multiplier in [0.5, 2].
    prosody: impose the source speaker's prosody when source audio is known.
    chunk_ms: output chunk length. min_phrase_words: committed text is spoken at
    punctuation, at the end of an utterance, or once this many words are waiting.
    payload: 32-bit watermark payload (service id + session hash).
    source_seconds: how much source audio is kept for prosody.
    """

    language: str
    backend: str | None = None
    voice: str | None = None
    rate: float = 1.0
    prosody: bool = True
    prosody_config: ProsodyConfig = field(default_factory=ProsodyConfig)
    chunk_ms: int = 200
    min_phrase_words: int = 4
    payload: int = 0
    source_seconds: float = 60.0

    def __post_init__(self) -> None:
        check_rate(self.rate)
        normalize_language(self.language)
        if not 10 <= self.chunk_ms <= 5_000:
            raise DragomanError(f"chunk_ms must be in [10, 5000], got {self.chunk_ms}")
        if self.min_phrase_words < 1:
            raise DragomanError("min_phrase_words must be at least 1")


class _MarkedOutput:
    """The one place synthesized PCM becomes output: watermark, then chunk."""

    def __init__(self, key: WatermarkKey, payload: int, language: str, chunk: int) -> None:
        from dragoman.watermark import StreamingEmbedder

        self._embedder = StreamingEmbedder(key, payload=payload, sample_rate=OUTPUT_RATE)
        self._language = language
        self._chunk = chunk
        self._fed = 0
        self._pts = 0
        self._spans: deque[tuple[int, Span]] = deque()  # (first input sample, span)
        self._pending = np.zeros(0, dtype=np.float32)
        self._closed = False

    def write(self, pcm: FloatAudio, span: Span) -> list[AudioChunk]:
        if self._closed:
            raise DragomanError("synthesis output is already finished")
        self._spans.append((self._fed, span))
        self._fed += pcm.size
        return self._chunks(self._embedder.feed(pcm), final=False)

    def close(self) -> list[AudioChunk]:
        if self._closed:
            return []
        self._closed = True
        return self._chunks(self._embedder.finish(), final=True)

    def _span_at(self, position: int) -> Span:
        while len(self._spans) > 1 and self._spans[1][0] <= position:
            self._spans.popleft()
        return self._spans[0][1] if self._spans else Span(0, 0)

    def _chunks(self, marked: FloatAudio, *, final: bool) -> list[AudioChunk]:
        self._pending = np.concatenate([self._pending, marked])
        out: list[AudioChunk] = []
        while self._pending.size >= self._chunk or (final and self._pending.size):
            piece = self._pending[: self._chunk]
            self._pending = self._pending[piece.size :]
            out.append(AudioChunk(self._language, piece.copy(), OUTPUT_RATE, self._pts,
                                  self._span_at(self._pts)))
            self._pts += piece.size
        return out


class Synthesizer:
    """Sync core of the TTS stage for one target language (see module doc).

    `push_source()` keeps recent source audio (16 kHz session samples) for prosody;
    `push_text()` takes committed translation text; `say()` speaks one phrase now;
    `flush()` speaks what is waiting; `events()` drains the chunks produced;
    `finish()` ends the stream. `start()` loads the backends.
    """

    def __init__(self, config: SynthesisConfig, key: WatermarkKey,
                 router: Router | None = None) -> None:
        self.config = config
        self.language = normalize_language(config.language)
        self._key = key
        self._router = router if router is not None else Router()
        self._route: Route | None = None
        self._output: _MarkedOutput | None = None
        self._events: list[AudioChunk] = []
        self._words: list[str] = []
        self._span: Span | None = None
        self._source = np.zeros(0, dtype=np.float32)
        self._source_start = 0
        self._finished = False
        self._rate = config.rate

    @property
    def rate(self) -> float:
        """Current speaking-rate multiplier (the pipeline raises it to catch up)."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        check_rate(value)
        self._rate = value

    def start(self) -> None:
        self._router.start()
        if self._output is None:
            chunk = round(OUTPUT_RATE * self.config.chunk_ms / 1000)
            self._output = _MarkedOutput(self._key, self.config.payload, self.language, chunk)
        if self.config.voice or self.config.backend:
            self._route = self._router.route(
                self.language, backend=self.config.backend, voice=self.config.voice
            )
        else:
            self._router.route(self.language)  # fail fast on an unspeakable language

    @property
    def route(self) -> Route | None:
        """The backend and voice in use (chosen at the first phrase, then kept)."""
        return self._route

    def push_source(self, samples: FloatAudio, start: int) -> None:
        """Source speech at session sample `start` (16 kHz), kept for prosody."""
        audio = check_audio(samples, allow_empty=True)
        end = self._source_start + self._source.size
        if start != end:
            if self._source.size:
                logger.debug("source audio jumps from %d to %d; restarting buffer", end, start)
            self._source = np.zeros(0, dtype=np.float32)
            self._source_start = start
        self._source = np.concatenate([self._source, audio])
        excess = self._source.size - round(self.config.source_seconds * SAMPLE_RATE)
        if excess > 0:
            self._source = self._source[excess:]
            self._source_start += excess

    def push_text(self, update: TranslationText) -> None:
        """Committed target text; spoken at phrase boundaries (see `SynthesisConfig`)."""
        if normalize_language(update.language) != self.language:
            raise DragomanError(
                f"{update.language!r} text sent to the {self.language!r} synthesizer"
            )
        delta = update.committed_delta.split()
        if delta:
            self._words.extend(delta)
            span = update.source_span
            self._span = span if self._span is None else Span(self._span.start, span.end)
        boundary = bool(delta) and delta[-1].endswith(_PHRASE_END)
        if update.final or boundary or len(self._words) >= self.config.min_phrase_words:
            self.flush()

    def flush(self) -> None:
        """Speak the committed text that is waiting, if any."""
        if not self._words:
            return
        text, span = " ".join(self._words), self._span or Span(0, 0)
        self._words, self._span = [], None
        self.say(text, source_span=span)

    def say(self, text: str, *, source_span: Span | None = None,
            prosody_from: FloatAudio | None = None) -> None:
        """Speak one phrase now. Prosody comes from `prosody_from` (16 kHz) when given,
        else from the buffered source audio under `source_span`."""
        if self._finished:
            raise DragomanError("say() after finish()")
        cleaned = check_text(text)
        if self._output is None:
            self.start()
        assert self._output is not None
        span = source_span or Span(0, 0)
        profile = self._profile(span, prosody_from) if self.config.prosody else None
        route = self._choose_route(profile)
        backend = self._router.backend(route.backend)
        pieces = backend.render_unmarked(cleaned, route.voice, rate=self._rate)
        if profile is None:
            for piece in pieces:
                self._events += self._output.write(piece, span)
        else:
            audio = np.concatenate(list(pieces))
            shaped = transfer_prosody(audio, OUTPUT_RATE, profile, self.config.prosody_config)
            self._events += self._output.write(shaped, span)
        gap = np.zeros(round(0.032 * OUTPUT_RATE), dtype=np.float32)
        self._events += self._output.write(gap, span)

    def _choose_route(self, profile: ProsodyProfile | None) -> Route:
        if self._route is None:
            hz = profile.median_hz if profile is not None else None
            self._route = self._router.route(self.language, speaker_hz=hz)
            logger.info("%s speech: %s voice %s", self.language, self._route.backend,
                        self._route.voice.name)
        return self._route

    def _profile(self, span: Span, given: FloatAudio | None) -> ProsodyProfile | None:
        if given is not None:
            return extract_prosody(given, SAMPLE_RATE)
        first = span.start - self._source_start
        last = span.end - self._source_start
        if span.duration <= 0 or first < 0 or last > self._source.size:
            return None
        try:
            return extract_prosody(self._source[first:last], SAMPLE_RATE)
        except DragomanError as exc:  # silence, too short: speak with the voice's own
            logger.debug("no prosody for span %s: %s", span, exc.message)
            return None

    def events(self) -> list[AudioChunk]:
        """The chunks produced since the last call."""
        out, self._events = self._events, []
        return out

    def finish(self) -> list[AudioChunk]:
        """Speak what is waiting, flush the watermark delay, return the last chunks."""
        if self._finished:
            return []
        self.flush()
        self._finished = True
        if self._output is not None:
            self._events += self._output.close()
        return self.events()
