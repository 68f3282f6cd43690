"""`dragoman translate-text`: translate text, or replay it as a word stream."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from dragoman.translate import (
    CanvasConfig,
    CanvasEngine,
    available_pairs,
    backend_for_pair,
    create_backend,
    translate_text,
)
from dragoman.translate.base import TranslationBackend


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "translate-text", help="translate text directly (no pivot), or stream it word by word"
    )
    parser.add_argument("text", nargs="?", help="source text")
    parser.add_argument("--from", dest="source", help="source language (es, spa, es-MX, ...)")
    parser.add_argument("--to", dest="target", help="target language")
    parser.add_argument("--backend", choices=("auto", "ctranslate2", "apertium", "diffusion"),
                        default="auto", help="translation backend (auto: best installed)")
    parser.add_argument("--model", help="model name or directory (ctranslate2/diffusion)")
    parser.add_argument("--stream", action="store_true",
                        help="replay the text word by word; show committed vs revisable text")
    parser.add_argument("--words-per-second", type=float, default=2.5,
                        help="source speaking rate for --stream (default 2.5)")
    parser.add_argument("--tentative", type=int, default=2,
                        help="trailing source words left tentative in --stream (default 2)")
    parser.add_argument("--list", action="store_true", help="list the installed direct pairs")
    parser.set_defaults(run=run)


def _backend(args: argparse.Namespace) -> TranslationBackend:
    if args.backend == "auto":
        return backend_for_pair(args.source, args.target)
    options = {"model": args.model} if args.model else {}
    return create_backend(args.backend, **options)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(json.dumps([f"{s}-{t}: {name}" for (s, t), name in available_pairs().items()],
                         indent=1))
        return 0
    if not (args.source and args.target and args.text is not None):
        raise SystemExit("translate-text: give --from, --to and the text (or --list)")
    backend = _backend(args)
    backend.start()
    try:
        if not args.stream:
            print(translate_text(backend, args.text, args.source, args.target))
            return 0
        engine = CanvasEngine(backend, args.source, args.target, CanvasConfig())
        words = args.text.split()
        for i in range(1, len(words) + 1):
            split = max(0, i - args.tentative)
            started = time.monotonic()
            update = engine.update(" ".join(words[:split]), " ".join(words[split:i]))
            ms = (time.monotonic() - started) * 1000
            t = i / args.words_per_second
            print(f"{t:6.2f}s {ms:6.0f}ms | {engine.committed_text} [{update.uncommitted}]")
        final = engine.finish(" ".join(words))
        print(f"  final         | {final.committed_text}")
        return 0
    finally:
        backend.close()
