"""Audio sets for bench/watermark.py beyond the Asterisk prompts: synthesized speech (what
the product marks and sends) and the non-speech signals of the false-positive set.

* `synthesized_clips`: Asterisk transcripts (en, es, fr) spoken by the product's own
  backends, Kokoro-82M and espeak-ng, at their native 24 kHz, several voices each,
  unmarked (the bench marks them with `embed`, which equals the synthesizer's streaming
  embedder; property-tested).
* `null_signal`: white and pink noise, digital silence and dither, and music-like
  signals (chords and melodies of harmonic notes with envelopes, with and without
  percussion), at random levels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from dragoman.corpus import prompts
from dragoman.events import FloatAudio
from dragoman.tts.base import SynthesisBackend
from dragoman.tts.espeak import EspeakBackend
from dragoman.tts.kokoro import KokoroBackend

logger = logging.getLogger(__name__)

SYNTH_RATE = 24_000
LANGUAGES = ("en", "es", "fr")
PAUSE_S = 0.3
"""Silence between two sentences of a clip (the synthesizer's phrases are trimmed)."""


def synthesized_clips(count: int, seconds: float, skip: int = 0
                      ) -> list[tuple[str, FloatAudio]]:
    """`count` clips of at least `seconds`, as (backend/voice, 24 kHz audio), spread
    evenly over Kokoro and espeak-ng and the three languages, voices taken in turn."""
    backends: list[SynthesisBackend] = [KokoroBackend(), EspeakBackend()]
    live = []
    for backend in backends:
        if backend.available():
            backend.start()
            live.append(backend)
        else:
            logger.warning("%s is not installed: no synthesized clips from it", backend.name)
    groups = [(b, lang) for b in live for lang in LANGUAGES if b.voices(lang)]
    if not groups:
        return []
    clips: list[tuple[str, FloatAudio]] = []
    pause = np.zeros(round(PAUSE_S * SYNTH_RATE), np.float32)
    for index, (backend, language) in enumerate(groups):
        want = count * (index + 1) // len(groups) - len(clips)
        voices = backend.voices(language)
        texts = [p.text for p in prompts(language)[skip:]]
        parts: list[FloatAudio] = []
        made = 0
        for text in texts:
            if made >= want:
                break
            voice = voices[made % len(voices)]
            try:
                audio = np.concatenate(list(backend.render_unmarked(text, voice)))
            except Exception as exc:  # a prompt a voice cannot say is skipped, not fatal
                logger.warning("%s %s: %r not rendered: %s", backend.name, voice.name, text, exc)
                continue
            parts += [audio.astype(np.float32), pause]
            if sum(p.size for p in parts) >= seconds * SYNTH_RATE:
                clips.append((f"{backend.name}/{voice.name}", np.concatenate(parts)))
                parts = []
                made += 1
    for backend in live:
        backend.close()
    return clips


def _pink(size: int, rng: np.random.Generator) -> FloatAudio:
    spectrum = np.fft.rfft(rng.standard_normal(size))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    pink = np.asarray(np.fft.irfft(spectrum, n=size), dtype=np.float64)
    return (pink / float(np.sqrt(np.mean(pink**2)))).astype(np.float32)


def _note(frequency: float, size: int, rate: int, rng: np.random.Generator) -> FloatAudio:
    """A harmonic note with a random timbre and an attack-decay envelope."""
    t = np.arange(size) / rate
    harmonics = rng.integers(3, 9)
    rolloff = rng.uniform(0.5, 1.5)
    tone = np.zeros(size)
    for h in range(1, harmonics + 1):
        if h * frequency < rate / 2:
            tone += np.sin(2 * np.pi * h * frequency * t + rng.uniform(0, 2 * np.pi)) / h**rolloff
    attack = np.minimum(1.0, t / 0.02)
    decay = np.exp(-t * rng.uniform(0.5, 4.0))
    return (tone * attack * decay).astype(np.float32)


def music_like(seconds: float, rate: int, rng: np.random.Generator, *,
               percussion: bool) -> FloatAudio:
    """Chords under a melody at a random tempo (equal temperament, A4 = 440 Hz)."""
    size = round(seconds * rate)
    out = np.zeros(size, np.float32)
    beat = round(rate * 60.0 / rng.uniform(70, 160))
    root = int(rng.integers(-12, 4))
    for start in range(0, size, 4 * beat):  # one chord a bar
        length = min(4 * beat, size - start)
        for step in (0, 4, 7):  # a major triad
            out[start:start + length] += 0.3 * _note(
                440.0 * 2 ** ((root + step - 12) / 12), length, rate, rng)
        root = int(root + rng.choice([-5, -3, 2, 5, 7])) % 12 - 6
    for start in range(0, size, beat):  # one melody note a beat
        length = min(beat, size - start)
        degree = int(rng.choice([0, 2, 4, 5, 7, 9, 11, 12]))
        out[start:start + length] += 0.5 * _note(
            440.0 * 2 ** ((root + degree) / 12), length, rate, rng)
        if percussion and rng.random() < 0.5:
            hit = min(length, rate // 10)
            out[start:start + hit] += (0.4 * rng.standard_normal(hit)
                                       * np.exp(-np.arange(hit) / (rate / 80))).astype(np.float32)
    return out


def _scaled(audio: FloatAudio, rng: np.random.Generator) -> FloatAudio:
    """At a random RMS level between -50 and -15 dBFS."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    level = 10 ** (rng.uniform(-50, -15) / 20)
    return (audio * (level / max(rms, 1e-12))).astype(np.float32)


NULL_SIGNALS: dict[str, Callable[[float, int, np.random.Generator], FloatAudio]] = {
    "white_noise": lambda s, r, g: _scaled(g.standard_normal(round(s * r)).astype(np.float32), g),
    "pink_noise": lambda s, r, g: _scaled(_pink(round(s * r), g), g),
    "silence": lambda s, r, g: np.zeros(round(s * r), np.float32),
    "dither": lambda s, r, g: (g.standard_normal(round(s * r)) * 3e-5).astype(np.float32),
    "music": lambda s, r, g: _scaled(music_like(s, r, g, percussion=False), g),
    "music_drums": lambda s, r, g: _scaled(music_like(s, r, g, percussion=True), g),
}
"""Non-speech unmarked signals: name -> (seconds, sample rate, rng) -> audio."""
