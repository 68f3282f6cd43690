"""The watermark on real speech: round trip, null hypothesis, keys, streaming, bad input."""

from __future__ import annotations

import functools
import logging
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragoman.audio import load_audio
from dragoman.corpus import prompts
from dragoman.errors import AudioError, DragomanError
from dragoman.events import FloatAudio
from dragoman.watermark import (
    DEFAULT_P_THRESHOLD,
    StreamingEmbedder,
    WatermarkKey,
    WatermarkKeyError,
    detect,
    ecc,
    embed,
)
from dragoman.watermark.embed import EmbedConfig

PAYLOAD = 0x1234ABCD


@functools.cache
def _key(passphrase: str = "test") -> WatermarkKey:
    return WatermarkKey.from_passphrase(passphrase)


@functools.cache
def speech(language: str, first: int, count: int, rate: int = 16_000) -> FloatAudio:
    """Real human speech: `count` consecutive Asterisk prompts, concatenated."""
    chosen = prompts(language)[first : first + count]
    return np.concatenate([load_audio(p.path, rate) for p in chosen])


@pytest.mark.parametrize("language", ["en", "es"])
def test_round_trip_on_real_speech(language: str) -> None:
    audio = speech(language, 30, 4)
    marked = embed(audio, _key(), payload=PAYLOAD, sample_rate=16_000)
    assert marked.shape == audio.shape and marked.dtype == np.float32
    snr = 10 * np.log10(np.sum(audio**2) / np.sum((marked - audio) ** 2))
    assert snr > 28.0
    found = detect(marked, _key(), sample_rate=16_000)
    assert found.detected
    assert found.p_value < 1e-8
    assert found.payload == PAYLOAD
    assert found.payload_reliability > 0.9
    assert found.marked_spans, "a marked file must report where the mark is"


@pytest.mark.parametrize(
    "former",
    [
        EmbedConfig(depth_low=0.03, depth_high=0.31, frame_cap_db=None),  # before session 7
        EmbedConfig(frame_cap_db=None),  # session 7: no per-frame cap
    ],
)
def test_marks_of_former_embedders_are_still_read(former: EmbedConfig) -> None:
    """Marks made before session 7 (depth 0.03 below 1 kHz, 0.31 above 2.5 kHz) and before
    session 8 (no per-frame cap) are detected and decoded by the current detector."""
    audio = speech("en", 60, 4)
    assert EmbedConfig() != former
    found = detect(embed(audio, _key(), payload=PAYLOAD, sample_rate=16_000, config=former),
                   _key(), sample_rate=16_000)
    assert found.detected and found.p_value < 1e-8
    assert found.payload == PAYLOAD


def test_round_trip_on_espeak_speech_at_24k(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install.sh installs it)")
    wav = tmp_path / "tts.wav"
    text = "Buenos dias. La reunion empieza a las diez. Por favor, apaguen los microfonos."
    subprocess.run(["espeak-ng", "-v", "es", "-w", str(wav), text], check=True, timeout=60)
    audio = load_audio(wav, 24_000)
    marked = embed(audio, _key(), payload=0xCAFE0042, sample_rate=24_000)
    found = detect(marked, _key(), sample_rate=24_000)
    assert found.detected and found.payload == 0xCAFE0042
    assert not detect(audio, _key(), sample_rate=24_000).detected


def test_unmarked_speech_is_not_detected() -> None:
    for first in (0, 40, 80):
        found = detect(speech("fr", first, 3), _key(), sample_rate=16_000)
        assert not found.detected
        assert found.p_value > DEFAULT_P_THRESHOLD
        assert found.payload is None and found.marked_spans == ()


def test_wrong_key_neither_detects_nor_forges() -> None:
    audio = speech("en", 50, 4)
    marked = embed(audio, _key(), payload=PAYLOAD, sample_rate=16_000)
    assert not detect(marked, _key("another key"), sample_rate=16_000).detected
    forged = embed(audio, _key("attacker"), payload=PAYLOAD, sample_rate=16_000)
    assert not detect(forged, _key(), sample_rate=16_000).detected


def test_two_second_windows_at_random_offsets() -> None:
    audio = speech("en", 60, 6)
    marked = embed(audio, _key(), payload=PAYLOAD, sample_rate=16_000)
    rng = np.random.default_rng(7)
    decoded = 0
    for _ in range(6):
        start = int(rng.integers(0, marked.size - 32_000))
        window = marked[start : start + 32_000]
        found = detect(window, _key(), sample_rate=16_000)
        assert found.detected, f"2 s window at {start / 16000:.2f} s missed (z={found.z_score})"
        decoded += found.payload == PAYLOAD
        # The reliability is a probability: a wrong payload must not look trustworthy.
        assert found.payload == PAYLOAD or found.payload_reliability < 0.9, found
    assert decoded >= 3  # the payload needs more evidence than detection; see docs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=30))
def test_streaming_equals_whole_signal(sizes: list[int]) -> None:
    audio = speech("es", 10, 1, rate=24_000)
    whole = embed(audio, _key(), payload=PAYLOAD, sample_rate=24_000)
    streamer = StreamingEmbedder(_key(), payload=PAYLOAD, sample_rate=24_000)
    pieces, fed, start = [], 0, 0
    for size in sizes:
        chunk = audio[start : start + size]
        start += chunk.size
        out = streamer.feed(chunk)
        fed += chunk.size
        pieces.append(out)
        emitted = sum(p.size for p in pieces)
        assert emitted == max(0, fed - streamer.delay_samples)
    pieces.append(streamer.feed(audio[start:]))
    pieces.append(streamer.finish())
    streamed = np.concatenate(pieces)
    assert streamed.size == audio.size
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def _quiet_high_band(audio: FloatAudio, rate: int) -> FloatAudio:
    """Speech kept above 2.5 kHz only and scaled to about -80 dBFS: the kind of clip whose
    mark, a fixed ratio of each bin, came out 14 dB under it before the per-frame cap."""
    spectrum = np.fft.rfft(audio.astype(np.float64))
    spectrum[np.fft.rfftfreq(audio.size, 1.0 / rate) < 2500.0] = 0.0
    high = np.fft.irfft(spectrum, n=audio.size)
    return (high * 1e-4 / np.sqrt(np.mean(high**2))).astype(np.float32)


def _snr_db(audio: FloatAudio, marked: FloatAudio) -> float:
    clean = audio.astype(np.float64)
    return float(10 * np.log10(np.sum(clean**2) / np.sum((marked - clean) ** 2)))


def test_frame_cap_keeps_a_quiet_high_band_clip_under_the_cap() -> None:
    audio = _quiet_high_band(speech("en", 20, 4), 16_000)
    cap = EmbedConfig().frame_cap_db
    assert cap is not None
    capped = embed(audio, _key(), payload=PAYLOAD, sample_rate=16_000)
    uncapped = embed(audio, _key(), PAYLOAD, 16_000, config=EmbedConfig(frame_cap_db=None))
    assert _snr_db(audio, uncapped) < 15.0  # the cap is what the SNR owes to
    # the cap's reference is the recent peak, not each frame alone: a frame right after a
    # louder one may keep up to 22 dB under that peak, so the clip lands near, not above
    assert _snr_db(audio, capped) >= cap - 2.0
    # speech at a normal level and spectrum is mostly under the cap (SNR about 30 dB)
    loud = speech("en", 20, 4)
    assert _snr_db(loud, embed(loud, _key(), PAYLOAD, 16_000)) < cap + 12.0
    found = detect(capped, _key(), sample_rate=16_000)
    assert found.detected and found.payload == PAYLOAD


@pytest.mark.parametrize("sizes", [[1, 479, 480, 4000, 7, 20_000], [768], [333] * 50])
def test_capped_streaming_equals_whole_signal(sizes: list[int]) -> None:
    """The cap's state (a peak follower) carries across chunks: no look-ahead needed."""
    audio = np.concatenate([speech("es", 10, 1, rate=24_000),
                            _quiet_high_band(speech("es", 11, 1, rate=24_000), 24_000)])
    whole = embed(audio, _key(), payload=PAYLOAD, sample_rate=24_000)
    plain = embed(audio, _key(), PAYLOAD, 24_000, config=EmbedConfig(frame_cap_db=None))
    assert np.abs(whole - plain).max() > 1e-4  # the cap did act on this audio
    streamer = StreamingEmbedder(_key(), payload=PAYLOAD, sample_rate=24_000)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(streamer.feed(audio[start : start + size]))
        start += size
    pieces.append(streamer.feed(audio[start:]))
    pieces.append(streamer.finish())
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)


def test_delay_is_one_frame_and_small() -> None:
    for rate in (16_000, 24_000, 48_000):
        embedder = StreamingEmbedder(_key(), payload=1, sample_rate=rate)
        assert embedder.delay_samples / rate == pytest.approx(0.032)


def test_silence_stays_silent() -> None:
    silence = np.zeros(48_000, dtype=np.float32)
    assert np.array_equal(embed(silence, _key(), payload=PAYLOAD, sample_rate=24_000), silence)
    audio = speech("en", 70, 1)
    gap = np.zeros(16_000, dtype=np.float32)
    marked = embed(np.concatenate([audio, gap, audio]), _key(), PAYLOAD, 16_000)
    # the gap is untouched except within one frame of the speech on either side
    assert np.all(marked[audio.size + 512 : audio.size + 16_000 - 512] == 0.0)
    assert not detect(silence, _key(), sample_rate=24_000).detected


def test_bad_input_gets_clear_errors() -> None:
    speechy = speech("en", 0, 1)
    nan = speechy.copy()
    nan[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        embed(nan, _key(), PAYLOAD, 16_000)
    with pytest.raises(AudioError, match="NaN"):
        detect(nan, _key(), 16_000)
    with pytest.raises(AudioError, match="empty"):
        embed(np.zeros(0, dtype=np.float32), _key(), PAYLOAD, 16_000)
    with pytest.raises(AudioError, match="empty"):
        detect(np.zeros(0, dtype=np.float32), _key(), 16_000)
    with pytest.raises(AudioError, match="44100"):
        StreamingEmbedder(_key(), PAYLOAD, sample_rate=44_100)
    with pytest.raises(AudioError, match="sample rate"):
        detect(speechy, _key(), sample_rate=4000)
    with pytest.raises(AudioError, match="too short"):
        detect(speechy[:1000], _key(), 16_000)
    with pytest.raises(DragomanError, match="32 bits"):
        StreamingEmbedder(_key(), 1 << 32, 16_000)
    with pytest.raises(DragomanError, match="frame cap"):
        EmbedConfig(frame_cap_db=-3.0)
    with pytest.raises(DragomanError, match="release"):
        EmbedConfig(cap_release_frames=0.5)
    embedder = StreamingEmbedder(_key(), PAYLOAD, 16_000)
    embedder.finish()
    with pytest.raises(DragomanError, match="after finish"):
        embedder.feed(speechy)


def test_key_never_reveals_material(caplog: pytest.LogCaptureFixture) -> None:
    secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    caplog.set_level(logging.DEBUG)
    key = WatermarkKey.load(env={"DRAGOMAN_WATERMARK_KEY": secret})
    assert key == WatermarkKey.from_string(secret)
    for text in (repr(key), str(key), caplog.text):
        assert secret not in text and secret[:16] not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert WatermarkKey.from_string("base64:" + "A" * 24) != key
    with pytest.raises(WatermarkKeyError):
        WatermarkKey.from_string("   ")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    env = {"DRAGOMAN_HOME": str(tmp_path / "home")}
    first = WatermarkKey.load(env=env)
    path = tmp_path / "home" / "watermark.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert WatermarkKey.load(env=env) == first
    assert WatermarkKey.load(env={**env, "DRAGOMAN_WATERMARK_KEY": "passphrase!"}) != first


def test_convolutional_code_corrects_any_nine_errors() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        bits = rng.integers(0, 2, 32).astype(np.int8)
        coded = (2.0 * ecc.encode(bits) - 1.0).astype(np.float64)
        assert np.array_equal(ecc.viterbi_decode(coded), bits)
        noisy = coded.copy()
        noisy[rng.choice(coded.size, 9, replace=False)] *= -1  # free distance 20
        assert np.array_equal(ecc.viterbi_decode(noisy), bits)


def test_bit_posteriors_are_calibrated() -> None:
    """Forward-backward posteriors say how often each decoded bit is right."""
    rng = np.random.default_rng(11)
    confidence: list[float] = []
    right: list[bool] = []
    for mean in (0.5, 0.8, 1.1) * 40:
        bits = rng.integers(0, 2, 32).astype(np.int8)
        noisy = mean * (2.0 * ecc.encode(bits) - 1.0) + rng.standard_normal(ecc.coded_length(32))
        posterior = ecc.data_posteriors(2.0 * mean * noisy)
        confidence.extend(np.maximum(posterior, 1.0 - posterior))
        right.extend((posterior > 0.5) == bits.astype(bool))
    sure = np.array(confidence) > 0.99
    assert sure.sum() > 1000 and np.mean(np.array(right)[sure]) > 0.985
    unsure = np.array(confidence) < 0.8
    assert unsure.sum() > 100
    assert abs(np.mean(np.array(right)[unsure]) - np.mean(np.array(confidence)[unsure])) < 0.08
    clean = ecc.data_posteriors(8.0 * (2.0 * ecc.encode(bits) - 1.0))
    assert np.array_equal(clean > 0.5, bits.astype(bool)) and np.all(np.abs(clean - 0.5) > 0.49)
