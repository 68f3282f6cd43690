"""Real-world edits the watermark must survive: codecs, resampling, filters, noise, ...

Every attack maps (audio, sample_rate, rng, donor) to new audio at the same rate;
`donor` is unmarked audio, used only by the concatenation attack. Codecs run through
PyAV (FFmpeg's real encoders, bundled with the `av` wheel), resampling through soxr.
Filters are zero-phase FFT filters with 100 Hz raised-cosine edges.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from dragoman.audio import resample
from dragoman.errors import AudioError, BackendError
from dragoman.events import FloatAudio

Rng = np.random.Generator
Donor = FloatAudio | None
AttackFn = Callable[[FloatAudio, int, Rng, Donor], FloatAudio]


@dataclass(frozen=True, slots=True)
class Attack:
    """One named edit. `group` is "main" (the TPR target) or "speed" (reported apart)."""

    name: str
    description: str
    apply: AttackFn
    group: str = "main"


def codec_roundtrip(
    audio: FloatAudio, sample_rate: int, codec: str, container: str, bitrate: int, rate: int
) -> FloatAudio:
    """Encode with a real FFmpeg encoder at `rate` Hz and `bitrate` bit/s, decode back."""
    import av

    source = resample(audio, sample_rate, rate)
    buffer = io.BytesIO()
    try:
        with av.open(buffer, mode="w", format=container) as out:
            stream: Any = out.add_stream(codec, rate=rate)
            stream.bit_rate = bitrate
            stream.layout = "mono"
            frame_size = 960 if codec == "libopus" else 1152
            for start in range(0, source.size, frame_size):
                block = source[start : start + frame_size].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                frame.sample_rate = rate
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buffer.seek(0)
        chunks: list[npt.NDArray[np.float32]] = []
        with av.open(buffer, mode="r", format=container) as inp:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for decoded in inp.decode(audio=0):
                for out_frame in resampler.resample(decoded):
                    chunks.append(np.asarray(out_frame.to_ndarray(), dtype=np.float32).ravel())
    except av.FFmpegError as exc:
        raise BackendError(f"{codec} round trip failed: {exc}") from exc
    if not chunks:
        raise BackendError(f"{codec} round trip produced no audio")
    decoded_audio = np.concatenate(chunks).astype(np.float32)
    back = resample(decoded_audio, rate, sample_rate)
    return _align_length(back, audio.size, _codec_delay(audio, back))


def _codec_delay(reference: FloatAudio, decoded: FloatAudio) -> int:
    """The encoder's leading delay in samples (cross-correlation peak, at most 0.1 s)."""
    n = min(reference.size, decoded.size)
    if n < 64:
        return 0
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(decoded[:n], size) * np.conj(np.fft.rfft(reference[:n], size)))
    limit = min(n // 4, 4800)
    return int(np.argmax(corr[:limit]))


def _align_length(audio: FloatAudio, length: int, delay: int) -> FloatAudio:
    out = audio[delay : delay + length]
    if out.size < length:
        out = np.concatenate([out, np.zeros(length - out.size, dtype=np.float32)])
    return np.ascontiguousarray(out, dtype=np.float32)


def fft_filter(audio: FloatAudio, sample_rate: int, low: float, high: float) -> FloatAudio:
    """Zero-phase band-pass [low, high] Hz (0 or Nyquist to disable an edge)."""
    n = audio.size
    spectrum = np.fft.rfft(audio.astype(np.float64))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    edge = 100.0
    response = np.ones_like(freqs)
    if low > 0:
        response *= np.clip((freqs - (low - edge / 2)) / edge, 0.0, 1.0)
    if high < sample_rate / 2:
        response *= np.clip(((high + edge / 2) - freqs) / edge, 0.0, 1.0)
    response = 0.5 - 0.5 * np.cos(np.pi * response)
    return np.fft.irfft(spectrum * response, n).astype(np.float32)


def add_noise(audio: FloatAudio, rng: np.random.Generator, snr_db: float, pink: bool) -> FloatAudio:
    """Add white or pink (1/f power) Gaussian noise at `snr_db` below the signal power."""
    noise = rng.standard_normal(audio.size)
    if pink:
        spectrum = np.fft.rfft(noise)
        scale = np.ones(spectrum.size)
        scale[1:] = 1.0 / np.sqrt(np.arange(1, spectrum.size))
        noise = np.fft.irfft(spectrum * scale, audio.size)
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-30))
    return (audio + noise).astype(np.float32)


def change_speed(audio: FloatAudio, sample_rate: int, factor: float) -> FloatAudio:
    """Play `factor` times faster (pitch moves too, like a tape or a resampler)."""
    return resample(audio, round(sample_rate * factor), sample_rate)


def _resample_trip(rate: int) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        return resample(resample(x, sr, rate), rate, sr)

    return attack


def _codec(codec: str, container: str, bitrate: int, rate: int) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        return codec_roundtrip(x, sr, codec, container, bitrate, rate)

    return attack


def _crop(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    """Drop a random 0-0.5 s from the start and the end: the frame grid moves off."""
    head = int(rng.integers(0, sr // 2))
    tail = int(rng.integers(0, sr // 2))
    return np.ascontiguousarray(x[head : max(head + sr, x.size - tail)])


def _shift(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    """Prepend 0-0.3 s of silence (a time shift by a random number of samples)."""
    lead = np.zeros(int(rng.integers(1, int(0.3 * sr))), dtype=np.float32)
    return np.concatenate([lead, x])


def _concat(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    """Unmarked audio (the donor), then the marked audio, then more unmarked audio."""
    if d is None or d.size < 2:
        raise AudioError("the concatenation attack needs unmarked donor audio")
    half = d.size // 2
    return np.concatenate([d[:half], x, d[half:]]).astype(np.float32)


def _echo(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    """A room-like double echo: 0.5 at 60 ms and 0.25 at 150 ms."""
    out = x.astype(np.float64).copy()
    for delay_s, gain in ((0.06, 0.5), (0.15, 0.25)):
        delay = int(delay_s * sr)
        out[delay:] += gain * x[:-delay]
    return (out / (1.0 + 0.5 + 0.25) * 1.5).astype(np.float32)


def _gain(db: float) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        louder: FloatAudio = np.clip(x * 10 ** (db / 20), -1.0, 1.0).astype(np.float32)
        return louder

    return attack


def _clip(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    """Hard clipping at half the peak (heavy distortion on every loud syllable)."""
    level = 0.5 * float(np.max(np.abs(x)))
    return np.clip(x, -level, level).astype(np.float32)


def _band(low: float, high: float) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        return fft_filter(x, sr, low, min(high, sr / 2))

    return attack


def _noise(pink: bool) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        return add_noise(x, rng, 20.0, pink)

    return attack


def _speed(factor: float) -> AttackFn:
    def attack(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
        return change_speed(x, sr, factor)

    return attack


def _none(x: FloatAudio, sr: int, rng: Rng, d: Donor) -> FloatAudio:
    return x


_ALL = (
    Attack("none", "no edit", _none),
    Attack("mp3_64k", "MP3 (LAME) 64 kbit/s", _codec("libmp3lame", "mp3", 64_000, 16_000)),
    Attack("mp3_128k", "MP3 (LAME) 128 kbit/s", _codec("libmp3lame", "mp3", 128_000, 24_000)),
    Attack("opus_16k", "Opus 16 kbit/s (48 kHz)", _codec("libopus", "ogg", 16_000, 48_000)),
    Attack("opus_32k", "Opus 32 kbit/s (48 kHz)", _codec("libopus", "ogg", 32_000, 48_000)),
    Attack("aac_64k", "AAC-LC (FFmpeg) 64 kbit/s", _codec("aac", "adts", 64_000, 24_000)),
    Attack("resample_8k", "resample to 8 kHz and back", _resample_trip(8_000)),
    Attack("resample_16k", "resample to 16 kHz and back", _resample_trip(16_000)),
    Attack("resample_44k1", "resample to 44.1 kHz and back", _resample_trip(44_100)),
    Attack("resample_48k", "resample to 48 kHz and back", _resample_trip(48_000)),
    Attack("telephone", "band-pass 300-3400 Hz", _band(300.0, 3400.0)),
    Attack("lowpass_4k", "low-pass 4 kHz", _band(0.0, 4000.0)),
    Attack("highpass_500", "high-pass 500 Hz", _band(500.0, 1e9)),
    Attack("white_noise_20db", "white noise at 20 dB SNR", _noise(False)),
    Attack("pink_noise_20db", "pink noise at 20 dB SNR", _noise(True)),
    Attack("gain_plus_6db", "gain +6 dB (clipped at full scale)", _gain(6.0)),
    Attack("gain_minus_6db", "gain -6 dB", _gain(-6.0)),
    Attack("clipping", "hard clipping at half the peak", _clip),
    Attack("echo", "echoes of 0.5 at 60 ms and 0.25 at 150 ms", _echo),
    Attack("crop", "random crop of 0-0.5 s at both ends", _crop),
    Attack("time_shift", "random leading silence of 0-0.3 s", _shift),
    Attack("concat", "unmarked speech before and after", _concat),
    Attack("speed_plus_5", "5 % faster (pitch too)", _speed(1.05), group="speed"),
    Attack("speed_minus_5", "5 % slower (pitch too)", _speed(0.95), group="speed"),
)

ATTACKS: Mapping[str, Attack] = MappingProxyType({a.name: a for a in _ALL})
"""Every attack by name (read-only)."""
