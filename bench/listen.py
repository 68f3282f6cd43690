"""Mouth-to-ear latency of listening mode on this machine (real PortAudio path).

Spanish Asterisk prompts are played, at real speed, into a virtual microphone
(a private PulseAudio null sink, `dragoman.listen.virtual`); `dragoman listen`'s
session captures it through PortAudio, translates es->fr, and plays the speech on
a virtual earpiece. For each phrase, latency is measured from the capture
timestamps of the source audio (PortAudio's ADC time) to the moment the first
sample of its translation reaches the output converter (PortAudio's DAC time):

    mouth_to_ear: start of the source phrase -> its translation starts playing
    end_to_ear:   end of the source phrase   -> its translation starts playing

Modes: in-process (`Pipeline`), and through a local `dragoman serve` (SDK).

    python bench/listen.py [--prompts 4] [--no-server]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dragoman.corpus import prompt
from dragoman.events import TranslationText
from dragoman.listen import ListenConfig, ListenSession, Route, in_process, remote
from dragoman.listen.devices import refresh
from dragoman.listen.session import Caption, Played
from dragoman.listen.transport import Connect
from dragoman.listen.virtual import VirtualAudio, available, speech_wav
from dragoman.pipeline import Resources
from dragoman.tts.routing import Router

PROMPTS = ["vm-passchanged", "conf-noempty", "vm-undelete", "vm-deleted", "vm-saved",
           "conf-locked"]
RESULTS = Path(__file__).parent / "results" / "listen.json"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def measure(connect: Connect, audio: VirtualAudio, clips: list[Path]) -> dict[str, Any]:
    config = ListenConfig("es", (Route("fr", "dragoman_ear", "earpiece"),),
                          input_device="dragoman_mic", session_id="bench-listen")
    session = ListenSession(config, connect)
    began = time.monotonic()
    await session.start()
    started = time.monotonic() - began
    firsts: dict[int, Played] = {}  # first played chunk of each committed source phrase
    finals = 0
    all_translated = asyncio.Event()

    async def collect() -> None:
        nonlocal finals
        async for update in session.updates():
            if isinstance(update, Played) and update.mouth_to_ear is not None:
                firsts.setdefault(update.source_span.start, update)
            elif (isinstance(update, Caption) and isinstance(update.event, TranslationText)
                  and update.event.final):
                finals += 1
                if finals >= len(clips):
                    all_translated.set()

    collector = asyncio.create_task(collect())
    await asyncio.sleep(1.0)
    env = audio.full_env()
    for clip in clips:
        player = await asyncio.create_subprocess_exec(*audio.play_command(clip), env=env)
        await player.wait()
        await asyncio.sleep(2.0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_translated.wait(), 60)
    await asyncio.sleep(4.0)  # the last phrase's speech
    stats = session.stats()
    await session.stop()
    await asyncio.wait_for(collector, 10)
    return {"startup_s": round(started, 2), "phrases": len(clips), "translated": finals,
            "first_chunks": [{"mouth_to_ear": round(p.mouth_to_ear or 0, 3),
                              "end_to_ear": round(p.end_to_ear or 0, 3)}
                             for p in firsts.values()],
            "stats": stats}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    chunks = result["first_chunks"]
    out = dict(result)
    for name in ("mouth_to_ear", "end_to_ear"):
        values = sorted(c[name] for c in chunks)
        out[f"{name}_median_s"] = round(statistics.median(values), 2) if values else None
        out[f"{name}_max_s"] = round(values[-1], 2) if values else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--no-server", action="store_true")
    args = parser.parse_args()
    reason = available()
    if reason is not None:
        sys.stderr.write(f"cannot run: {reason}\n")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = VirtualAudio(root / "pulse")
        audio.start()
        os.environ.update(audio.env)
        refresh()
        clips = [speech_wav(prompt("es", pid).path, root / f"{pid}.wav")
                 for pid in PROMPTS[: args.prompts]]
        fr = Router().route("fr")  # the default voice routing, as `dragoman listen` uses it
        results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"),
                                   "cpu_count": os.cpu_count(),
                                   "voice_fr": f"{fr.backend}/{fr.voice.name}",
                                   "load_average": list(os.getloadavg())}
        try:
            resources = Resources()
            asyncio.run(resources.start())
            results["in_process"] = summarize(
                asyncio.run(measure(in_process(resources), audio, clips)))
            resources.close()
            if not args.no_server:
                port = _free_port()
                server = subprocess.Popen(
                    [sys.executable, "-m", "dragoman.cli", "serve", "--host", "127.0.0.1",
                     "--port", str(port), "--no-auth"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                try:
                    for _ in range(600):
                        with socket.socket() as probe:
                            if probe.connect_ex(("127.0.0.1", port)) == 0:
                                break
                        time.sleep(0.1)
                    results["server"] = summarize(asyncio.run(
                        measure(remote(f"ws://127.0.0.1:{port}/v1", None), audio, clips)))
                finally:
                    server.terminate()
                    server.wait(30)
        finally:
            audio.stop()
    results["load_average_after"] = list(os.getloadavg())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'mode':<12}{'phrases':>8}{'translated':>11}{'mouth->ear med':>16}"
          f"{'max':>7}{'end->ear med':>14}{'max':>7}{'startup':>9}")
    for mode in ("in_process", "server"):
        if mode in results:
            r = results[mode]
            print(f"{mode:<12}{r['phrases']:>8}{r['translated']:>11}"
                  f"{r['mouth_to_ear_median_s']!s:>16}{r['mouth_to_ear_max_s']!s:>7}"
                  f"{r['end_to_ear_median_s']!s:>14}{r['end_to_ear_max_s']!s:>7}"
                  f"{r['startup_s']:>9}")
    print(f"voice {results['voice_fr']}; load average before {results['load_average']}, "
          f"after {results['load_average_after']}; written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
