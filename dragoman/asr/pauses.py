"""Where a word's sound really ends: the pause after a timestamped word end.

Whisper's word end times (cross-attention alignment) often fall 0.1-0.4 s before the
sound of the word dies away. A buffer cut at such a time starts with the word's last
syllable, which Whisper then hears as a word of its own ("la", "a") or takes as a
reason to skip the first real words. Cutting in the pause that follows instead gives
the next decode a clean start.
"""

from __future__ import annotations

import numpy as np

from dragoman.events import SAMPLE_RATE, FloatAudio, Samples

FRAME = SAMPLE_RATE // 100
"""10 ms analysis frames."""


def pause_after(
    audio: FloatAudio,
    at: Samples,
    *,
    search: Samples = 6 * SAMPLE_RATE // 10,
    context: Samples = SAMPLE_RATE,
    quiet_db: float = -20.0,
    min_pause: Samples = 8 * SAMPLE_RATE // 100,
    into_pause: Samples = SAMPLE_RATE // 10,
) -> Samples:
    """The index in `audio` at which to cut after a word that was timed to end at `at`.

    The first run of at least `min_pause` quiet frames (RMS `quiet_db` below the
    loudest frame of the `context` before `at`) that starts within `search` after `at`
    is the pause; the cut goes `into_pause` into it (at most halfway). With no such
    pause (fluent speech running on, or noise as loud as the speech), `at` itself.
    """
    at = int(np.clip(at, 0, audio.size))
    lo = max(at - context, 0)
    hi = min(at + search + min_pause, audio.size)
    count = (hi - lo) // FRAME
    if count <= 0 or at - lo < FRAME:
        return at
    frames = audio[lo : lo + count * FRAME].astype(np.float64).reshape(count, FRAME)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    first = (at - lo) // FRAME
    loudest = float(rms[:first].max())
    if loudest <= 0.0:
        return at
    quiet = rms < loudest * 10.0 ** (quiet_db / 20.0)
    need = -(-min_pause // FRAME)
    last_start = min(count - need, first + search // FRAME)
    for start in range(first, last_start + 1):
        if quiet[start : start + need].all():
            run = need
            while start + run < count and quiet[start + run]:
                run += 1
            return lo + start * FRAME + min(into_pause, run * FRAME // 2)
    return at
