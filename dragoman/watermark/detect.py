"""The detector: stateless, vectorised numpy, from any window of about 2 s.

Audio is resampled to 16 kHz and analysed with the embedder's geometry at four
sub-hop offsets. The feature of a cell is its log-magnitude minus the mean of the same
bin one frame before and after: slowly varying speech, any fixed filter (telephone
band, EQ, echo colour) and any gain cancel, the keyed +-1 modulation stays. Features
are clipped at 3 robust standard deviations, silent frames get weight zero.

Detection correlates the features with the keyed sync pattern at every alignment
(64 frame phases x 4 offsets). Under "not marked with this key" the cell signs are
independent fair coins given the audio, so the correlation `S` has mean 0 and exactly
the variance `V = sum(group sums^2)` computed from the features themselves; `z = S/sqrt(V)`
is then standard normal (Hoeffding bounds its tail by exp(-z^2/2) even for short clips).
The p-value applies a Bonferroni correction over the alignments and windows searched.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dragoman.audio import check_audio, resample
from dragoman.errors import AudioError
from dragoman.watermark import ecc
from dragoman.watermark.keys import WatermarkKey
from dragoman.watermark.pattern import (
    BAND,
    BASE_FRAME,
    BASE_HOP,
    BASE_RATE,
    PAYLOAD_BITS,
    PERIOD_FRAMES,
    Pattern,
    make_pattern,
    sqrt_hann,
)

logger = logging.getLogger(__name__)

DEFAULT_P_THRESHOLD = 1e-4
"""Decision threshold on the (Bonferroni-corrected) p-value: the false-positive rate."""
OFFSETS = 4
WINDOW_FRAMES = 125  # 2.0 s
WINDOW_HOP_FRAMES = 62  # about 1 s
BLOCK_FRAMES = 31  # about 0.5 s, the localization resolution
BLOCK_Z = 3.0
ACTIVE_RELATIVE = 1e-4  # frames 40 dB below the loudest frame carry no evidence
ACTIVE_ABSOLUTE = 1e-9  # in-band energy per bin of digital near-silence
CLIP_SIGMAS = 3.0
MIN_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Detection:
    """The detector's answer for one signal."""

    detected: bool
    p_value: float
    """Probability that unmarked audio (or another key) scores at least this well."""
    payload: int | None
    """The decoded 32-bit payload, None when nothing was detected."""
    payload_reliability: float
    """1.0 when every coded payload bit agrees with the decoded codeword; below ~0.6 the
    payload is not trustworthy; 0.0 when nothing was detected."""
    marked_spans: tuple[tuple[float, float], ...]
    """Time ranges (seconds) that carry the mark."""
    z_score: float = 0.0
    """The best sync correlation in standard deviations."""


@dataclass(frozen=True, slots=True)
class _Features:
    values: npt.NDArray[np.float64]  # (frames, bins), clipped, zero where inactive
    active: npt.NDArray[np.bool_]
    offset: int  # samples at 16 kHz


@dataclass(frozen=True, slots=True)
class _WindowScore:
    start: int
    stop: int
    z: float
    phase: int
    offset_index: int


def _q(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _features(audio: npt.NDArray[np.float64], offset: int, n_frames: int) -> _Features:
    window = sqrt_hann(BASE_FRAME)
    view = np.lib.stride_tricks.sliding_window_view(audio[offset:], BASE_FRAME)
    frames = view[: n_frames * BASE_HOP : BASE_HOP] * window
    spectrum = np.fft.rfft(frames, axis=1)[:, BAND[0] : BAND[1]]
    power = spectrum.real**2 + spectrum.imag**2
    energy = power.mean(axis=1)
    floor = max(float(energy.max(initial=0.0)) * ACTIVE_RELATIVE, ACTIVE_ABSOLUTE)
    loud = energy > floor
    logmag = 0.5 * np.log(power + 1e-6 * energy[:, None] + 1e-20)
    values = np.zeros_like(logmag)
    values[1:-1] = logmag[1:-1] - 0.5 * (logmag[:-2] + logmag[2:])
    active = np.zeros_like(loud)
    active[1:-1] = loud[1:-1] & loud[:-2] & loud[2:]
    values[~active] = 0.0
    if active.any():
        scale = 1.4826 * float(np.median(np.abs(values[active])))
        if scale > 0:
            np.clip(values, -CLIP_SIGMAS * scale, CLIP_SIGMAS * scale, out=values)
    return _Features(values=values, active=active, offset=offset)


def _fold(values: npt.NDArray[np.float64], first_frame: int) -> npt.NDArray[np.float64]:
    """Sum frames by their index modulo the period: (PERIOD_FRAMES, bins), row r holding
    the frames with (first_frame + i) % PERIOD_FRAMES == r."""
    lead = first_frame % PERIOD_FRAMES
    total = lead + values.shape[0]
    rows = -(-total // PERIOD_FRAMES) * PERIOD_FRAMES
    padded = np.zeros((rows, values.shape[1]))
    padded[lead:total] = values
    folded: npt.NDArray[np.float64] = padded.reshape(-1, PERIOD_FRAMES, values.shape[1]).sum(0)
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
    """z of every phase (PERIOD_FRAMES,): phase p means frame slot r is pattern row r + p.

    Score S(p) = sum B[r, k] Q[r + p, k] and its null variance V(p) = sum B[r, k]^2 M[r + p, k]
    are circular correlations along time, computed with FFTs."""
    spectrum = np.fft.rfft(folded, axis=0)
    power = np.fft.rfft(folded**2, axis=0)
    score = np.fft.irfft((np.conj(spectrum) * sync.signs).sum(axis=1), n=PERIOD_FRAMES)
    variance = np.fft.irfft((np.conj(power) * sync.mask).sum(axis=1), n=PERIOD_FRAMES)
    scale = np.sqrt(np.maximum(variance, 0.0))
    floor = 1e-9 * max(float(scale.max(initial=0.0)), 1e-300)
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
    pattern = make_pattern(key)
    step = BASE_HOP // OFFSETS
    n_frames = (x.size - (OFFSETS - 1) * step - BASE_FRAME) // BASE_HOP + 1
    x = np.concatenate([x, np.zeros(max(0, BASE_FRAME + (OFFSETS - 1) * step - x.size))])
    n_frames = max(n_frames, 1)
    features = [_features(x, i * step, n_frames) for i in range(OFFSETS)]
    sync = _SyncSpectra.of(pattern)
    starts = _window_starts(n_frames)
    scores: list[_WindowScore] = []
    for start in starts:
        stop = min(start + WINDOW_FRAMES, n_frames)
        best = _WindowScore(start, stop, -math.inf, 0, 0)
        for index, feats in enumerate(features):
            z = _sync_z(_fold(feats.values[start:stop], start), sync)
            phase = int(np.argmax(z))
            if z[phase] > best.z:
                best = _WindowScore(start, stop, float(z[phase]), phase, index)
        scores.append(best)
    tests = PERIOD_FRAMES * OFFSETS
    window_p = [min(1.0, tests * _q(s.z)) for s in scores]
    best_index = int(np.argmin(window_p))
    top = scores[best_index]
    p_value = min(1.0, len(scores) * window_p[best_index])
    detected = p_value <= p_threshold
    if not detected:
        return Detection(False, p_value, None, 0.0, (), z_score=top.z)
    hits = [s for s, p in zip(scores, window_p, strict=True) if p <= p_threshold]
    payload, reliability = _decode_payload(features, hits, top, pattern, n_frames)
    spans = _localize(features, hits, sync, n_frames, x.size)
    return Detection(True, p_value, payload, reliability, spans, z_score=top.z)


def _window_starts(n_frames: int) -> list[int]:
    if n_frames <= WINDOW_FRAMES + WINDOW_HOP_FRAMES // 2:
        return [0]
    starts = list(range(0, n_frames - WINDOW_FRAMES + 1, WINDOW_HOP_FRAMES))
    if starts[-1] + WINDOW_FRAMES < n_frames:
        starts.append(n_frames - WINDOW_FRAMES)
    return starts


def _decode_payload(
    features: list[_Features],
    hits: list[_WindowScore],
    top: _WindowScore,
    pattern: Pattern,
    n_frames: int,
) -> tuple[int, float]:
    """Decode from every detected window that shares the best window's alignment."""
    use = np.zeros(n_frames, dtype=bool)
    for hit in hits:
        if hit.phase == top.phase and hit.offset_index == top.offset_index:
            use[hit.start : hit.stop] = True
    values = np.where(use[:, None], features[top.offset_index].values, 0.0)
    sums = np.roll(_fold(values, 0), top.phase, axis=0)  # row = pattern slot
    payload_cells = ~pattern.sync
    bits = pattern.bit[payload_cells]
    evidence = (sums * pattern.sign)[payload_cells]
    soft = np.bincount(bits, weights=evidence, minlength=ecc.coded_length(PAYLOAD_BITS))
    spread = np.bincount(bits, weights=sums[payload_cells] ** 2, minlength=soft.size)
    z = np.where(spread > 0, soft / np.sqrt(np.maximum(spread, 1e-300)), 0.0)
    data = ecc.viterbi_decode(z)
    codeword = 2.0 * ecc.encode(data).astype(np.float64) - 1.0
    weight = float(np.abs(z).sum())
    agree = float(np.abs(z)[np.sign(z) == codeword].sum()) / weight if weight > 0 else 0.0
    payload = ecc.bits_to_int(data) ^ pattern.payload_mask
    return payload, max(0.0, 2.0 * agree - 1.0)


def _localize(
    features: list[_Features],
    hits: list[_WindowScore],
    sync: _SyncSpectra,
    n_frames: int,
    n_samples: int,
) -> tuple[tuple[float, float], ...]:
    """Blocks of about 0.5 s whose own sync correlation is strong, under the alignment of
    the best detected window covering them."""
    spans: list[tuple[float, float]] = []
    for block in range(0, n_frames, BLOCK_FRAMES):
        end = min(block + BLOCK_FRAMES, n_frames)
        covering = [h for h in hits if h.start < end and h.stop > block]
        if not covering:
            continue
        hit = max(covering, key=lambda h: h.z)
        feats = features[hit.offset_index]
        if feats.active[block:end].mean() < 0.25:
            continue
        folded = _fold(feats.values[block:end], block)
        z = float(_sync_z(folded, sync)[hit.phase])
        if z < BLOCK_Z:
            continue
        first = (feats.offset + block * BASE_HOP) / BASE_RATE
        last = min(feats.offset + end * BASE_HOP + BASE_HOP, n_samples) / BASE_RATE
        if spans and first <= spans[-1][1] + 1e-9:
            spans[-1] = (spans[-1][0], last)
        else:
            spans.append((first, last))
    return tuple(spans)
