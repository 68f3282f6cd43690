"""Audio loading, resampling and framing on real recordings, and bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dragoman.audio import (
    check_audio,
    float_to_pcm16,
    frames,
    load_audio,
    pcm16_to_float,
    resample,
    write_wav,
)
from dragoman.errors import AudioError
from dragoman.events import SAMPLE_RATE

PROMPT = "vm-passchanged"


def ffmpeg(source: Path, target: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), *args, str(target)], check=True
    )
    return target


def correlation(a: Any, b: Any) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_loads_g722_and_8khz_wav_to_16k_mono(speech: Any) -> None:
    item, audio = speech.clip("en", PROMPT)
    assert item.path.suffix == ".g722"
    assert audio.dtype == np.float32 and audio.ndim == 1
    narrow = load_audio(item.path.with_suffix(".wav"))  # the 8 kHz recording of the prompt
    assert abs(narrow.size - audio.size) < 0.05 * SAMPLE_RATE
    assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 0.5


@pytest.mark.parametrize(
    ("suffix", "args"),
    [
        (".flac", ["-ar", "44100", "-ac", "2"]),  # stereo 44.1 kHz: downmixed and resampled
        (".mp3", ["-ar", "48000", "-b:a", "64k"]),
        (".ogg", ["-ar", "48000", "-c:a", "libopus"]),
        (".wav", ["-ar", "22050", "-ac", "2", "-c:a", "pcm_f32le"]),
    ],
)
def test_common_formats_and_rates(
    tmp_path: Path, speech: Any, suffix: str, args: list[str]
) -> None:
    item, reference = speech.clip("en", PROMPT)
    converted = ffmpeg(item.path, tmp_path / f"clip{suffix}", *args)
    audio = load_audio(converted)
    assert abs(audio.size - reference.size) < 0.06 * SAMPLE_RATE  # codec padding only
    # Same speech after the round trip (align for codec delay).
    best = max(correlation(audio[lag:], reference) for lag in range(0, 1200, 8))
    assert best > 0.85


def test_truncated_file_is_an_error(tmp_path: Path, speech: Any) -> None:
    item, _ = speech.clip("en", PROMPT)
    wav = ffmpeg(item.path, tmp_path / "whole.wav")
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])  # header still promises the full length
    with pytest.raises(AudioError, match="truncated"):
        load_audio(cut)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "cannot decode|no audio"), (b"RIFF\x00\x00garbage" * 10, "cannot decode|no audio")],
)
def test_unreadable_files(tmp_path: Path, content: bytes, match: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioError, match=match):
        load_audio(bad)


def test_missing_file() -> None:
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio("/nonexistent/clip.wav")


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.array([0.1, np.nan, 0.2], dtype=np.float32), "NaN"),
        (np.array([0.1, np.inf], dtype=np.float32), "NaN or infinite"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.array([1000.0, -2000.0], dtype=np.float32), "wrong sample format"),
        (np.array([1, 2, 3], dtype=np.int16), "integer samples"),
        (np.zeros((2, 2, 2), dtype=np.float32), "1-D"),
    ],
)
def test_check_audio_rejects_bad_samples(samples: Any, match: str) -> None:
    with pytest.raises(AudioError, match=match):
        check_audio(samples)


def test_stereo_is_downmixed() -> None:
    stereo = np.stack([np.full(10, 0.5), np.full(10, -0.1)], axis=1).astype(np.float32)
    assert np.allclose(check_audio(stereo), 0.2)


def test_resample_keeps_a_tone() -> None:
    t = np.arange(44_100) / 44_100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 44_100, SAMPLE_RATE)
    assert out.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    with pytest.raises(AudioError):
        resample(tone, 0, SAMPLE_RATE)


def test_pcm16_round_trip_and_framing(tmp_path: Path, speech: Any) -> None:
    _, audio = speech.clip("en", PROMPT)
    decoded = pcm16_to_float(float_to_pcm16(audio))
    assert np.max(np.abs(decoded - audio)) < 1e-4
    with pytest.raises(AudioError, match="even"):
        pcm16_to_float(b"\x00\x01\x02")
    parts = list(frames(audio, 320))
    assert all(p.size == 320 for p in parts[:-1]) and np.array_equal(np.concatenate(parts), audio)
    path = tmp_path / "out.wav"
    write_wav(path, audio, SAMPLE_RATE)
    assert np.max(np.abs(load_audio(path) - audio)) < 1e-3
