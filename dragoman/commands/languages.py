"""`dragoman languages`: what the system can hear, translate and speak, per language."""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "languages", help="every language and whether it can be heard, translated, spoken"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.set_defaults(run=run)


def translation_capability() -> Callable[[], Iterable[str]] | None:
    """`dragoman.translate`'s capability function, if it exposes one.

    Looked up by name so that the TTS stage never imports the translation stage;
    the translate column reads "?" when no such function exists yet.
    """
    try:
        module = importlib.import_module("dragoman.translate")
    except ImportError:
        return None
    for name in ("supported_languages", "translatable_languages", "languages"):
        function = getattr(module, name, None)
        if callable(function):
            return function  # type: ignore[no-any-return]
    return None


def run(args: argparse.Namespace) -> int:
    from dragoman.tts import Router, language_support

    rows = language_support(Router(), translation_capability())

    def mark(value: bool | None) -> str:
        return "?" if value is None else "yes" if value else "-"

    if args.json:
        print(json.dumps([
            {"code": r.code, "name": r.name, "hear": r.hear, "translate": r.translate,
             "speak": r.speak or None, "speak_backend": r.speak_backend or None,
             "end_to_end": r.end_to_end}
            for r in rows
        ], indent=2))
        return 0
    total = sum(r.end_to_end for r in rows)
    spoken = sum(bool(r.speak) for r in rows)
    heard = sum(r.hear for r in rows)
    if args.markdown:
        print("| code | language | hear | translate | speak | backend |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r.code} | {r.name} | {mark(r.hear)} | {mark(r.translate)} | "
                  f"{r.speak or '-'} | {r.speak_backend or '-'} |")
    else:
        table = Table("code", "language", "hear", "translate", "speak", "backend")
        for r in rows:
            table.add_row(r.code, r.name, mark(r.hear), mark(r.translate), r.speak or "-",
                          r.speak_backend or "-")
        Console().print(table)
    print(f"\n{len(rows)} languages: {heard} heard, {spoken} spoken, "
          f"{total} end to end (hear + translate + speak; '?' counted as possible)")
    return 0
