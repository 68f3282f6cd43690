"""The detector: stateless, vectorised numpy, from any window of about 2 s.

Audio is resampled to 16 kHz and analysed once with the embedder's geometry at a 4 ms
hop (four sub-hop offsets of the 16 ms frame grid). The energy of each 125 Hz tile is the
sum of its bins' power; the feature of a cell is a fixed 5 x 5 filter (`FEATURE_FILTER`)
over the tile log-magnitudes around it, +-2 frames and +-2 tiles, that whitens the host:
slowly varying speech, its spectral envelope, any fixed filter (telephone band, EQ, echo
colour) and any gain cancel, the keyed +-1 modulation stays. Features are clipped at 3
robust standard deviations per tile, silent frames get weight 0, and so do cells whose
filter reaches a tile 70 dB below the loudest tile of its frame (a band that was filtered
out). For detection and localization each cell is weighted by how much mark it can hold:
the embedder's depth in its band times the squared share of its energy above the band's
noise floor (`_evidence_weights`). Filter and weights depend on the audio alone, so the
null below stays exact.

Speed (session 8): one 2 s unmarked window runs all 9 speeds. Each speed reads its tile
energies with a few weighted gathers of whole bins, the filter uses its symmetries, the
four sub-hop offsets share one FFT call, and large temporaries are few and reused (on
this sandboxed machine a freshly mapped page costs microseconds).

Detection correlates the features with the keyed sync pattern at every alignment
(64 frame phases x 4 offsets) and, when that finds nothing, at 8 more playback speeds
(0.95 ... 1.05: the spectrogram is read at stretched times and frequencies instead of
resampling the audio). Under "not marked with this key" the cell signs are independent
fair coins given the audio, so the correlation `S` has mean 0 and exactly the variance
`V = sum(group sums^2)` computed from the features themselves; `z = S/sqrt(V)` is then
standard normal (Hoeffding bounds its tail by exp(-z^2/2) even for short clips). The
p-value applies a Bonferroni correction over the alignments, speeds and windows searched:
80 % of the false-positive budget goes to normal speed, 20 % to the 8 other speeds.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dragoman.audio import check_audio, resample
from dragoman.errors import AudioError
from dragoman.watermark import ecc
from dragoman.watermark.embed import EmbedConfig
from dragoman.watermark.keys import WatermarkKey
from dragoman.watermark.pattern import (
    BAND,
    BASE_FRAME,
    BASE_HOP,
    BASE_RATE,
    N_TILES,
    PAYLOAD_BITS,
    PERIOD_FRAMES,
    TILE_BINS,
    Pattern,
    make_pattern,
    sqrt_hann,
)

logger = logging.getLogger(__name__)

DEFAULT_P_THRESHOLD = 1e-4
"""Decision threshold on the (Bonferroni-corrected) p-value: the false-positive rate."""
OFFSETS = 4
STEP = BASE_HOP // OFFSETS  # the analysis hop: 64 samples (4 ms)
SPEEDS = (1.0, 0.9875, 1.0125, 0.975, 1.025, 0.9625, 1.0375, 0.95, 1.05)
"""Playback speeds searched (1.0 first); a tile is 4 bins wide and a window 125 frames
long, so a speed error of up to 0.625 % between grid points loses little."""
UNIT_SPEED_SHARE = 0.8
"""Share of the false-positive budget spent at normal speed (the rest on the others): a 2 s
window is detected at z >= 4.98 at normal speed, z >= 5.62 at another. Session 18, 400 clips
x 2 windows, 0.5 -> 0.8: TPR Opus 16k 0.981 -> 0.989, white noise 0.910 -> 0.917; +-5 %
speed stayed at 1.000 (1st-percentile z 11.5, far above either threshold)."""
WINDOW_FRAMES = 125  # 2.0 s
WINDOW_HOP_FRAMES = 62  # about 1 s
BLOCK_FRAMES = 31  # about 0.5 s, the localization resolution
BLOCK_Z = 3.0
ACTIVE_RELATIVE = 1e-4  # frames 40 dB below the loudest frame carry no evidence
ACTIVE_ABSOLUTE = 1e-9  # in-band energy per bin of digital near-silence
CLIP_SIGMAS = 3.0
DEAD_TILE_RELATIVE = 1e-7
"""A tile 70 dB below its frame's loudest tile carries no evidence (the band a telephone
filter, a 4 kHz low-pass or 8 kHz resampling removed; measured on 2 s windows: TPR
telephone 0.53 -> 0.84, low-pass 4 kHz 0.87 -> 0.98, 8 kHz resampling 0.74 -> 0.95,
clean speech unchanged; 1e-5 cost clean z, 1e-9 missed most of the gain)."""
NOISE_PERCENTILE = 5.0
"""Percentile of a tile's active-frame energies taken as its noise floor (measured on 2 s
windows, 48 per attack: TPR white noise 0.48 -> 0.94, Opus 16k 0.58 -> 0.88 with the depth
weights; 10 and 25 took more from clean speech and clipping, 2 left most noise in)."""
EVIDENCE_SHARE_POWER = 2.0
"""Detection weights cells by depth x share^this (2 s windows, 40 clips x 3, with the
filtered feature: TPR white noise 0.933 -> 0.975, 5th-percentile z 4.77 -> 5.15; clean
median z 16.0 -> 15.6, Opus 16k and telephone within 0.2; 1.5 gave 0.950, 3 gave 0.967)."""
_TILE_DEPTH = np.tanh(EmbedConfig().depths()).reshape(N_TILES, TILE_BINS).mean(axis=1)
_TILE_DEPTH.flags.writeable = False
FEATURE_FILTER = np.array(
    [
        [0.085, 0.037, -0.243, 0.037, 0.085],
        [0.024, 0.015, -0.079, 0.015, 0.024],
        [-0.182, -0.318, 1.0, -0.318, -0.182],
        [0.024, 0.015, -0.079, 0.015, 0.024],
        [0.085, 0.037, -0.243, 0.037, 0.085],
    ]
)
"""The feature of a cell: this filter over the tile log-magnitudes around it (rows: tiles
-2..+2, columns: frames -2..+2). Each row sums to zero, so any gain or fixed filter
cancels. Fitted to maximise the sync correlation's z (generalized Rayleigh quotient
B^-1 A with the row sums held at zero) on 30 marked clips under 11 attacks
(clips not in the benchmark), then symmetrised: it whitens the host's log-spectrum
along time and frequency (speech varies slowly in both; the +-2-tile taps remove the
spectral envelope, the +-1-tile taps stay small because the mark of a tile leaks into
its neighbours). Against the former (-0.5, 1, -0.5) along time, z of whole clips at their
true alignment: clean 21.3 -> 25.6, telephone 10.7 -> 13.9, Opus 16k 9.8 -> 11.5, white
noise 10.8 -> 11.9; on 2 s windows (40 other clips x 3) TPR Opus 16k 0.86 -> 1.00,
telephone 0.94 -> 1.00, white noise 0.86 -> 0.93 (0.975 with the squared share)."""
FEATURE_FILTER.flags.writeable = False
if FEATURE_FILTER.shape != (5, 5) or not (
    np.array_equal(FEATURE_FILTER, FEATURE_FILTER[::-1])
    and np.array_equal(FEATURE_FILTER, FEATURE_FILTER[:, ::-1])
):
    raise AssertionError("`_filtered` relies on a 5 x 5 filter symmetric in tiles and frames")
_REACH_FRAMES = FEATURE_FILTER.shape[1] // 2
_REACH_TILES = FEATURE_FILTER.shape[0] // 2
MIN_SECONDS = 0.25
POWER_BLOCK_ROWS = 128
"""Rows of the power spectrogram computed at a time (0.5 s; bounds the temporaries)."""
PILOT_TILES = 9
"""Tiles (1.1 kHz) over which the sync pilots estimate the channel for the payload."""
PAYLOAD_WINDOW_Z = 2.0
"""Windows whose sync z under the best alignment reaches this are pooled for the payload
(measured on 4 s windows, BER: Opus 16k 0.18 -> 0.12, telephone 0.14 -> 0.08)."""
PAYLOAD_SHARE_POWERS = (0.0, 0.5, 1.0)
"""The payload decoder weights each cell by its energy share above the noise floor to one of
these powers, the one the sync pilots correlate best with (4 s windows, 40 clips: BER white
noise 0.25 -> 0.17, Opus 16k 0.12 -> 0.10, pink noise 0.011 -> 0; choosing by the payload's
own reliability instead picked overconfident candidates)."""


@dataclass(frozen=True, slots=True)
class Detection:
    """The detector's answer for one signal."""

    detected: bool
    p_value: float
    """Probability that unmarked audio (or another key) scores at least this well."""
    payload: int | None
    """The decoded 32-bit payload (the best guess: see `payload_reliability`), None when
    nothing was detected."""
    payload_reliability: float
    """Estimated probability that `payload` is exactly right (calibrated on attacked
    speech; trust a payload from about 0.9 up); 0.0 when nothing was detected."""
    marked_spans: tuple[tuple[float, float], ...]
    """Time ranges (seconds) that carry the mark."""
    z_score: float = 0.0
    """The best sync correlation in standard deviations."""


@dataclass(frozen=True, slots=True)
class _Features:
    """Cell features at one playback speed, for every sub-hop offset."""

    values: npt.NDArray[np.float64]  # (OFFSETS, frames, N_TILES), clipped, 0 where inactive
    evidence: npt.NDArray[np.float64]  # (OFFSETS, frames, N_TILES) values x evidence weights
    share: npt.NDArray[np.float64]  # (OFFSETS, frames, N_TILES) energy share above noise
    active: npt.NDArray[np.bool_]  # (OFFSETS, frames)
    rows: npt.NDArray[np.int64]  # (OFFSETS, frames) analysis row (STEP samples) of each frame
    speed: float


@dataclass(frozen=True, slots=True)
class _WindowScore:
    start: int
    stop: int
    z: float
    phase: int
    offset_index: int
    speed_index: int
    p: float


def _q(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _power(audio: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(rows, bins) power spectrogram with the embedder's frame at a hop of STEP samples."""
    view = np.lib.stride_tricks.sliding_window_view(audio, BASE_FRAME)[::STEP]
    window = sqrt_hann(BASE_FRAME)
    power: npt.NDArray[np.float64] = np.empty((view.shape[0], BASE_FRAME // 2 + 1))
    # In blocks of rows: the same numbers, but temporaries a quarter the size are reused by
    # the allocator instead of mapped and faulted in afresh (3x faster on a 2 s window).
    for start in range(0, view.shape[0], POWER_BLOCK_ROWS):
        rows = slice(start, start + POWER_BLOCK_ROWS)
        spectrum = np.fft.rfft(view[rows] * window, axis=1)
        np.square(spectrum.real, out=power[rows])
        power[rows] += np.square(spectrum.imag)
    return power


def _features(
    power: npt.NDArray[np.float64],
    speed: float,
    power_by_bin: npt.NDArray[np.float64] | None = None,
) -> _Features:
    """Tile features of the frames the embedder made, if the audio plays `speed` x faster.
    `power_by_bin`: the power's transpose, C-contiguous (made here when not given)."""
    # A frame j of the embedder sits at row 4j/speed + offset; its bin k at bin k * speed.
    n_frames = int((power.shape[0] - OFFSETS) * speed) // OFFSETS + 1
    n_frames = max(n_frames, 1)
    base = np.rint(np.arange(n_frames) * (OFFSETS / speed)).astype(np.int64)
    rows = np.minimum(base[None, :] + np.arange(OFFSETS)[:, None], power.shape[0] - 1)
    first, last = BAND[0] - _REACH_TILES * TILE_BINS, BAND[1] + _REACH_TILES * TILE_BINS
    if speed == 1.0:
        band = power[:, first:last]
        summed = band[:, 0::TILE_BINS].copy()  # strided sums beat a reshape + sum here
        for k in range(1, TILE_BINS):
            summed += band[:, k::TILE_BINS]
    else:
        source, taps = _stretched_tile_taps(speed)
        by_bin = np.ascontiguousarray(power.T) if power_by_bin is None else power_by_bin
        stretched = by_bin[source] * taps[0, :, None]  # (tiles, rows): contiguous row gathers
        for k in range(1, taps.shape[0]):
            stretched += by_bin[source + k] * taps[k, :, None]
        summed = stretched.T
    wide = summed[rows]  # (O, F, T + 2R)
    tiles = wide[:, :, _REACH_TILES:-_REACH_TILES]  # the marked tiles
    energy = tiles.mean(axis=2)
    floor = max(float(energy.max(initial=0.0)) * ACTIVE_RELATIVE, ACTIVE_ABSOLUTE * TILE_BINS)
    loud = energy > floor
    logmag = np.add(wide, 1e-6 * energy[..., None])  # in place from here: fewer fresh pages
    logmag += 1e-20
    np.log(logmag, out=logmag)
    logmag *= 0.5
    # Tiles a band-limiting filter or resampler removed hold only leakage: noise, no mark.
    dead = wide < DEAD_TILE_RELATIVE * tiles.max(axis=2, keepdims=True, initial=0.0)
    reach, count = _REACH_FRAMES, n_frames - 2 * _REACH_FRAMES
    values = np.zeros_like(tiles)
    active = np.zeros_like(loud)
    spoiled = np.zeros(tiles.shape, dtype=bool)
    if count > 0:
        span = 2 * _REACH_TILES + 1
        _filtered(logmag, values[:, reach : reach + count])
        near_dead: npt.NDArray[np.bool_] | None = None  # a dead tile within the filter
        if dead.any():
            windows = np.lib.stride_tricks.sliding_window_view(dead, span, axis=2)
            near_dead = np.asarray(windows.any(axis=3), dtype=bool)
        active[:, reach : reach + count] = True
        for dt in range(2 * reach + 1):
            active[:, reach : reach + count] &= loud[:, dt : dt + count]
            if near_dead is not None:
                spoiled[:, reach : reach + count] |= near_dead[:, dt : dt + count]
    values[~active] = 0.0
    if active.any():
        scale = 1.4826 * _order_statistic(np.abs(values[active]), 0.5)  # per tile
        scale = np.maximum(scale, 1e-9)
        np.clip(values, -CLIP_SIGMAS * scale, CLIP_SIGMAS * scale, out=values)
    values[spoiled] = 0.0
    share = _clean_share(tiles, active)
    evidence = _evidence_weights(share)
    evidence *= values
    return _Features(
        values=values,
        evidence=evidence,
        share=share,
        active=active,
        rows=rows,
        speed=speed,
    )


def _filtered(logmag: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None:
    """`FEATURE_FILTER` over (O, frames, tiles + 2R) log-magnitudes into `out`, the
    (O, frames - 4, tiles) features of the frames with a full +-2 frames around them.

    The filter is symmetric in frames and in tiles: mirrored frames are added first, each
    filter row's three distinct taps weight them, then mirrored tiles are added. Frame
    slices are contiguous blocks, and two scratch arrays serve all rows (three times faster
    than the former 25-tap matmul over a strided view, same sums to rounding)."""
    count, n_tiles = out.shape[1], out.shape[2]
    far = logmag[:, 0:count] + logmag[:, 4 : count + 4]  # frames -2 and +2
    near = logmag[:, 1 : count + 1] + logmag[:, 3 : count + 3]  # frames -1 and +1
    centre = logmag[:, 2 : count + 2]
    weighted, scratch = np.empty_like(far), np.empty_like(far)  # reused: fewer fresh pages
    for lag, row in enumerate(FEATURE_FILTER[: _REACH_TILES + 1]):
        # tile lag -2 (= +2), -1 (= +1), 0: that row of the filter over frames
        np.multiply(far, row[0], out=weighted)
        weighted += np.multiply(near, row[1], out=scratch)
        weighted += np.multiply(centre, row[2], out=scratch)
        if lag == 0:
            np.add(weighted[..., 0:n_tiles], weighted[..., 4 : n_tiles + 4], out=out)
        elif lag == 1:
            out += weighted[..., 1 : n_tiles + 1]
            out += weighted[..., 3 : n_tiles + 3]
        else:
            out += weighted[..., 2 : n_tiles + 2]


@functools.cache
def _stretched_tile_taps(speed: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """How the tile energies at playback `speed` come from the power spectrum's bins.

    Tile bin k is read at bin k x speed by linear interpolation, and a tile sums its
    `TILE_BINS` bins: so each tile is a weighted sum of a few consecutive source bins.
    Returns the first source bin of every tile (of the band widened by the filter's reach)
    and (taps, tiles) weights: tile t = sum over j of weights[j, t] x power[source[t] + j]."""
    first, last = BAND[0] - _REACH_TILES * TILE_BINS, BAND[1] + _REACH_TILES * TILE_BINS
    where = np.arange(first, last) * speed
    low = np.floor(where).astype(np.int64)
    frac = where - low
    tile = np.arange(last - first) // TILE_BINS
    source = low[::TILE_BINS]
    offset = low - source[tile]
    weights = np.zeros((int(offset.max()) + 2, source.size))
    np.add.at(weights, (offset, tile), 1.0 - frac)
    np.add.at(weights, (offset + 1, tile), frac)
    source.flags.writeable = False
    weights.flags.writeable = False
    return source, weights


def _clean_share(
    tiles: npt.NDArray[np.float64], active: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """The share of a cell's energy above its tile's stationary noise floor, from the audio
    alone. The floor of a tile is a low percentile of its energy over the active frames; a
    cell's share is that of the least clean of the three frames around it."""
    if not active.any():
        return np.zeros_like(tiles)
    floor = _order_statistic(tiles[active], NOISE_PERCENTILE / 100.0)  # (N_TILES,)
    share = np.maximum(tiles, 1e-300)  # then 1 - floor / tiles, clipped to [0, 1], in place
    np.divide(floor, share, out=share)
    np.subtract(1.0, share, out=share)
    np.clip(share, 0.0, 1.0, out=share)
    least: npt.NDArray[np.float64] = np.zeros_like(share)
    np.minimum(share[:, 1:-1], share[:, :-2], out=least[:, 1:-1])
    np.minimum(least[:, 1:-1], share[:, 2:], out=least[:, 1:-1])
    return least


def _evidence_weights(share: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How much mark a cell can hold, from the audio alone (so the null stays exact).

    The embedder's depth is a fixed ratio of each bin's energy that rises with frequency
    (`EmbedConfig`), and only the part of a tile's energy above the stationary noise floor
    (`_clean_share`) carries it: with noise mixed in, quiet tiles hold noise and no mark.
    The weight is depth x share^`EVIDENCE_SHARE_POWER`."""
    weights: npt.NDArray[np.float64] = share**EVIDENCE_SHARE_POWER
    weights *= _TILE_DEPTH
    return weights


def _order_statistic(
    samples: npt.NDArray[np.float64], fraction: float
) -> npt.NDArray[np.float64]:
    """Per column, the sample of rank `fraction` (nearest rank; partition, not a sort)."""
    rank = int(fraction * (samples.shape[0] - 1) + 0.5)
    by_column = np.ascontiguousarray(samples.T)  # partitioning contiguous rows is faster
    by_column.partition(rank, axis=1)
    picked: npt.NDArray[np.float64] = by_column[:, rank]
    return picked


def _fold(values: npt.NDArray[np.float64], first_frame: int) -> npt.NDArray[np.float64]:
    """Sum frames by their index modulo the period: (..., frames, tiles) to
    (..., PERIOD_FRAMES, tiles), row r holding the frames with
    (first_frame + i) % PERIOD_FRAMES == r."""
    lead = first_frame % PERIOD_FRAMES
    total = lead + values.shape[-2]
    rows = -(-total // PERIOD_FRAMES) * PERIOD_FRAMES
    padded = np.zeros((*values.shape[:-2], rows, values.shape[-1]))
    padded[..., lead:total, :] = values
    periods = padded.reshape(*values.shape[:-2], -1, PERIOD_FRAMES, values.shape[-1])
    folded: npt.NDArray[np.float64] = periods.sum(axis=-3)
    return folded


@dataclass(frozen=True, slots=True)
class _SyncSpectra:
    """The sync pattern's signs and mask, Fourier-transformed along time."""

    signs: npt.NDArray[np.complex128]
    mask: npt.NDArray[np.complex128]

    @classmethod
    def of(cls, pattern: Pattern) -> _SyncSpectra:
        return cls(
            signs=np.fft.rfft(pattern.sync_signs(), axis=0),
            mask=np.fft.rfft(pattern.sync.astype(np.float64), axis=0),
        )


def _sync_z(folded: npt.NDArray[np.float64], sync: _SyncSpectra) -> npt.NDArray[np.float64]:
    """z of every phase, (..., PERIOD_FRAMES) from (..., PERIOD_FRAMES, tiles): phase p means
    frame slot r is pattern row r + p.

    Score S(p) = sum B[r, k] Q[r + p, k] and its null variance V(p) = sum B[r, k]^2 M[r + p, k]
    are circular correlations along time, computed with FFTs (both in one transform)."""
    spectra = np.fft.rfft(np.stack([folded, folded**2]), axis=-2)
    score = np.fft.irfft((np.conj(spectra[0]) * sync.signs).sum(axis=-1), n=PERIOD_FRAMES)
    variance = np.fft.irfft((np.conj(spectra[1]) * sync.mask).sum(axis=-1), n=PERIOD_FRAMES)
    scale = np.sqrt(np.maximum(variance, 0.0))
    floor = 1e-9 * np.maximum(scale.max(axis=-1, keepdims=True, initial=0.0), 1e-300)
    z: npt.NDArray[np.float64] = np.where(scale > floor, score / np.maximum(scale, floor), 0.0)
    return z


def detect(
    audio: npt.ArrayLike,
    key: WatermarkKey,
    sample_rate: int = BASE_RATE,
    *,
    p_threshold: float = DEFAULT_P_THRESHOLD,
) -> Detection:
    """Look for `key`'s mark in `audio` (mono float32 at `sample_rate`)."""
    samples = check_audio(audio)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise AudioError(f"sample rate must be an int of at least 8000 Hz, got {sample_rate!r}")
    if samples.size < MIN_SECONDS * sample_rate:
        raise AudioError(
            f"{samples.size / sample_rate:.3f} s of audio is too short to look for a watermark "
            f"(need {MIN_SECONDS} s; 2 s or more for reliable detection)"
        )
    x = resample(samples, sample_rate, BASE_RATE).astype(np.float64)
    x = np.concatenate([x, np.zeros(max(0, BASE_FRAME + OFFSETS * STEP - x.size))])
    power = _power(x)
    pattern = make_pattern(key)
    sync = _SyncSpectra.of(pattern)
    unit_tests = PERIOD_FRAMES * OFFSETS / UNIT_SPEED_SHARE
    other_tests = PERIOD_FRAMES * OFFSETS * (len(SPEEDS) - 1) / (1.0 - UNIT_SPEED_SHARE)
    features: dict[int, _Features] = {}  # by speed index, only those a window's best uses
    unit_frames = 0
    power_by_bin: npt.NDArray[np.float64] | None = None
    scores: list[_WindowScore] = []
    p_value = 1.0
    for speed_index, speed in enumerate(SPEEDS):
        if speed != 1.0 and power_by_bin is None:
            power_by_bin = np.ascontiguousarray(power.T)  # one transpose for all 8 speeds
        feats = _features(power, speed, power_by_bin)
        tests = unit_tests if speed == 1.0 else other_tests
        n_frames = feats.values.shape[1]
        unit_frames = unit_frames or n_frames
        starts = _window_starts(n_frames)
        for position, start in enumerate(starts):
            stop = min(start + WINDOW_FRAMES, n_frames)
            z_all = _sync_z(_fold(feats.evidence[:, start:stop], start), sync)  # (OFFSETS, 64)
            offset, phase = np.unravel_index(int(np.argmax(z_all)), z_all.shape)
            z = float(z_all[offset, phase])
            score = _WindowScore(
                start, stop, z, int(phase), int(offset), speed_index, min(1.0, tests * _q(z))
            )
            if speed_index == 0:
                scores.append(score)
            elif score.p < scores[min(position, len(scores) - 1)].p:
                scores[min(position, len(scores) - 1)] = score
        # Keep only the features some window's best score uses, and drop them before the
        # next speed's are made: their memory is reused instead of freshly mapped.
        features[speed_index] = feats
        del feats
        used = {score.speed_index for score in scores}
        features = {index: kept for index, kept in features.items() if index in used}
        p_value = min(1.0, len(scores) * min(s.p for s in scores))
        if p_value <= p_threshold and speed_index == 0:
            break  # the Bonferroni factor already covers the speeds not searched
        # A mark found at another speed may sit closer to a speed not yet searched: finish
        # the search so that the payload is read at the best one (4 s windows, +-5 % speed:
        # BER 0.37 / 0.41 when stopping at the first speed that detects).
    top = min(scores, key=lambda s: s.p)
    detected = p_value <= p_threshold
    if not detected:
        return Detection(False, p_value, None, 0.0, (), z_score=top.z)
    hits = [s for s in scores if len(scores) * s.p <= p_threshold]
    payload, reliability = _decode_payload(features[top.speed_index], top, pattern, sync)
    spans = _localize(features, hits, sync, unit_frames, x.size)
    return Detection(True, p_value, payload, reliability, spans, z_score=top.z)


def _window_starts(n_frames: int) -> list[int]:
    if n_frames <= WINDOW_FRAMES + WINDOW_HOP_FRAMES // 2:
        return [0]
    starts = list(range(0, n_frames - WINDOW_FRAMES + 1, WINDOW_HOP_FRAMES))
    if starts[-1] + WINDOW_FRAMES < n_frames:
        starts.append(n_frames - WINDOW_FRAMES)
    return starts


def _decode_payload(
    features: _Features, top: _WindowScore, pattern: Pattern, sync: _SyncSpectra
) -> tuple[int, float]:
    """Decode from every window that shows the mark under the best window's alignment.

    Windows (at the best window's speed and alignment) whose own sync z reaches
    `PAYLOAD_WINDOW_Z` are pooled, detected on their own or not. The sync cells are
    pilots: per tile (smoothed over `PILOT_TILES` neighbours) they measure the mark's
    amplitude `a` and the noise variance `v` of a cell, so payload cells are weighted by
    a / v (the matched filter for whatever the channel did: a band-pass or a codec removes
    tiles, and they stop adding noise), and a coded bit's weighted sum is then half its
    log-likelihood ratio.
    Each cell is first weighted by its energy share above the noise floor to the power
    0, 1/2 or 1 (`PAYLOAD_SHARE_POWERS`), whichever the pilots correlate best with: under
    noise the quiet cells hold none of the mark, without noise they hold as much as the
    loud ones. Viterbi decodes; forward-backward posteriors of the data bits give the
    returned reliability: the estimated probability that the payload is exactly right
    (their product; measured on 1,200 attacked 4 s windows, 3 of the 473 payloads it put
    at 0.9 or more were wrong, and 0.985 of those at 0.9-0.99 were right).
    """
    values = features.values[top.offset_index]
    evidence = features.evidence[top.offset_index]
    n_frames = values.shape[0]
    use = np.zeros(n_frames, dtype=bool)
    for start in _window_starts(n_frames):
        stop = min(start + WINDOW_FRAMES, n_frames)
        z = _sync_z(_fold(evidence[start:stop], start), sync)[top.phase]
        if z >= PAYLOAD_WINDOW_Z or start == top.start:
            use[start:stop] = True
    share = features.share[top.offset_index]
    counted = use[:, None] & (values != 0.0)
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for power in PAYLOAD_SHARE_POWERS:
        cell_weight = np.where(counted, share**power, 0.0)
        sums = np.roll(_fold(values * cell_weight, 0), top.phase, axis=0)  # row = pattern slot
        squares = np.roll(_fold(cell_weight**2, 0), top.phase, axis=0)
        pilot_quality, soft = _soft_bits(sums, squares, pattern)
        if best is None or pilot_quality > best[0]:
            best = (pilot_quality, soft)
    assert best is not None
    soft = best[1]
    data = ecc.viterbi_decode(soft)
    posteriors = ecc.data_posteriors(2.0 * soft)
    reliability = float(np.prod(np.maximum(posteriors, 1.0 - posteriors)))
    return ecc.bits_to_int(data) ^ pattern.payload_mask, reliability


def _soft_bits(
    sums: npt.NDArray[np.float64], squares: npt.NDArray[np.float64], pattern: Pattern
) -> tuple[float, npt.NDArray[np.float64]]:
    """Pilot-weighted soft values of the coded bits from the cell sums of one period.

    `sums` holds each (slot, tile) group's weighted features, `squares` the sum of the
    squared cell weights (the mark a group carries, in units of one cell's amplitude).
    Returns the pilots' own z (how well this weighting sees the mark) and each coded bit's
    matched-filter sum: half its log-likelihood ratio (see below)."""
    kernel = np.ones(PILOT_TILES)
    sync = pattern.sync
    pilot_sum = np.convolve((sums * pattern.sign * sync).sum(axis=0), kernel, mode="same")
    pilot_power = np.convolve((sums**2 * sync).sum(axis=0), kernel, mode="same")
    pilot_mass = np.convolve((squares * sync).sum(axis=0), kernel, mode="same")
    # A group's sum has mean a x m and variance v x m (m: its squared weights), so a, v per
    # unit of m from the pilots, and every group of a tile is weighted by a / v.
    amplitude = np.maximum(pilot_sum, 0.0) / np.maximum(pilot_mass, 1e-300)
    weight = amplitude / np.maximum(pilot_power / np.maximum(pilot_mass, 1e-300), 1e-300)
    weighted = sums * weight
    pilot_spread = float((weighted[sync] ** 2).sum())
    pilot_quality = float((weighted * pattern.sign)[sync].sum()) / math.sqrt(
        max(pilot_spread, 1e-300)
    )
    # With weights a / v, a coded bit's sum is Gaussian with mean +-E and variance E, for
    # E = sum over its groups of a^2 m / v: its log-likelihood ratio is 2 x the sum itself.
    # (Dividing each sum by its own empirical spread, as until session 18, made a
    # t-statistic of few groups: 4 s windows, BER Opus 16k 0.098 -> 0.089, telephone
    # 0.071 -> 0.031, white noise 0.170 -> 0.136 with the rate-1/2 code.)
    cells = ~sync
    sums_by_bit = np.bincount(
        pattern.bit[cells],
        weights=(weighted * pattern.sign)[cells],
        minlength=ecc.coded_length(PAYLOAD_BITS),
    )
    soft: npt.NDArray[np.float64] = np.asarray(sums_by_bit, dtype=np.float64)
    return pilot_quality, soft


def _localize(
    features: dict[int, _Features],
    hits: list[_WindowScore],
    sync: _SyncSpectra,
    n_frames: int,
    n_samples: int,
) -> tuple[tuple[float, float], ...]:
    """Blocks of about 0.5 s whose own sync correlation is strong, under the alignment of
    the best detected window covering them (`n_frames`: frames at normal speed)."""
    spans: list[tuple[float, float]] = []
    for block in range(0, n_frames, BLOCK_FRAMES):
        end = min(block + BLOCK_FRAMES, n_frames)
        covering = [h for h in hits if h.start < end and h.stop > block]
        if not covering:
            continue
        hit = max(covering, key=lambda h: h.z)
        feats = features[hit.speed_index]
        last_frame = min(end, feats.values.shape[1])
        if last_frame <= block or feats.active[hit.offset_index, block:last_frame].mean() < 0.25:
            continue
        folded = _fold(feats.evidence[hit.offset_index, block:last_frame], block)
        z = float(_sync_z(folded, sync)[hit.phase])
        if z < BLOCK_Z:
            continue
        rows = feats.rows[hit.offset_index]
        first = rows[block] * STEP / BASE_RATE
        last = min(rows[last_frame - 1] * STEP + BASE_FRAME, n_samples) / BASE_RATE
        if spans and first <= spans[-1][1] + 1e-9:
            spans[-1] = (spans[-1][0], last)
        else:
            spans.append((first, last))
    return tuple(spans)
