"""Browser-side latency and CPU of the web client, against the Python SDK.

    python bench/browser.py [--seconds 25]   # prints a table, writes bench/results/browser.json

Starts `dragoman serve` (real pipeline: Whisper base -> Apertium es->fr -> Kokoro/espeak ->
watermark) on a free loopback port, then:
1. browser: headless system Chromium (tests/js/browser/web_client.mjs) with the fake
   microphone looping real Spanish speech (Asterisk vm-passchanged, 2.9 s + 2 s silence,
   48 kHz). Latency per translated phrase = context time the first sample of its first
   chunk starts playing (player worklet, after the jitter buffer) - context time the
   source sample at the chunk's `source_span.end` left the capture worklet; both on one
   AudioContext clock.
   CPU: utime+stime of each Chromium process type over the measured window (/proc).
2. SDK: `dragoman.client` streams the same audio (16 kHz, 20 ms frames, real-time pace);
   latency = arrival of the phrase's first chunk - time the frame holding
   `source_span.end` was sent (the SDK has no player, so no jitter buffer).
A phrase is the run of chunks sharing one `source_span.end`: its later chunks play back
to back after the first, so their "latency" would add the phrase's own duration; they
are reported separately as "all chunks". The browser also logs when each phrase's first
chunk reached the page (same clock): "arrives in page" is comparable with the SDK row,
and the difference to "starts playing" is the page's playback path (jitter buffer,
speech of the previous phrase still playing).
The two runs are sequential, on the same server, each after one warm-up utterance.
Other engineers share the 2 cores: the JSON keeps the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dragoman.audio import load_audio
from dragoman.client import DragomanClient
from dragoman.events import SAMPLE_RATE, AudioChunk

ROOT = Path(__file__).resolve().parent.parent
SPEECH = Path("/usr/share/asterisk/sounds/es/vm-passchanged.g722")
TOKEN = "dk_bench_" + os.urandom(8).hex()
FRAME = 320


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRAGOMAN_API_KEYS": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "dragoman.cli", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dragoman serve exited: {log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.5)
    raise SystemExit("dragoman serve did not start")


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p90": None, "min": None, "max": None}
    ordered = sorted(values)
    return {"count": len(values), "median": round(statistics.median(values), 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
            "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}


def browser_run(port: int, wav: Path, seconds: float) -> dict[str, Any]:
    options = {"scenario": "translate", "page": f"http://127.0.0.1:{port}/",
               "url": f"ws://127.0.0.1:{port}/v1", "token": TOKEN, "source": "es",
               "target": "fr", "wav": str(wav), "waitWords": [r"mots? de passe"],
               "timeoutMs": 180_000, "extraMs": int(seconds * 1000)}
    done = subprocess.run(["node", "tests/js/browser/web_client.mjs", json.dumps(options)],
                          cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def sdk_run(port: int, audio: np.ndarray[Any, np.dtype[np.float32]],
                  seconds: float) -> tuple[list[float], list[float]]:
    """Latency of each phrase's first chunk, and of every chunk (seconds)."""
    loops = max(1, round(seconds * SAMPLE_RATE / audio.size)) + 1
    stream = np.tile(audio, loops)
    sent_at: list[float] = []  # monotonic time each frame was sent
    latencies: list[float] = []
    every_chunk: list[float] = []
    last_end = -1
    warmup_end = audio.size  # skip the first loop (warm-up), like the browser's first caption
    async with DragomanClient(f"ws://127.0.0.1:{port}/v1", TOKEN) as client:
        session = await client.start(source="es", targets=["fr"])

        async def send() -> None:
            began = time.monotonic()
            for index, offset in enumerate(range(0, stream.size, FRAME)):
                due = began + index * FRAME / SAMPLE_RATE
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                sent_at.append(time.monotonic())
                await session.send_audio(stream[offset:offset + FRAME])
            await session.end_input()

        sender = asyncio.create_task(send())
        async for event in session:
            if isinstance(event, AudioChunk) and event.language == "fr":
                end = event.source_span.end
                first, last_end = end != last_end, end
                frame = max(0, end - 1) // FRAME
                if end > warmup_end and frame < len(sent_at):
                    latency = time.monotonic() - sent_at[frame]
                    every_chunk.append(latency)
                    if first:
                        latencies.append(latency)
        await sender
    return latencies, every_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="measured window per client")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dragoman-bench-browser-"))
    wav = work / "es-48k.wav"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(SPEECH), "-af",
                    "apad=pad_dur=2", "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", str(wav)],
                   check=True)
    audio16 = load_audio(wav)  # 16 kHz float32
    port = free_port()
    proc = start_server(port, work / "server.log")
    try:
        load0 = os.getloadavg()
        browser = browser_run(port, wav, args.seconds)
        load1 = os.getloadavg()
        sdk, sdk_chunks = asyncio.run(sdk_run(port, audio16, args.seconds))
        load2 = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    # Browser: skip chunks of the first utterance (warm-up), like the SDK run.
    first_loop = audio16.size
    log = [e for e in browser.get("latencyLog", []) if e["sourceEnd"] > first_loop]
    browser_lat = [e["latency"] for e in log if e["first"]]
    browser_arrival = [e["arrival"] for e in log if e["first"] and e.get("arrival") is not None]
    results = {
        "browser": {"latency_s": summary(browser_lat), "arrival_s": summary(browser_arrival),
                    "all_chunks": summary([e["latency"] for e in log]),
            "cpu_cores": browser.get("cpu"), "playback": browser.get("playback"),
            "first_caption_s": round(browser.get("firstCaptionAfterMs", 0) / 1000, 1),
            "ok": browser.get("ok"), "error": browser.get("error"), "loadavg": [load0, load1],
            "phrases": [{k: round(e[k], 3) if isinstance(e[k], float) else e[k]
                         for k in ("sourceEnd", "arrival", "latency")} for e in log if e["first"]]},
        "sdk": {"latency_s": summary(sdk), "all_chunks": summary(sdk_chunks),
                "loadavg": [load1, load2]},
        "seconds": args.seconds,
    }
    out = ROOT / "bench" / "results" / "browser.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print("| client | measured | count | median s | p90 s | min s | max s |")
    print("|---|---|---|---|---|---|---|")
    rows = (("browser", "starts playing", "phrase starts", "latency_s"),
            ("browser", "arrives in page", "phrase starts", "arrival_s"),
            ("browser", "starts playing", "all chunks", "all_chunks"),
            ("sdk", "arrives", "phrase starts", "latency_s"),
            ("sdk", "arrives", "all chunks", "all_chunks"))
    for key, event, what, field in rows:
        row = results[key][field]
        name = f"{'web client in Chromium' if key == 'browser' else 'Python SDK'} ({event})"
        print(f"| {name} | {what} | {row['count']} | {row['median']} | {row['p90']} | "
              f"{row['min']} | {row['max']} |")
    print(f"load average: {load0} -> {load1} -> {load2}")
    print("browser CPU (cores, by process type):", json.dumps(browser.get("cpu")))
    print(f"written {out}")


if __name__ == "__main__":
    main()
