"""Prosody transfer: the speaker's intonation, pace and loudness on synthesized speech.

From the source segment behind a phrase we take (`extract_prosody`) the F0 contour in
semitones relative to the speaker's median, on a time axis normalized to the speech
extent (0 = first speech, 1 = last), the speech duration and the loudness envelope.
`transfer_prosody` imposes them on synthesized speech with Praat's PSOLA
(praat-parselmouth): a new pitch tier (the speaker's contour at the speaker's register,
or the voice's when `keep_register` is off), a duration tier that matches the source
pace within `[1/max_speedup, max_slowdown]`, and a gain curve following the source
envelope. PSOLA only rewrites voiced periods, so unvoiced sounds keep their pitch;
they keep their length too where the voiced stretches can take the whole change
(`_duration_points`), because stretched noise buzzes. The pitch points are laid on
the output's own time axis under that uneven re-timing. A phrase renders the same
way every time (Praat's PSOLA draws random numbers; they are seeded from the input).
`compare_prosody` scores the result the way the benchmark and tests do.
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dragoman.audio import check_audio
from dragoman.errors import AudioError
from dragoman.events import FloatAudio

FloatArray = npt.NDArray[np.float64]

_STEP = 0.01
"""Analysis hop (s) for pitch and loudness."""
_FLOOR_HZ = 70.0
_CEILING_HZ = 500.0
_SILENCE_DB = 35.0
"""Frames this far below the loudest frame are silence when finding the speech extent."""
_MAX_PERIOD = 0.02
"""Praat's longest glottal period (s): pulses further apart end a voiced stretch."""
_VOICED_RATIO = (0.5, 2.0)
"""Bounds on the duration change of one kind of stretch (voiced or voiceless)."""
_DURATION_EDGE_S = 0.005
"""Half the ramp between a voiced and a voiceless duration ratio (s)."""
_WARP_STEP = 0.001
"""Integration step of the output time axis under a DurationTier (s)."""
_PRAAT_RANDOM = threading.Lock()
"""Praat's random generator is one per process: seeding it and drawing from it is
one step, whichever thread synthesizes."""


@dataclass(frozen=True, slots=True)
class ProsodyConfig:
    """How prosody is imposed.

    keep_register: put the contour at the speaker's median F0 (else the voice's own).
    max_slowdown / max_speedup: bounds on the duration change (a slower output costs
    latency, so slowing down is bounded tighter by default).
    loudness_db: bound on the loudness-envelope gain, either way (dB).
    """

    keep_register: bool = True
    max_slowdown: float = 1.35
    max_speedup: float = 1.6
    loudness_db: float = 6.0


@dataclass(frozen=True, slots=True)
class ProsodyProfile:
    """Prosody of one speech segment (see module doc). Times are normalized to [0, 1]."""

    median_hz: float
    duration_s: float
    times: FloatArray = field(repr=False, compare=False)
    """Normalized times of voiced frames."""
    semitones: FloatArray = field(repr=False, compare=False)
    """F0 at `times`, in semitones relative to `median_hz`."""
    loudness_times: FloatArray = field(repr=False, compare=False)
    loudness_db: FloatArray = field(repr=False, compare=False)
    """Frame level (dB, relative to the segment's mean level) at `loudness_times`."""


@dataclass(frozen=True, slots=True)
class ProsodyScore:
    """How well an output follows a reference contour."""

    error_semitones: float
    """Mean absolute difference of the median-relative contours where both are voiced."""
    correlation: float
    duration_ratio: float
    """Output speech duration / reference speech duration."""
    register_semitones: float
    """Output median F0 relative to the reference median (0 = same register)."""


def _sound(audio: FloatAudio, sample_rate: int) -> Any:
    import parselmouth

    return parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=sample_rate)


def _frame_db(audio: FloatAudio, sample_rate: int) -> tuple[FloatArray, FloatArray]:
    hop = max(1, round(_STEP * sample_rate))
    count = max(1, audio.size // hop)
    # Audio shorter than one frame is one frame, zero-padded (11 samples used to crash).
    padded = np.zeros(count * hop, np.float64)
    kept = audio[: count * hop]
    padded[: kept.size] = kept
    rms = np.sqrt(np.mean(padded.reshape(count, hop) ** 2, axis=1) + 1e-12)
    times = (np.arange(count) + 0.5) * hop / sample_rate
    return times, 20.0 * np.log10(rms)


def speech_extent(audio: FloatAudio, sample_rate: int) -> tuple[float, float]:
    """Start and end (s) of the speech in `audio`: frames within 35 dB of the loudest."""
    times, level = _frame_db(audio, sample_rate)
    loud = np.flatnonzero(level > level.max() - _SILENCE_DB)
    if loud.size == 0:
        raise AudioError("segment holds no speech")
    half = _STEP / 2
    return float(times[loud[0]] - half), float(times[loud[-1]] + half)


def _pitch(sound: Any) -> tuple[FloatArray, FloatArray]:
    pitch = sound.to_pitch_ac(time_step=_STEP, pitch_floor=_FLOOR_HZ, pitch_ceiling=_CEILING_HZ)
    hz = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
    times = np.asarray(pitch.xs(), dtype=np.float64)
    voiced = hz > 0
    return times[voiced], hz[voiced]


def _without_octave_errors(hz: FloatArray) -> npt.NDArray[np.bool_]:
    """Mask of frames that sit within 5 semitones of their 7-frame running median.

    Pitch trackers halve or double F0 on single frames at voicing edges; such jumps
    are tracking errors, not intonation.
    """
    st = 12.0 * np.log2(hz)
    padded = np.pad(st, 3, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 7)
    running = np.median(windows, axis=1)
    keep: npt.NDArray[np.bool_] = np.abs(st - running) <= 5.0
    return keep


def extract_prosody(audio: FloatAudio, sample_rate: int) -> ProsodyProfile:
    """The prosody of one speech segment; `AudioError` if it holds no voiced speech."""
    samples = check_audio(audio)
    start, end = speech_extent(samples, sample_rate)
    if end - start < 0.1:
        raise AudioError(f"speech segment of {end - start:.2f} s is too short for prosody")
    times, hz = _pitch(_sound(samples, sample_rate))
    inside = (times >= start) & (times <= end)
    times, hz = times[inside], hz[inside]
    if hz.size < 5:
        raise AudioError("segment has too little voiced speech to take its intonation")
    keep = _without_octave_errors(hz)
    times, hz = times[keep], hz[keep]
    median = float(np.median(hz))
    ltimes, level = _frame_db(samples, sample_rate)
    linside = (ltimes >= start) & (ltimes <= end)
    ltimes, level = ltimes[linside], level[linside]
    span = end - start
    return ProsodyProfile(
        median_hz=median,
        duration_s=span,
        times=(times - start) / span,
        semitones=12.0 * np.log2(hz / median),
        loudness_times=(ltimes - start) / span,
        loudness_db=level - float(np.mean(level)),
    )


def slice_profile(profile: ProsodyProfile, start: float, end: float) -> ProsodyProfile:
    """The part of `profile` between normalized times `start` and `end`, renormalized.

    For speaking a phrase in segments: each segment gets its slice of the contour,
    still relative to the whole phrase's median (so the register and the pitch at
    the seams stay continuous), and its share of the duration. The contour and the
    loudness are resampled on a fine grid (linear between voiced frames, as the
    transfer itself bridges them), so even a slice of an unvoiced stretch has points.
    """
    lo, hi = max(0.0, float(start)), min(1.0, float(end))
    if hi - lo <= 0:
        raise AudioError(f"empty prosody slice [{start}, {end}]")
    if lo == 0.0 and hi == 1.0:
        return profile
    count = max(5, math.ceil((hi - lo) * profile.duration_s / _STEP) + 1)
    grid = np.linspace(lo, hi, count)
    local = (grid - lo) / (hi - lo)
    return ProsodyProfile(
        median_hz=profile.median_hz,
        duration_s=profile.duration_s * (hi - lo),
        times=local,
        semitones=_contour_at(profile, grid),
        loudness_times=local,
        loudness_db=np.interp(grid, profile.loudness_times, profile.loudness_db),
    )


def _contour_at(profile: ProsodyProfile, x: FloatArray) -> FloatArray:
    """Source contour (semitones) at normalized times, bridging unvoiced gaps linearly."""
    return np.interp(x, profile.times, profile.semitones)


def transfer_prosody(
    synth: FloatAudio,
    sample_rate: int,
    profile: ProsodyProfile,
    config: ProsodyConfig | None = None,
) -> FloatAudio:
    """`synth` re-timed, re-intoned and re-levelled to follow `profile` (same rate)."""
    from parselmouth import praat

    cfg = config or ProsodyConfig()
    samples = check_audio(synth)
    start, end = speech_extent(samples, sample_rate)
    span = end - start
    sound = _sound(samples, sample_rate)
    own_times, own_hz = _pitch(sound)
    if own_hz.size == 0:
        return samples
    target_median = profile.median_hz if cfg.keep_register else float(np.median(own_hz))
    manipulation = praat.call(sound, "To Manipulation", _STEP, _FLOOR_HZ, _CEILING_HZ)
    total = samples.size / sample_rate
    ratio = profile.duration_s / span
    ratio = min(cfg.max_slowdown, max(1.0 / cfg.max_speedup, ratio))
    voiced = _voiced_intervals(praat.call(manipulation, "Extract pulses"))
    pace = _duration_points(voiced, start, end, ratio)
    durations = praat.call("Create DurationTier", "pace", 0.0, total)
    for t, value in pace:
        praat.call(durations, "Add point", t, value)
    praat.call([durations, manipulation], "Replace duration tier")
    # The pitch point at input time t takes the source contour where t's output time
    # falls, relative to the output's speech (the re-timing is uneven).
    grid = np.arange(start, end, _STEP)
    out_time = _warp(pace, np.append(grid, end), start)
    contour = _contour_at(profile, out_time[:-1] / out_time[-1])
    tier = praat.call("Create PitchTier", "target", 0.0, total)
    for t, st in zip(grid, contour, strict=True):
        praat.call(tier, "Add point", float(t), float(target_median * 2.0 ** (st / 12.0)))
    praat.call([tier, manipulation], "Replace pitch tier")
    with _PRAAT_RANDOM:
        # PSOLA copies voiceless stretches in bells of random width (Praat's global
        # generator): seeded from the input, the same phrase renders the same way.
        seed = zlib.crc32(samples.tobytes()) & 0x7FFFFFFF
        praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
        result = praat.call(manipulation, "Get resynthesis (overlap-add)")
    out = np.asarray(result.values, dtype=np.float64).reshape(-1)
    out = _impose_loudness(out, sample_rate, profile, cfg.loudness_db)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    limit = max(float(np.max(np.abs(samples))), 1e-6)
    if peak > limit:
        out *= limit / peak
    return np.ascontiguousarray(out, dtype=np.float32)


def _voiced_intervals(pulses: Any) -> list[tuple[float, float]]:
    """The voiced stretches of a Praat PointProcess of glottal pulses, as PSOLA sees
    them: runs of pulses closer than `_MAX_PERIOD`, each widened by half a period."""
    from parselmouth import praat

    times = np.asarray(praat.call(pulses, "To Matrix").values, dtype=np.float64).ravel()
    if times.size < 2:
        return []
    cuts = np.flatnonzero(np.diff(times) > _MAX_PERIOD) + 1
    intervals: list[tuple[float, float]] = []
    for run in np.split(times, cuts):
        if run.size < 2:
            continue
        half = 0.5 * float(np.median(np.diff(run)))
        first, last = float(run[0]) - half, float(run[-1]) + half
        if intervals and first - intervals[-1][1] < 2 * _DURATION_EDGE_S:
            first = intervals.pop()[0]  # too close to ramp between: one stretch
        intervals.append((first, last))
    return intervals


def _duration_points(voiced: list[tuple[float, float]], start: float, end: float,
                     ratio: float) -> list[tuple[float, float]]:
    """DurationTier points that make the speech between `start` and `end` `ratio`
    times as long, by re-timing the voiced stretches only where possible.

    PSOLA re-times a voiceless stretch by overlapping copies of it, offset by a
    fraction of their width: a comb filter that turns a fricative or a breath into a
    buzz (pitch trackers read it as a voice at 300-500 Hz, and the listener hears
    it). Slowing speech down lengthens vowels anyway, so voiceless stretches keep
    their own length unless the voiced ones alone cannot absorb the change
    (`_VOICED_RATIO` bounds them).
    """
    inside = [(max(a, start), min(b, end)) for a, b in voiced if b > start and a < end]
    voiced_s = sum(b - a for a, b in inside)
    voiceless_s = (end - start) - voiced_s
    if voiced_s < 0.2 * (end - start) or not inside:
        return [(0.0, ratio)]
    wanted = ratio * (end - start)
    low, high = _VOICED_RATIO
    in_voice = min(high, max(low, (wanted - voiceless_s) / voiced_s))
    in_noise = (wanted - in_voice * voiced_s) / voiceless_s if voiceless_s > 0 else 1.0
    in_noise = min(high, max(low, in_noise))
    if abs(in_voice - in_noise) < 1e-3:
        return [(0.0, ratio)]
    points: list[tuple[float, float]] = []
    edge = _DURATION_EDGE_S
    for a, b in inside:
        points += [(a - edge, in_noise), (a + edge, in_voice),
                   (b - edge, in_voice), (b + edge, in_noise)]
    return sorted(points)  # a stretch shorter than two ramps puts its points out of order


def _warp(pace: list[tuple[float, float]], times: FloatArray, start: float) -> FloatArray:
    """Output time elapsed since input time `start` at each of `times` (>= `start`),
    under the DurationTier `pace` (linear between points, constant outside them)."""
    fine = np.arange(start, float(times.max()) + 2 * _WARP_STEP, _WARP_STEP)
    at, value = zip(*pace, strict=True)
    rates = np.interp(fine, np.asarray(at), np.asarray(value))
    elapsed = np.concatenate([[0.0], np.cumsum(0.5 * (rates[1:] + rates[:-1]) * _WARP_STEP)])
    warped: FloatArray = np.interp(times, fine, elapsed)
    return warped


def _impose_loudness(
    audio: FloatArray, sample_rate: int, profile: ProsodyProfile, bound_db: float
) -> FloatArray:
    if profile.loudness_db.size < 2 or bound_db <= 0:
        return audio
    samples = audio.astype(np.float32)
    start, end = speech_extent(samples, sample_rate)
    times, level = _frame_db(samples, sample_rate)
    inside = (times >= start) & (times <= end)
    if np.count_nonzero(inside) < 2:
        return audio
    own = level[inside] - float(np.mean(level[inside]))
    wanted = np.interp((times[inside] - start) / (end - start), profile.loudness_times,
                       profile.loudness_db)
    gain_db = np.clip(wanted - own, -bound_db, bound_db)
    kernel = np.hanning(9)
    gain_db = np.convolve(gain_db, kernel / kernel.sum(), mode="same")
    curve = np.zeros(times.size)
    curve[inside] = gain_db
    gains = 10.0 ** (np.interp(np.arange(audio.size) / sample_rate, times, curve) / 20.0)
    result: FloatArray = audio * gains
    return result


def compare_prosody(reference: ProsodyProfile, output: ProsodyProfile) -> ProsodyScore:
    """Score `output` against `reference`.

    Every voiced output frame is compared with the reference contour at the same
    normalized time, where the reference is voiced within 1.5 analysis frames of it
    (both contours relative to their own medians, so the register is scored apart).
    """
    near = 1.5 * _STEP / reference.duration_s
    index = np.clip(np.searchsorted(reference.times, output.times), 1,
                    max(1, reference.times.size - 1))
    gap = np.minimum(np.abs(reference.times[index] - output.times),
                     np.abs(reference.times[index - 1] - output.times))
    both = gap <= near
    ratio = output.duration_s / reference.duration_s
    register = 12.0 * math.log2(output.median_hz / reference.median_hz)
    if np.count_nonzero(both) < 5:
        return ProsodyScore(math.inf, 0.0, ratio, register)
    ref = np.interp(output.times[both], reference.times, reference.semitones)
    out = output.semitones[both]
    return ProsodyScore(
        error_semitones=float(np.mean(np.abs(ref - out))),
        correlation=float(np.corrcoef(ref, out)[0, 1]),
        duration_ratio=ratio,
        register_semitones=register,
    )
