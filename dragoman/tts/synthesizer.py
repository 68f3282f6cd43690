"""The synchronous TTS core: committed phrases in, watermarked `AudioChunk`s out.

This is the single output path of the TTS stage. Every backend's audio, with or
without prosody transfer, goes through `_MarkedOutput`, one `StreamingEmbedder` per
output stream, before it can become an `AudioChunk`: no unmarked sample leaves.
The embedder delays its output by one 32 ms frame; each phrase is followed by 32 ms
of silence (marking leaves silence silent) so that a phrase is complete as soon as
it is synthesized. Output: mono float32 at 24 kHz (`OUTPUT_RATE`), chunks of
`chunk_ms`, `pts` counted in output samples from the start of the stream; every
chunk of a phrase carries that phrase's `source_span`.

A phrase is rendered in segments (`dragoman.tts.segments`): a short first one, so
that its first chunk leaves after a fraction of the phrase's synthesis time, then
longer ones. Each segment gets its slice of the source prosody (contour relative to
the whole phrase's median, so pitch stays continuous across seams), and the silence
Kokoro leaves around each call is cut to a natural pause at the seams.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from dragoman.audio import check_audio
from dragoman.errors import DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Clock,
    FloatAudio,
    MonotonicClock,
    Span,
    TranslationText,
)
from dragoman.languages import normalize_language
from dragoman.tts.base import (
    MAX_RATE,
    OUTPUT_RATE,
    SynthesisBackend,
    check_rate,
    check_text,
    speakable,
)
from dragoman.tts.prosody import (
    ProsodyConfig,
    ProsodyProfile,
    extract_prosody,
    slice_profile,
    speech_extent,
    transfer_prosody,
)
from dragoman.tts.routing import Route, Router
from dragoman.tts.segments import Segment, split_phrase

if TYPE_CHECKING:
    from dragoman.watermark import WatermarkKey

logger = logging.getLogger(__name__)

_PHRASE_END = tuple(".,;:!?…。、！？")


@dataclass(frozen=True, slots=True)
class SynthesisConfig:
    """Options of one synthesis stream (one target language).

    language: target language (any accepted spelling). backend / voice: force a
    backend or voice (default: routed). rate: speaking-rate multiplier in [0.5, 2]
    (with prosody transfer, relative to the speaker's own pace). prosody: impose the
    source speaker's prosody when source audio is known.
    chunk_ms: output chunk length. min_phrase_words: committed text is spoken at
    punctuation, at the end of an utterance, or once this many words are waiting.
    idle_phrase_words: ... or once this many are waiting while the listener has at
    most `gather_while_s` left to hear (`Synthesizer.buffered_s`): a listener about to
    fall silent gains nothing from a longer phrase, and the first words of an utterance
    are heard sooner; while more earlier speech still plays, words gather into longer
    phrases (fewer synthesis calls, smoother prosody). 1 (the default since 2026-11-24, was
    2): the first committed word of an utterance is spoken at once, without waiting
    for the next decode to commit a second (docs/benchmarks.md, "End to end").
    gather_while_s: words gather into phrases of `min_phrase_words` only while the
        listener has more than this much speech still to hear; with less, a phrase
        rendered after more words came would reach the listener after that speech ran
        out, so `idle_phrase_words` are enough. 0 gathers whenever anything still plays
        (the rule until 2026-11-24; 2.0 took 0.3-1.1 s off StartOffset end to end,
        docs/benchmarks.md, "End to end", session 13).
    payload: 32-bit watermark payload (service id + session hash).
    source_seconds: how much source audio is kept for prosody.
    first_segment_words: streaming inside a phrase: the first segment holds about
    this many words (up to the first clause end), so its audio leaves while the rest
    is synthesized; later segments grow (`split_phrase`). 0 renders each phrase in
    one call (first audio only after the whole phrase).
    cut_inside_clauses: with prosody transfer, cut inside a clause too. Off by default:
    cuts fall on clause punctuation only, so a phrase without any is rendered whole
    (its first audio waits for all of it; its contour is imposed in one piece). On,
    a long clause is heard sooner; on short prompts end to end it gained no latency
    and cost a little intelligibility (docs/benchmarks.md, 2026-11-24).
    catch_up_after_s: a live listener who still has more than this much speech to hear
        when a phrase is rendered hears that phrase faster, by 1/`CATCH_UP_OVER_S` per
        second of excess, up to `max_catch_up` times `rate`: with each phrase as long
        as its source, the listener stays as far behind as the first audio came, and
        falls further behind with every wait for a render. None keeps `rate` (a dub
        track made faster than real time, where nobody listens live).
    max_catch_up: the most the catch-up multiplies `rate` by.
    """

    language: str
    backend: str | None = None
    voice: str | None = None
    rate: float = 1.0
    prosody: bool = True
    prosody_config: ProsodyConfig = field(default_factory=ProsodyConfig)
    chunk_ms: int = 200
    min_phrase_words: int = 4
    idle_phrase_words: int = 1
    gather_while_s: float = 2.0
    payload: int = 0
    source_seconds: float = 60.0
    first_segment_words: int = 3
    cut_inside_clauses: bool = False
    catch_up_after_s: float | None = 0.5
    max_catch_up: float = 1.25

    def __post_init__(self) -> None:
        check_rate(self.rate)
        if self.catch_up_after_s is not None and not 0.0 <= self.catch_up_after_s <= 60.0:
            raise DragomanError("catch_up_after_s must be None or in [0, 60] seconds")
        if not 1.0 <= self.max_catch_up <= MAX_RATE:
            raise DragomanError(f"max_catch_up must be in [1, {MAX_RATE}], got {self.max_catch_up}")
        normalize_language(self.language)
        if not 10 <= self.chunk_ms <= 5_000:
            raise DragomanError(f"chunk_ms must be in [10, 5000], got {self.chunk_ms}")
        if self.min_phrase_words < 1:
            raise DragomanError("min_phrase_words must be at least 1")
        if not 1 <= self.idle_phrase_words <= self.min_phrase_words:
            raise DragomanError("idle_phrase_words must be in [1, min_phrase_words]")
        if not 0.0 <= self.gather_while_s <= 60.0:
            raise DragomanError("gather_while_s must be in [0, 60] seconds")
        if self.first_segment_words < 0:
            raise DragomanError("first_segment_words must be 0 (off) or more")


CATCH_UP_OVER_S = 2.0
"""Speech over which the catch-up would make up a listener's excess backlog (s)."""
_CLAUSE_PAUSE_S = 0.12
"""Silence kept at a seam between segments that ends at clause punctuation (s)."""
_WORD_PAUSE_S = 0.04
"""Silence kept at a seam inside a clause (s): about a word boundary."""
_FADE_S = 0.004


def _tighten(audio: FloatAudio, *, lead: float | None, tail: float | None,
             pad: bool = False) -> FloatAudio:
    """`audio` with at most `lead` / `tail` seconds of silence around its speech
    (None: leave that side alone; `pad`: make the tail exactly `tail` long, adding
    silence), with short fades where it was cut."""
    try:
        start, end = speech_extent(audio, OUTPUT_RATE)
    except DragomanError:
        return audio
    first = 0 if lead is None else max(0, round((start - lead) * OUTPUT_RATE))
    last = audio.size if tail is None else min(audio.size, round((end + tail) * OUTPUT_RATE))
    out = np.array(audio[first:last], dtype=np.float32)
    fade = min(round(_FADE_S * OUTPUT_RATE), out.size // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        if first > 0:
            out[:fade] *= ramp
        if last < audio.size:
            out[-fade:] *= ramp[::-1]
    if pad and tail is not None:
        missing = round((end + tail) * OUTPUT_RATE) - last
        if missing > 0:
            out = np.concatenate([out, np.zeros(missing, dtype=np.float32)])
    return out


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

    def write(self, pcm: FloatAudio, span: Span, *, phrase_end: bool = False) -> list[AudioChunk]:
        """Mark `pcm` and cut it into chunks. At a phrase end the last, shorter chunk
        goes out too instead of waiting for the next phrase's audio."""
        if self._closed:
            raise DragomanError("synthesis output is already finished")
        self._spans.append((self._fed, span))
        self._fed += pcm.size
        return self._chunks(self._embedder.feed(pcm), final=phrase_end)

    @property
    def delay(self) -> int:
        """Output samples the watermark embedder holds back."""
        return self._embedder.delay_samples

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
                                  self._span_at(self._pts + piece.size - 1)))
            self._pts += piece.size
        return out


class Synthesizer:
    """Sync core of the TTS stage for one target language (see module doc).

    `push_source()` keeps recent source audio (16 kHz session samples) for prosody;
    `push_text()` takes committed translation text; `say()` speaks one phrase now;
    `flush()` speaks what is waiting; `events()` drains the chunks produced;
    `finish()` ends the stream. `start()` loads the backends. `clock` times the
    listener's playback (chunks are assumed heard back to back, in real time, from
    when they leave), which decides `buffered_s`.
    """

    def __init__(self, config: SynthesisConfig, key: WatermarkKey,
                 router: Router | None = None, clock: Clock | None = None) -> None:
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
        self.phrase_rate = config.rate
        """The rate the last phrase was spoken at (`rate`, or faster to catch up)."""
        self._fast_route: Route | None = None
        self.fast = False
        """Speak with the cheapest backend (espeak-ng) instead of the routed neural
        voice: the pipeline's last resort while speech lags far behind the speaker."""
        self._sink: Callable[[list[AudioChunk]], None] | None = None
        self._clock = clock or MonotonicClock()
        self._playout_end = 0.0

    @property
    def buffered_s(self) -> float:
        """Seconds of speech that left and that the listener has not heard yet."""
        return max(0.0, self._playout_end - self._clock.now())

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
        cfg = self.config
        busy = self.buffered_s > cfg.gather_while_s
        enough = cfg.min_phrase_words if busy else cfg.idle_phrase_words
        if update.final or boundary or len(self._words) >= enough:
            self.flush()

    def flush(self) -> None:
        """Speak the committed text that is waiting, if any. Punctuation alone (the "?"
        of a Spanish question committed after its words were spoken) has nothing to
        say and is dropped; `say()` itself rejects it."""
        if not self._words:
            return
        text, span = " ".join(self._words), self._span or Span(0, 0)
        self._words, self._span = [], None
        if not speakable(text):
            logger.debug("nothing to speak in %r", text)
            return
        self.say(text, source_span=span)

    def set_sink(self, sink: Callable[[list[AudioChunk]], None] | None) -> None:
        """Hand chunks to `sink` as soon as each segment is marked, instead of keeping
        them for `events()` (how `SynthesisStream` streams inside a phrase). `sink`
        runs on the synthesizing thread; an exception from it aborts the phrase."""
        self._sink = sink

    def _emit(self, chunks: list[AudioChunk]) -> None:
        if not chunks:
            return
        now = self._clock.now()
        for chunk in chunks:
            self._playout_end = max(now, self._playout_end) + chunk.pcm.size / chunk.sample_rate
        if self._sink is not None:
            self._sink(chunks)
        else:
            self._events += chunks

    def say(self, text: str, *, source_span: Span | None = None,
            prosody_from: FloatAudio | None = None) -> None:
        """Speak one phrase now. Prosody comes from `prosody_from` (16 kHz) when given,
        else from the buffered source audio under `source_span`.

        The phrase is rendered in segments (`split_phrase`); each segment's chunks
        are ready (for `events()`, or handed to the sink) as soon as it is marked.
        """
        if self._finished:
            raise DragomanError("say() after finish()")
        cleaned = check_text(text)
        if self._output is None:
            self.start()
        assert self._output is not None
        span = source_span or Span(0, 0)
        profile = self._profile(span, prosody_from) if self.config.prosody else None
        rate = self.phrase_rate = self._catch_up_rate()
        if profile is not None and rate != 1.0:
            # The rate is relative to the speaker: prosody transfer re-times the output
            # to the source's duration, which otherwise took back half of a faster
            # rate (es, rate 1.25: 0.84 of the source's duration instead of 0.80).
            profile = replace(profile, duration_s=profile.duration_s / rate)
        route = self._choose_route(profile)
        if self.fast and route.neural:
            route = self._cheap_route(profile) or route
        backend = self._router.backend(route.backend)
        # Without prosody transfer a seam costs nothing of the speaker's contour.
        inside = profile is None or self.config.cut_inside_clauses
        segments = split_phrase(cleaned, first_words=self.config.first_segment_words,
                                inside_clauses=inside)
        for index, segment in enumerate(segments):
            audio = self._render(backend, route, segment, profile, rate,
                                 first=index == 0, last=index == len(segments) - 1)
            self._emit(self._output.write(audio, span))
        # The embedder's delay (one frame) of silence pushes the phrase's end out.
        gap = np.zeros(self._output.delay, dtype=np.float32)
        self._emit(self._output.write(gap, span, phrase_end=True))

    def _catch_up_rate(self) -> float:
        """The rate of the phrase about to be rendered (`SynthesisConfig.catch_up_after_s`)."""
        cfg = self.config
        if cfg.catch_up_after_s is None:
            return self._rate
        excess = max(0.0, self.buffered_s - cfg.catch_up_after_s)
        catch_up = min(cfg.max_catch_up, 1.0 + excess / CATCH_UP_OVER_S)
        return min(MAX_RATE, max(self._rate, cfg.rate * catch_up))

    def _render(self, backend: SynthesisBackend, route: Route, segment: Segment,
                profile: ProsodyProfile | None, rate: float, *, first: bool,
                last: bool) -> FloatAudio:
        """One segment, unmarked: synthesized, prosody imposed, seams tightened.

        With prosody, the segment takes exactly its share of the source speech
        (`segment.start`..`segment.end` of its duration, the pause at its seam
        included), so the segments laid end to end follow the source contour on
        the same time axis as a phrase rendered whole would.
        """
        pieces = list(backend.render_unmarked(segment.text, route.voice, rate=rate))
        audio = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        if first and last:
            return audio if profile is None else self._shape(audio, profile, segment.text)
        pause = 0.0 if last else _CLAUSE_PAUSE_S if segment.clause_end else _WORD_PAUSE_S
        lead = None if first else _FADE_S
        tail = None if last else pause
        audio = _tighten(audio, lead=lead, tail=tail)
        if profile is None:
            return audio
        share = (segment.end - segment.start) * profile.duration_s
        speech = max(share - pause, 0.5 * share)
        end = segment.start + (segment.end - segment.start) * speech / share
        shaped = self._shape(audio, slice_profile(profile, segment.start, end), segment.text)
        return _tighten(shaped, lead=lead, tail=tail, pad=True)

    def _shape(self, audio: FloatAudio, profile: ProsodyProfile, text: str) -> FloatAudio:
        try:
            return transfer_prosody(audio, OUTPUT_RATE, profile, self.config.prosody_config)
        except DragomanError as exc:  # a segment with no voiced speech: keep it as is
            logger.debug("no prosody transfer for %r: %s", text, exc.message)
            return audio

    def _choose_route(self, profile: ProsodyProfile | None) -> Route:
        if self._route is None:
            hz = profile.median_hz if profile is not None else None
            self._route = self._router.route(self.language, speaker_hz=hz)
            logger.info("%s speech: %s voice %s", self.language, self._route.backend,
                        self._route.voice.name)
        return self._route

    def _cheap_route(self, profile: ProsodyProfile | None) -> Route | None:
        """A non-neural route for this language (chosen once), or None if there is none."""
        if self._fast_route is None and self.config.backend is None:
            hz = profile.median_hz if profile is not None else None
            for backend in self._router.speakers(self.language):
                if not backend.neural and backend.voices(self.language):
                    self._fast_route = self._router.route(
                        self.language, backend=backend.name, speaker_hz=hz)
                    break
        return self._fast_route

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
