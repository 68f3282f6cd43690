"""Streaming speech recognition benchmark on real speech (Asterisk prompts).

Per language:
* WER of the streaming recognizer (utterances in one stream, 1 s apart) against
  the same model transcribing each whole utterance offline, scored three ways: case,
  punctuation and accents normalized; digit runs joined too; and through Whisper's own
  normalizer (numbers spelled one way); the JSON keeps every hypothesis;
* WER and VAD precision/recall with white noise and babble at 10 dB SNR, for
  webrtcvad and Silero;
* real-time factor (compute / audio) and decodes per second of audio;
* commit latency: paced at real time, wall time from a word's end in the audio
  to its commit (compute time counted), of every word and of each utterance's last
  word (how long after the speaker stops the words are firm); the JSON also has the
  median in stream time of the run fed as fast as possible (no compute counted);
* peak resident memory.

    python bench/asr.py                      # the full run (about 25 min on 2 cores)
    python bench/asr.py --utterances 20 --noise-utterances 8 --realtime-utterances 6

Prints a table and writes bench/results/asr.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import jiwer
import numpy as np
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from dragoman.asr import (
    RecognizerConfig,
    StreamingRecognizer,
    TimedEvent,
    VadConfig,
    WhisperConfig,
    WhisperTranscriber,
    run_offline,
    run_realtime,
)
from dragoman.asr.whisper import Transcript
from dragoman.audio import load_audio
from dragoman.corpus import Prompt, prompts
from dragoman.events import (
    SAMPLE_RATE,
    FloatAudio,
    ManualClock,
    SourceText,
    SpeechEnded,
    SpeechStarted,
    Word,
)
from dragoman.events import join_words as join
from dragoman.textnorm import join_digit_runs, normalize_text

RESULTS = Path(__file__).parent / "results"
GAP = 1.0
FRAME = 320  # 20 ms frames for VAD scoring
TOLERANCE_FRAMES = 15  # padding/hangover allowance when scoring VAD precision (300 ms)


@dataclass
class Stream:
    audio: FloatAudio
    speech_mask: np.ndarray[Any, np.dtype[np.bool_]]  # per 20 ms frame: reference speech
    reference: str  # as written, scored with `wer`


def whisper_normalized(language: str, text: str) -> str:
    """`text` through Whisper's own normalizer (the Open ASR Leaderboard's): for English
    it also spells numbers one way ("press 1" / "press one", "dial one two three four" /
    "dial 1234"); other languages get its basic normalizer, accents removed (the Spanish
    references have none), with digit runs joined as `join_digit_runs` does."""
    if language == "en":
        return str(_english_normalizer()(text))
    return join_digit_runs(str(_basic_normalizer()(text)))


@functools.cache
def _english_normalizer() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()  # reads its spelling table from disk: once


@functools.cache
def _basic_normalizer() -> BasicTextNormalizer:
    return BasicTextNormalizer(remove_diacritics=True)


def wer(reference: str, hypothesis: str, language: str) -> dict[str, Any]:
    """WER on normalized text, with digit runs joined (`join_digit_runs`), and through
    Whisper's normalizer (`whisper_normalized`)."""
    return {"wer": float(jiwer.wer(normalize_text(reference), normalize_text(hypothesis))),
            "wer_digits": float(jiwer.wer(join_digit_runs(reference),
                                          join_digit_runs(hypothesis))),
            "wer_whisper": float(jiwer.wer(whisper_normalized(language, reference),
                                           whisper_normalized(language, hypothesis))),
            "hypothesis": hypothesis}


def pick(language: str, count: int, offset: int = 0) -> list[Prompt]:
    """Sentence prompts spread over the corpus (digits/letters lists are skipped)."""
    pool = [p for p in prompts(language) if "/" not in p.id and len(p.text.split()) >= 2]
    step = max(1, len(pool) // max(count, 1))
    return pool[offset::step][:count]


def build_stream(items: list[Prompt]) -> Stream:
    parts, mask = [], []
    for item in items:
        audio = load_audio(item.path)
        frames = audio[: audio.size // FRAME * FRAME].reshape(-1, FRAME)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        active = rms > max(0.02 * rms.max(), 1e-4)
        tail = np.zeros(-audio.size % FRAME, np.float32)
        padded = np.concatenate([audio, tail])
        parts += [padded, np.zeros(round(GAP * SAMPLE_RATE), np.float32)]
        mask += [np.pad(active, (0, padded.size // FRAME - active.size)),
                 np.zeros(round(GAP * SAMPLE_RATE) // FRAME, bool)]
    return Stream(np.concatenate(parts), np.concatenate(mask), " ".join(i.text for i in items))


def mix(stream: Stream, noise: FloatAudio, snr_db: float) -> Stream:
    speech_power = float(np.mean(stream.audio.reshape(-1, FRAME)[stream.speech_mask] ** 2))
    noise = np.resize(noise, stream.audio.size)
    gain = np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    mixed = np.clip(stream.audio + gain * noise, -1, 1).astype(np.float32)
    return Stream(mixed, stream.speech_mask, stream.reference)


def babble(language: str, seconds: float) -> FloatAudio:
    """Four other talkers at once (prompts not used as targets)."""
    voices = [load_audio(item.path) for item in pick(language, 48, offset=1)]
    tracks = [np.concatenate(voices[i::4]) for i in range(4)]
    size = round(seconds * SAMPLE_RATE)
    total = np.zeros(size)
    for track in tracks:
        total += np.resize(track / (np.std(track) + 1e-9), size)
    return (total / 4).astype(np.float32)


def commit_delays(item: TimedEvent) -> list[float]:
    """Seconds from each word's end to the commit that `item` carries."""
    assert isinstance(item.event, SourceText)
    return [item.emitted_at - w.end / SAMPLE_RATE for w in item.event.committed]


class ModelledCost:
    """Whisper whose decodes take, on the recognizer's clock, a modelled time instead
    of the measured one: `rate` seconds per second of buffer plus `overhead_s`. The
    recognizer paces its decodes by their cost, so with measured costs two runs of the
    same stream decode at slightly different moments and their WER differs by a few
    per cent (en 0.057 / 0.064, es 0.184 / 0.193 in two runs of the same code); with
    modelled costs a run is repeatable and two recognizer versions compare."""

    def __init__(self, whisper: WhisperTranscriber, rate: float, overhead_s: float = 3.0):
        self.whisper, self.rate, self.overhead_s = whisper, rate, overhead_s
        self.clock = ManualClock()

    def supports(self, language: str) -> bool:
        return self.whisper.supports(language)

    def transcribe(self, audio: FloatAudio, **options: Any) -> Transcript:
        transcript = self.whisper.transcribe(audio, **options)
        self.clock.advance(self.rate * (audio.size / SAMPLE_RATE + self.overhead_s))
        return transcript


def stream_run(
    whisper: WhisperTranscriber, stream: Stream, config: RecognizerConfig,
    vad: Literal["webrtc", "silero"], modelled_cost: float | None = None,
) -> dict[str, Any]:
    config = replace(config, vad=VadConfig(backend=vad))
    if modelled_cost is None:
        recognizer = StreamingRecognizer(whisper, config)
    else:
        modelled = ModelledCost(whisper, modelled_cost)
        recognizer = StreamingRecognizer(modelled, config, clock=modelled.clock)
    language = config.language or "en"
    began = time.process_time(), time.perf_counter()
    words: list[Word] = []
    delays: list[float] = []  # stream time from a word's end to its commit, no compute
    segments: list[tuple[int, int]] = []
    start = 0
    for item in run_offline(recognizer, stream.audio):
        event = item.event
        if isinstance(event, SourceText):
            words += event.committed
            delays += commit_delays(item)
        elif isinstance(event, SpeechStarted):
            start = event.at
        elif isinstance(event, SpeechEnded):
            segments.append((start, event.at))
    wall = time.perf_counter() - began[1]
    duration = stream.audio.size / SAMPLE_RATE
    detected = np.zeros(stream.speech_mask.size, bool)
    for a, b in segments:
        detected[a // FRAME : b // FRAME + 1] = True
    near = np.convolve(stream.speech_mask, np.ones(2 * TOLERANCE_FRAMES + 1), "same") > 0
    return {
        **wer(stream.reference, join(words), language),
        "rtf": wall / duration,
        "cpu_rtf": (time.process_time() - began[0]) / duration,
        "decodes_per_s": recognizer.decodes / duration,
        "stream_latency_median_s": statistics.median(delays) if delays else float("nan"),
        "vad_recall": float(detected[stream.speech_mask].mean()),
        "vad_precision": float(near[detected].mean()) if detected.any() else 0.0,
    }


def offline_wer(whisper: WhisperTranscriber, items: list[Prompt], language: str) -> dict[str, Any]:
    hypotheses = []
    for item in items:
        transcript = whisper.transcribe(load_audio(item.path), language=language)
        hypotheses.append(join(list(transcript.words)))
    return {**wer(" ".join(i.text for i in items), " ".join(hypotheses), language),
            "hypotheses": hypotheses}


def latency_run(
    whisper: WhisperTranscriber, stream: Stream, config: RecognizerConfig
) -> tuple[list[float], list[float], list[float]]:
    """Commit latencies of every word, of each utterance's first word (what translated
    speech waits for) and of its last word (how long after the speaker stops their words
    are firm)."""
    recognizer = StreamingRecognizer(whisper, config)

    async def collect() -> tuple[list[float], list[float], list[float]]:
        every, first, last = [], [], []
        started: set[int] = set()
        async for item in run_realtime(recognizer, stream.audio):
            event = item.event
            if isinstance(event, SourceText):
                delays = commit_delays(item)
                every += delays
                if delays and event.utterance not in started:
                    started.add(event.utterance)
                    first.append(delays[0])
                if event.final and delays:
                    last.append(delays[-1])
        return every, first, last

    return asyncio.run(collect())


def noise_runs(
    whisper: WhisperTranscriber, items: list[Prompt], config: RecognizerConfig, snr: float,
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Streaming WER and VAD scores with white and babble noise, for both VADs."""
    base = build_stream(items)
    noises = {
        "white": rng.standard_normal(base.audio.size).astype(np.float32),
        "babble": babble(config.language or "en", base.audio.size / SAMPLE_RATE),
    }
    out = {}
    vads: tuple[Literal["webrtc", "silero"], ...] = ("webrtc", "silero")
    for noise_name, noise in noises.items():
        mixed = mix(base, noise, snr)
        for vad in vads:
            out[f"{noise_name}_{vad}"] = stream_run(whisper, mixed, config, vad)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", default=["en", "es", "fr"])
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--noise-utterances", type=int, default=30)
    parser.add_argument("--realtime-utterances", type=int, default=20)
    parser.add_argument("--snr", type=float, default=10.0)
    parser.add_argument("--context-margin", type=float, default=WhisperConfig().context_margin_s,
                        help="encode each buffer plus this many seconds")
    parser.add_argument("--full-window", action="store_true",
                        help="pad every decode to Whisper's 30 s window instead")
    parser.add_argument("--min-window", type=float, default=0.0,
                        help="with --context-margin: encode at least this many seconds")
    parser.add_argument("--compute-budget", type=float, default=None,
                        help="RecognizerConfig.compute_budget (default: the config's)")
    parser.add_argument("--json", type=Path, default=RESULTS / "asr.json")
    parser.add_argument("--commit-context-ms", type=int, default=None,
                        help="RecognizerConfig.commit_context_ms (default: the config's)")
    parser.add_argument("--interim-interval-ms", type=int, default=None,
                        help="RecognizerConfig.interim_interval_ms (default: the config's)")
    parser.add_argument("--agreement-history", type=int, default=None,
                        help="RecognizerConfig.agreement_history (default: the config's)")
    parser.add_argument("--modelled-cost", type=float, nargs="+", default=None,
                        help="time the clean stream's decodes by a cost model, this many "
                        "seconds per second of buffer + 3 s, not by the clock: a repeatable "
                        "WER to compare recognizer versions (0.042: 1.3 decodes a second; "
                        "measured costs gave 1.5 on the development machine). Several "
                        "values: one run each (each its own decode schedule), scores averaged")
    parser.add_argument("--no-prefetch-final", dest="prefetch_final", action="store_false",
                        default=None, help="RecognizerConfig.prefetch_final = False: the "
                        "final decode runs after the VAD's hangover, not during it")
    parser.add_argument("--decode-overhead-ms", default=None,
                        help="RecognizerConfig.decode_overhead_ms, or 'none' for a flat "
                        "cost per decode (default: the config's; 30000 with --full-window)")
    args = parser.parse_args(argv)

    whisper = WhisperTranscriber(
        WhisperConfig(context_margin_s=None if args.full_window else args.context_margin,
                      min_window_s=args.min_window)
    )
    whisper.start()
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"settings": vars(args), "languages": {}}
    rows = []
    # The recognizer settings given on the command line (the config's defaults otherwise).
    overrides = {name: value for name in ("commit_context_ms", "compute_budget",
                                          "interim_interval_ms", "agreement_history",
                                          "prefetch_final")
                 if (value := getattr(args, name)) is not None}
    if args.decode_overhead_ms is not None:
        text = args.decode_overhead_ms.lower()
        overrides["decode_overhead_ms"] = None if text == "none" else int(text)
    elif args.full_window:
        overrides["decode_overhead_ms"] = 30_000
    for language in args.languages:
        config = replace(RecognizerConfig(language=language), **overrides)
        items = pick(language, args.utterances)
        clean = build_stream(items)
        row: dict[str, Any] = {"utterances": len(items), "audio_s": clean.audio.size / SAMPLE_RATE}
        offline = offline_wer(whisper, items, language)
        row["references"] = [item.text for item in items]
        row["offline"] = offline
        if args.modelled_cost is None:
            row["clean"] = stream_run(whisper, clean, config, "webrtc")
        else:
            runs = [stream_run(whisper, clean, config, "webrtc", rate)
                    for rate in args.modelled_cost]
            row["clean"] = _averaged(runs)
            row["clean_runs"] = runs
        if args.noise_utterances > 0:
            row.update(noise_runs(whisper, items[: args.noise_utterances], config, args.snr, rng))
        # The paced prompts depend on --realtime-utterances alone, so runs with different
        # --utterances measure commit latency on the same prompts.
        paced = pick(language, args.realtime_utterances)
        latencies, first_words, last_words = (
            latency_run(whisper, build_stream(paced), config) if paced else ([], [], []))
        row["commit_latency_median_s"] = _median(latencies)
        row["commit_latency_p90_s"] = (float(np.percentile(latencies, 90)) if latencies
                                       else float("nan"))
        row["first_word_latency_median_s"] = _median(first_words)
        row["last_word_latency_median_s"] = _median(last_words)
        results["languages"][language] = row
        rows.append((language, row))
        print(f"{language}: done", file=sys.stderr)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(rows, results["peak_rss_mb"], args.snr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def _averaged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each score over runs of one stream (the first run's hypothesis)."""
    return {key: (statistics.fmean(run[key] for run in runs)
                  if isinstance(value, float) else value)
            for key, value in runs[0].items()}


def _median(values: list[float]) -> float:
    """The median, NaN without values (no paced run: `--realtime-utterances 0`)."""
    return statistics.median(values) if values else float("nan")


def _relative(value: float, base: float) -> str:
    return f"{value / base - 1:+.0%}" if base else "n/a"


def print_table(rows: list[tuple[str, dict[str, Any]]], peak_mb: float, snr: float) -> None:
    print("| lang | utts | audio s | offline / streaming WER | rel. | digits joined | rel. "
          "| Whisper's normalizer | rel. | RTF (CPU RTF) | decodes/s "
          "| commit latency median / p90 s | first / last word's latency median s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for lang, r in rows:
        o, c = r["offline"], r["clean"]
        scores = "".join(f"| {o[key]:.3f} / {c[key]:.3f} | {_relative(c[key], o[key])} "
                         for key in ("wer", "wer_digits", "wer_whisper"))
        print(f"| {lang} | {r['utterances']} | {r['audio_s']:.0f} {scores}"
              f"| {c['rtf']:.2f} ({c['cpu_rtf']:.2f}) | {c['decodes_per_s']:.2f} "
              f"| {r['commit_latency_median_s']:.2f} / {r['commit_latency_p90_s']:.2f} "
              f"| {r['first_word_latency_median_s']:.2f} / {r['last_word_latency_median_s']:.2f} |")
    print()
    print(f"Noise at {snr:g} dB SNR (WER, VAD recall / precision):")
    print("| lang | condition | webrtcvad WER | webrtcvad R / P | Silero WER | Silero R / P |")
    print("|---|---|---|---|---|---|")
    for lang, r in rows:
        for cond in ("white", "babble") if "white_webrtc" in r else ():
            w, s = r[f"{cond}_webrtc"], r[f"{cond}_silero"]
            print(f"| {lang} | {cond} | {w['wer']:.3f} | {w['vad_recall']:.2f} / "
                  f"{w['vad_precision']:.2f} | {s['wer']:.3f} | {s['vad_recall']:.2f} / "
                  f"{s['vad_precision']:.2f} |")
    print(f"\npeak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
