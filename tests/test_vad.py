"""Voice activity detection on real speech: both backends, padding, hangover."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dragoman.asr import VadConfig, VoiceActivityDetector
from dragoman.audio import load_audio
from dragoman.corpus import prompts
from dragoman.errors import AudioError, DragomanError
from dragoman.events import SAMPLE_RATE, SpeechEnded, SpeechStarted


def segments(detector: VoiceActivityDetector, audio: Any, chunk: int) -> list[tuple[int, int]]:
    detector.start()
    events: list[Any] = []
    for start in range(0, audio.size, chunk):
        detector.feed(audio[start : start + chunk])
        events += detector.events()
    events += detector.finish()
    starts = [e.at for e in events if isinstance(e, SpeechStarted)]
    ends = [e.at for e in events if isinstance(e, SpeechEnded)]
    assert len(starts) == len(ends)
    assert [e.utterance for e in events] == sorted(e.utterance for e in events)
    return list(zip(starts, ends, strict=True))


def energy_bounds(audio: Any) -> tuple[int, int]:
    """Where the recording's speech energy begins and ends (20 ms frames)."""
    frame = 320
    rms = np.sqrt(np.mean(audio[: audio.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.1 * rms.max())
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


@pytest.mark.parametrize("backend", ["webrtc", "silero"])
@pytest.mark.parametrize("chunk", [160, 480, 1000, 16000])
def test_two_utterances_found_with_padding(speech: Any, backend: str, chunk: int) -> None:
    _, first = speech.clip("en", "vm-passchanged")
    _, second = speech.clip("en", "conf-noempty")
    lead = speech.silence(1.0)
    audio = np.concatenate([lead, first, speech.silence(1.5), second, speech.silence(1.0)])
    found = segments(VoiceActivityDetector(VadConfig(backend=backend)), audio, chunk)
    assert len(found) == 2, found
    offset = lead.size
    for (start, end), clip in zip(found, (first, second), strict=True):
        speech_start, speech_end = (offset + b for b in energy_bounds(clip))
        assert start <= speech_start, "the onset must be inside the segment (padding)"
        assert end >= speech_end - SAMPLE_RATE // 10
        assert end - start < (speech_end - speech_start) + SAMPLE_RATE  # no runaway segments
        offset += clip.size + (speech.silence(1.5).size if clip is first else 0)


@pytest.mark.parametrize("backend", ["webrtc", "silero"])
def test_silence_has_no_speech(speech: Any, backend: str) -> None:
    assert segments(VoiceActivityDetector(VadConfig(backend=backend)), speech.silence(5), 800) == []


def test_silero_ignores_steady_noise_webrtc_does_not_have_to() -> None:
    noise = (0.05 * np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    assert segments(VoiceActivityDetector(VadConfig(backend="silero")), noise, 800) == []


def test_longer_hangover_merges_a_pause(speech: Any) -> None:
    _, clip = speech.clip("en", "vm-passchanged")
    audio = np.concatenate([clip, speech.silence(0.4), clip, speech.silence(2.0)])
    short = segments(VoiceActivityDetector(VadConfig(hangover_ms=300)), audio, 480)
    long = segments(VoiceActivityDetector(VadConfig(hangover_ms=1500)), audio, 480)
    assert len(short) == 2 and len(long) == 1


def test_bad_input() -> None:
    detector = VoiceActivityDetector()
    with pytest.raises(AudioError):
        detector.feed(np.array([np.nan], dtype=np.float32))
    with pytest.raises(DragomanError, match="aggressiveness"):
        VoiceActivityDetector(VadConfig(aggressiveness=7)).start()


def test_digital_silence_ends_a_segment_after_long_speech(speech: Any) -> None:
    """44 English prompts 1 s apart: after a few minutes of speech webrtcvad's state
    calls up to 0.6 s of digital silence "speech", and the hangover merged 4 pairs of
    prompts (two identical ones among them, which Whisper then transcribed once). The
    level gate keeps every prompt its own segment."""
    pool = [p for p in prompts("en") if "/" not in p.id and len(p.text.split()) >= 2]
    gap = speech.silence(1.0)
    chosen = pool[0:88:2]  # the first 44 of bench/asr.py's 100 prompts
    audio = np.concatenate([part for p in chosen for part in (load_audio(p.path), gap)])
    gated = segments(VoiceActivityDetector(VadConfig()), audio, 320)
    ungated = segments(VoiceActivityDetector(VadConfig(silence_dbfs=None)), audio, 320)
    assert len(gated) == 44
    assert len(ungated) < 44  # the failure the gate exists for still reproduces
