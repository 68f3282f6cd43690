"""`dragoman models list|path|pull`: inspect and fetch model weights."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from dragoman.models import ModelStore, PullStage


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "models", help="list, locate and download model weights"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every known model and where it resolves from")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    path = actions.add_parser("path", help="print where a model's weights are on disk")
    path.add_argument("name")
    pull = actions.add_parser("pull", help="download a model from the hub into the local store")
    pull.add_argument("name")
    pull.add_argument("--force", action="store_true", help="download even if already present")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = ModelStore()
    console = Console()
    if args.action == "list":
        rows = []
        for spec in store.catalogue.values():
            found = store.find(spec.name)
            rows.append({
                "name": spec.name,
                "kind": spec.kind,
                "source": found.source if found else None,
                "description": spec.description,
            })
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table("model", "kind", "installed from", "description")
        for row in rows:
            table.add_row(row["name"], row["kind"], row["source"] or "-", row["description"])
        console.print(table)
        return 0
    if args.action == "path":
        resolved = store.find(args.name)
        if resolved is None:
            store.resolve(args.name)  # raises the helpful error (or downloads, if allowed)
            resolved = store.find(args.name)
        assert resolved is not None
        for name, parts in sorted(resolved.files.items()):
            print(f"{name}\t" + "\t".join(str(p) for p in parts))
        return 0
    display = _PullDisplay(console)
    try:
        resolved = store.pull(args.name, force=args.force, progress=display)
    finally:
        display.stop()
    console.print(f"{resolved.name}: {resolved.source}, {resolved.size_bytes / 1e6:.1f} MB")
    return 0


class _PullDisplay:
    """Shows `pull`'s stages: downloads print a line (huggingface_hub draws per-file
    progress bars), the CTranslate2 conversion shows a spinner until it is done."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Any = None

    def __call__(self, stage: PullStage) -> None:
        self.stop()
        if stage.step == "convert":
            self._status = self.console.status(stage.message)
            self._status.start()
        else:
            self.console.print(stage.message)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
