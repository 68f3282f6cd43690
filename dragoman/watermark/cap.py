"""The per-frame cap on the mark's energy (the embedder's loudness budget).

The depth is a fixed ratio per frequency (`embed.EmbedConfig`), so a frame whose energy
lies mostly above 2.5 kHz (a fricative; a near-silent clip of hiss) gets a mark only
10 dB under it, while a vowel's mark sits 35-45 dB under. `FrameCap` scales a frame's
mark down when its energy would exceed `ratio` times a reference: the larger of the
frame's own energy and a peak follower of the frame energies before it, which moves
1/`release_frames` of the way down to the frame's energy per frame (128 ms at 8 frames;
forward masking: a fricative right after a vowel keeps more of its mark than an isolated
one). The follower sees only frames already processed, so the cap needs no look-ahead and
streaming stays equal to whole-signal embedding; its state is one float.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class FrameCap:
    """Stateful per-frame limiter; feed it frames in order (`scale`)."""

    def __init__(
        self, ratio: float, release_frames: float, band: slice, gain2: npt.NDArray[np.float64]
    ) -> None:
        """`band`: the marked bins of a spectrum row; `gain2`: the squared relative mark
        amplitude of each (tanh(depth)^2: the same for both signs)."""
        self._ratio = ratio
        self._keep = 1.0 - 1.0 / release_frames
        self._band = band
        self._gain2 = gain2
        self._level = 0.0

    def scale(self, spectrum: npt.NDArray[np.complex128]) -> npt.NDArray[np.float64] | None:
        """Per frame (row, in order) of analysis spectra, the factor <= 1 for its mark;
        None when no frame needs one.

        Energies by Parseval from the one-sided spectra (the marked band holds neither DC
        nor Nyquist, so the factor 2 of the other bins is the same on both sides)."""
        power = spectrum.real**2 + spectrum.imag**2
        energy = 2.0 * power.sum(axis=1) - power[:, 0] - power[:, -1]
        mark = 2.0 * (power[:, self._band] @ self._gain2)
        reference = np.empty_like(energy)
        level, keep = self._level, self._keep
        for index, frame_energy in enumerate(energy.tolist()):
            level = max(frame_energy, keep * level + (1.0 - keep) * frame_energy)
            reference[index] = level
        self._level = level
        limit = self._ratio * reference
        over = mark > limit
        if not over.any():
            return None
        scale: npt.NDArray[np.float64] = np.ones(mark.shape)
        scale[over] = np.sqrt(limit[over] / mark[over])
        return scale
