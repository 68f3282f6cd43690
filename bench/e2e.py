"""End-to-end speech-to-speech benchmark, paced at real time, computation-aware.

For each language pair, Asterisk prompts (real speech) are streamed into one
session 1.5 s apart, at real-time pace, through the full pipeline (Whisper base,
Apertium, Kokoro/espeak-ng with prosody, watermark). Each prompt is one instance:

* latency of the translated speech, SimulEval's definitions, computation-aware
  (emission times are wall-clock): StartOffset, EndOffset (playback end minus
  source end), AL and LAAL over the output speech segments, with reference length;
* quality: ASR-BLEU and chrF (Whisper base transcribes each instance's output
  speech; sacrebleu against the human prompt in the target language);
* the source and translation captions: normalized erasure, and how long before its
  commit each final word is shown for good (the caption lead);
* CPU real-time factor (process CPU seconds / audio seconds) and peak memory.

The per-instance delays are written in SimulEval's instances.log format and
cross-checked with `simuleval --score-only` when SimulEval is installed
(`pip install --no-deps simuleval`).

    python bench/e2e.py --pairs es-fr fr-es --utterances 100
    python bench/e2e.py --utterances 20 --hangover 250 400 600   # latency/quality sweep

Prints a table, writes bench/results/e2e.json and bench/results/e2e.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
from server import cpu_seconds as process_cpu_seconds

from dragoman.asr import RecognizerConfig, VadConfig, WhisperConfig, WhisperTranscriber
from dragoman.audio import load_audio, resample
from dragoman.corpus import Prompt, parallel_ids, prompt
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Event,
    Lag,
    SourceText,
    TranslationText,
    Word,
    join_words,
)
from dragoman.pacing import feed
from dragoman.pipeline import Pipeline, PipelineConfig, Resources
from dragoman.watermark import WatermarkKey

RESULTS = Path(__file__).parent / "results"
GAP = 1.5
ANCHOR: dict[str, Any] = {"system": "StreamSpeech fr-en (GPU, not computation-aware)", "AL": 1.27,
          "StartOffset": 1.67, "EndOffset": 0.70, "ASR-BLEU": 22.9}


@dataclass
class Instance:
    prompt: Prompt
    reference: str
    offset: float  # where the prompt starts in the stream (s)
    duration: float
    chunks: list[tuple[float, AudioChunk]] = field(default_factory=list)
    heard: str = ""
    source_commit: float | None = None  # stream time of the first committed source word
    source_words: list[Word] = field(default_factory=list)  # committed, attributed here
    target_commit: float | None = None  # ... of the first committed translation text

    @property
    def first_sample(self) -> int:
        """Earliest source sample of this prompt (VAD padding reaches a little before)."""
        return round(self.offset * SAMPLE_RATE) - SAMPLE_RATE // 4


def pick(source: str, target: str, count: int) -> list[str]:
    ids = [i for i in parallel_ids(source, target) if "/" not in i
           and len(prompt(source, i).text.split()) >= 3]
    step = max(1, len(ids) // max(count, 1))
    return ids[::step][:count]


async def run_pair(resources: Resources, source: str, target: str, ids: list[str],
                   options: PipelineConfig
                   ) -> tuple[list[Instance], list[tuple[float, Event]], tuple[float, float],
                              float]:
    """Stream the prompts, paced, through one session configured as `options` (its
    languages set to the pair's). Returns the instances, the timed events, the CPU
    seconds spent (this process, its child processes) and the stream's length in s."""
    parts, instances, cursor = [], [], 1.0
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    for prompt_id in ids:
        item = prompt(source, prompt_id)
        audio = load_audio(item.path)
        instances.append(Instance(item, prompt(target, prompt_id).text, cursor,
                                  audio.size / SAMPLE_RATE))
        parts += [audio, np.zeros(round(GAP * SAMPLE_RATE), np.float32)]
        cursor += audio.size / SAMPLE_RATE + GAP
    stream = np.concatenate(parts)
    config = replace(options, source_language=source, target_languages=(target,),
                     session_id="bench")
    pipeline = Pipeline(config, resources)
    await pipeline.start()
    loop = asyncio.get_running_loop()
    events: list[tuple[float, Event]] = []  # (seconds since the start, event)
    cpu0, t0 = cpu_seconds(), loop.time()

    async def pump() -> None:
        await feed(pipeline.push_audio, stream, chunk_ms=20)
        await pipeline.end_input()

    feeder = asyncio.create_task(pump())
    async for event in pipeline:
        now = loop.time() - t0
        events.append((now, event))
        if isinstance(event, AudioChunk):
            owner = _owner(instances, event.source_span.start)
            if owner is not None:
                owner.chunks.append((now, event))
        elif isinstance(event, SourceText) and event.committed:
            owner = _owner(instances, event.committed[0].start)
            if owner is not None:
                owner.source_words += event.committed
                if owner.source_commit is None:
                    owner.source_commit = now
        elif isinstance(event, TranslationText) and event.committed_delta.strip():
            owner = _owner(instances, event.source_span.start)
            if owner is not None and owner.target_commit is None:
                owner.target_commit = now
    await feeder
    await pipeline.aclose()
    cpu = cpu_seconds()
    return instances, events, (cpu[0] - cpu0[0], cpu[1] - cpu0[1]), stream.size / SAMPLE_RATE


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) so far of this process and of its child processes.

    Apertium runs as a pipeline of child processes, which `time.process_time()` does not
    count (before session 18 the reported CPU RTF left them out). Children are counted
    live from /proc (every descendant of this process) plus, once reaped, from
    `os.times()`."""
    reaped = os.times()
    children = reaped.children_user + reaped.children_system
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):  # it may have exited since the listing
            children += process_cpu_seconds(pid)
    return time.process_time(), children


def _descendants(root: int) -> list[int]:
    """Every live process below `root`, from /proc."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [root]
    while frontier:
        below = kids.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def _owner(instances: list[Instance], sample: int) -> Instance | None:
    """The prompt a source sample belongs to (the last one starting before it)."""
    owners = [i for i in instances if i.first_sample <= sample]
    return owners[-1] if owners else None


def stages(instances: list[Instance]) -> dict[str, float | None]:
    """Median delay (s) from each prompt's start to its first committed source word, first
    committed translation and first output audio: where StartOffset goes."""
    def median(times: list[tuple[float | None, float]]) -> float | None:
        delays = [t - offset for t, offset in times if t is not None]
        return statistics.median(delays) if delays else None

    return {"first_source_commit": median([(i.source_commit, i.offset) for i in instances]),
            "first_target_commit": median([(i.target_commit, i.offset) for i in instances]),
            "first_audio": median([(i.chunks[0][0] if i.chunks else None, i.offset)
                                   for i in instances])}


def latency(instance: Instance) -> dict[str, Any]:
    """SimulEval speech-output latency of one instance (ms), computation-aware."""
    source_ms = instance.duration * 1000
    delays = [max(0.0, (t - instance.offset) * 1000) for t, _ in instance.chunks]
    durations = [1000 * c.pcm.size / c.sample_rate for _, c in instance.chunks]
    intervals, prev_end = [], None
    for d, u in zip(delays, durations, strict=True):
        start = d if prev_end is None else max(prev_end, d)
        intervals.append([start, u])
        prev_end = start + u
    ref_len = len(instance.reference.split())
    return {"delays": delays, "durations": durations, "intervals": intervals,
            "source_length": source_ms,
            "StartOffset": delays[0] if delays else source_ms,
            "EndOffset": (intervals[-1][0] + intervals[-1][1] - source_ms) if intervals else 0.0,
            "AL": lagging(delays, source_ms, ref_len, adaptive=False),
            "LAAL": lagging(delays, source_ms, ref_len, adaptive=True)}


def lagging(delays: list[float], source: float, ref_len: int, *, adaptive: bool) -> float:
    """AL / LAAL exactly as SimulEval computes them over output segments."""
    if not delays:
        return source
    if delays[0] > source:
        return delays[0]
    length = max(len(delays), ref_len) if adaptive else ref_len
    gamma = length / source
    total, tau = 0.0, 0
    for i, d in enumerate(delays):
        total += d - i / gamma
        tau = i + 1
        if d >= source:
            break
    return total / tau


def _common(a: list[str], b: list[str]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


Update = tuple[float, list[str], list[str], bool]
"""One caption update: time, newly committed words, the revisable words shown, final."""


def caption_lines(events: list[tuple[float, Event]], language: str | None
                  ) -> list[list[Update]]:
    """Per utterance, the caption updates of one translation (`language`) or of the
    source (None)."""
    lines: dict[int, list[Update]] = {}
    for now, event in events:
        if language is None and isinstance(event, SourceText):
            update: Update = (now, [w.text.strip() for w in event.committed],
                              [w.text.strip() for w in event.tentative], event.final)
        elif isinstance(event, TranslationText) and event.language == language:
            update = (now, event.committed_delta.split(), event.uncommitted.split(),
                      event.final)
        else:
            continue
        lines.setdefault(event.utterance, []).append(update)
    return list(lines.values())


def captions(lines: list[list[Update]]) -> tuple[float, float]:
    """Normalized erasure of the displayed text (committed + revisable), and the
    caption lead: the mean time by which each final word, with all before it, is shown
    for good before it is committed (what showing revisable text is worth)."""
    erased, final_words, leads = 0, 0, []
    for updates in lines:
        committed: list[str] = []
        shown: list[str] = []
        displays: list[tuple[float, list[str], int]] = []
        for now, delta, revisable, final in updates:
            committed += delta
            display = committed + ([] if final else revisable)
            erased += len(shown) - _common(shown, display)
            shown = display
            displays.append((now, display, len(committed)))
        final_words += len(committed)
        for j in range(len(committed)):
            # Shown for good: from the first update after which words 0..j never change.
            since = None
            for now, display, _ in displays:
                if display[: j + 1] == committed[: j + 1]:
                    since = now if since is None else since
                else:
                    since = None
            at = next(now for now, _, count in displays if count > j)
            if since is not None:
                leads.append(at - since)
    return erased / max(final_words, 1), statistics.fmean(leads) if leads else 0.0


def transcribe_outputs(
    listener: WhisperTranscriber, instances: list[Instance], language: str
) -> None:
    """ASR-BLEU's listener: Whisper base with its full 30 s window, whatever the
    pipeline's recognizer settings, so that the quality columns stay comparable."""
    for instance in instances:
        if instance.chunks:
            audio = np.concatenate([c.pcm for _, c in instance.chunks])
            audio16 = resample(audio, instance.chunks[0][1].sample_rate, SAMPLE_RATE)
            words = listener.transcribe(audio16, language=language).words
            instance.heard = join_words(list(words))


def simuleval_check(directory: Path) -> dict[str, float] | None:
    """SimulEval's own scores (means over instances, ms) from our instances.log."""
    if shutil.which("simuleval") is None:
        return None
    result = subprocess.run(
        ["simuleval", "--score-only", "--output", str(directory),
         "--latency-metrics", "StartOffset", "EndOffset", "AL", "LAAL"],
        capture_output=True, text=True, timeout=300)
    lines = [line.split() for line in result.stdout.strip().splitlines()]
    if result.returncode != 0 or len(lines) < 2:
        print(result.stderr[-2000:], file=sys.stderr)
        return None
    header, values = lines[-2], lines[-1][1:]  # the last row starts with its index
    return {k: float(v) for k, v in zip(header, values, strict=False) if _is_number(v)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def evaluate(resources: Resources, listener: WhisperTranscriber, pair: str, ids: list[str],
             options: PipelineConfig) -> dict[str, Any]:
    source, target = pair.split("-")
    instances, events, cpu, seconds = asyncio.run(run_pair(
        resources, source, target, ids, options))
    erasure, lead = captions(caption_lines(events, target))
    source_erasure, source_lead = captions(caption_lines(events, None))
    recognizer, tts = options.recognizer, options.tts_backend
    transcribe_outputs(listener, instances, target)
    lat = [latency(i) for i in instances]
    heard = [i.heard for i in instances]
    refs = [i.reference for i in instances]
    bleu = sacrebleu.corpus_bleu(heard, [refs]).score
    chrf = sacrebleu.corpus_chrf(heard, [refs]).score
    hangover = recognizer.vad.hangover_ms
    log_dir = RESULTS / (f"e2e-{pair}-h{hangover}" + (f"-{tts}" if tts else ""))
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "instances.log").open("w") as log:
        for index, (instance, item) in enumerate(zip(instances, lat, strict=True)):
            record = {k: item[k] for k in ("delays", "durations", "intervals", "source_length")}
            record.update(index=index, elapsed=item["delays"], reference=instance.reference,
                          prediction=heard[index], prediction_length=len(heard[index].split()))
            log.write(json.dumps(record) + "\n")
    (log_dir / "config.yaml").write_text(
        "source_type: speech\ntarget_type: speech\neval_latency_unit: word\n")
    row = {"pair": pair, "hangover_ms": hangover, "tts": tts or "routed",
           "prefetch_final": recognizer.prefetch_final,
           "cut_inside_clauses": options.cut_inside_clauses,
           "instances": len(instances),
           "with_output": sum(1 for i in instances if i.chunks),
           # For each instance without output audio: what was recognized of it (none:
           # a recognition miss; some: lost in translation or speech).
           "without_output": [{"index": k, "id": i.prompt.id,
                               "source_heard": join_words(i.source_words)}
                              for k, i in enumerate(instances) if not i.chunks],
           "audio_s": seconds, "cpu_rtf": sum(cpu) / seconds,
           "cpu_rtf_child_processes": cpu[1] / seconds,
           "StartOffset": statistics.median(x["StartOffset"] for x in lat) / 1000,
           "EndOffset": statistics.median(x["EndOffset"] for x in lat) / 1000,
           "AL": statistics.median(x["AL"] for x in lat) / 1000,
           "LAAL": statistics.median(x["LAAL"] for x in lat) / 1000,
           "mean_StartOffset": statistics.fmean(x["StartOffset"] for x in lat) / 1000,
           "mean_EndOffset": statistics.fmean(x["EndOffset"] for x in lat) / 1000,
           "mean_LAAL": statistics.fmean(x["LAAL"] for x in lat) / 1000,
           "preview": options.preview is not None,
           "ASR-BLEU": bleu, "chrF": chrf, "NE": erasure, "caption_lead": lead,
           "source_NE": source_erasure, "source_caption_lead": source_lead,
           "simuleval": simuleval_check(log_dir), "stages": stages(instances)}
    lags = [e for _, e in events if isinstance(e, Lag) and e.stage == f"target:{target}"]
    row["fast_voice_share"] = (sum("fast_voice" in e.degraded for e in lags) / len(lags)
                               if lags else 0.0)
    return row


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for pair in sorted({r["pair"] for r in rows}):
        points: list[tuple[float, float, int]] = sorted(
            (r["LAAL"], r["ASR-BLEU"], r["hangover_ms"]) for r in rows if r["pair"] == pair)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"Dragoman {pair}")
        for x, y, h in points:
            ax.annotate(f"{h} ms", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([ANCHOR["AL"]], [ANCHOR["ASR-BLEU"]], "k*", label=ANCHOR["system"])
    ax.set_xlabel("latency: median LAAL / AL (s), computation-aware for Dragoman")
    ax.set_ylabel("ASR-BLEU")
    ax.set_title("Latency vs quality (2 CPU cores)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["es-fr", "fr-es"])
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--hangover", type=int, nargs="+", default=[400],
                        help="VAD hangover values (ms) to sweep")
    parser.add_argument("--context-margin", type=float, default=WhisperConfig().context_margin_s,
                        help="Whisper encodes each buffer plus this many seconds")
    parser.add_argument("--full-window", action="store_true",
                        help="Whisper pads every decode to its 30 s window instead")
    parser.add_argument("--min-window", type=float, default=0.0,
                        help="with --context-margin: Whisper encodes at least this many seconds")
    parser.add_argument("--commit-context-ms", type=int, default=None,
                        help="RecognizerConfig.commit_context_ms (default: the config's)")
    parser.add_argument("--compute-budget", type=float, default=None,
                        help="RecognizerConfig.compute_budget (default: the config's)")
    parser.add_argument("--no-prefetch-final", dest="prefetch_final", action="store_false",
                        help="RecognizerConfig.prefetch_final = False: the final decode "
                        "runs after the VAD's hangover, not during it")
    parser.add_argument("--decode-overhead-ms", default=None,
                        help="RecognizerConfig.decode_overhead_ms, or 'none' for a flat cost "
                        "per decode (default: the config's; 30000 with --full-window)")
    parser.add_argument("--cut-inside-clauses", action="store_true",
                        help="PipelineConfig.cut_inside_clauses: with prosody, a phrase's "
                        "first audio leaves after its first words even inside a clause")
    parser.add_argument("--no-preview", dest="preview", action="store_false",
                        help="PipelineConfig.preview = None: captions show every revision "
                        "of the source and translation whole")
    parser.add_argument("--tts", default=None,
                        help="force a TTS backend (kokoro, espeak-ng; default: routed)")
    parser.add_argument("--output", type=Path, default=RESULTS / "e2e.json")
    args = parser.parse_args(argv)
    whisper = WhisperConfig(context_margin_s=None if args.full_window else args.context_margin,
                            min_window_s=args.min_window)
    resources = Resources(watermark_key=WatermarkKey.from_passphrase("bench"), whisper=whisper)
    asyncio.run(resources.start())
    listener = (resources.transcriber if whisper.context_margin_s is None
                else WhisperTranscriber(WhisperConfig(context_margin_s=None)))
    overhead = RecognizerConfig().decode_overhead_ms
    if args.decode_overhead_ms is not None:
        text = args.decode_overhead_ms.lower()
        overhead = None if text == "none" else int(text)
    elif args.full_window:
        overhead = 30_000
    rows = []
    for pair in args.pairs:
        source, target = pair.split("-")
        ids = pick(source, target, args.utterances)
        for hangover in args.hangover:
            recognizer = RecognizerConfig(vad=VadConfig(hangover_ms=hangover),
                                          prefetch_final=args.prefetch_final,
                                          decode_overhead_ms=overhead)
            if args.commit_context_ms is not None:
                recognizer = replace(recognizer, commit_context_ms=args.commit_context_ms)
            if args.compute_budget is not None:
                recognizer = replace(recognizer, compute_budget=args.compute_budget)
            options = PipelineConfig(recognizer=recognizer, tts_backend=args.tts,
                                     cut_inside_clauses=args.cut_inside_clauses)
            if not args.preview:
                options = replace(options, preview=None)
            rows.append(evaluate(resources, listener, pair, ids, options))
            print(f"{pair} hangover {hangover}: done", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| pair | VAD hangover | instances | StartOffset s | EndOffset s | AL s | LAAL s "
          "| ASR-BLEU | chrF | NE | CPU RTF (child processes) | fast voice "
          "| means: ours / SimulEval (Start / End / LAAL s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        check = r["simuleval"]
        sim = (f"{check['StartOffset'] / 1000:.2f} / {check['EndOffset'] / 1000:.2f} / "
               f"{check['LAAL'] / 1000:.2f}") if check and "LAAL" in check else "n/a"
        ours = f"{r['mean_StartOffset']:.2f} / {r['mean_EndOffset']:.2f} / {r['mean_LAAL']:.2f}"
        print(f"| {r['pair']} | {r['hangover_ms']} ms | {r['instances']} | {r['StartOffset']:.2f} "
              f"| {r['EndOffset']:.2f} | {r['AL']:.2f} | {r['LAAL']:.2f} | {r['ASR-BLEU']:.1f} "
              f"| {r['chrF']:.1f} | {r['NE']:.3f} | {r['cpu_rtf']:.2f} "
              f"({r['cpu_rtf_child_processes']:.2f}) "
              f"| {r['fast_voice_share']:.0%} | {ours} ; {sim} |")
    print("\n| pair | VAD hangover | translation captions: NE / lead s "
          "| source captions: NE / lead s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['pair']} | {r['hangover_ms']} ms | {r['NE']:.3f} / {r['caption_lead']:.2f} "
              f"| {r['source_NE']:.3f} / {r['source_caption_lead']:.2f} |")
    print("\n| pair | VAD hangover | first source commit s | first target commit s "
          "| first audio s |  (medians from each prompt's start)")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join("n/a" if v is None else f"{v:.2f}" for v in r["stages"].values())
        print(f"| {r['pair']} | {r['hangover_ms']} ms | {cells} |")
    for r in rows:
        for miss in r["without_output"]:
            heard = miss["source_heard"] or "nothing"
            print(f"{r['pair']}: no output audio for #{miss['index']} {miss['id']} "
                  f"(recognized: {heard})")
    print(f"\npeak resident memory: {peak:.0f} MB; anchor: {ANCHOR}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"rows": rows, "peak_rss_mb": peak, "settings": {
        k: v for k, v in vars(args).items() if k != "output"}, "anchor": ANCHOR}, indent=2))
    plot(rows, args.output.with_suffix(".png"))
    resources.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
