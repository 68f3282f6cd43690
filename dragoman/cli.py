"""The `dragoman` command line: one subcommand per module in `dragoman.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dragoman.errors import DragomanError
from dragoman.runtime import prefer_passive_openmp

# Subcommand modules, each exposing `register(subparsers)`; the registered parser
# carries a `run(args) -> int` default. Listed explicitly: no import side effects.
COMMANDS = (
    "dragoman.commands.translate",
    "dragoman.commands.transcribe",
    "dragoman.commands.models",
    "dragoman.commands.say",
    "dragoman.commands.languages",
    "dragoman.commands.watermark",
    "dragoman.commands.translate_text",
    "dragoman.commands.serve",
    "dragoman.commands.listen",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dragoman", description="Real-time speech-to-speech translation."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prefer_passive_openmp()  # before any subcommand loads a model
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
    except DragomanError as exc:
        sys.stderr.write(f"dragoman: error [{exc.code}]: {exc.message}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
