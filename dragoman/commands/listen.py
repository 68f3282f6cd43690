"""`dragoman listen --from de --to en`: live translation into your ear, or a conversation.

    dragoman listen --list-devices
    dragoman listen --from de --to en --input "USB mic" --output Headset
    dragoman listen --conversation --from de --to en --output Headset --other-output Speakers

`--to` is always your language and `--output` your ear; in a conversation the other
person speaks `--from` and hears its translation on `--other-output`. Keys (`m` mute,
`s` swap, space: pass the turn, `q` quit) are read from the terminal, or from stdin
when it is a pipe (scripts using `--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
from typing import Any

from rich.console import Console
from rich.live import Live

from dragoman.asr import WhisperConfig
from dragoman.languages import normalize_language
from dragoman.listen.devices import list_devices
from dragoman.listen.ear import PROFILES
from dragoman.listen.session import ListenConfig, ListenSession, Route
from dragoman.listen.transport import Connect, in_process, remote
from dragoman.listen.tui import Keys, ListenView, update_to_dict
from dragoman.pipeline import Resources


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "listen", help="live translation from a microphone into your ear (or a conversation)")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--from", dest="source", default=None,
                        help="language heard (listening: default detect; conversation: required)")
    parser.add_argument("--to", dest="target", default=None, help="your language")
    parser.add_argument("--input", default=None, help="input device: index or (part of a) name")
    parser.add_argument("--output", default=None, help="your output device (near the ear)")
    parser.add_argument("--profile", default="earpiece", choices=sorted(PROFILES),
                        help="how your output is shaped (default: earpiece)")
    parser.add_argument("--conversation", action="store_true",
                        help="two people, two languages: each hears the other translated")
    parser.add_argument("--other-output", default=None,
                        help="conversation: the other person's output device")
    parser.add_argument("--other-profile", default="speaker", choices=sorted(PROFILES))
    parser.add_argument("--turns", choices=("auto", "ptt"), default="auto",
                        help="conversation turn-taking: voice+language detection, or "
                             "push-to-talk (space passes the turn)")
    parser.add_argument("--input-rate", type=int, default=None, help="force the input rate (Hz)")
    parser.add_argument("--output-rate", type=int, default=None,
                        help="force the output rate (Hz)")
    parser.add_argument("--latency", type=float, default=0.1,
                        help="PortAudio device latency in seconds (default 0.1)")
    parser.add_argument("--server", default=None, help="translate on a Dragoman server (ws URL)")
    parser.add_argument("--token", default=None, help="server token (default $DRAGOMAN_TOKEN)")
    parser.add_argument("--no-prosody", action="store_true", help="do not imitate the speaker")
    parser.add_argument("--voice", default=None, help="force a TTS voice")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds")
    parser.add_argument("--json", action="store_true",
                        help="write updates as JSON lines (keys then come from stdin)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        for device in list_devices():
            print(device.describe())
        print("(< default input, > default output)")
        return 0
    if args.target is None:
        raise SystemExit("dragoman listen: --to is required (your language)")
    target = normalize_language(args.target)
    routes: tuple[Route, ...] = (Route(target, args.output, args.profile),)
    source = normalize_language(args.source) if args.source else None
    if args.conversation:
        if source is None:
            raise SystemExit("dragoman listen: --conversation needs --from (the other language)")
        routes += (Route(source, args.other_output, args.other_profile),)
    config = ListenConfig(
        source_language=None if args.conversation else source, routes=routes,
        turns=args.turns, input_device=args.input, input_rate=args.input_rate,
        output_rate=args.output_rate, device_latency=args.latency,
        prosody=not args.no_prosody, voice=args.voice,
        session_id=f"listen-{os.getpid()}")
    return asyncio.run(_listen(args, config))


async def _listen(args: argparse.Namespace, config: ListenConfig) -> int:
    err = Console(stderr=True)
    resources: Resources | None = None
    connect: Connect
    if args.server:
        connect = remote(args.server, args.token or os.environ.get("DRAGOMAN_TOKEN"))
    else:
        whisper = WhisperConfig(candidate_languages=config.routes_languages
                                if config.conversation else ())
        resources = Resources(whisper=whisper)
        if not args.json:
            err.print("loading models...", style="dim")
        connect = in_process(resources)
    session = ListenSession(config, connect)
    await session.start()
    quit_now = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    def on_key(key: str) -> None:
        if key in "qQ":
            quit_now.set()
        elif key in "mM":
            session.toggle_mute()
        elif key == " ":
            session.toggle_speaker()
        elif key in "sS":
            task = asyncio.get_running_loop().create_task(session.swap())
            pending.add(task)
            task.add_done_callback(pending.discard)

    languages = " <> ".join(config.routes_languages) if config.conversation else (
        f"{config.source_language or 'auto'} > {config.routes_languages[0]}")
    view = ListenView(f"dragoman listen: {languages}"
                      + (f" via {args.server}" if args.server else ""))
    live = None if args.json else Live(view.render(), console=Console(),
                                       refresh_per_second=8, transient=False)
    stopper = asyncio.create_task(_stop_after(args.duration, quit_now))

    async def consume() -> None:
        async for update in session.updates():
            if args.json:
                sys.stdout.write(json.dumps(update_to_dict(update), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                view.show(update)
                assert live is not None
                live.update(view.render())

    consumer = asyncio.create_task(consume())
    try:
        with Keys(on_key).attached(), live if live is not None else contextlib.nullcontext():
            await quit_now.wait()
    finally:
        stopper.cancel()
        await session.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(consumer, 5)
        if resources is not None:
            resources.close()
    summary: dict[str, Any] = dict(session.stats())
    if session.latencies:
        summary["mouth_to_ear_median_s"] = round(
            statistics.median(m for m, _ in session.latencies), 2)
        summary["end_to_ear_median_s"] = round(
            statistics.median(e for _, e in session.latencies), 2)
    if args.json:
        print(json.dumps({"type": "Summary", **summary}))
    else:
        err.print(" ".join(f"{k}={v}" for k, v in summary.items()), style="dim")
    return 0


async def _stop_after(seconds: float | None, done: asyncio.Event) -> None:
    if seconds is not None:
        await asyncio.sleep(seconds)
        done.set()
