"""Speech synthesis benchmark: RTF and time to first audio per backend and language,
onnxruntime settings for Kokoro, Kokoro cost against input length, Kokoro with its
lead-in cropped against rendered whole, prosody transfer errors on real speech (phrase
rendered whole and in streamed segments), Whisper base WER on the synthesized speech.

    python bench/tts.py                 # prints tables, writes bench/results/tts.json
    python bench/tts.py --lead-in-only  # only the lead-in A/B: bench/results/tts_lead_in.json

Texts are Asterisk prompt transcripts (en/es/fr, real prompts); the prosody source is
the same speaker's recording (Allison Smith, en and es). Medians over prompts and runs.
Other engineers share this machine's 2 cores: the JSON keeps `os.getloadavg()` per
measurement, and every timing comes with CPU time (this process's, per audio second),
which other processes disturb far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from dragoman import corpus
from dragoman.audio import load_audio, resample
from dragoman.events import SAMPLE_RATE, AudioChunk
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
from dragoman.tts.kokoro import KokoroBackend, KokoroConfig
from dragoman.watermark import WatermarkKey

PROMPTS = ("conf-getchannel", "agent-pass", "auth-incorrect", "agent-newlocation")
EXTRA = {"de": "Guten Morgen, bitte geben Sie Ihr Passwort ein.",
         "sw": "Habari ya asubuhi, tafadhali ingiza nenosiri lako.",
         "ru": "Доброе утро, пожалуйста, введите ваш пароль."}
KEY = WatermarkKey.from_passphrase("bench")
REPEATS = 2
LONG = ("Please enter your password, followed by the pound key. The person at extension "
        "is not available right now.")
SETTINGS: dict[str, KokoroConfig] = {
    "2 threads, no spin (default)": KokoroConfig(),
    "2 threads, spin": KokoroConfig(spin=True),
    "1 thread, no spin": KokoroConfig(threads=1),
    "2 threads, parallel executor": KokoroConfig(parallel=True),
}


def load() -> float:
    return os.getloadavg()[0]


def synth_once(router: Router, lang: str, backend: str, text: str,
               source: np.ndarray | None = None, *,
               first_words: int | None = None) -> tuple[np.ndarray, float, float, float]:
    """Audio, wall seconds, seconds to the first chunk, CPU seconds of one phrase.

    The first chunk is timed where `SynthesisStream` takes it: the synthesizer's sink,
    called as soon as a segment is marked."""
    config = SynthesisConfig(lang, backend=backend, prosody=source is not None)
    if first_words is not None:
        config = SynthesisConfig(lang, backend=backend, prosody=source is not None,
                                 first_segment_words=first_words)
    synth = Synthesizer(config, KEY, router)
    synth.start()
    chunks: list[AudioChunk] = []
    first: list[float] = []
    start = time.perf_counter()

    def sink(new: list[AudioChunk]) -> None:
        if not first:
            first.append(time.perf_counter() - start)
        chunks.extend(new)

    synth.set_sink(sink)
    cpu = time.process_time()
    synth.say(text, prosody_from=source)
    synth.finish()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert first, "no audio"
    return np.concatenate([c.pcm for c in chunks]), elapsed, first[0], cpu


def warm_routers(configs: dict[str, KokoroConfig]) -> dict[str, Router]:
    """One started router per Kokoro configuration, each past its first-call costs."""
    routers = {}
    for name, config in configs.items():
        router = Router([KokoroBackend(config)])
        router.start()
        synth_once(router, "en", "kokoro", "Warm up.", first_words=0)
        routers[name] = router
    return routers


def settings_sweep() -> list[dict[str, Any]]:
    """Kokoro onnxruntime settings, interleaved so that load changes hit all alike."""
    routers = warm_routers(SETTINGS)
    samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in SETTINGS}
    for _ in range(3):
        for name, router in routers.items():
            audio, elapsed, _, cpu = synth_once(router, "en", "kokoro", LONG, first_words=0)
            seconds = audio.size / OUTPUT_RATE
            samples[name].append((elapsed / seconds, cpu / seconds, load()))
    rows = []
    for name, values in samples.items():
        rows.append({"setting": name, "rtf": statistics.median(v[0] for v in values),
                     "cpu_per_audio_s": statistics.median(v[1] for v in values),
                     "load": statistics.median(v[2] for v in values)})
    return rows


def length_sweep(router: Router) -> dict[str, Any]:
    """Kokoro cost against input length: CPU seconds = fixed + per_s * audio seconds."""
    words = LONG.split()
    points = []
    for count in (2, 3, 4, 6, 9, 13, len(words)):
        text = " ".join(words[:count])
        for _ in range(2):
            audio, elapsed, _, cpu = synth_once(router, "en", "kokoro", text, first_words=0)
            points.append({"words": count, "audio_s": audio.size / OUTPUT_RATE,
                           "wall_s": elapsed, "cpu_s": cpu, "load": load()})
    x = np.array([p["audio_s"] for p in points])
    y = np.array([p["cpu_s"] for p in points])
    per_s, fixed = np.polyfit(x, y, 1)
    return {"points": points, "cpu_fixed_s": float(fixed), "cpu_per_audio_s": float(per_s)}


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def lead_in_sweep(phrases: int = 12, words: int = 3) -> list[dict[str, Any]]:
    """Kokoro with its lead-in cropped (the default) and rendered whole, interleaved
    (the order alternates): seconds from `say` to the first marked chunk, wall and CPU
    per phrase, for the first `words` words of real prompts (the size of an utterance's
    first phrase in a lane) and for whole prompts. Medians, and the median over phrases
    of the cropped / whole ratio."""
    configs = {"cropped (default)": KokoroConfig(), "whole": KokoroConfig(lead_in_frames=None)}
    order = list(warm_routers(configs).items())
    rows = []
    for lang in ("fr", "en", "es"):
        prompts = [p.text for p in corpus.prompts(lang) if len(p.text.split()) > words]
        for size, texts in (("first words", [" ".join(t.split()[:words]) for t in prompts]),
                            ("whole prompt", prompts)):
            timings: dict[str, list[tuple[float, float, float]]] = {n: [] for n in configs}
            for index, text in enumerate(texts[:phrases]):
                for name, router in order if index % 2 else order[::-1]:
                    _, elapsed, first, cpu = synth_once(router, lang, "kokoro", text,
                                                        first_words=0)
                    timings[name].append((first, elapsed, cpu))
            cropped, whole = timings["cropped (default)"], timings["whole"]
            rows.append({
                "language": lang, "phrases": size, "count": len(cropped), "load": load(),
                **{f"{key}_{tag}": med([t[i] for t in runs])
                   for tag, runs in (("cropped", cropped), ("whole", whole))
                   for i, key in enumerate(("first_audio_s", "wall_s", "cpu_s"))},
                **{f"{key}_ratio": med([c[i] / w[i] for c, w in zip(cropped, whole, strict=True)])
                   for i, key in enumerate(("first_audio", "wall", "cpu"))},
            })
    return rows


def print_lead_in(rows: list[dict[str, Any]]) -> None:
    print("\nKokoro lead-in cropped (default) vs rendered whole, per phrase, interleaved:")
    print("| lang | phrases | n | first audio s cropped / whole (ratio) | "
          "CPU s cropped / whole (ratio) | load |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['language']} | {r['phrases']} | {r['count']} | "
              f"{r['first_audio_s_cropped']:.3f} / {r['first_audio_s_whole']:.3f} "
              f"({r['first_audio_ratio']:.2f}) | {r['cpu_s_cropped']:.3f} / "
              f"{r['cpu_s_whole']:.3f} ({r['cpu_ratio']:.2f}) | {r['load']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lead-in-only", action="store_true",
                        help="only the Kokoro lead-in A/B (bench/results/tts_lead_in.json)")
    args = parser.parse_args()
    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    if args.lead_in_only:
        lead_in = lead_in_sweep()
        print_lead_in(lead_in)
        (out / "tts_lead_in.json").write_text(json.dumps(
            {"cores": os.cpu_count(), "lead_in": lead_in}, indent=2))
        return
    import jiwer
    from faster_whisper import WhisperModel

    load_start = os.getloadavg()
    resolved = ModelStore().resolve("whisper-base")
    whisper = WhisperModel("base", files={n: resolved.read_bytes(n) for n in resolved.files},
                           compute_type="int8", cpu_threads=2)
    router = Router()
    router.start()
    synth_once(router, "en", "kokoro", "Warm up.")  # first-call costs out of the medians
    sweep = settings_sweep()
    lengths = length_sweep(router)
    lead_in = lead_in_sweep()
    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, str, list[str]]] = []
    for lang in ("en", "es", "fr"):
        texts = [corpus.prompt(lang, p).text for p in PROMPTS]
        cases += [(lang, "kokoro", texts), (lang, "espeak-ng", texts)]
    cases += [(lang, "espeak-ng", [text]) for lang, text in EXTRA.items()]
    cases += [("en", "kokoro", [LONG])]
    for lang, backend, texts in cases:
        rtfs, cpus, ttfas, wholes, loads, refs, hyps = [], [], [], [], [], [], []
        for text in texts:
            for _ in range(REPEATS):
                audio, elapsed, ttfa, cpu = synth_once(router, lang, backend, text)
                seconds = audio.size / OUTPUT_RATE
                rtfs.append(elapsed / seconds)
                cpus.append(cpu / seconds)
                ttfas.append(ttfa)
                loads.append(load())
                _, _, whole, _ = synth_once(router, lang, backend, text, first_words=0)
                wholes.append(whole)
            segments, _ = whisper.transcribe(
                resample(audio, OUTPUT_RATE, SAMPLE_RATE), language=lang, beam_size=1,
                temperature=0.0, condition_on_previous_text=False)
            refs.append(normalize_text(text))
            hyps.append(normalize_text(" ".join(s.text for s in segments)) or "-")
        rows.append({"backend": backend, "language": lang, "phrases": len(texts),
                     "words": med([len(t.split()) for t in texts]),
                     "rtf": med(rtfs), "cpu_per_audio_s": med(cpus),
                     "ttfa_s": med(ttfas), "ttfa_max_s": max(ttfas),
                     "ttfa_whole_phrase_s": med(wholes),
                     "wer": float(jiwer.wer(refs, hyps)), "load": med(loads)})
    prosody: list[dict[str, Any]] = []
    for lang in ("en", "es"):
        for pid in PROMPTS:
            prompt = corpus.prompt(lang, pid)
            source = load_audio(prompt.path, SAMPLE_RATE)
            reference = extract_prosody(source, SAMPLE_RATE)
            plain, _, _, _ = synth_once(router, lang, "kokoro", prompt.text)
            before = compare_prosody(reference, extract_prosody(plain, OUTPUT_RATE))
            entry: dict[str, Any] = {"language": lang, "prompt": pid,
                                     "error_st_before": before.error_semitones,
                                     "corr_before": before.correlation}
            for mode, words in (("whole", 0), ("streamed", None)):
                shaped, elapsed, ttfa, cpu = synth_once(router, lang, "kokoro", prompt.text,
                                                        source, first_words=words)
                after = compare_prosody(reference, extract_prosody(shaped, OUTPUT_RATE))
                seconds = shaped.size / OUTPUT_RATE
                entry[mode] = {"error_st": after.error_semitones, "corr": after.correlation,
                               "duration_ratio": after.duration_ratio,
                               "register_st": after.register_semitones,
                               "rtf": elapsed / seconds, "cpu_per_audio_s": cpu / seconds,
                               "ttfa_s": ttfa}
            prosody.append(entry)

    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    print("\nKokoro onnxruntime settings (whole phrase, en, 7 s of speech, 3 interleaved runs):")
    print("| setting | RTF (wall) | CPU s per audio s | load |")
    print("|---|---|---|---|")
    for r in sweep:
        print(f"| {r['setting']} | {r['rtf']:.3f} | {r['cpu_per_audio_s']:.3f} | "
              f"{r['load']:.1f} |")
    print(f"\nKokoro cost against length: CPU s = {lengths['cpu_fixed_s']:.3f} + "
          f"{lengths['cpu_per_audio_s']:.3f} x audio s (over "
          f"{len(lengths['points'])} calls of 2..{len(LONG.split())} words)")
    print_lead_in(lead_in)
    print("\n| backend | lang | phrases | words | RTF | CPU s / audio s | first audio (s) | "
          "max | first audio, whole phrase (s) | Whisper WER | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['language']} | {r['phrases']} | {r['words']:.0f} | "
              f"{r['rtf']:.3f} | {r['cpu_per_audio_s']:.3f} | {r['ttfa_s']:.3f} | "
              f"{r['ttfa_max_s']:.3f} | {r['ttfa_whole_phrase_s']:.3f} | {r['wer']:.2f} | "
              f"{r['load']:.1f} |")
    print("\n| lang | mode | error before (st) | corr before | error (st) | corr | "
          "duration ratio | register (st) | RTF | first audio (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for lang in ("en", "es"):
        sel = [p for p in prosody if p["language"] == lang]
        for mode in ("whole", "streamed"):

            def pm(key: str, sel: list[dict[str, Any]] = sel, mode: str = mode) -> float:
                return med([p[mode][key] for p in sel])

            print(f"| {lang} | {mode} | {med([p['error_st_before'] for p in sel]):.2f} | "
                  f"{med([p['corr_before'] for p in sel]):.2f} | {pm('error_st'):.2f} | "
                  f"{pm('corr'):.3f} | {pm('duration_ratio'):.3f} | "
                  f"{pm('register_st'):+.2f} | {pm('rtf'):.3f} | {pm('ttfa_s'):.3f} |")
    load_end = os.getloadavg()
    print(f"\nload average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    (out / "tts.json").write_text(json.dumps(
        {"load_start": load_start, "load_end": load_end, "cores": os.cpu_count(),
         "kokoro_settings": sweep, "kokoro_length": lengths, "kokoro_lead_in": lead_in,
         "synthesis": rows,
         "prosody": prosody}, indent=2))


if __name__ == "__main__":
    main()
