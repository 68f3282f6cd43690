"""`dragoman say --lang xx "text" [--prosody-from source.wav] -o out.wav`."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from dragoman.audio import load_audio, write_wav
from dragoman.events import SAMPLE_RATE


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "say", help="synthesize text (watermarked) in any supported language"
    )
    parser.add_argument("text", help="what to say")
    parser.add_argument("--lang", required=True, help="language code, e.g. es, fr, sw")
    parser.add_argument("-o", "--output", required=True, help="output WAV file (24 kHz)")
    parser.add_argument("--prosody-from", help="speech whose intonation and pace to follow")
    parser.add_argument("--backend", help="force a backend: kokoro, espeak-ng, xtts")
    parser.add_argument("--voice", help="force a voice (see `dragoman languages --voices`)")
    parser.add_argument("--rate", type=float, default=1.0, help="speaking rate, 0.5-2.0")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dragoman.tts import SynthesisConfig, Synthesizer
    from dragoman.watermark import WatermarkKey

    config = SynthesisConfig(
        language=args.lang, backend=args.backend, voice=args.voice, rate=args.rate,
        prosody=args.prosody_from is not None,
    )
    source = load_audio(args.prosody_from, SAMPLE_RATE) if args.prosody_from else None
    synthesizer = Synthesizer(config, WatermarkKey.load())
    synthesizer.start()
    synthesizer.say(args.text, prosody_from=source)
    chunks = synthesizer.finish()
    audio = np.concatenate([c.pcm for c in chunks])
    write_wav(args.output, audio, chunks[0].sample_rate)
    route = synthesizer.route
    voice = f"{route.backend}/{route.voice.name}" if route else "?"
    print(f"{args.output}: {audio.size / chunks[0].sample_rate:.2f} s, {voice}, watermarked")
    return 0
