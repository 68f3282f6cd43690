"""Speech synthesis: backends, language routing, prosody transfer, watermarked output.

    router = Router()                                   # Kokoro, then espeak-ng
    synth = Synthesizer(SynthesisConfig("es"), WatermarkKey.load(), router)
    synth.start()
    synth.say("Hola a todos.", prosody_from=source_16k)  # or push_text(TranslationText)
    chunks = synth.finish()                             # AudioChunk at 24 kHz, marked

Output is mono float32 at 24 kHz (`OUTPUT_RATE`). Backends produce unmarked audio
internally; the only way out is `Synthesizer` / `SynthesisStream`, which watermark
every sample. See docs/languages.md.
"""

from dragoman.tts.base import (
    MAX_RATE,
    MIN_RATE,
    OUTPUT_RATE,
    SynthesisBackend,
    SynthesisInputError,
    Voice,
    speakable,
)
from dragoman.tts.capabilities import LanguageSupport, language_support
from dragoman.tts.prosody import (
    ProsodyConfig,
    ProsodyProfile,
    ProsodyScore,
    compare_prosody,
    extract_prosody,
)
from dragoman.tts.routing import Route, Router, closest_voice, default_backends
from dragoman.tts.stream import SynthesisStream
from dragoman.tts.synthesizer import SynthesisConfig, Synthesizer

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "OUTPUT_RATE",
    "LanguageSupport",
    "ProsodyConfig",
    "ProsodyProfile",
    "ProsodyScore",
    "Route",
    "Router",
    "SynthesisBackend",
    "SynthesisConfig",
    "SynthesisInputError",
    "SynthesisStream",
    "Synthesizer",
    "Voice",
    "closest_voice",
    "compare_prosody",
    "default_backends",
    "extract_prosody",
    "language_support",
    "speakable",
]
