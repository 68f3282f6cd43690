"""Speech synthesis benchmark: RTF and time to first audio per backend and language,
prosody transfer errors on real speech, Whisper base WER on the synthesized speech.

    python bench/tts.py            # prints tables, writes bench/results/tts.json

Texts are Asterisk prompt transcripts (en/es/fr, real prompts); the prosody source is
the same speaker's recording (Allison Smith, en and es). Medians over prompts and runs.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from dragoman import corpus
from dragoman.audio import load_audio, resample
from dragoman.events import SAMPLE_RATE
from dragoman.models import ModelStore
from dragoman.textnorm import normalize_text
from dragoman.tts import (
    OUTPUT_RATE,
    Router,
    SynthesisConfig,
    Synthesizer,
    compare_prosody,
    extract_prosody,
)
from dragoman.watermark import WatermarkKey

PROMPTS = ("conf-getchannel", "agent-pass", "auth-incorrect", "agent-newlocation")
EXTRA = {"de": "Guten Morgen, bitte geben Sie Ihr Passwort ein.",
         "sw": "Habari ya asubuhi, tafadhali ingiza nenosiri lako.",
         "ru": "Доброе утро, пожалуйста, введите ваш пароль."}
KEY = WatermarkKey.from_passphrase("bench")
REPEATS = 2


def synth_once(router: Router, lang: str, backend: str, text: str,
               source: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    synth = Synthesizer(SynthesisConfig(lang, backend=backend, prosody=source is not None),
                        KEY, router)
    synth.start()
    start = time.perf_counter()
    synth.say(text, prosody_from=source)
    first = synth.events()
    ttfa = time.perf_counter() - start
    rest = synth.finish()
    elapsed = time.perf_counter() - start
    audio = np.concatenate([c.pcm for c in first + rest])
    assert first, "no audio before finish()"
    return audio, elapsed, ttfa


def main() -> None:
    import jiwer
    from faster_whisper import WhisperModel

    resolved = ModelStore().resolve("whisper-base")
    whisper = WhisperModel("base", files={n: resolved.read_bytes(n) for n in resolved.files},
                           compute_type="int8", cpu_threads=2)
    router = Router()
    router.start()
    synth_once(router, "en", "kokoro", "Warm up.")  # first-call costs out of the medians
    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, str, list[str]]] = []
    for lang in ("en", "es", "fr"):
        texts = [corpus.prompt(lang, p).text for p in PROMPTS]
        cases += [(lang, "kokoro", texts), (lang, "espeak-ng", texts)]
    cases += [(lang, "espeak-ng", [text]) for lang, text in EXTRA.items()]
    for lang, backend, texts in cases:
        rtfs, ttfas, refs, hyps = [], [], [], []
        for text in texts:
            for _ in range(REPEATS):
                audio, elapsed, ttfa = synth_once(router, lang, backend, text)
                rtfs.append(elapsed / (audio.size / OUTPUT_RATE))
                ttfas.append(ttfa)
            segments, _ = whisper.transcribe(
                resample(audio, OUTPUT_RATE, SAMPLE_RATE), language=lang, beam_size=1,
                temperature=0.0, condition_on_previous_text=False)
            refs.append(normalize_text(text))
            hyps.append(normalize_text(" ".join(s.text for s in segments)) or "-")
        rows.append({"backend": backend, "language": lang, "phrases": len(texts),
                     "rtf": statistics.median(rtfs), "ttfa_s": statistics.median(ttfas),
                     "wer": float(jiwer.wer(refs, hyps))})
    prosody: list[dict[str, Any]] = []
    for lang in ("en", "es"):
        for pid in PROMPTS:
            prompt = corpus.prompt(lang, pid)
            source = load_audio(prompt.path, SAMPLE_RATE)
            reference = extract_prosody(source, SAMPLE_RATE)
            plain, _, _ = synth_once(router, lang, "kokoro", prompt.text)
            shaped, elapsed, _ = synth_once(router, lang, "kokoro", prompt.text, source)
            before = compare_prosody(reference, extract_prosody(plain, OUTPUT_RATE))
            after = compare_prosody(reference, extract_prosody(shaped, OUTPUT_RATE))
            prosody.append({"language": lang, "prompt": pid,
                            "error_st_before": before.error_semitones,
                            "corr_before": before.correlation,
                            "error_st": after.error_semitones, "corr": after.correlation,
                            "duration_ratio": after.duration_ratio,
                            "register_st": after.register_semitones,
                            "rtf_with_prosody": elapsed / (shaped.size / OUTPUT_RATE)})
    print("| backend | lang | phrases | RTF | first audio (s) | Whisper WER |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['language']} | {r['phrases']} | {r['rtf']:.3f} | "
              f"{r['ttfa_s']:.3f} | {r['wer']:.2f} |")
    print("\n| lang | error before (st) | corr before | error (st) | corr | duration ratio | "
          "register (st) |")
    print("|---|---|---|---|---|---|---|")
    for lang in ("en", "es"):
        sel = [p for p in prosody if p["language"] == lang]

        def med(key: str, sel: list[dict[str, Any]] = sel) -> float:
            return float(statistics.median(p[key] for p in sel))

        print(f"| {lang} | {med('error_st_before'):.2f} | {med('corr_before'):.2f} | "
              f"{med('error_st'):.2f} | {med('corr'):.3f} | {med('duration_ratio'):.3f} | "
              f"{med('register_st'):+.2f} |")
    rtf_p = statistics.median(p["rtf_with_prosody"] for p in prosody)
    print(f"\nKokoro + prosody transfer RTF (median): {rtf_p:.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tts.json").write_text(json.dumps(
        {"synthesis": rows, "prosody": prosody, "rtf_kokoro_with_prosody": rtf_p}, indent=2))


if __name__ == "__main__":
    main()
