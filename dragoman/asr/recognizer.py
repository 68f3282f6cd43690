"""The streaming recognizer core: VAD-gated Whisper re-decodes with local agreement.

Synchronous and free of I/O: `feed()` audio, read `events()`, `finish()` at the
end. The transcriber is injected, so the same core runs in the CLI, the pipeline
and tests.

Per speech segment (from the VAD):

* no decode runs outside speech (no text is hallucinated from silence);
* while speech goes on, the growing buffer is re-decoded once at least
  `interim_interval_ms` of new audio arrived since the last decode. One call of
  `feed()` runs at most one interim decode, on the newest audio: when the caller
  falls behind real time and hands over a larger block, decodes get rarer instead
  of queueing up, so the stream never drifts further behind;
* words on which a hypothesis agrees with one of the two before it are committed
  (`LocalAgreement`); the buffer is cut at the last committed sentence end once it
  grows past `trim_after_ms` (at the last committed word past twice that);
* at the segment end one final decode commits everything. It is run ahead, as soon as
  speech has paused `pad_ms` (`RecognizerConfig.prefetch_final`): the audio it needs
  is complete then, and the VAD only waits out the rest of its hangover to be sure.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from dragoman.asr.agreement import (
    LocalAgreement,
    guard_repetitions,
    guard_speaking_rate,
    guard_trailing,
)
from dragoman.asr.pauses import pause_after
from dragoman.asr.vad import VadConfig, VoiceActivityDetector
from dragoman.asr.whisper import Transcriber, Transcript
from dragoman.audio import check_audio
from dragoman.errors import UnsupportedLanguageError
from dragoman.events import (
    SAMPLE_RATE,
    Clock,
    FloatAudio,
    MonotonicClock,
    Samples,
    SourceEvent,
    SourceText,
    SpeechEnded,
    SpeechStarted,
    Word,
)
from dragoman.languages import normalize_language

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecognizerConfig:
    """Streaming settings. Defaults measured on 2 CPU cores (docs/benchmarks.md)."""

    language: str | None = None
    """Source language; None detects it per utterance (a guess with a probability)."""
    language_lock_probability: float = 0.8
    """With detection, an utterance's language is fixed once a decode of at least
    `language_lock_ms` of audio is this sure; until then every decode re-detects."""
    language_lock_ms: int = 1500
    """Least audio a decode needs to fix the language: on 0.6 s Whisper base heard
    the Spanish "Sus contraseñas ..." as French, and was sure of it."""
    interim_interval_ms: int = 600
    """Least new speech between interim re-decodes (the cadence on fast hardware)."""
    compute_budget: float = 0.4
    """Share of real time interim decodes may use: the cadence stretches to
    (measured decode time / budget), so a slow CPU decodes less often instead of
    falling behind. Whisper base with its fitted encoder window (the default) costs
    0.15-0.45 s a decode on 2 cores, so about one decode a second; padded to the full
    30 s window ~0.7 s -> ~1.8 s."""
    decode_overhead_ms: int | None = 3000
    """A decode's cost is predicted as proportional to its buffer plus this much audio,
    and a buffer predicted to cost less than the recent decodes' median is decoded that
    much sooner: a young utterance's short buffer is decoded often (its first words are
    committed sooner) instead of at the pace of the previous utterance's long buffers;
    longer buffers keep the median's pace. Whisper base with its fitted encoder window
    encodes the buffer and 3 s of silence after it; on 2 cores a decode of 0.6 / 2 / 5 / 8
    s cost 0.19 / 0.29 / 0.50 / 0.68 s (within 10 % of proportional to the buffer + 3 s).
    Use 30000 with the full 30 s window (every decode costs the same); None paces every
    decode by the median alone (the rule until session 14)."""
    commit_context_ms: int = 800
    """An interim decode commits only agreed words that end at least this long before
    its buffer does (the final decode commits everything). With the fitted encoder
    window, decodes 0.6-1 s apart sometimes agree on the same wrong guess at a word
    with little audio after it; 800 ms took streaming WER from 0.160 to 0.142 (es)
    and 0.228 to 0.223 (fr), en 0.119 -> 0.112, at the same commit latency (1200 ms
    was no better; 40 prompts per language, docs/benchmarks.md)."""
    min_decode_ms: int = 500
    """Interim decodes wait for this much speech (shorter buffers only hallucinate)."""
    trim_after_ms: int = 8000
    """Cut the buffer at the last committed word once it is longer than this."""
    max_buffer_ms: int = 20_000
    """Force-commit and cut if agreement stalls this long (Whisper sees 30 s)."""
    agreement_history: int = 2
    """Recent hypotheses a new one may agree with (`LocalAgreement`; 1 is LocalAgreement-2
    proper). 2 unsticks a decoder that alternates between two readings: 40 prompts per
    language, 20 paced, against 1 in the same session: WER es 0.149 -> 0.129, en and fr
    unchanged; median commit latency en 5.36 -> 4.06 s, es 3.05 -> 2.78 s, fr 3.15 ->
    3.14 s (docs/benchmarks.md)."""
    trailing_word_probability: float = 0.35
    """Final words below this probability at the end of a segment are dropped."""
    no_speech_threshold: float = 0.6
    """A final decode whose no-speech probability exceeds this yields no words, unless
    its words are confident (Whisper's own rule, with its log-probability -1 as the
    geometric mean of the word probabilities): a short "3D audio enabled" after a pause
    scored no-speech 0.71 with words at 0.89 / 0.49 / 0.98."""
    no_speech_word_probability: float = math.exp(-1.0)
    min_interim_probability: float = 0.3
    """An interim hypothesis whose words' geometric-mean probability is below this commits
    nothing (the final decode, with aligned word probabilities, still decides): white
    noise at -26 dBFS came out as "I'm going to put the sauce on the side." at 0.17 in two
    interim decodes in a row, and the five words they shared were committed."""
    sparse_ratio: float = 0.5
    """An interim hypothesis whose new words, over the audio after the committed ones,
    fall below this share of the speaker's committed rate is ignored: Whisper sometimes
    skips a stretch of the buffer, and two such hypotheses would otherwise agree on
    text that leaves words out."""
    prefetch_final: bool = True
    """Decode a segment's final audio once its speech has paused `vad.pad_ms`, during the
    rest of the VAD's hangover, instead of after it: if the pause lasts, that decode is
    the final one (the same audio, so the same words) and the last words are committed
    when the VAD ends the segment rather than one decode later; if speech resumes, it
    serves as an interim hypothesis taken at a pause."""
    vad: VadConfig = field(default_factory=VadConfig)


@dataclass(slots=True)
class _Segment:
    utterance: int
    start: Samples
    buffer_start: Samples
    language: str | None
    """Locked language (given, or detected with enough confidence); None: still guessing."""
    guess: str = "und"
    language_probability: float = 1.0
    last_decode_end: Samples = 0
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    prefetched: tuple[Samples, Samples, Transcript] | None = None
    """A final decode run ahead: (buffer start, end, transcript)."""


DECODE_COST_HISTORY = 5
"""Recent decodes, final ones included, whose costs set the cadence. A moving
average of interim decodes only latched: one looping 0.6 s decode cost 4.3 s, stretched
the cadence past 10 s, and with no utterance that long no interim decode ever ran again
to shrink it (French: every word waited for its utterance's end)."""
MIN_RATE_WORDS = 6
"""Committed words needed before the speaker's rate is trusted."""
MIN_SPARSE_SECONDS = 2.0
"""Less uncommitted audio than this is never judged sparse (too few words to tell)."""


def _mean_probability(transcript: Transcript) -> float:
    """Geometric mean of the word probabilities (1.0 with no words)."""
    logs = [math.log(max(w.probability, 1e-9)) for w in transcript.words]
    return math.exp(sum(logs) / len(logs)) if logs else 1.0


def _ms(ms: int) -> Samples:
    return ms * SAMPLE_RATE // 1000


_SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01", "\u0964", "\u061f")
"""Latin, CJK (。？！), Devanagari danda and Arabic question mark."""


def _ends_sentence(text: str) -> bool:
    """Whether a word closes a sentence ("locked." yes; "5.00", "..." as a pause mark no)."""
    stripped = text.strip().rstrip("\"')»”’")
    return stripped.endswith(_SENTENCE_END) and not stripped.endswith("...")


def _continues(text: str) -> bool:
    """Whether a word carries on the sentence before it: a lowercase or a digit after a
    full stop is an abbreviation's ("Mark No. 6", "Sr. García" is not caught), not a new
    sentence. Scripts without case never continue."""
    first = text.strip().lstrip("\"'(¿¡«“‘")[:1]
    return first.islower() or first.isdigit()


class StreamingRecognizer:
    """VAD + Whisper + LocalAgreement over one audio stream."""

    def __init__(
        self,
        transcriber: Transcriber,
        config: RecognizerConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        cfg = config or RecognizerConfig()
        if cfg.language is not None:
            code = normalize_language(cfg.language)
            if not transcriber.supports(code):
                raise UnsupportedLanguageError(f"the recognizer cannot hear {cfg.language!r}")
            cfg = replace(cfg, language=code)
        self.config = cfg
        self._transcriber = transcriber
        self._clock = clock or MonotonicClock()
        self._decode_costs: deque[tuple[float, float]] = deque(maxlen=DECODE_COST_HISTORY)
        """(seconds spent, `_cost_units` of the buffer) of recent decodes."""
        self._vad = VoiceActivityDetector(cfg.vad)
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start: Samples = 0  # session index of self._audio[0]
        self._segment: _Segment | None = None
        self._events: list[SourceEvent] = []
        self.decodes = 0
        self.decode_samples: Samples = 0  # audio seconds decoded, for statistics

    def start(self) -> None:
        self._vad.start()

    @property
    def position(self) -> Samples:
        """Samples fed so far."""
        return self._audio_start + self._audio.size

    @property
    def cadence(self) -> Samples:
        """Current least new audio between interim decodes: the predicted cost of decoding
        the buffer now over the compute budget (`decode_overhead_ms`), at least the floor."""
        cfg = self.config
        segment = self._segment
        buffer = 0 if segment is None else self.position - segment.buffer_start
        adaptive = round(self._predicted_cost(buffer) / cfg.compute_budget * SAMPLE_RATE)
        return max(_ms(cfg.interim_interval_ms), adaptive)

    def _cost_units(self, samples: Samples) -> float:
        """Seconds of buffer plus `decode_overhead_ms`: what a decode's cost grows with."""
        overhead = self.config.decode_overhead_ms
        return max(samples + _ms(overhead or 0), 1) / SAMPLE_RATE

    def _predicted_cost(self, samples: Samples) -> float:
        """The cost that paces a decode of `samples`: the recent decodes' median cost, or,
        with `decode_overhead_ms` and when less, their median cost per cost unit times
        this buffer's units (a short buffer's decode is cheap, so it may come sooner)."""
        if not self._decode_costs:
            return 0.0
        typical = statistics.median(cost for cost, _ in self._decode_costs)
        if self.config.decode_overhead_ms is None:
            return typical
        rate = statistics.median(cost / units for cost, units in self._decode_costs)
        return min(typical, rate * self._cost_units(samples))

    def feed(self, samples: FloatAudio) -> None:
        audio = check_audio(samples, allow_empty=True)
        self._audio = np.concatenate([self._audio, audio])
        self._vad.feed(audio)
        self._handle_vad()
        segment = self._segment
        pause = self._vad.pause_end if self.config.prefetch_final else None
        if segment is not None and pause is not None:
            if segment.prefetched is None or segment.prefetched[1] != pause:
                self._prefetch(segment, pause)
        elif segment is not None:
            new = self.position - max(segment.last_decode_end, segment.start)
            if new >= self.cadence and (
                self.position - segment.start >= _ms(self.config.min_decode_ms)
            ):
                self._interim(segment)
        self._drop_old_audio()

    def finish(self) -> list[SourceEvent]:
        """End of input: close an open segment and return the remaining events.

        Speech that runs to the very end of the input (a recording cut tight, a stream
        stopped mid-sentence) first gets `vad.pad_ms` of silence, as a pause would have
        given it: Whisper base hears a word cut at the buffer's edge badly (the Spanish
        "... la tecla de número" ending a file: "numeró" at 0.38, then dropped as an unsure
        trailing word; "número" at 0.61 with silence after it).
        """
        if self._vad.in_speech and self._vad.pause_end is None:
            self.feed(np.zeros(_ms(self.config.vad.pad_ms), dtype=np.float32))
        for event in self._vad.finish():
            self._on_vad(event)
        return self.events()

    def events(self) -> list[SourceEvent]:
        out, self._events = self._events, []
        return out

    # -- segments ------------------------------------------------------------

    def _handle_vad(self) -> None:
        for event in self._vad.events():
            self._on_vad(event)

    def _on_vad(self, event: SpeechStarted | SpeechEnded) -> None:
        if isinstance(event, SpeechStarted):
            self._segment = _Segment(
                event.utterance, event.at, event.at, self.config.language, last_decode_end=event.at,
                agreement=LocalAgreement(self.config.agreement_history),
            )
            self._events.append(event)
            return
        segment = self._segment
        if segment is not None:
            self._final(segment, event.at)
            self._segment = None
        self._events.append(event)

    def _buffer(self, segment: _Segment, end: Samples) -> FloatAudio:
        lo = max(segment.buffer_start - self._audio_start, 0)
        return self._audio[lo : end - self._audio_start]

    def _decode(self, segment: _Segment, end: Samples, *, final: bool) -> Transcript:
        audio = self._buffer(segment, end)
        # Aligned word times cost an extra pass; interim decodes of a short buffer do
        # without (agreement matches words by text). The final decode keeps them: its
        # word probabilities catch hallucinated trailing words, and its times feed
        # the spans that translation, prosody and latency measurements use.
        word_times = final or audio.size > _ms(self.config.trim_after_ms)
        # No prompt of the committed words after a trim: with one, Whisper skips the
        # committed words still in the buffer and often the next few too (measured on
        # the long English prompts: streaming WER 0.145 with, 0.052 without).
        began = self._clock.now()
        transcript = self._transcriber.transcribe(
            audio, language=segment.language, word_times=word_times, retry_loops=final
        )
        spent = self._clock.now() - began
        self._decode_costs.append((spent, self._cost_units(audio.size)))
        self.decodes += 1
        self.decode_samples += audio.size
        segment.last_decode_end = end
        if segment.language is None:
            segment.guess = transcript.language
            segment.language_probability = transcript.language_probability
            if (transcript.language_probability >= self.config.language_lock_probability
                    and audio.size >= _ms(self.config.language_lock_ms)):
                segment.language = transcript.language
        offset = segment.buffer_start
        words = [Word(w.text, w.start + offset, w.end + offset, w.probability)
                 for w in transcript.words]
        words = guard_speaking_rate(guard_repetitions(words))
        return replace(transcript, words=tuple(words))

    def _interim(self, segment: _Segment) -> None:
        end = self.position
        self._consider(segment, self._decode(segment, end, final=False), end)
        self._trim(segment)

    def _prefetch(self, segment: _Segment, end: Samples) -> None:
        """Run the final decode of a segment that may end at `end` (its speech paused).
        The buffer is not trimmed after it, so the final decode can take it as is."""
        transcript = self._decode(segment, end, final=True)
        segment.prefetched = (segment.buffer_start, end, transcript)
        if end - segment.start >= _ms(self.config.min_decode_ms):
            self._consider(segment, transcript, end)

    def _consider(self, segment: _Segment, transcript: Transcript, end: Samples) -> None:
        """Commit what a hypothesis of the buffer up to `end` agrees on with earlier ones."""
        committed: list[Word] = []
        if transcript.looped:
            logger.debug("ignoring a looped hypothesis: %s", transcript.words)
        elif _mean_probability(transcript) < self.config.min_interim_probability:
            logger.debug("ignoring an unsure hypothesis: %s", transcript.words)
        elif self._sparse(segment, transcript, end):
            logger.debug("ignoring a hypothesis that skips speech: %s", transcript.words)
        else:
            hold_after = end - _ms(self.config.commit_context_ms)
            committed = segment.agreement.insert(transcript.words, hold_after=hold_after,
                                                 buffer_start=segment.buffer_start)
        if self.position - segment.buffer_start > _ms(self.config.max_buffer_ms):
            logger.warning("no agreement in %d ms: force-committing", self.config.max_buffer_ms)
            committed += segment.agreement.flush()
        self._emit(segment, committed, final=False)

    def _sparse(self, segment: _Segment, transcript: Transcript, end: Samples) -> bool:
        """Whether a hypothesis has far fewer new words than this speaker says in the
        audio after the committed words (up to `end`)."""
        agreement = segment.agreement
        committed = agreement.committed
        if len(committed) < MIN_RATE_WORDS:
            return False
        new_seconds = (end - agreement.committed_end) / SAMPLE_RATE
        if new_seconds < MIN_SPARSE_SECONDS:
            return False
        span = (committed[-1].end - committed[0].start) / SAMPLE_RATE
        rate = len(committed) / max(span, 1e-3)
        fresh = agreement.new_part(transcript.words)
        return len(fresh) < self.config.sparse_ratio * rate * new_seconds

    def _final(self, segment: _Segment, end: Samples) -> None:
        prefetched = segment.prefetched
        if prefetched is not None and prefetched[:2] == (segment.buffer_start, end):
            transcript = prefetched[2]
        else:
            transcript = self._decode(segment, end, final=True)
        logger.debug("final decode of %d samples: %s", end - segment.buffer_start,
                     transcript.words)
        speech_end = end - _ms(self.config.vad.pad_ms)
        words = guard_trailing(
            transcript.words, speech_end=speech_end,
            min_probability=self.config.trailing_word_probability,
            confirmed=segment.agreement.confirmed(transcript.words, segment.buffer_start),
        )
        if self._silent(transcript) and not segment.agreement.committed:
            committed = []
        else:
            committed = segment.agreement.flush(words, segment.buffer_start)
        self._emit(segment, committed, final=True)

    def _silent(self, transcript: Transcript) -> bool:
        """Whether a final decode heard no speech: Whisper says so and its words are unsure."""
        cfg = self.config
        if transcript.no_speech_probability <= cfg.no_speech_threshold:
            return False
        probability = _mean_probability(transcript)
        return not transcript.words or probability < cfg.no_speech_word_probability

    def _emit(self, segment: _Segment, committed: list[Word], *, final: bool) -> None:
        tentative = () if final else segment.agreement.tentative
        language = segment.language or segment.guess
        self._events.append(SourceText(
            utterance=segment.utterance, language=language, committed=tuple(committed),
            tentative=tentative, final=final, language_probability=segment.language_probability,
        ))

    def _trim(self, segment: _Segment) -> None:
        """Cut the buffer once it is long: at the end of the last committed sentence, or,
        with none in the buffer and twice the length, at the last committed word.

        A buffer that starts mid-sentence makes Whisper skip or mishear its first words
        ("28.8 kilobit" cut after "28.8" came back as "kill a bit"), so sentence ends
        are the cut points of choice, moved into the pause that follows the word's timed
        end (`pause_after`).
        """
        length = self.position - segment.buffer_start
        if length <= _ms(self.config.trim_after_ms):
            return
        committed = segment.agreement.committed
        following = [*committed[1:], *segment.agreement.tentative[:1]]
        sentence_ends = [w.end for w, after in zip(committed, [*following, None], strict=False)
                         if w.end > segment.buffer_start and _ends_sentence(w.text)
                         and not (after is not None and _continues(after.text))]
        if sentence_ends:
            # In the pause after the word, not at its timed end, but never past a
            # committed word that follows it.
            end = sentence_ends[-1]
            limit = min([w.start for w in committed if w.start >= end] + [self.position])
            lo = self._audio_start
            segment.buffer_start = min(lo + pause_after(self._audio, end - lo), limit)
        elif length > 2 * _ms(self.config.trim_after_ms):
            segment.buffer_start = max(segment.buffer_start, segment.agreement.committed_end)

    def _drop_old_audio(self) -> None:
        """Keep only audio a segment may still need (padding reaches back pad_ms)."""
        keep_from = self.position - _ms(self.config.vad.pad_ms + self.config.vad.start_window_ms)
        if self._segment is not None:
            keep_from = min(keep_from, self._segment.buffer_start)
        drop = keep_from - self._audio_start
        if drop > SAMPLE_RATE:
            self._audio = self._audio[drop:].copy()
            self._audio_start = keep_from
