"""Watermark benchmark: TPR on 2 s windows under every attack, FPR, SNR, PESQ, speed,
localization. Prints a table and writes bench/results/watermark.json.

    python bench/watermark.py [--clips 40] [--windows 3] [--null 2000]
    python bench/watermark.py --quick [--attacks opus_16k,telephone]   # for iteration
    python bench/watermark.py --clips 500 --windows 1 --languages en,es,fr \
        --attacks none,opus_16k,telephone,white_noise_20db     # the 500-clip subset run
    OMP_NUM_THREADS=1 python bench/watermark.py --speed-only   # speeds alone, one thread

Marked clips: Asterisk prompts (real speech; en, es by default), 16 kHz, and
`--synthesized` clips of the product's own voices (Kokoro-82M and espeak-ng saying Asterisk
transcripts in en, es, fr), marked, attacked and detected at their native 24 kHz, in a
table of their own. The prompts make 397 clips of 4.5 s or more in en + es and 579 with fr,
so a run of 500 clips needs `--languages en,es,fr`. The false-positive set mixes unmarked
speech, speech marked with another key, attacked unmarked speech, unmarked synthesized
speech, noise, silence and music-like signals (`watermark_sets.py`), with the rate per kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from watermark_sets import NULL_SIGNALS, SYNTH_RATE, synthesized_clips

from dragoman.audio import load_audio, resample
from dragoman.corpus import prompts
from dragoman.events import FloatAudio
from dragoman.watermark import StreamingEmbedder, WatermarkKey, detect, embed
from dragoman.watermark.attacks import ATTACKS

RATE = 16_000
WINDOW = 2 * RATE
KEY = WatermarkKey.from_passphrase("bench")
OTHER_KEY = WatermarkKey.from_passphrase("bench-other")
TRUSTED = 0.9
"""A payload at this `payload_reliability` or above is one to trust (the CLI says so)."""


def speech_clips(languages: tuple[str, ...], count: int, seconds: float, skip: int = 0
                 ) -> list[FloatAudio]:
    """Consecutive prompts concatenated into clips of at least `seconds`."""
    clips: list[FloatAudio] = []
    for language in languages:
        parts: list[FloatAudio] = []
        for item in prompts(language)[skip:]:
            parts.append(load_audio(item.path, RATE))
            if sum(p.size for p in parts) >= seconds * RATE:
                clips.append(np.concatenate(parts))
                parts = []
                if len(clips) >= count * (languages.index(language) + 1) // len(languages):
                    break
    return clips[:count]


def active_fraction(audio: FloatAudio) -> float:
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    return float(np.mean(energy > energy.max() * 1e-4)) if energy.size else 0.0


def speech_window(audio: FloatAudio, rng: np.random.Generator, length: int = WINDOW
                  ) -> FloatAudio:
    """A random window of `length` samples at least half speech (random sample offset)."""
    best = audio[:length]
    for _ in range(20):
        start = int(rng.integers(0, max(1, audio.size - length)))
        window = audio[start : start + length]
        if active_fraction(window) >= 0.5:
            return window
        best = window
    return best


def payload_bit_errors(a: int, b: int | None) -> int:
    return 32 if b is None else bin(a ^ b).count("1")


def run_attacks(marked: list[tuple[int, FloatAudio]], donors: list[FloatAudio],
                windows: int, rng: np.random.Generator, names: list[str], rate: int = RATE,
                sources: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Every attack on every marked clip (at `rate`; donors at the same rate). With
    `sources` (one label per clip), TPR is also given per label."""
    rows: dict[str, dict[str, object]] = {}
    for name in names:
        attack = ATTACKS[name]
        hits = exact = bit_errors = trials = long_errors = trusted = trusted_wrong = 0
        z_scores: list[float] = []
        by_source: dict[str, list[bool]] = {}
        started = time.perf_counter()
        for index, (payload, clip) in enumerate(marked):
            donor = donors[index % len(donors)][: 2 * rate]
            attacked = attack.apply(clip, rate, rng, donor)
            for _ in range(windows):
                if name == "concat":  # 1 s unmarked + marked + 1 s unmarked, detected whole
                    piece = attacked
                else:
                    piece = speech_window(attacked, rng, 2 * rate)
                found = detect(piece, KEY, rate)
                z_scores.append(found.z_score)
                trials += 1
                hits += found.detected
                if sources is not None:
                    by_source.setdefault(sources[index], []).append(found.detected)
                exact += found.payload == payload
                bit_errors += payload_bit_errors(payload, found.payload) if found.detected else 0
            # The payload on one 4 s window; an undetected window counts as a guess (50 %).
            found = detect(speech_window(attacked, rng, 4 * rate), KEY, rate)
            long_errors += payload_bit_errors(payload, found.payload) if found.detected else 16
            if found.payload_reliability >= TRUSTED:  # what the CLI tells users to trust
                trusted += 1
                trusted_wrong += found.payload != payload
        rows[name] = {
            "group": attack.group,
            "description": attack.description,
            "tpr": hits / trials,
            "payload_exact": exact / trials,
            "payload_ber_detected": bit_errors / max(1, 32 * hits),
            "payload_ber_4s": long_errors / (32 * len(marked)),
            "payload_trusted_4s": trusted,
            "payload_trusted_wrong_4s": trusted_wrong,
            "z_median": float(np.median(z_scores)),
            "z_p1": float(np.percentile(z_scores, 1)),
            "trials": trials,
            "tpr_by_source": {k: float(np.mean(v)) for k, v in by_source.items()},
            "seconds": time.perf_counter() - started,
        }
        print(f"  {name:18s} TPR {hits / trials:.3f}  payload exact {exact / trials:.3f}  "
              f"z median {np.median(z_scores):.2f}", flush=True)
    return rows


NULL_MIX = (("speech", 10), ("other_key", 2), ("attacked_speech", 2), ("synthesized", 2),
            ("white_noise", 1), ("pink_noise", 1), ("silence", 1), ("dither", 1),
            ("music", 1), ("music_drums", 1))
"""Kinds of unmarked window in the false-positive set and their weights (of 22)."""
NULL_ATTACKS = ("mp3_64k", "opus_16k", "aac_64k", "telephone", "white_noise_20db", "echo",
                "resample_8k", "clipping")


def run_null(count: int, rng: np.random.Generator, synthesized: list[FloatAudio]
             ) -> dict[str, object]:
    """2 s windows with no mark of the bench key, each scored with it: real speech,
    speech marked with another key, attacked unmarked speech, unmarked synthesized speech
    (24 kHz), noise, silence and music-like signals (`NULL_MIX`)."""
    clips = speech_clips(("en", "es", "fr"), min(120, count), 6.0, skip=300)
    others = [embed(c, OTHER_KEY, int(rng.integers(0, 2**32)), RATE) for c in clips[:20]]
    kinds = [k for k, weight in NULL_MIX for _ in range(weight)
             if k != "synthesized" or synthesized]
    p_values: list[float] = []
    z_scores: list[float] = []
    per_kind: dict[str, list[float]] = {}
    for i in range(count):
        kind = kinds[i % len(kinds)]
        rate = RATE
        if kind == "speech":
            source = clips[i % len(clips)]
        elif kind == "other_key":
            source = others[i % len(others)]
        elif kind == "attacked_speech":
            attack = ATTACKS[NULL_ATTACKS[i % len(NULL_ATTACKS)]]
            source = attack.apply(clips[(i * 7) % len(clips)], RATE, rng, None)
        elif kind == "synthesized":
            source, rate = synthesized[i % len(synthesized)], SYNTH_RATE
        else:
            source = NULL_SIGNALS[kind](2.0, RATE, rng)
        found = detect(speech_window(source, rng, 2 * rate), KEY, rate)
        p_values.append(found.p_value)
        z_scores.append(found.z_score)
        per_kind.setdefault(kind, []).append(found.p_value)
    p = np.array(p_values)
    return {
        "clips": count,
        "fpr_at_1e-4": float(np.mean(p <= 1e-4)),
        "fraction_p_le_0.1": float(np.mean(p <= 0.1)),
        "fraction_p_le_0.01": float(np.mean(p <= 0.01)),
        "fraction_p_le_0.001": float(np.mean(p <= 0.001)),
        "max_z": float(np.max(z_scores)),
        "windows_per_kind": {k: len(v) for k, v in per_kind.items()},
        "false_positives_per_kind": {k: int(np.sum(np.array(v) <= 1e-4))
                                     for k, v in per_kind.items()},
        "fraction_p_le_0.01_per_kind": {k: round(float(np.mean(np.array(v) <= 0.01)), 4)
                                        for k, v in per_kind.items()},
    }


def quality(pairs: list[tuple[FloatAudio, FloatAudio]], rate: int = RATE) -> dict[str, float]:
    """SNR of the mark at `rate`; PESQ wideband on 16 kHz copies (its only wideband rate)."""
    from pesq import pesq

    snrs = [
        10 * np.log10(np.sum(np.square(a, dtype=np.float64)) / np.sum(np.square(m - a)))
        for a, m in pairs
    ]
    scores = [float(pesq(RATE, resample(a, rate, RATE), resample(m, rate, RATE), "wb"))
              for a, m in pairs]
    return {
        "snr_db_median": float(np.median(snrs)),
        "snr_db_min": float(np.min(snrs)),
        "pesq_wb_median": float(np.median(scores)),
        "pesq_wb_min": float(np.min(scores)),
    }


def speed(clips: list[FloatAudio]) -> dict[str, float]:
    embed_x: list[float] = []
    stream_x: list[float] = []
    detect_x: list[float] = []
    detect_null_x: list[float] = []
    for clip in clips:
        started = time.perf_counter()
        marked = embed(clip, KEY, 7, RATE)
        embed_x.append(clip.size / RATE / (time.perf_counter() - started))
        audio24 = np.repeat(clip, 3)[::2]  # a 24 kHz-sized stream, fed in 20 ms chunks
        streamer = StreamingEmbedder(KEY, 7, 24_000)
        started = time.perf_counter()
        for start in range(0, audio24.size, 480):
            streamer.feed(audio24[start : start + 480])
        streamer.finish()
        stream_x.append(audio24.size / 24_000 / (time.perf_counter() - started))
        window = marked[:WINDOW]
        started = time.perf_counter()
        detect(window, KEY, RATE)
        detect_x.append(window.size / RATE / (time.perf_counter() - started))
        started = time.perf_counter()  # unmarked: the full speed search runs
        detect(clip[:WINDOW], KEY, RATE)
        detect_null_x.append(window.size / RATE / (time.perf_counter() - started))
    return {
        "embed_x_realtime_median": statistics.median(embed_x),
        "stream_24k_20ms_chunks_x_realtime_median": statistics.median(stream_x),
        "detect_2s_x_realtime_median": statistics.median(detect_x),
        "detect_2s_unmarked_x_realtime_median": statistics.median(detect_null_x),
    }


def localization(marked: list[tuple[int, FloatAudio]], donors: list[FloatAudio]
                 ) -> dict[str, float]:
    """[3 s unmarked][marked clip][3 s unmarked]: accuracy on a 0.1 s grid of speech."""
    correct = total = 0
    for index, (_, clip) in enumerate(marked[:20]):
        donor = donors[(index + 1) % len(donors)]
        head, tail = donor[: 3 * RATE], donor[3 * RATE : 6 * RATE]
        mixed = np.concatenate([head, clip, tail])
        found = detect(mixed, KEY, RATE)
        begin, end = head.size / RATE, (head.size + clip.size) / RATE
        for t in np.arange(0.05, mixed.size / RATE, 0.1):
            piece = mixed[int((t - 0.05) * RATE) : int((t + 0.05) * RATE)]
            if piece.size == 0 or np.sqrt(np.mean(piece.astype(np.float64) ** 2)) < 3e-3:
                continue  # silence carries no mark either way
            truth = begin <= t < end
            said = any(a <= t < b for a, b in found.marked_spans)
            correct += truth == said
            total += 1
    return {"frame_accuracy": correct / max(1, total), "grid_points": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--null", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="12 clips, 2 windows, 300 null clips (iteration, not for the docs)")
    parser.add_argument("--attacks", default="", help="comma-separated subset of attacks")
    parser.add_argument("--languages", default="en,es",
                        help="prompt languages of the marked clips (en,es,fr for 500 clips)")
    parser.add_argument("--synthesized", type=int, default=24,
                        help="clips of synthesized speech (Kokoro and espeak-ng, en/es/fr, "
                             "24 kHz), marked and attacked in a table of their own; also "
                             "unmarked in the false-positive set")
    parser.add_argument("--speed-only", action="store_true",
                        help="print only the speed figures (20 clips); for A/B runs of two "
                             "checkouts: PYTHONPATH=<old checkout> python bench/watermark.py "
                             "--speed-only")
    args = parser.parse_args()
    if args.speed_only:
        import dragoman

        clips = speech_clips(tuple(args.languages.split(",")), 20, 4.5)
        print(json.dumps({"library": str(Path(dragoman.__file__).parent),
                          **{k: round(v, 1) for k, v in speed(clips).items()}}))
        return
    if args.quick:
        args.clips, args.windows, args.null, args.synthesized = 12, 2, 300, 6
    names = args.attacks.split(",") if args.attacks else list(ATTACKS)
    rng = np.random.default_rng(2024)
    clean = speech_clips(tuple(args.languages.split(",")), args.clips, 4.5)
    donors = speech_clips(("fr",), 20, 6.0)
    marked = [(int(rng.integers(0, 2**32)), c) for c in clean]
    marked = [(p, embed(c, KEY, p, RATE)) for p, c in marked]
    print(f"{len(marked)} marked clips, median {np.median([c.size for c in clean]) / RATE:.1f} s")
    results: dict[str, object] = {"clips": len(marked), "windows_per_clip": args.windows,
                                  "languages": args.languages}
    results["quality"] = quality(list(zip(clean, (m for _, m in marked), strict=True)))
    results["speed"] = speed(clean[:20])
    results["localization"] = localization(marked, donors)
    # The synthesized part and the null set draw from rngs of their own.
    synth_rng = np.random.default_rng(2026)
    voiced = synthesized_clips(args.synthesized, 4.5)
    synth_clean = [audio for _, audio in voiced]
    results["null"] = run_null(args.null, np.random.default_rng(2025), synth_clean)
    results["attacks"] = run_attacks(marked, donors, args.windows, rng, names)
    if voiced:
        synth_marked = [(int(synth_rng.integers(0, 2**32)), c) for c in synth_clean]
        synth_marked = [(p, embed(c, KEY, p, SYNTH_RATE)) for p, c in synth_marked]
        print(f"{len(synth_marked)} synthesized clips at {SYNTH_RATE} Hz")
        results["synthesized"] = {
            "clips": len(synth_marked),
            "voices": sorted({label for label, _ in voiced}),
            "quality": quality(list(zip(synth_clean, (m for _, m in synth_marked),
                                        strict=True)), SYNTH_RATE),
            "attacks": run_attacks(synth_marked,
                                   [resample(d, RATE, SYNTH_RATE) for d in donors],
                                   args.windows, synth_rng, names, SYNTH_RATE,
                                   [label.split("/")[0] for label, _ in voiced]),
        }
    print_table(results)
    if args.quick:
        name = "watermark_quick.json"
    elif args.attacks:
        name = f"watermark_{len(marked)}clips_subset.json"
    elif args.clips != parser.get_default("clips"):
        name = f"watermark_{len(marked)}clips.json"
    else:
        name = "watermark.json"
    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def print_attacks(attacks: dict[str, dict[str, Any]]) -> None:
    sources = sorted({k for r in attacks.values() for k in r["tpr_by_source"]})
    print("\n| attack | TPR (2 s windows) | z median (1st pct) | payload exact "
          "| payload BER when detected | payload BER, 4 s windows |"
          + "".join(f" TPR {s} |" for s in sources))
    print("|---|---|---|---|---|---|" + "---|" * len(sources))
    for group in ("main", "speed"):
        for name, row in attacks.items():
            if row["group"] == group:
                print(f"| {name}{' (reported apart)' if group == 'speed' else ''} | "
                      f"{row['tpr']:.3f} | {row['z_median']:.1f} ({row['z_p1']:.1f}) | "
                      f"{row['payload_exact']:.3f} | "
                      f"{row['payload_ber_detected']:.4f} | {row['payload_ber_4s']:.4f} |"
                      + "".join(f" {row['tpr_by_source'][s]:.3f} |" for s in sources))
    main_rows = [r for r in attacks.values() if r["group"] == "main"]
    mean_tpr: npt.NDArray[np.float64] = np.array([r["tpr"] for r in main_rows] or [0.0])
    print(f"\nmean TPR over main attacks {mean_tpr.mean():.3f}, worst {mean_tpr.min():.3f}")
    trusted = sum(int(r["payload_trusted_4s"]) for r in attacks.values())
    wrong = sum(int(r["payload_trusted_wrong_4s"]) for r in attacks.values())
    print(f"4 s payloads with reliability >= {TRUSTED}: {trusted}, of which wrong: {wrong}")


def print_section(name: str, values: object) -> None:
    assert isinstance(values, dict)
    print(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in values.items()))


def print_table(results: dict[str, object]) -> None:
    attacks = results["attacks"]
    assert isinstance(attacks, dict)
    print("\nAsterisk speech, 16 kHz:")
    print_attacks(attacks)
    for section in ("null", "quality", "speed", "localization"):
        print_section(section, results[section])
    synthesized = results.get("synthesized")
    if isinstance(synthesized, dict):
        print(f"\nSynthesized speech, {SYNTH_RATE} Hz ({synthesized['clips']} clips):")
        print_attacks(synthesized["attacks"])
        print_section("quality", synthesized["quality"])


if __name__ == "__main__":
    main()
