"""A fast subset of the attack suite on real speech, localization, and the CLI.

The full attack matrix on 2 s windows is `bench/watermark.py`.
"""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from dragoman.audio import load_audio, write_wav
from dragoman.cli import main
from dragoman.corpus import prompts
from dragoman.events import FloatAudio
from dragoman.watermark import WatermarkKey, detect, embed
from dragoman.watermark.attacks import ATTACKS
from dragoman.watermark.pattern import BAND, TILE_BINS

PAYLOAD = 0x0BADF00D
RATE = 16_000


@functools.cache
def _key() -> WatermarkKey:
    return WatermarkKey.from_passphrase("attacks")


@functools.cache
def _marked() -> tuple[FloatAudio, FloatAudio]:
    chosen = prompts("en")[100:105]
    audio = np.concatenate([load_audio(p.path, RATE) for p in chosen])
    return audio, embed(audio, _key(), payload=PAYLOAD, sample_rate=RATE)


@pytest.mark.parametrize(
    "name", ["mp3_64k", "aac_64k", "resample_48k", "highpass_500", "gain_minus_6db", "crop"]
)
def test_mark_survives_attack(name: str) -> None:
    _, marked = _marked()
    attacked = ATTACKS[name].apply(marked, RATE, np.random.default_rng(1), None)
    assert not np.array_equal(attacked[:1000], marked[:1000]) or name == "crop"
    found = detect(attacked, _key(), sample_rate=RATE)
    assert found.detected, f"{name}: z={found.z_score:.2f}"
    assert found.payload == PAYLOAD


@pytest.mark.parametrize(
    "name",
    ["telephone", "opus_16k", "white_noise_20db", "resample_8k", "echo", "speed_plus_5",
     "speed_minus_5"],
)
def test_mark_survives_hard_attack(name: str) -> None:
    """Telephone band, Opus 16 kbit/s, 20 dB white noise, 8 kHz, echo and +-5 % speed on
    19 s of real speech: detected at p <= 1e-4 (the speed search included)."""
    _, marked = _marked()
    attacked = ATTACKS[name].apply(marked, RATE, np.random.default_rng(1), None)
    found = detect(attacked, _key(), sample_rate=RATE)
    assert found.detected, f"{name}: z={found.z_score:.2f}"
    assert found.p_value <= 1e-4 and found.marked_spans


@pytest.mark.parametrize("name", ["opus_16k", "opus_32k", "resample_8k", "echo", "lowpass_4k"])
def test_payload_survives_lossy_attack(name: str) -> None:
    _, marked = _marked()
    attacked = ATTACKS[name].apply(marked, RATE, np.random.default_rng(2), None)
    found = detect(attacked, _key(), sample_rate=RATE)
    assert found.payload == PAYLOAD and found.payload_reliability > 0.8


def _attacked_windows(name: str, seed: int, hop_seconds: int) -> list[FloatAudio]:
    """2 s windows of the marked speech after attack `name`; the same windows of the
    unmarked speech under the same attack must not be detected (p > 1e-3 each)."""
    clean, marked = _marked()
    rng = np.random.default_rng(seed)
    attacked = ATTACKS[name].apply(marked, RATE, rng, None)
    unmarked = ATTACKS[name].apply(clean, RATE, rng, None)
    starts = range(0, attacked.size - 2 * RATE, hop_seconds * RATE)
    nulls = [detect(unmarked[s : s + 2 * RATE], _key(), sample_rate=RATE) for s in starts]
    assert all(not n.detected and n.p_value > 1e-3 for n in nulls), [n.p_value for n in nulls]
    return [attacked[s : s + 2 * RATE] for s in starts]


def _median_z(windows: list[FloatAudio]) -> float:
    return float(np.median([detect(w, _key(), sample_rate=RATE).z_score for w in windows]))


@pytest.mark.parametrize(
    ("name", "top_hz"), [("telephone", 3400.0), ("lowpass_4k", 4000.0), ("resample_8k", 4000.0)]
)
def test_filtered_out_band_stops_adding_noise(
    name: str, top_hz: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles a band limit removed carry no evidence: their features are zero (without the
    dead-tile rule they are leakage noise), and unmarked band-limited speech stays
    unremarkable (the null does not depend on which tiles are used). The gain this buys
    is measured in the benchmark's setting (40 clips x 3 windows: median z telephone
    7.8 -> 8.3, low-pass 4 kHz 9.4 -> 9.9, 8 kHz 9.0 -> 9.3); a single file's few windows
    are too few to show it reliably."""
    windows = _attacked_windows(name, seed=4, hop_seconds=3)
    module = importlib.import_module("dragoman.watermark.detect")
    bin_hz = RATE / 512
    first = int(np.ceil((top_hz + 1000.0 - BAND[0] * bin_hz) / (TILE_BINS * bin_hz)))

    def used(window: FloatAudio) -> float:
        """Share of the cells 1 kHz or more above the cut-off with a nonzero feature
        (a few quiet frames keep leakage within 70 dB of their loudest tile)."""
        feats = module._features(module._power(window.astype(np.float64)), 1.0)
        return float(np.mean(feats.values[:, :, first:] != 0.0))

    assert len(windows) >= 5
    assert max(used(w) for w in windows) < 0.05
    monkeypatch.setattr(module, "DEAD_TILE_RELATIVE", 0.0)
    assert min(used(w) for w in windows) > 0.5


def test_evidence_weights_lift_buried_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under 20 dB white noise, weighting cells by the mark they can hold (band depth x
    squared energy share above the noise floor) scores 2 s windows of marked speech higher
    than counting every cell alike, and unmarked speech under the same attack stays
    unremarkable. (Under Opus 16k the gain is smaller since the filtered feature: median z
    6.99 -> 7.28 on the benchmark's windows, too little to test on one file.)"""
    windows = _attacked_windows("white_noise_20db", seed=5, hop_seconds=2)
    weighted = _median_z(windows)
    monkeypatch.setattr(importlib.import_module("dragoman.watermark.detect"),
                        "_evidence_weights", lambda share: np.ones_like(share))
    flat = _median_z(windows)
    assert len(windows) >= 8 and weighted > flat + 0.4, (weighted, flat)


def test_codec_attack_changes_the_audio_and_keeps_the_length() -> None:
    _, marked = _marked()
    coded = ATTACKS["opus_32k"].apply(marked, RATE, np.random.default_rng(0), None)
    assert coded.size == marked.size
    error = 10 * np.log10(np.sum(marked**2) / np.sum((coded - marked) ** 2))
    assert 3.0 < error < 40.0  # a real lossy codec ran: changed, but still the same speech


def test_concatenation_is_localized() -> None:
    _, marked = _marked()
    donor = np.concatenate([load_audio(p.path, RATE) for p in prompts("es")[200:203]])
    mixed = ATTACKS["concat"].apply(marked, RATE, np.random.default_rng(0), donor)
    found = detect(mixed, _key(), sample_rate=RATE)
    assert found.detected and found.payload == PAYLOAD
    start = (donor.size // 2) / RATE
    end = start + marked.size / RATE
    spans = found.marked_spans
    covered = sum(min(b, end) - max(a, start) for a, b in spans if b > start and a < end)
    outside = sum(b - a for a, b in found.marked_spans) - covered
    assert covered > 0.6 * (end - start)
    assert outside < 1.0


def test_cli_embed_and_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DRAGOMAN_WATERMARK_KEY", "cli test passphrase")
    source = prompts("fr")[20].path
    clean = tmp_path / "clean.wav"
    write_wav(clean, np.concatenate([load_audio(p.path, RATE) for p in prompts("fr")[20:24]]), RATE)
    marked = tmp_path / "marked.wav"
    assert main(["watermark", "embed", str(clean), str(marked), "--payload", "0xC0FFEE01"]) == 0
    capsys.readouterr()
    assert main(["watermark", "detect", str(marked), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["detected"] is True and report["payload"] == "0xC0FFEE01"
    assert report["p_value"] < 1e-4 and report["marked_spans"]
    assert main(["watermark", "detect", str(clean)]) == 1
    assert "detected: no" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse rejects a payload outside 32 bits
        main(["watermark", "embed", str(source), str(marked), "--payload", "0x1FFFFFFFF"])
    assert main(["watermark", "detect", str(tmp_path / "missing.wav")]) == 2
