"""The keyed time-frequency layout of the mark, shared by the embedder and the detector.

Geometry (independent of the sample rate): STFT frames of 32 ms with a 16 ms hop, so
bins are 31.25 Hz apart at every rate. The mark lives in bins 17..220 (531-6906 Hz),
the wideband range that speech codecs keep; its 531-3400 Hz part also survives
telephone lines and 8 kHz resampling. The band is cut into tiles of `TILE_BINS` = 4 bins
(125 Hz): every bin of a tile gets the same sign, so the mark changes the tile's energy
(which codecs keep, and which survives a frequency shift of a bin or two, so the detector
can search playback speed). `PERIOD_FRAMES` frames (1.024 s) make one period, which
repeats. Each (frame slot, tile) cell of a period is keyed at random to either the *sync*
pattern (a fixed pseudo-random sign, for detection and alignment) or one coded payload bit
(its sign times the bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dragoman.watermark import ecc
from dragoman.watermark.keys import WatermarkKey

BASE_RATE = 16_000
"""The detector's analysis rate; the embedder's geometry scales from it."""
BASE_FRAME = 512
BASE_HOP = BASE_FRAME // 2
HOP_SECONDS = BASE_HOP / BASE_RATE
TILE_BINS = 4
BAND = (17, 221)
"""First and one-past-last STFT bin of the marked band (31.25 Hz bins)."""
N_BINS = BAND[1] - BAND[0]
N_TILES = N_BINS // TILE_BINS
PERIOD_FRAMES = 64
PAYLOAD_BITS = 32
CODED_BITS = ecc.coded_length(PAYLOAD_BITS)
SYNC_SHARE = 0.6
"""Share of the cells that carry the sync pattern (the rest carry the payload)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """The keyed layout of one period (arrays are read-only)."""

    sign: npt.NDArray[np.float64]
    """(PERIOD_FRAMES, N_TILES) pseudo-random +-1 per cell."""
    sync: npt.NDArray[np.bool_]
    """(PERIOD_FRAMES, N_TILES) True where the cell carries the sync pattern."""
    bit: npt.NDArray[np.int64]
    """(PERIOD_FRAMES, N_TILES) coded payload bit index of payload cells, -1 for sync cells."""
    payload_mask: int
    """Keyed 32-bit scrambler XORed onto the payload before encoding."""

    def cell_signs(self, payload: int) -> npt.NDArray[np.float64]:
        """(PERIOD_FRAMES, N_TILES) the +-1 modulation of every cell for `payload`."""
        coded = ecc.encode(ecc.int_to_bits(payload ^ self.payload_mask, PAYLOAD_BITS))
        antipodal = 2.0 * coded.astype(np.float64) - 1.0
        values = np.where(self.sync, 1.0, antipodal[np.maximum(self.bit, 0)])
        return self.sign * values

    def sync_signs(self) -> npt.NDArray[np.float64]:
        """(PERIOD_FRAMES, N_TILES) the sync sign of every cell, 0 on payload cells."""
        return np.where(self.sync, self.sign, 0.0)


def make_pattern(key: WatermarkKey) -> Pattern:
    """Derive the layout from the key (deterministic)."""
    seed = int.from_bytes(key.derive("dragoman-watermark-v2/pattern", 32), "big")
    rng = np.random.Generator(np.random.PCG64(seed))
    n_cells = PERIOD_FRAMES * N_TILES
    sign = rng.choice(np.array([-1.0, 1.0]), size=n_cells)
    order = rng.permutation(n_cells)
    n_sync = int(round(SYNC_SHARE * n_cells))
    sync = np.zeros(n_cells, dtype=bool)
    sync[order[:n_sync]] = True
    bit = np.full(n_cells, -1, dtype=np.int64)
    bit[order[n_sync:]] = np.arange(n_cells - n_sync) % CODED_BITS
    mask = int.from_bytes(key.derive("dragoman-watermark-v1/payload-mask", 4), "big")
    shape = (PERIOD_FRAMES, N_TILES)
    arrays = (sign.reshape(shape), sync.reshape(shape), bit.reshape(shape))
    for array in arrays:
        array.flags.writeable = False
    return Pattern(sign=arrays[0], sync=arrays[1], bit=arrays[2], payload_mask=mask)


def band_frequencies() -> npt.NDArray[np.float64]:
    """Centre frequency in Hz of every marked bin."""
    return np.arange(BAND[0], BAND[1], dtype=np.float64) * (BASE_RATE / BASE_FRAME)


def sqrt_hann(frame: int) -> npt.NDArray[np.float64]:
    """Periodic square-root Hann window: analysis x synthesis sums to 1 at 50 % overlap."""
    n = np.arange(frame)
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame))
