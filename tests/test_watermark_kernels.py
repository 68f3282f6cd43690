"""The detector's fast kernels equal their plain definitions (session 8's speed-up must not
change a z, a p-value or a payload)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dragoman.watermark.pattern import BAND, TILE_BINS

detect_module = importlib.import_module("dragoman.watermark.detect")


def test_filter_equals_its_25_taps() -> None:
    rng = np.random.default_rng(3)
    logmag = rng.standard_normal((4, 40, 55))
    count = logmag.shape[1] - 4
    fast = np.full((4, count, 51), np.nan)
    detect_module._filtered(logmag, fast)
    plain = np.zeros_like(fast)
    for tile_lag in range(5):
        for frame_lag in range(5):
            tap = detect_module.FEATURE_FILTER[tile_lag, frame_lag]
            plain += tap * logmag[:, frame_lag : frame_lag + count, tile_lag : tile_lag + 51]
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("speed", [0.95, 0.9875, 1.0125, 1.05])
def test_stretched_tile_taps_equal_interpolated_bins(speed: float) -> None:
    power = np.random.default_rng(4).random((30, 257))
    first, last = BAND[0] - 2 * TILE_BINS, BAND[1] + 2 * TILE_BINS
    where = np.arange(first, last) * speed
    low = np.floor(where).astype(np.int64)
    frac = where - low
    band = power[:, low] * (1.0 - frac) + power[:, low + 1] * frac
    plain = band.reshape(30, -1, TILE_BINS).sum(axis=2)
    source, taps = detect_module._stretched_tile_taps(speed)
    fast = sum(power[:, source + k] * taps[k] for k in range(taps.shape[0]))
    np.testing.assert_allclose(fast, plain, rtol=1e-13)


def test_batched_sync_z_equals_one_offset_at_a_time() -> None:
    from dragoman.watermark import WatermarkKey
    from dragoman.watermark.pattern import make_pattern

    sync = detect_module._SyncSpectra.of(make_pattern(WatermarkKey.from_passphrase("kernels")))
    evidence = np.random.default_rng(5).standard_normal((4, 125, 51))
    batched = detect_module._sync_z(detect_module._fold(evidence, 7), sync)
    for offset in range(4):
        single = detect_module._sync_z(detect_module._fold(evidence[offset], 7), sync)
        np.testing.assert_allclose(batched[offset], single, rtol=0, atol=1e-12)
