"""Streaming voice activity detection: webrtcvad (default) or Silero v6 (noise-robust).

`VoiceActivityDetector` is a synchronous core: `feed()` any number of samples,
then read `events()`; `finish()` closes an open segment. Each backend classifies
fixed frames (webrtcvad: 30 ms, yes/no; Silero: 32 ms, a probability); a shared
state machine turns frame decisions into segments:

* a segment starts once `min_speech_ms` of speech accumulated within
  `start_window_ms`; its start is moved back by `pad_ms` (the onset of a word is
  quiet and classifiers miss it);
* it ends after `hangover_ms` of continuous non-speech; its end is the last speech
  frame plus `pad_ms`.

Sample indices count from the first sample fed (the session start).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from dragoman.audio import check_audio, float_to_pcm16
from dragoman.errors import DragomanError
from dragoman.events import SAMPLE_RATE, FloatAudio, Samples, SpeechEnded, SpeechStarted

logger = logging.getLogger(__name__)

VadEvent = SpeechStarted | SpeechEnded


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Segmentation settings. Defaults chosen on the Asterisk prompts (bench/asr.py)."""

    backend: Literal["webrtc", "silero"] = "webrtc"
    aggressiveness: int = 2
    """webrtcvad mode 0 (permissive) .. 3 (strict)."""
    threshold: float = 0.5
    """Silero speech probability above which a frame is speech."""
    min_speech_ms: int = 120
    """Speech needed within `start_window_ms` to open a segment (clicks stay out)."""
    start_window_ms: int = 300
    hangover_ms: int = 400
    """Non-speech that closes a segment; shorter cuts latency, longer splits less."""
    pad_ms: int = 200
    """Audio kept before the first and after the last speech frame."""
    silence_dbfs: float | None = -66.0
    """Frames quieter than this (RMS, dB full scale) are silence, whatever the
    classifier says. webrtcvad's state keeps calling up to 0.6 s of digital silence
    after long speech "speech", which with the hangover merged prompts 1 s apart
    (5 of 100 English ones; Whisper then transcribed two identical prompts once).
    Far below any microphone's noise floor; None turns it off."""


class FrameClassifier(Protocol):
    frame_samples: int

    def is_speech(self, frame: FloatAudio) -> bool: ...


class WebRtcClassifier:
    """webrtcvad (GMM, 30 ms frames): cheap, but fooled by steady noise."""

    frame_samples = 480

    def __init__(self, aggressiveness: int) -> None:
        if not 0 <= aggressiveness <= 3:
            raise DragomanError(f"webrtcvad aggressiveness must be 0..3, got {aggressiveness}")
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: FloatAudio) -> bool:
        return bool(self._vad.is_speech(float_to_pcm16(frame), SAMPLE_RATE))


class SileroClassifier:
    """Silero VAD v6 (ONNX model shipped inside faster-whisper), 32 ms frames."""

    frame_samples = 512
    _context = 64

    def __init__(self, threshold: float) -> None:
        import faster_whisper
        import onnxruntime

        model = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._threshold = threshold
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._previous = np.zeros(self._context, dtype=np.float32)

    def probability(self, frame: FloatAudio) -> float:
        window = np.concatenate([self._previous, frame])[None, :]
        out, self._h, self._c = self._session.run(
            None, {"input": window, "h": self._h, "c": self._c}
        )
        self._previous = frame[-self._context :].copy()
        return float(np.asarray(out).reshape(-1)[0])

    def is_speech(self, frame: FloatAudio) -> bool:
        return self.probability(frame) >= self._threshold


def make_classifier(config: VadConfig) -> FrameClassifier:
    if config.backend == "webrtc":
        return WebRtcClassifier(config.aggressiveness)
    if config.backend == "silero":
        return SileroClassifier(config.threshold)
    raise DragomanError(f"unknown VAD backend {config.backend!r}; use 'webrtc' or 'silero'")


def _ms(ms: int) -> Samples:
    return ms * SAMPLE_RATE // 1000


class VoiceActivityDetector:
    """Frame-by-frame speech segmentation with padding and hangover."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self._classifier: FrameClassifier | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._position: Samples = 0  # samples classified so far
        self._recent: deque[tuple[Samples, bool]] = deque()
        self._in_speech = False
        self._last_speech_end: Samples = 0
        self._utterance = -1
        self._events: list[VadEvent] = []
        level = self.config.silence_dbfs
        self._silence_power = None if level is None else 10.0 ** (level / 10.0)

    def start(self) -> None:
        """Load the classifier (explicit, so construction has no side effects)."""
        if self._classifier is None:
            self._classifier = make_classifier(self.config)

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def utterance(self) -> int:
        """Index of the current (or last) segment; -1 before the first."""
        return self._utterance

    @property
    def position(self) -> Samples:
        return self._position

    @property
    def pause_end(self) -> Samples | None:
        """Inside a segment whose speech paused at least `pad_ms` ago: where the segment
        ends if the pause lasts the hangover (its `SpeechEnded.at`, the last speech frame
        plus `pad_ms`). None outside a segment and while speech goes on. The audio up to
        here is all a final decode of the segment would see."""
        if not self._in_speech:
            return None
        end = self._last_speech_end + _ms(self.config.pad_ms)
        return end if self._position >= end else None

    def feed(self, samples: FloatAudio) -> None:
        audio = check_audio(samples, allow_empty=True)
        self.start()
        assert self._classifier is not None
        size = self._classifier.frame_samples
        buffer = np.concatenate([self._pending, audio]) if self._pending.size else audio
        usable = buffer.size - buffer.size % size
        floor = self._silence_power
        for offset in range(0, usable, size):
            frame = buffer[offset : offset + size]
            # The (stateful) classifier sees every frame; the level gate only vetoes.
            speech = self._classifier.is_speech(frame)
            self._step(speech and (floor is None or float(np.dot(frame, frame)) > floor * size),
                       size)
        self._pending = buffer[usable:].copy()

    def _step(self, speech: bool, size: int) -> None:
        cfg = self.config
        start = self._position
        self._position += size
        if speech:
            self._last_speech_end = self._position
        if self._in_speech:
            if self._position - self._last_speech_end >= _ms(cfg.hangover_ms):
                end = min(self._last_speech_end + _ms(cfg.pad_ms), self._position)
                self._events.append(SpeechEnded(at=end, utterance=self._utterance))
                self._in_speech = False
                self._recent.clear()
            return
        self._recent.append((start, speech))
        while self._recent and self._recent[0][0] < self._position - _ms(cfg.start_window_ms):
            self._recent.popleft()
        voiced = sum(size for _, is_speech in self._recent if is_speech)
        if voiced >= _ms(cfg.min_speech_ms):
            first = next(frame_start for frame_start, is_speech in self._recent if is_speech)
            floor = self._events[-1].at if self._events else 0
            self._utterance += 1
            self._in_speech = True
            self._events.append(
                SpeechStarted(at=max(first - _ms(cfg.pad_ms), floor, 0), utterance=self._utterance)
            )

    def events(self) -> list[VadEvent]:
        """Events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    def finish(self) -> list[VadEvent]:
        """End of input: close an open segment at the end of the audio."""
        if self._in_speech:
            end = min(self._last_speech_end + _ms(self.config.pad_ms), self._position)
            self._events.append(SpeechEnded(at=end, utterance=self._utterance))
            self._in_speech = False
        return self.events()
