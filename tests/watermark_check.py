"""The one check every test that receives synthesized audio makes on its watermark."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dragoman.watermark import Detection, WatermarkKey, detect

TRUSTED = 0.9
"""The reliability (estimated probability that the payload is right) a user can act on."""
PAYLOAD_SECONDS = 4.0
"""From this much marked audio on, the payload must be read exactly (docs/watermark.md);
below it a 2 s reply may hold too little mark for all 32 bits."""


def assert_watermarked(
    audio: npt.NDArray[np.float32], key: WatermarkKey, sample_rate: int, payload: int
) -> Detection:
    """The mark is there; the payload is right wherever the detector vouches for it, and
    always on 4 s or more of marked audio. A wrong payload never looks trustworthy."""
    found = detect(audio, key, sample_rate=sample_rate)
    assert found.detected, found
    marked = sum(end - start for start, end in found.marked_spans)
    if marked >= PAYLOAD_SECONDS or found.payload_reliability >= TRUSTED:
        assert found.payload == payload, found
    return found
