"""Shaping translated speech for where it is played: near the ear, or into a room.

A near-ear device (earpiece, headset, a phone paired as an audio device) sits a
centimetre from the eardrum: full-scale speech there is loud and tiring, and its
small driver cannot reproduce low bass, which only costs excursion and
distortion. So the `earpiece` profile band-limits to 200 Hz - 7.5 kHz (speech
intelligibility lives in 300 Hz - 4 kHz; the watermark in 1 - 7 kHz is kept) and
brings speech to a quiet, steady level with a low peak ceiling. The `speaker`
profile (the other person in a conversation, through the laptop's speaker) keeps
more bass and plays louder. Gain is one linear factor per chunk, smoothed from
chunk to chunk, so the shaping never distorts (and never erases the watermark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dragoman.errors import DragomanError
from dragoman.events import FloatAudio


@dataclass(frozen=True, slots=True)
class EarProfile:
    """How speech is shaped for one kind of output.

    low_hz / high_hz: band edges (4th-order Butterworth; 0 disables an edge).
    target_dbfs: RMS level speech is brought to.
    ceiling_dbfs: peak level never exceeded.
    max_gain_db: the most a quiet chunk is amplified.
    smoothing: weight of the previous gain when a new chunk comes (0..1).
    """

    name: str
    low_hz: float = 0.0
    high_hz: float = 0.0
    target_dbfs: float | None = None
    ceiling_dbfs: float = -1.0
    max_gain_db: float = 12.0
    smoothing: float = 0.5


PROFILES: dict[str, EarProfile] = {
    "earpiece": EarProfile("earpiece", low_hz=200.0, high_hz=7500.0, target_dbfs=-26.0,
                           ceiling_dbfs=-10.0),
    "speaker": EarProfile("speaker", low_hz=120.0, high_hz=0.0, target_dbfs=-18.0,
                          ceiling_dbfs=-3.0),
    "flat": EarProfile("flat"),
}
"""Named profiles (`--profile`); "flat" plays the synthesized speech as it is."""


def profile(name: str) -> EarProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise DragomanError(f"unknown output profile {name!r}; choose from "
                            f"{', '.join(PROFILES)}") from None


class EarShaper:
    """Streaming band filter and level control for one output (keeps filter state)."""

    def __init__(self, shape: EarProfile, sample_rate: int) -> None:
        self.profile = shape
        self._sos: Any = None
        self._state: Any = None
        self._gain_db: float | None = None
        nyquist = sample_rate / 2
        low = shape.low_hz if 0 < shape.low_hz < nyquist * 0.9 else 0.0
        high = shape.high_hz if 0 < shape.high_hz < nyquist * 0.9 else 0.0
        if low or high:
            from scipy.signal import butter, sosfilt_zi

            if low and high:
                self._sos = butter(4, [low, high], btype="bandpass", fs=sample_rate,
                                   output="sos")
            elif low:
                self._sos = butter(4, low, btype="highpass", fs=sample_rate, output="sos")
            else:
                self._sos = butter(4, high, btype="lowpass", fs=sample_rate, output="sos")
            self._state = sosfilt_zi(self._sos) * 0.0

    def process(self, samples: FloatAudio) -> FloatAudio:
        audio = samples.astype(np.float64)
        if self._sos is not None and audio.size:
            from scipy.signal import sosfilt

            audio, self._state = sosfilt(self._sos, audio, zi=self._state)
        gain = 10 ** (self._chunk_gain_db(audio) / 20)
        return np.asarray(audio * gain, dtype=np.float32)

    def _chunk_gain_db(self, audio: Any) -> float:
        shape = self.profile
        if audio.size == 0:
            return self._gain_db or 0.0
        gain = 0.0
        if shape.target_dbfs is not None:
            active = audio[np.abs(audio) > 1e-3]
            if active.size > 0.05 * audio.size:
                rms_db = 20 * float(np.log10(np.sqrt(np.mean(active**2)) + 1e-12))
                wanted = min(shape.max_gain_db, shape.target_dbfs - rms_db)
                previous = wanted if self._gain_db is None else self._gain_db
                gain = shape.smoothing * previous + (1 - shape.smoothing) * wanted
                self._gain_db = gain
            else:
                gain = self._gain_db or 0.0
        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            gain = min(gain, shape.ceiling_dbfs - 20 * float(np.log10(peak)))
        return gain
