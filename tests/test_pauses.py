"""Where a buffer cut goes after a word: into the pause that follows its sound."""

from __future__ import annotations

from typing import Any

import numpy as np

from dragoman.asr.pauses import pause_after
from dragoman.events import SAMPLE_RATE

S = SAMPLE_RATE


def _level(audio: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """RMS over a sliding 10 ms window."""
    return np.sqrt(np.convolve(audio**2, np.ones(160) / 160, mode="same"))


def test_a_cut_timed_inside_a_word_moves_into_the_pause_after_it(speech: Any) -> None:
    # A real prompt, its last 0.25 s of sound before 0.4 s of silence: a cut timed
    # 0.25 s early moves past the sound into the silence.
    _, audio = speech.clip("en", "conf-locked")
    level = _level(audio)
    sound_end = int(np.flatnonzero(level > 0.05 * level.max())[-1])
    clip = np.concatenate([audio[:sound_end], np.zeros(int(0.4 * S), np.float32),
                           audio[: S // 2]])
    early = sound_end - S // 4
    cut = pause_after(clip, early)
    # (the word's last 10-20 ms, 20-26 dB down, already count as quiet)
    assert sound_end - S // 50 <= cut <= sound_end + S // 10 + S // 100


def test_no_pause_within_reach_keeps_the_timed_cut(speech: Any) -> None:
    _, audio = speech.clip("en", "conf-locked")
    level = _level(audio)
    voiced = np.flatnonzero(level > 0.2 * level.max())
    inside = int(voiced[voiced.size // 2])
    loud = np.concatenate([audio, audio, audio])
    assert pause_after(loud, inside, search=S // 20) == inside
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * S).astype(np.float32)
    assert pause_after(noise, S) == S  # noise as loud as speech: no pause


def test_edges_and_silence_keep_the_timed_cut() -> None:
    silence = np.zeros(2 * S, np.float32)
    assert pause_after(silence, S) == S
    tone = (0.3 * np.sin(np.arange(S) / 5)).astype(np.float32)
    assert pause_after(tone, 0) == 0
    assert pause_after(tone, tone.size) == tone.size
    assert pause_after(tone, tone.size + 100) == tone.size
