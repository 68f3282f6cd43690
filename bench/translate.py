"""Translation canvas benchmark: flicker, commit latency, fidelity, compute per update.

Replays real source word streams (Asterisk es/fr transcripts, word times spread
evenly over each recording's duration) through every available backend and
reports, per pair: normalized erasure (words deleted from displayed partials /
final words), commit latency in source time (when a target word is committed
minus the source time its proportional position was spoken), fidelity (chrF of the
committed streaming output vs the same backend's full-sentence translation, and
the ratio of chrF against the human reference where the prompt exists in the
target language), and compute per update.

NLLB-600M cost: no NLLB weights can be installed here, so a randomly initialized
model of the real NLLB-600M dimensions is built, converted to int8, and timed on
the canvas's own calls (score the block, continue from the kept prefix) with the
output length forced to the human reference length.

    python3 bench/translate.py [--prompts 60] [--no-nllb-cost]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sacrebleu.metrics import CHRF

from dragoman.audio import load_audio
from dragoman.corpus import parallel_ids, prompt, prompts
from dragoman.events import SAMPLE_RATE
from dragoman.translate import CanvasConfig, CanvasEngine, create_backend, translate_text
from dragoman.translate.base import TranslationBackend

RESULTS = Path(__file__).parent / "results" / "translate.json"
PAIRS = (("es", "fr"), ("fr", "es"), ("es", "pt"), ("es", "ca"), ("es", "it"))
TENTATIVE = 2


@dataclass(frozen=True, slots=True)
class PairResult:
    backend: str
    pair: str
    config: str
    utterances: int
    normalized_erasure: float
    commit_latency_median_s: float
    commit_latency_p90_s: float
    chrf_stream_vs_full: float
    chrf_ratio_vs_reference: float | None
    update_ms_median: float
    update_ms_p90: float


def _duration(path: Path) -> float:
    return len(load_audio(path)) / SAMPLE_RATE


def run_pair(backend: TranslationBackend, src: str, tgt: str, n: int,
             config: CanvasConfig, label: str) -> PairResult:
    chrf = CHRF()
    items = [p for p in prompts(src) if len(p.text.split()) >= 3][:n]
    refs = set(parallel_ids(src, tgt)) if tgt in ("en", "es", "fr") else set()
    erased = final_words = 0
    latencies: list[float] = []
    update_ms: list[float] = []
    streamed: list[str] = []
    full: list[str] = []
    hyp_ref: list[tuple[str, str, str]] = []
    for item in items:
        words = item.text.split()
        duration = _duration(item.path)
        ends = [duration * (i + 1) / len(words) for i in range(len(words))]
        engine = CanvasEngine(backend, src, tgt, config)
        commit_times: list[float] = []
        for i in range(1, len(words) + 1):
            split = max(0, i - TENTATIVE)
            started = time.perf_counter()
            update = engine.update(" ".join(words[:split]), " ".join(words[split:i]))
            update_ms.append((time.perf_counter() - started) * 1000)
            erased += update.erased_words
            commit_times += [ends[i - 1]] * len(update.committed_delta.split())
        started = time.perf_counter()
        last = engine.finish(item.text)
        update_ms.append((time.perf_counter() - started) * 1000)
        erased += last.erased_words
        commit_times += [duration] * len(last.committed_delta.split())
        out = last.committed_text
        final_words += len(out.split())
        for j, t in enumerate(commit_times):
            spoken = duration * (j + 1) / len(commit_times)
            latencies.append(t - spoken)
        streamed.append(out)
        reference_full = translate_text(backend, item.text, src, tgt)
        full.append(reference_full)
        if item.id in refs:
            hyp_ref.append((out, reference_full, prompt(tgt, item.id).text))
    ratio = None
    if hyp_ref:
        stream_score = chrf.corpus_score([h for h, _, _ in hyp_ref], [[r for _, _, r in hyp_ref]])
        full_score = chrf.corpus_score([f for _, f, _ in hyp_ref], [[r for _, _, r in hyp_ref]])
        ratio = stream_score.score / full_score.score if full_score.score else None
    latencies.sort()
    update_ms.sort()
    return PairResult(
        backend=backend.name, pair=f"{src}-{tgt}", config=label, utterances=len(items),
        normalized_erasure=erased / max(final_words, 1),
        commit_latency_median_s=statistics.median(latencies),
        commit_latency_p90_s=latencies[int(0.9 * (len(latencies) - 1))],
        chrf_stream_vs_full=chrf.corpus_score(streamed, [full]).score,
        chrf_ratio_vs_reference=ratio,
        update_ms_median=statistics.median(update_ms),
        update_ms_p90=update_ms[int(0.9 * (len(update_ms) - 1))],
    )


def nllb_600m_cost(n_prompts: int) -> dict[str, float]:
    """Per-update cost of the canvas calls on a random model of NLLB-600M's size."""
    from dragoman.translate.build import NLLB_600M, build_seq2seq
    from dragoman.translate.ct2_backend import CTranslate2Backend

    with tempfile.TemporaryDirectory(prefix="dragoman-nllb600m-") as tmp:
        started = time.perf_counter()
        directory = build_seq2seq(Path(tmp) / "nllb600m", "nllb", dims=NLLB_600M)
        build_s = time.perf_counter() - started
        backend = CTranslate2Backend(directory, threads=2)
        backend.start()
        translator = backend._translator
        score_ms: list[float] = []
        fill_ms: list[float] = []
        total_ms: list[float] = []
        for pid in parallel_ids("es", "fr")[:n_prompts]:
            words = prompt("es", pid).text.split()
            ref = backend.tokenize(prompt("fr", pid).text, "fr")
            for i in range(1, len(words) + 1):
                source = backend._source(" ".join(words[:i]), "es")
                length = max(1, round(len(ref) * i / len(words)))
                block_start = max(0, length - 10)
                committed, block = list(ref[:block_start]), list(ref[block_start:length])
                kept = block[: len(block) // 2]
                t0 = time.perf_counter()
                if block:
                    translator.score_batch([source], [["fra_Latn", *committed, *block]])
                t1 = time.perf_counter()
                prefix = ["fra_Latn", *committed, *kept]
                translator.translate_batch(
                    [source], target_prefix=[prefix], beam_size=1,
                    min_decoding_length=length + 1, max_decoding_length=length + 1,
                )
                t2 = time.perf_counter()
                score_ms.append((t1 - t0) * 1000)
                fill_ms.append((t2 - t1) * 1000)
                total_ms.append((t2 - t0) * 1000)
        backend.close()
    return {
        "build_and_convert_s": build_s,
        "updates": float(len(total_ms)),
        "score_ms_median": statistics.median(score_ms),
        "fill_ms_median": statistics.median(fill_ms),
        "update_ms_median": statistics.median(total_ms),
        "update_ms_p90": sorted(total_ms)[int(0.9 * (len(total_ms) - 1))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=60, help="utterances per pair")
    parser.add_argument("--no-nllb-cost", action="store_true", help="skip the NLLB-600M timing")
    parser.add_argument("--cost-prompts", type=int, default=8, help="utterances for NLLB cost")
    args = parser.parse_args(argv)

    results: list[PairResult] = []
    apertium = create_backend("apertium")
    apertium.start()
    # Sweep the commit rules on es-fr, then run every pair with the defaults.
    for k in (1, 2, 3):
        for lag in (4, 6, 10):
            config = CanvasConfig(stability_updates=k, max_uncommitted_words=lag)
            results.append(run_pair(apertium, "es", "fr", args.prompts, config,
                                    f"k={k} lag={lag}"))
    for src, tgt in PAIRS:
        if apertium.supports(src, tgt):
            results.append(run_pair(apertium, src, tgt, args.prompts, CanvasConfig(), "default"))
    apertium.close()

    header = (f"{'backend':<10} {'pair':<6} {'config':<12} {'NE':>5} {'lat50 s':>7} "
              f"{'lat90 s':>7} {'chrF/full':>9} {'ref ratio':>9} {'ms50':>6} {'ms90':>6}")
    print(header)
    for r in results:
        ratio = f"{r.chrf_ratio_vs_reference:.3f}" if r.chrf_ratio_vs_reference else "-"
        print(f"{r.backend:<10} {r.pair:<6} {r.config:<12} {r.normalized_erasure:5.3f} "
              f"{r.commit_latency_median_s:7.2f} {r.commit_latency_p90_s:7.2f} "
              f"{r.chrf_stream_vs_full:9.1f} {ratio:>9} {r.update_ms_median:6.1f} "
              f"{r.update_ms_p90:6.1f}")
    cost = None if args.no_nllb_cost else nllb_600m_cost(args.cost_prompts)
    if cost is not None:
        print("\nNLLB-600M-sized random model, int8, 2 threads (output length forced):")
        for key, value in cost.items():
            print(f"  {key:<22} {value:9.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "pairs": [asdict(r) for r in results],
        "nllb_600m_cost": cost,
        "tentative_words": TENTATIVE,
    }, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
