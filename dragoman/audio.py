"""Audio helpers: load any common file format, resample, validate, PCM16 framing.

Everything inside the pipeline is mono float32 at `SAMPLE_RATE` (16 kHz). Files in
any format FFmpeg reads (WAV, FLAC, MP3, Ogg/Opus, AAC, G.722, ...), any sample
rate and any channel count are decoded with PyAV, downmixed and resampled (soxr).
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dragoman.errors import AudioError
from dragoman.events import SAMPLE_RATE, FloatAudio

logger = logging.getLogger(__name__)

MAX_ABS_SAMPLE = 64.0
"""Float samples above this magnitude are treated as corrupt rather than clipped."""


def check_audio(samples: npt.ArrayLike, *, allow_empty: bool = False) -> FloatAudio:
    """Return `samples` as contiguous mono float32, or raise `AudioError`.

    Rejects NaN/inf, absurd magnitudes (a sign of a wrong sample format) and, unless
    `allow_empty`, empty input. 2-D input is taken as (frames, channels) and downmixed.
    """
    array = np.asarray(samples)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"audio must be numeric samples, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array.mean(axis=1)
    elif array.ndim != 1:
        raise AudioError(f"audio must be 1-D (mono) or 2-D (frames, channels), got {array.ndim}-D")
    if array.dtype.kind in "iu":
        raise AudioError("integer samples given where float32 was expected; use pcm16_to_float()")
    audio = np.ascontiguousarray(array, dtype=np.float32)
    if audio.size == 0 and not allow_empty:
        raise AudioError("audio is empty")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"audio contains {bad} NaN or infinite samples")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"audio peak {peak:.1f} is far outside [-1, 1]: wrong sample format?")
    return audio


def resample(samples: FloatAudio, from_rate: int, to_rate: int) -> FloatAudio:
    """Resample mono float32 audio with soxr (high quality); identity if rates match."""
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate or samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> FloatAudio:
    """Decode an audio file to mono float32 at `sample_rate`.

    Raises `AudioError` for a missing, unreadable, truncated or empty file, or one
    whose samples are not finite.
    """
    import av

    file = Path(path)
    if not file.is_file():
        raise AudioError(f"no such audio file: {file}")
    missing = _riff_shortfall(file)
    if missing:
        raise AudioError(f"{file} is truncated: {missing} bytes of audio data are missing")
    chunks: list[npt.NDArray[np.float32]] = []
    try:
        with av.open(str(file), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{file} has no audio stream")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"cannot decode {file}: {exc}") from exc
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if audio.size == 0:
        raise AudioError(f"{file} contains no audio samples")
    decoded = audio.size / sample_rate
    if declared is not None and decoded < 0.9 * declared - 0.05:
        raise AudioError(
            f"{file} is truncated: its header declares {declared:.2f} s "
            f"but only {decoded:.2f} s could be decoded"
        )
    return check_audio(audio)


def _riff_shortfall(file: Path) -> int:
    """Bytes a RIFF/WAVE file's `data` chunk promises beyond the end of the file.

    FFmpeg estimates a WAV's duration from the file size, so a truncated WAV would
    decode silently; the chunk header still holds the original length.
    """
    with file.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        size = file.stat().st_size
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if length in (0, 0xFFFFFFFF):  # streaming writers leave it open
                    return 0
                return max(0, handle.tell() + length - size)
            handle.seek(length + (length & 1), 1)


def _declared_seconds(container: object, stream: object) -> float | None:
    """The duration a file's header promises, if it states one."""
    duration = getattr(stream, "duration", None)
    time_base = getattr(stream, "time_base", None)
    if duration is not None and time_base is not None:
        return float(duration * time_base)
    container_duration = getattr(container, "duration", None)
    if container_duration is not None:
        return float(container_duration) / 1_000_000
    return None


def float_to_pcm16(samples: FloatAudio) -> bytes:
    """Encode float audio in [-1, 1] as little-endian signed 16-bit PCM (clipping)."""
    clipped = np.clip(samples, -1.0, 1.0)
    return (np.round(clipped * 32767.0)).astype("<i2").tobytes()


def pcm16_to_float(data: bytes) -> FloatAudio:
    """Decode little-endian signed 16-bit PCM to float32 in [-1, 1)."""
    if len(data) % 2:
        raise AudioError(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def frames(samples: FloatAudio, frame_samples: int) -> Iterator[FloatAudio]:
    """Split audio into consecutive frames of `frame_samples` (the last may be shorter)."""
    if frame_samples <= 0:
        raise ValueError("frame size must be positive")
    for start in range(0, samples.size, frame_samples):
        yield samples[start : start + frame_samples]


def write_wav(path: str | Path, samples: FloatAudio, sample_rate: int) -> None:
    """Write mono float audio as a 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(float_to_pcm16(samples))
