"""The recent source audio of a session, for prosody transfer."""

from __future__ import annotations

import numpy as np

from dragoman.events import SAMPLE_RATE, FloatAudio, Samples


class SourceAudio:
    """A ring of the last `seconds` of source audio, addressed by session sample."""

    def __init__(self, seconds: float = 60.0) -> None:
        self._capacity = round(seconds * SAMPLE_RATE)
        self._blocks: list[FloatAudio] = []
        self._audio = np.zeros(0, dtype=np.float32)
        self._start: Samples = 0

    @property
    def end(self) -> Samples:
        return self._start + self._audio.size + sum(b.size for b in self._blocks)

    def append(self, samples: FloatAudio) -> None:
        self._blocks.append(samples)
        if sum(b.size for b in self._blocks) > SAMPLE_RATE:  # compact once a second
            self._compact()

    def _compact(self) -> None:
        if self._blocks:
            self._audio = np.concatenate([self._audio, *self._blocks])
            self._blocks = []
        excess = self._audio.size - self._capacity
        if excess > 0:
            self._audio = self._audio[excess:].copy()
            self._start += excess

    def since(self, start: Samples, end: Samples) -> tuple[FloatAudio, Samples]:
        """Audio in [start, end) that is still kept, and where it actually starts."""
        self._compact()
        lo = max(start, self._start)
        hi = min(end, self._start + self._audio.size)
        if hi <= lo:
            return np.zeros(0, dtype=np.float32), lo
        return self._audio[lo - self._start : hi - self._start], lo
