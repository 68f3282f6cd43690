"""Whisper through faster-whisper (CTranslate2), tuned for streaming re-decodes.

Streaming settings, each for a measured reason (DESIGN.md, ASR): greedy decoding
at a single temperature (faster-whisper's fallback ladder stalled for 10-56 s),
no conditioning on previous text and no internal VAD (our VAD already bounds the
buffer), word timestamps for LocalAgreement and buffer trimming.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from dragoman.errors import BackendError, UnsupportedLanguageError
from dragoman.events import SAMPLE_RATE, FloatAudio, Word
from dragoman.languages import normalize_language
from dragoman.models import ModelStore, ResolvedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transcript:
    """One decode of a buffer. Word times are samples from the buffer's start."""

    words: tuple[Word, ...]
    language: str
    language_probability: float
    no_speech_probability: float
    looped: bool = False
    """The decoder fell into a repetition loop and was not retried (`retry_loops=False`)."""


class Transcriber(Protocol):
    """What the streaming recognizer needs from a speech recognizer."""

    def transcribe(
        self, audio: FloatAudio, *, language: str | None, word_times: bool = True,
        retry_loops: bool = True,
    ) -> Transcript: ...

    def supports(self, language: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class WhisperConfig:
    model: str = "whisper-base"
    """Catalogue name (see `dragoman models list`)."""
    model_path: str | None = None
    """Explicit directory of CTranslate2 Whisper weights (overrides the catalogue)."""
    compute_type: str = "int8"
    cpu_threads: int = 2
    device: str = "cpu"
    beam_size: int = 1
    """Greedy: beam 5 costs about 2x per decode on this CPU for little WER gain."""
    candidate_languages: tuple[str, ...] = ()
    """Restrict language detection to these (empty: all of Whisper's languages)."""
    context_margin_s: float | None = 3.0
    """Encode only the buffer plus this much trailing silence (whisper.cpp's `audio_ctx`;
    CTranslate2 takes any length up to the window); None pads every call to Whisper's
    30 s window, as it was trained. The encoder's cost scales with its input: a decode
    of a 2 s clip takes 0.3 s of CPU instead of 1.3 s, so interim decodes come twice as
    often and streaming commit latency halves (3.4-4.4 s -> 1.7-2.4 s median on 2
    cores) at the same mean streaming WER over en/es/fr (docs/benchmarks.md, ASR,
    2026-11-23). Single words differ both ways ("contraseñas" is "con tres señas" with
    3 s, right from a 10 s window on). With 1 s Whisper base looped."""
    min_window_s: float = 0.0
    """With `context_margin_s`: never encode less than this many seconds (a floor that
    keeps short buffers in a longer, more Whisper-like window). A 12 s floor still
    heard "Sus contraseñas" as "con tres señas" in the browser test."""


_BLAS_LIBRARY = re.compile(r"/[^/]*(openblas|libmkl|libblis|flexiblas)[^/]*\.so", re.IGNORECASE)


def _mapped_blas() -> frozenset[str]:
    """The BLAS libraries mapped into this process, from /proc/self/maps (a file read,
    which takes no loader lock); empty where there is no /proc."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return frozenset(match.group(0) for line in maps
                             if (match := _BLAS_LIBRARY.search(line)))
    except OSError:
        return frozenset()


class OneBlasThread:
    """While entered (by any number of threads at once), numpy's BLAS runs one thread.

    faster-whisper's log-mel features end in one small matrix product through numpy's
    OpenBLAS, whose idle worker threads then busy-wait about 0.1 s (2^28 cycles) for
    more work: on 2 cores that spinning thread took a core from CTranslate2 for every
    decode. With one thread, 100 Spanish prompts streamed as fast as possible took RTF
    0.29 (CPU RTF 0.44) against 0.35 (0.56) (bench/asr.py; docs/benchmarks.md, ASR,
    session 21). The original limit comes back when the last decode leaves, so numpy
    elsewhere in the process keeps its threads.

    The loaded BLAS libraries are looked up on the first entry, and again only when the
    process maps a BLAS library it did not map before (scipy's, loaded later), as
    /proc/self/maps shows. The lookup (threadpoolctl's `dl_iterate_phdr` walk) runs a
    Python callback while it holds the dynamic loader's lock, and Kokoro's phonemizer
    loads a copy of libespeak-ng for every phrase through ctypes, which holds the GIL
    while it waits for that lock: looked up on every decode, the two deadlocked
    (`dragoman listen` froze mid-sentence, one thread in each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._limiter: Any = None
        self._controller: ThreadpoolController | None = None
        self._mapped: frozenset[str] = frozenset()

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                mapped = _mapped_blas()
                if self._controller is None or mapped != self._mapped:
                    self._controller, self._mapped = ThreadpoolController(), mapped
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._inside += 1

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


class WhisperTranscriber:
    """A loaded Whisper model. Thread-safe for one decode at a time per instance."""

    def __init__(
        self, config: WhisperConfig | None = None, store: ModelStore | None = None
    ) -> None:
        self.config = config or WhisperConfig()
        self._store = store or ModelStore()
        self._model: Any = None
        self._languages: frozenset[str] = frozenset()
        self._one_blas_thread = OneBlasThread()

    def start(self) -> None:
        """Load the weights (explicit; a few seconds)."""
        if self._model is not None:
            return
        from faster_whisper import WhisperModel

        resolved = self._store.resolve(self.config.model, self.config.model_path)
        cfg = self.config
        kwargs: dict[str, Any] = {
            "device": cfg.device, "compute_type": cfg.compute_type, "cpu_threads": cfg.cpu_threads,
        }
        model_class = WhisperModel if cfg.context_margin_s is None else _fitted_model_class()
        if resolved.directory is not None:
            self._model = model_class(str(resolved.directory), **kwargs)
        else:
            self._model = model_class(cfg.model, files=_in_memory(resolved), **kwargs)
        self._languages = frozenset(self._model.supported_languages)
        logger.info("loaded %s from %s", resolved.name, resolved.source)

    @property
    def languages(self) -> frozenset[str]:
        self.start()
        return self._languages

    def supports(self, language: str) -> bool:
        return normalize_language(language) in self.languages

    def transcribe(
        self, audio: FloatAudio, *, language: str | None, word_times: bool = True,
        retry_loops: bool = True,
    ) -> Transcript:
        """Decode a buffer. With `word_times`, words carry aligned timestamps (an extra
        alignment pass: 10-25 % of a decode on 2 CPU cores); without, each word's
        time is interpolated within its segment by its share of the characters.

        A decode that loops with the fitted window is decoded again with the full one
        when `retry_loops`; without, it comes back marked `looped` (an interim decode
        can do without it: the retry costs a full-window decode)."""
        self.start()
        if language is not None and language not in self._languages:
            raise UnsupportedLanguageError(f"{self.config.model} cannot recognize {language!r}")
        margin = self.config.context_margin_s
        if margin is not None:
            self._model.encoder_frames = _encoder_frames(
                audio.size, margin, self.config.min_window_s
            )
        with self._one_blas_thread:  # no spinning BLAS thread beside CTranslate2
            detected: float | None = None  # among the candidates; a forced decode says 1.0
            if language is None and self.config.candidate_languages:
                language, detected = self._detect_among(audio, self.config.candidate_languages)
            materialized, info = self._decode(audio, language, word_times)
            looped = margin is not None and _looped(materialized)
            if looped and retry_loops:
                # The short window sometimes sends Whisper base into a loop ("weasels have
                # even our phone system" x9 on a 3 s clip) where the full window does not.
                logger.debug("decode looped with a fitted window; again with the full one")
                self._model.encoder_frames = FULL_WINDOW_FRAMES
                materialized, info = self._decode(audio, language, word_times)
                looped = False
        if word_times:
            words = tuple(
                Word(w.word, round(w.start * SAMPLE_RATE), round(w.end * SAMPLE_RATE),
                     w.probability)
                for segment in materialized
                for w in (segment.words or ())
                if w.word.strip()
            )
        else:
            limit = audio.size / SAMPLE_RATE
            words = tuple(
                word
                for segment in materialized
                for word in _interpolated(segment.text, segment.start, min(segment.end, limit),
                                          float(np.exp(segment.avg_logprob)))
            )
        no_speech = min((s.no_speech_prob for s in materialized), default=1.0)
        probability = float(info.language_probability) if detected is None else detected
        return Transcript(words, info.language, probability, float(no_speech), looped)

    def _decode(
        self, audio: FloatAudio, language: str | None, word_times: bool
    ) -> tuple[list[Any], Any]:
        try:
            segments, info = self._model.transcribe(
                audio,
                language=language,
                beam_size=self.config.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=word_times,
                vad_filter=False,
                without_timestamps=not word_times,
                max_new_tokens=_token_budget(audio.size),
            )
            return list(segments), info
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"whisper decode failed: {exc}") from exc

    def _detect_among(self, audio: FloatAudio, candidates: tuple[str, ...]) -> tuple[str, float]:
        """The likeliest candidate and its probability among the candidates only."""
        _, _, probabilities = self._model.detect_language(audio)
        allowed = {normalize_language(c) for c in candidates}
        ranked = [(float(p), code) for code, p in probabilities if code in allowed]
        if not ranked:
            raise UnsupportedLanguageError(f"none of {candidates} is a Whisper language")
        p, best = max(ranked)
        return best, p / max(1e-9, sum(q for q, _ in ranked))


FRAMES_PER_SECOND = 100
"""Whisper's mel frames per second; the encoder halves them (stride 2)."""
FULL_WINDOW_FRAMES = 3000


TOKENS_PER_SECOND = 20
"""Bound on `max_new_tokens` per second of audio, plus `EXTRA_TOKENS`. Generous: fast
speech is 4-6 text tokens a second, and CTranslate2 stops at about half the bound in
text tokens. It must leave a loop room to show itself: with 52 on the 3 s "Weasels have
eaten our phone system", the looped text compressed at 2.26, under the loop threshold;
with 80, 3.3."""
EXTRA_TOKENS = 24
MAX_NEW_TOKENS = 400
"""Whisper's limit is 448 tokens including the prompt."""


def _token_budget(samples: int) -> int:
    """Most tokens a decode of `samples` may produce. Unbounded, a looping decoder runs
    to Whisper's limit: 224 tokens of "cet agent. cet agent. ..." from 0.6 s of French
    took 3.8 s of CPU instead of 0.2 s, and that one decode stretched the recognizer's
    measured cadence past 10 s."""
    seconds = samples / SAMPLE_RATE
    return min(MAX_NEW_TOKENS, EXTRA_TOKENS + math.ceil(TOKENS_PER_SECOND * seconds))


LOOP_COMPRESSION_RATIO = 2.4
"""Whisper's own threshold: text that compresses better than this is a repetition loop."""


def _looped(segments: list[Any]) -> bool:
    return any(segment.compression_ratio > LOOP_COMPRESSION_RATIO for segment in segments)


def _encoder_frames(samples: int, margin_s: float, min_window_s: float = 0.0) -> int:
    """Mel frames to encode for `samples` of audio plus `margin_s` of padding, at least
    `min_window_s`: even (the encoder's stride), at most the full 30 s window."""
    seconds = max(samples / SAMPLE_RATE + margin_s, min_window_s)
    frames = math.ceil(seconds * FRAMES_PER_SECOND)
    return min(FULL_WINDOW_FRAMES, frames + frames % 2)


@cache
def _fitted_model_class() -> type[Any]:
    """faster-whisper's model, with its encoder input cut from the padded 30 s window
    down to `encoder_frames` (CTranslate2 accepts any length up to the window)."""
    from faster_whisper import WhisperModel

    class FittedWhisperModel(WhisperModel):  # type: ignore[misc]
        encoder_frames = FULL_WINDOW_FRAMES

        def encode(self, features: np.ndarray[Any, Any]) -> Any:
            return super().encode(features[..., : self.encoder_frames])

    return FittedWhisperModel


def _interpolated(text: str, start: float, end: float, probability: float) -> list[Word]:
    """Words of a segment with times spread by character count (no alignment pass)."""
    tokens = text.split()
    total = sum(len(t) + 1 for t in tokens)
    out, cursor = [], start
    for token in tokens:
        width = (end - start) * (len(token) + 1) / total if total else 0.0
        out.append(Word(" " + token, round(cursor * SAMPLE_RATE),
                        round((cursor + width) * SAMPLE_RATE), probability))
        cursor += width
    return out


def _in_memory(resolved: ResolvedModel) -> dict[str, bytes]:
    """faster-whisper can load from bytes: split weights need no temporary file."""
    return {name: resolved.read_bytes(name) for name in resolved.files}
