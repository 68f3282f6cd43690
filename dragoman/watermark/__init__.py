"""Keyed, inaudible spectral watermark: streaming embedder, detector, attack suite.

    key = WatermarkKey.load()                      # $DRAGOMAN_WATERMARK_KEY or key file
    emb = StreamingEmbedder(key, payload=0x1234ABCD, sample_rate=24000)
    out = emb.feed(chunk); tail = emb.finish()     # fixed delay: emb.delay_samples
    det = detect(audio, key, sample_rate=24000)    # Detection(detected, p_value, payload, ...)

This package imports only `dragoman.events`, `dragoman.audio` and `dragoman.errors`
from the rest of Dragoman. See docs/watermark.md.
"""

from dragoman.watermark.detect import DEFAULT_P_THRESHOLD, Detection, detect
from dragoman.watermark.embed import EmbedConfig, StreamingEmbedder, embed
from dragoman.watermark.keys import WatermarkKey, WatermarkKeyError

__all__ = [
    "DEFAULT_P_THRESHOLD",
    "Detection",
    "EmbedConfig",
    "StreamingEmbedder",
    "WatermarkKey",
    "WatermarkKeyError",
    "detect",
    "embed",
]
