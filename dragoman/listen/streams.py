"""Capture and playback on PortAudio devices, without ever blocking a callback.

PortAudio calls our callbacks on its own real-time thread. A capture callback
only copies the block and hands it to the asyncio loop with
`loop.call_soon_threadsafe`; on the loop it is resampled to 16 kHz mono and put
in a bounded queue (full: the block is dropped and counted). Playback keeps a
bounded deque of ready blocks that the loop appends to and the callback pops
from (both operations are atomic in CPython; no lock); an empty deque plays
silence. Each side counts what it had to drop. A stream that stops by itself,
or stays silent past a stall timeout, is reported as `DeviceLostError`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dragoman.events import SAMPLE_RATE, FloatAudio, Samples
from dragoman.listen.devices import DeviceInfo, portaudio
from dragoman.listen.ear import EarShaper
from dragoman.listen.errors import DeviceError, DeviceLostError, UnsupportedRateError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CapturedBlock:
    """Input audio at 16 kHz mono; `captured_at`: monotonic time of its first sample."""

    samples: FloatAudio
    captured_at: float


def level_dbfs(samples: FloatAudio) -> float:
    """RMS level in dB relative to full scale (-120 for silence)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * float(np.log10(rms + 1e-12)))


class _Resampler:
    """Streaming resampler (keeps filter state across blocks); identity if rates match."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._stream: Any = None
        if from_rate != to_rate:
            import soxr

            self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32",
                                               quality="HQ")

    def __call__(self, samples: FloatAudio) -> FloatAudio:
        if self._stream is None:
            return samples
        out = self._stream.resample_chunk(samples)
        return np.ascontiguousarray(out, dtype=np.float32)


def _open_error(exc: Exception, device: DeviceInfo, direction: str, rate: int) -> DeviceError:
    text = str(exc)
    if "sample rate" in text.lower():
        return UnsupportedRateError(
            f"{direction} device {device.name!r} cannot run at {rate} Hz ({text}); "
            f"its default rate is {device.default_sample_rate} Hz")
    if "unanticipated host error" in text.lower() or "device unavailable" in text.lower():
        return DeviceLostError(f"{direction} device {device.name!r} is unavailable: {text}")
    return DeviceError(f"cannot open {direction} device {device.name!r}: {text}",
                       retryable=True)


def _stream_delay(time_info: Any, adc: bool) -> float:
    """Seconds between now and the buffer at the converter (0 if PortAudio cannot say)."""
    current = float(time_info.currentTime)
    edge = float(time_info.inputBufferAdcTime if adc else time_info.outputBufferDacTime)
    if current <= 0 or edge <= 0:
        return 0.0
    delay = current - edge if adc else edge - current
    return delay if 0.0 <= delay < 2.0 else 0.0


class Capture:
    """An input device delivering `CapturedBlock`s at 16 kHz mono."""

    def __init__(self, device: DeviceInfo, *, sample_rate: int, block_ms: int = 20,
                 latency: float = 0.1, max_blocks: int = 200, stall_s: float = 3.0) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self._block = max(1, sample_rate * block_ms // 1000)
        self._latency = latency
        self._queue: asyncio.Queue[CapturedBlock | DeviceLostError] = asyncio.Queue(max_blocks)
        self._stall_s = stall_s
        self._resample = _Resampler(sample_rate, SAMPLE_RATE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._closing = False
        self.dropped_blocks = 0
        self.overflows = 0  # PortAudio's own input overflow flags (written by its thread)

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open and start the stream (blocking: call it in a worker thread);
        blocks are delivered on `loop`."""
        sd = portaudio()
        self._loop = loop
        try:
            self._stream = sd.InputStream(
                device=self.device.index, samplerate=self.sample_rate, channels=1,
                dtype="float32", blocksize=self._block, latency=self._latency,
                callback=self._callback, finished_callback=self._finished)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise _open_error(exc, self.device, "input", self.sample_rate) from exc
        logger.info("capturing from %s at %d Hz", self.device.name, self.sample_rate)

    # PortAudio thread: copy, timestamp, hand over. Nothing here may block.
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        captured_at = time.monotonic() - _stream_delay(time_info, adc=True)
        block = np.array(indata[:, 0], dtype=np.float32)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._deliver, block, captured_at)

    def _finished(self) -> None:
        loop = self._loop
        if loop is not None and not self._closing:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._lost, "the input stream stopped")

    # Loop thread.
    def _deliver(self, block: FloatAudio, captured_at: float) -> None:
        samples = self._resample(block)
        if samples.size == 0:
            return
        try:
            self._queue.put_nowait(CapturedBlock(samples, captured_at))
        except asyncio.QueueFull:
            self.dropped_blocks += 1

    def _lost(self, why: str) -> None:
        if self._closing:
            return
        error = DeviceLostError(f"input device {self.device.name!r} was lost: {why}")
        while True:
            try:
                self._queue.put_nowait(error)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped_blocks += 1

    async def read(self) -> CapturedBlock:
        """The next block; raises `DeviceLostError` if the device went away or stalled."""
        # `asyncio.timeout`, not `wait_for`: on Python 3.11, `wait_for` returns the block
        # when it arrives in the same loop step as a cancel, and the cancel is lost (the
        # device loop then never stopped: swap and quit hung).
        try:
            async with asyncio.timeout(self._stall_s):
                item = await self._queue.get()
        except TimeoutError:
            raise DeviceLostError(
                f"input device {self.device.name!r} delivered nothing for {self._stall_s:.0f} s"
            ) from None
        if isinstance(item, DeviceLostError):
            raise item
        return item

    def close(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        _abort_and_close(stream)


Marker = Hashable
OnPlayed = Callable[[Marker, float], None]


class Playback:
    """An output device playing mono audio written from the loop, shaped for the ear."""

    def __init__(self, device: DeviceInfo, *, sample_rate: int, shaper: EarShaper,
                 on_played: OnPlayed | None = None, block_ms: int = 20,
                 latency: float = 0.1, max_seconds: float = 30.0) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self._channels = max(1, min(2, device.max_output_channels))
        self._block = max(1, sample_rate * block_ms // 1000)
        self._latency = latency
        self._shaper = shaper
        self._on_played = on_played
        self._max_samples = round(max_seconds * sample_rate)
        self._ready: deque[tuple[FloatAudio, Marker | None]] = deque()
        self._current: FloatAudio = np.zeros(0, dtype=np.float32)
        self._resamplers: dict[int, _Resampler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._closing = False
        self._lost_reason: str | None = None
        self._written = 0  # loop thread only
        self._discarded = 0  # loop thread only
        self._played = 0  # PortAudio thread only
        self.underruns = 0  # PortAudio thread only
        self.dropped_seconds = 0.0

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open and start the stream (blocking: call it in a worker thread);
        `on_played` is called on `loop`."""
        sd = portaudio()
        self._loop = loop
        try:
            self._stream = sd.OutputStream(
                device=self.device.index, samplerate=self.sample_rate,
                channels=self._channels, dtype="float32", blocksize=self._block,
                latency=self._latency, callback=self._callback,
                finished_callback=self._finished)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise _open_error(exc, self.device, "output", self.sample_rate) from exc
        logger.info("playing on %s at %d Hz", self.device.name, self.sample_rate)

    @property
    def queued_seconds(self) -> float:
        return max(0, self._written - self._discarded - self._played) / self.sample_rate

    def check(self) -> None:
        """Raise `DeviceLostError` if the stream stopped by itself."""
        if self._lost_reason is not None:
            raise DeviceLostError(f"output device {self.device.name!r} was lost: "
                                  f"{self._lost_reason}")

    def write(self, pcm: FloatAudio, sample_rate: int, marker: Marker | None = None) -> None:
        """Queue audio (any rate; resampled, shaped). `marker` is reported when it plays."""
        self.check()
        resample = self._resamplers.get(sample_rate)
        if resample is None:
            resample = self._resamplers[sample_rate] = _Resampler(sample_rate, self.sample_rate)
        audio = self._shaper.process(resample(pcm))
        if audio.size == 0:
            return
        self._ready.append((audio, marker))
        self._written += audio.size
        while self._written - self._discarded - self._played > self._max_samples:
            try:  # too far behind: drop the oldest speech rather than grow
                old, _ = self._ready.popleft()
            except IndexError:
                break
            self._discarded += old.size
            self.dropped_seconds += old.size / self.sample_rate

    # PortAudio thread.
    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.underruns += 1
        out = np.zeros(frames, dtype=np.float32)
        filled = 0
        base = time.monotonic() + _stream_delay(time_info, adc=False)
        while filled < frames:
            if self._current.size == 0:
                try:
                    block, marker = self._ready.popleft()
                except IndexError:
                    break
                self._current = block
                if marker is not None and self._on_played is not None and self._loop:
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(
                            self._on_played, marker, base + filled / self.sample_rate)
            take = min(frames - filled, self._current.size)
            out[filled:filled + take] = self._current[:take]
            self._current = self._current[take:]
            filled += take
        self._played += filled
        outdata[:] = out[:, None]

    def _finished(self) -> None:
        loop = self._loop
        if loop is not None and not self._closing:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._mark_lost, "the output stream stopped")

    def _mark_lost(self, why: str) -> None:
        if not self._closing:
            self._lost_reason = why

    def close(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        _abort_and_close(stream)


def _abort_and_close(stream: Any) -> None:
    """Stop a PortAudio stream now; a device that already vanished may refuse both."""
    if stream is None:
        return
    with contextlib.suppress(Exception):
        stream.abort()
    with contextlib.suppress(Exception):
        stream.close()


class SampleClock:
    """Maps session sample indices (16 kHz) to the time they left the input device."""

    def __init__(self, keep: int = 4096) -> None:
        self._index: deque[Samples] = deque(maxlen=keep)
        self._time: deque[float] = deque(maxlen=keep)

    def anchor(self, index: Samples, captured_at: float) -> None:
        self._index.append(index)
        self._time.append(captured_at)

    def time_of(self, index: Samples) -> float | None:
        """When sample `index` was captured (None if it is older than the anchors kept)."""
        if not self._index or index < self._index[0]:
            return None
        position = bisect.bisect_right(self._index, index) - 1
        return self._time[position] + (index - self._index[position]) / SAMPLE_RATE
