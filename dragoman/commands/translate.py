"""`dragoman translate FILE --from es --to fr -o out.wav`: speech to speech, offline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from dragoman.audio import load_audio, write_wav
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Error,
    Event,
    SourceText,
    TranslationText,
    event_to_dict,
    join_words,
    to_seconds,
)
from dragoman.languages import normalize_language
from dragoman.pacing import feed
from dragoman.pipeline import Pipeline, PipelineConfig, Resources
from dragoman.pipeline.output import DubTrack


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "translate", help="translate the speech in an audio file into other languages"
    )
    parser.add_argument("file", help="audio file in any common format")
    parser.add_argument(
        "--from", dest="source", default=None, help="source language (default: detect)"
    )
    parser.add_argument("--to", dest="targets", action="append", required=True,
                        help="target language (repeat for several)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="translated speech (WAV); with several targets OUT.<lang>.wav")
    parser.add_argument("--captions", type=Path, default=None,
                        help="WebVTT captions of the translation (.<lang>.vtt if several)")
    parser.add_argument("--realtime", action="store_true", help="pace the input at real time")
    parser.add_argument("--no-prosody", action="store_true", help="do not imitate the speaker")
    parser.add_argument("--voice", default=None, help="force a TTS voice")
    parser.add_argument("--tts", default=None, metavar="BACKEND",
                        help="force a TTS backend: kokoro or espeak-ng (the light one)")
    parser.add_argument("--json", action="store_true", help="write events as JSON lines")
    parser.set_defaults(run=run)


def _per_target(path: Path, language: str, several: bool) -> Path:
    return path.with_name(f"{path.stem}.{language}{path.suffix}") if several else path


def run(args: argparse.Namespace) -> int:
    audio = load_audio(args.file)
    targets = tuple(dict.fromkeys(normalize_language(t) for t in args.targets))
    config = PipelineConfig(
        source_language=args.source, target_languages=targets, prosody=not args.no_prosody,
        voice=args.voice, tts_backend=args.tts, session_id=str(Path(args.file).resolve()),
        # Faster than real time nobody listens live: the dub keeps the speaker's pace.
        catch_up_after_s=PipelineConfig().catch_up_after_s if args.realtime else None,
    )
    tracks = {lang: DubTrack(lang) for lang in targets}
    display = None if args.json else LiveCaptions(targets, audio.size / SAMPLE_RATE)
    began = time.monotonic()
    errors = asyncio.run(_translate(config, audio, args.realtime, tracks, display, args.json))
    elapsed = time.monotonic() - began
    several = len(targets) > 1
    for lang, track in tracks.items():
        write_wav(_per_target(args.output, lang, several), track.audio(audio.size / SAMPLE_RATE),
                  track.sample_rate)
        if args.captions is not None:
            _per_target(args.captions, lang, several).write_text(track.webvtt(), encoding="utf-8")
    summary = {"audio_seconds": round(audio.size / SAMPLE_RATE, 2),
               "wall_seconds": round(elapsed, 2), "errors": len(errors)}
    if args.json:
        print(json.dumps({"type": "Summary", **summary}))
    else:
        Console(stderr=True).print(" ".join(f"{k}={v}" for k, v in summary.items()), style="dim")
    return 1 if any(not e.retryable for e in errors) else 0


async def _translate(config: PipelineConfig, audio: Any, realtime: bool,
                     tracks: dict[str, DubTrack], display: LiveCaptions | None,
                     as_json: bool) -> list[Error]:
    resources = Resources()
    pipeline = Pipeline(config, resources)
    await pipeline.start()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def pump() -> None:
        try:
            await feed(pipeline.push_audio, audio, realtime=realtime)
        finally:
            await pipeline.end_input()

    feeder = asyncio.create_task(pump(), name="dragoman-feed")
    errors: list[Error] = []
    try:
        with display if display is not None else contextlib.nullcontext():
            async for event in pipeline:
                for track in tracks.values():
                    track.add(event)
                if isinstance(event, Error):
                    errors.append(event)
                if as_json:
                    record = event_to_dict(event)
                    record["emitted_at"] = round(loop.time() - start, 3)
                    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
                elif display is not None:
                    display.show(event)
        await feeder
    finally:
        feeder.cancel()
        await pipeline.aclose()
        resources.close()
    return errors


class LiveCaptions:
    """Live source and translation captions: committed text bold, revisable text dim."""

    def __init__(self, targets: tuple[str, ...], duration: float) -> None:
        self.console = Console()
        self.progress = Progress(TextColumn("audio"), BarColumn(),
                                 TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
                                 TimeElapsedColumn(), console=self.console)
        self.task = self.progress.add_task("audio", total=duration)
        self.source: list[str] = []
        self.source_tentative = ""
        self.committed = {lang: "" for lang in targets}
        self.uncommitted = {lang: "" for lang in targets}
        self.live = Live(self._render(), console=self.console, refresh_per_second=8,
                         transient=True)

    def __enter__(self) -> LiveCaptions:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def _render(self) -> Group:
        source = Text(" ".join(self.source) + " ", style="bold")
        source.append(self.source_tentative, style="dim italic")
        lines: list[Progress | Text] = [self.progress, source]
        for lang in self.committed:
            line = Text(f"[{lang}] ", style="cyan")
            line.append(self.committed[lang], style="bold")
            line.append(" " + self.uncommitted[lang], style="dim italic")
            lines.append(line)
        return Group(*lines)

    def show(self, event: Event) -> None:
        if isinstance(event, SourceText):
            self.source.append(join_words(event.committed))
            self.source_tentative = join_words(event.tentative)
            if event.final:
                text = " ".join(t for t in self.source if t)
                if text:
                    self.live.console.print(Text(f"[{event.language}] {text}", style="bold"))
                self.source, self.source_tentative = [], ""
            end = event.committed[-1].end if event.committed else 0
            self.progress.update(self.task, completed=max(to_seconds(end),
                                                           self.progress.tasks[0].completed))
        elif isinstance(event, TranslationText):
            self.committed[event.language] += event.committed_delta
            self.uncommitted[event.language] = event.uncommitted
            if event.final:
                text = self.committed[event.language].strip()
                if text:
                    self.live.console.print(Text(f"  -> [{event.language}] {text}", style="cyan"))
                self.committed[event.language] = self.uncommitted[event.language] = ""
        elif isinstance(event, Error):
            self.live.console.print(Text(f"error [{event.code}]: {event.message}", style="red"))
        elif isinstance(event, AudioChunk):
            return
        self.live.update(self._render())

