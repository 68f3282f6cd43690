"""`dragoman watermark embed|detect`: mark a file, or look for the mark in one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dragoman.audio import load_audio, write_wav
from dragoman.errors import DragomanError
from dragoman.watermark import WatermarkKey, detect, embed


def _payload(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an integer: {text!r} (use 1234 or 0x1234ABCD)"
        ) from exc
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError(f"payload must fit in 32 bits, got {text}")
    return value


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watermark",
        help="embed or detect the keyed audio watermark",
        description="The key comes from $DRAGOMAN_WATERMARK_KEY or $DRAGOMAN_HOME/watermark.key.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    emb = actions.add_parser("embed", help="write a marked copy of an audio file (16-bit WAV)")
    emb.add_argument("input")
    emb.add_argument("output")
    emb.add_argument(
        "--payload", type=_payload, required=True, help="32-bit integer, e.g. 0x1234ABCD"
    )
    emb.add_argument("--rate", type=int, default=24_000, help="output sample rate (default 24000)")
    det = actions.add_parser("detect", help="look for the mark in an audio file")
    det.add_argument("file")
    det.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = WatermarkKey.load()
    if args.action == "embed":
        audio = load_audio(args.input, args.rate)
        marked = embed(audio, key, payload=args.payload, sample_rate=args.rate)
        write_wav(args.output, marked, args.rate)
        seconds = audio.size / args.rate
        print(f"marked {seconds:.2f} s with payload 0x{args.payload:08X} -> {args.output}")
        return 0
    if args.action != "detect":
        raise DragomanError(f"unknown watermark action {args.action!r}")
    rate = 16_000
    found = detect(load_audio(args.file, rate), key, sample_rate=rate)
    payload = None if found.payload is None else f"0x{found.payload:08X}"
    if args.json:
        print(json.dumps({
            "detected": found.detected,
            "p_value": found.p_value,
            "z_score": found.z_score,
            "payload": payload,
            "payload_reliability": found.payload_reliability,
            "marked_spans": [list(span) for span in found.marked_spans],
        }))
    else:
        print(f"detected: {'yes' if found.detected else 'no'}")
        print(f"p-value:  {found.p_value:.3g}  (z = {found.z_score:.2f})")
        if found.detected:
            trust = "" if found.payload_reliability >= 0.9 else "; too little mark to trust it"
            print(f"payload:  {payload}  (reliability {found.payload_reliability:.2f}{trust})")
            spans = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in found.marked_spans) or "-"
            print(f"marked:   {spans}")
    return 0 if found.detected else 1
