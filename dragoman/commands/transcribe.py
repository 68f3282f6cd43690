"""`dragoman transcribe FILE`: stream a file through VAD + streaming Whisper."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

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
from dragoman.audio import load_audio
from dragoman.events import SAMPLE_RATE, SourceText, event_to_dict, join_words, to_seconds


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "transcribe", help="stream an audio file through voice detection and streaming recognition"
    )
    parser.add_argument("file", help="audio file in any common format")
    parser.add_argument("--lang", default=None, help="source language (default: detect)")
    parser.add_argument("--realtime", action="store_true", help="pace the input at real time")
    parser.add_argument("--json", action="store_true", help="write events as JSON lines")
    parser.add_argument("--vad", choices=("webrtc", "silero"), default="webrtc")
    parser.add_argument("--model", default="whisper-base", help="ASR model (dragoman models list)")
    parser.add_argument(
        "--model-path", default=None, help="directory of CTranslate2 Whisper weights"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    audio = load_audio(args.file)
    transcriber = WhisperTranscriber(WhisperConfig(model=args.model, model_path=args.model_path))
    transcriber.start()
    config = RecognizerConfig(language=args.lang, vad=VadConfig(backend=args.vad))
    recognizer = StreamingRecognizer(transcriber, config)
    began = time.monotonic()
    if args.realtime:
        events: Iterable[TimedEvent] = asyncio.run(_collect(run_realtime(recognizer, audio)))
    else:
        events = run_offline(recognizer, audio)
    duration = audio.size / SAMPLE_RATE
    if args.json:
        latencies = _write_json(events)
    else:
        latencies = _show_live(events, duration)
    elapsed = time.monotonic() - began
    summary = {
        "audio_seconds": round(duration, 2),
        "compute_seconds": round(elapsed, 2),
        "real_time_factor": round(elapsed / duration, 3),
        "decodes": recognizer.decodes,
    }
    if args.realtime and latencies:
        summary["median_commit_latency_s"] = round(statistics.median(latencies), 2)
    if args.json:
        print(json.dumps({"type": "Summary", **summary}))
    else:
        Console(stderr=True).print(
            " ".join(f"{k}={v}" for k, v in summary.items()), style="dim"
        )
    return 0


async def _collect(stream: AsyncIterator[TimedEvent]) -> list[TimedEvent]:
    # Paced runs are collected first: displaying must not delay the pacing.
    return [item async for item in stream]


def _latencies(item: TimedEvent) -> list[float]:
    if not isinstance(item.event, SourceText):
        return []
    return [item.emitted_at - to_seconds(w.end) for w in item.event.committed]


def _write_json(events: Iterable[TimedEvent]) -> list[float]:
    latencies: list[float] = []
    for item in events:
        latencies += _latencies(item)
        record = event_to_dict(item.event)
        record["emitted_at"] = round(item.emitted_at, 3)
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return latencies


def _show_live(events: Iterable[TimedEvent], duration: float) -> list[float]:
    console = Console()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f} s"), TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("audio", total=duration)
    lines: list[str] = []
    current = Text()
    latencies: list[float] = []
    committed: list[str] = []
    with Live(Group(progress, current), console=console, refresh_per_second=8,
              transient=True) as live:
        for item in events:
            latencies += _latencies(item)
            progress.update(task, completed=min(item.emitted_at, duration))
            event = item.event
            if not isinstance(event, SourceText):
                continue
            committed.append(join_words(event.committed))
            if event.final:
                text = " ".join(t for t in committed if t)
                if text:
                    lines.append(text)
                    live.console.print(Text(f"[{event.language}] {text}"))
                committed = []
                current = Text()
            else:
                current = Text(" ".join(t for t in committed if t) + " ", style="bold")
                current.append(join_words(event.tentative), style="dim italic")
            live.update(Group(progress, current))
    if not lines:
        console.print("(no speech found)", style="dim")
    return latencies
