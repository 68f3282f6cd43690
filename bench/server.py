"""Server load test: N concurrent sessions over loopback, added latency and memory.

    python bench/server.py --sessions 200 --soak-seconds 180

Runs `dragoman serve --stand-in` in a child process: the real server, with
`StandInPipeline` (no ML, the real event shapes, events produced the instant the audio
that triggers them arrives). Each client session streams PCM16 at real-time pace in
100 ms frames for `--session-seconds`, ends, and a new one takes its place, so session
setup and teardown are part of the soak. All clients share one asyncio loop in this
process.

Added latency = arrival of a committed event at the client minus the moment the client
sent the audio frame that holds the event's last source sample (`source.commit`: the
last committed word's end; `translation.commit` and audio chunks: `source_span.end`).
The stand-in adds no processing time, so this is what transport, server and client
event loops add, both ways. Server memory is the child's RSS from /proc, sampled every
`--sample-seconds`; "growth" compares the mean of the last quarter of the soak with
the mean of the second quarter (after warm-up), and the slope is a least-squares fit
over the second half.
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dragoman.events import SAMPLE_RATE, FloatAudio
from dragoman.web import protocol
from dragoman.web.auth import hash_token

TOKEN = "dk_bench_server_token"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {
        "source.commit": [], "translation.commit": [], "audio": []})
    sessions_completed: int = 0
    frames_sent: int = 0
    messages_received: int = 0
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def gauges(port: int) -> dict[str, float]:
    """Open sessions and live event-loop tasks, from the server's /metrics."""
    text = (await http_get(port, "/metrics")).decode(errors="replace")
    values = {"sessions": 0.0, "tasks": float("nan")}
    for line in text.splitlines():
        if line.startswith("dragoman_sessions{"):
            values["sessions"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("dragoman_event_loop_tasks "):
            values["tasks"] = float(line.rsplit(" ", 1)[1])
    return values


async def wait_healthy(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if b" 200 " in (await http_get(port, "/healthz")).split(b"\r\n", 1)[0]:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not come up")


def pcm_frames(audio: FloatAudio, frame_s: float) -> list[bytes]:
    step = round(frame_s * SAMPLE_RATE)
    return [protocol.encode_pcm16(audio[i:i + step]) for i in range(0, audio.size, step)]


def make_frames(seconds: float, frame_s: float) -> list[bytes]:
    """One session's audio as PCM16 frames (built once, shared by every session)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return pcm_frames((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), frame_s)


@asynccontextmanager
async def speaker(url: str, open_timeout: float = 30.0
                  ) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A connected es->fr speaker session and the server's first reply."""
    async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                       max_queue=None, open_timeout=open_timeout) as ws:
        await ws.send(json.dumps({"type": "session.start", "version": 1, "source": "es",
                                  "targets": ["fr"]}))
        yield ws, json.loads(await ws.recv())


async def send_paced(ws: ClientConnection, frames: list[bytes], frame_s: float,
                     sent_at: list[float]) -> None:
    """Send `frames` at real-time pace, noting when each left."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, frame in enumerate(frames):
        delay = began + index * frame_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at.append(time.monotonic())
        await ws.send(frame)


async def one_session(url: str, frames: list[bytes], frame_s: float, stats: Stats,
                      measure: bool) -> None:
    step = round(frame_s * SAMPLE_RATE)
    sent_at: list[float] = []
    async with speaker(url) as (ws, first):
        if first.get("type") != "session.started":
            stats.errors.append(str(first.get("code")))
            return
        reader = asyncio.create_task(read(ws, step, sent_at, stats, measure))
        await send_paced(ws, frames, frame_s, sent_at)
        stats.frames_sent += len(frames)
        await ws.send(json.dumps({"type": "audio.end"}))
        await reader
    stats.sessions_completed += 1


def classify(data: str | bytes) -> tuple[str, int, int, dict[str, Any] | None]:
    """(kind, seq, trigger, message) of a server message: `trigger` is the source sample
    a committed event waited for (-1 for others); `message` is None for audio."""
    if isinstance(data, bytes):  # the header only: seq and source span end
        fields = protocol.AUDIO_HEADER.unpack_from(data)
        return "audio", fields[5], fields[-1], None
    message = json.loads(data)
    kind, trigger = message["type"], -1
    if kind == "source.commit" and message["committed"]:
        trigger = round(message["committed"][-1]["end"] * SAMPLE_RATE)
    elif kind == "translation.commit" and message["committed"]:
        trigger = round(message["source_span"]["end"] * SAMPLE_RATE)
    return kind, message.get("seq", 0), trigger, message


async def ack(ws: ClientConnection, seq: int, acked: int) -> int:
    """Like the SDK, ack every 32 messages so the server can trim its resume buffer."""
    if seq - acked < 32:
        return acked
    with contextlib.suppress(ConnectionClosed):  # the server may have ended the session
        await ws.send(json.dumps({"type": "ack", "seq": seq}))
    return seq


async def read(ws: ClientConnection, step: int, sent_at: list[float], stats: Stats,
               measure: bool) -> None:
    acked = 0
    async for data in ws:
        now = time.monotonic()
        stats.messages_received += 1
        kind, seq, trigger, message = classify(data)
        if kind == "session.end":
            return
        if kind == "error" and message is not None:
            stats.errors.append(message["code"])
        index = max(0, trigger - 1) // step
        if trigger >= 0 and measure and index < len(sent_at):
            stats.latencies[kind].append(now - sent_at[index])
        acked = await ack(ws, seq, acked)


async def client_slot(url: str, args: argparse.Namespace, frames: list[bytes], stats: Stats,
                      stop_at: float, offset: float, measure_after: float) -> None:
    await asyncio.sleep(offset)
    while time.monotonic() < stop_at:
        try:
            await one_session(url, frames, args.frame_ms / 1000, stats,
                              measure=time.monotonic() >= measure_after)
        except Exception as exc:  # noqa: BLE001 - a bench counts failures, it does not stop
            stats.errors.append(type(exc).__name__)
            await asyncio.sleep(1)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.toml"
        keys.write_text(f'[[key]]\nname = "bench"\nsha256 = "{hash_token(TOKEN).hex()}"\n'
                        f"max_sessions = {args.sessions * 2}\n")
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dragoman.cli", "serve", "--stand-in", "--port", str(port),
            "--keys", str(keys), cwd=ROOT, env={**os.environ, "PYTHONASYNCIODEBUG": ""},
            stdout=subprocess.DEVNULL)
        try:
            await wait_healthy(port)
            idle_before = await gauges(port)
            stats = Stats()
            memory: list[tuple[float, float]] = []
            began = time.monotonic()
            stop_at = began + args.soak_seconds
            measure_after = began + min(args.warmup_seconds, args.soak_seconds / 4)
            url = f"ws://127.0.0.1:{port}/v1"
            frames = make_frames(args.session_seconds, args.frame_ms / 1000)
            slots = [asyncio.create_task(client_slot(
                url, args, frames, stats, stop_at, args.ramp_seconds * i / args.sessions,
                measure_after)) for i in range(args.sessions)]
            while time.monotonic() < stop_at:
                memory.append((time.monotonic() - began, rss_mb(server.pid)))
                await asyncio.sleep(args.sample_seconds)
            await asyncio.gather(*slots)
            memory.append((time.monotonic() - began, rss_mb(server.pid)))
            await asyncio.sleep(3)  # the last sessions' teardown
            idle = {"before": idle_before, "after": await gauges(port)}
            cpu = {"server_cpu_s": cpu_seconds(server.pid),
                   "client_cpu_s": cpu_seconds(os.getpid()),
                   "wall_s": time.monotonic() - began}
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
    return {**summarize(args, stats, memory), **cpu, "idle_server": idle}


def summarize(args: argparse.Namespace, stats: Stats,
              memory: list[tuple[float, float]]) -> dict[str, Any]:
    everything = [v for values in stats.latencies.values() for v in values]
    latency = {kind: {"count": len(v), "p50_ms": 1000 * percentile(v, 50),
                      "p95_ms": 1000 * percentile(v, 95), "p99_ms": 1000 * percentile(v, 99),
                      "max_ms": 1000 * max(v, default=float("nan"))}
               for kind, v in {**stats.latencies, "all": everything}.items()}
    quarter = max(1, len(memory) // 4)
    warm = [m for _, m in memory[quarter:2 * quarter]] or [memory[0][1]]
    last = [m for _, m in memory[-quarter:]]
    half = memory[len(memory) // 2:]
    slope = float(np.polyfit([t for t, _ in half], [m for _, m in half], 1)[0]) * 60 \
        if len(half) >= 2 else float("nan")
    return {
        "sessions": args.sessions, "soak_seconds": args.soak_seconds,
        "session_seconds": args.session_seconds, "frame_ms": args.frame_ms,
        "sessions_completed": stats.sessions_completed, "frames_sent": stats.frames_sent,
        "messages_received": stats.messages_received,
        "errors": dict(sorted({c: stats.errors.count(c) for c in set(stats.errors)}.items())),
        "latency": latency,
        "memory_mb": {"start": memory[0][1], "warm_mean": statistics.mean(warm),
                      "end_mean": statistics.mean(last), "max": max(m for _, m in memory),
                      "growth_mb": statistics.mean(last) - statistics.mean(warm),
                      "slope_mb_per_min": slope},
        "memory_samples": [(round(t, 1), round(m, 1)) for t, m in memory],
        "target": {"p99_ms": 50.0, "memory": "flat over a 1-hour soak"},
        "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(),
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| events | count | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |",
             "|---|---|---|---|---|---|"]
    for kind, row in result["latency"].items():
        lines.append(f"| {kind} | {row['count']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} "
                     f"| {row['p99_ms']:.1f} | {row['max_ms']:.1f} |")
    mem = result["memory_mb"]
    lines += ["", "| server memory | MB |", "|---|---|",
              f"| RSS at start | {mem['start']:.1f} |",
              f"| mean RSS, 2nd quarter (warm) | {mem['warm_mean']:.1f} |",
              f"| mean RSS, last quarter | {mem['end_mean']:.1f} |",
              f"| max RSS | {mem['max']:.1f} |",
              f"| growth, last vs 2nd quarter | {mem['growth_mb']:+.1f} |",
              f"| slope over the 2nd half (MB/min) | {mem['slope_mb_per_min']:+.2f} |"]
    idle = result.get("idle_server")
    if idle:
        lines += ["", "| idle server (/metrics) | before | after the soak |", "|---|---|---|",
                  f"| open sessions | {idle['before']['sessions']:.0f} "
                  f"| {idle['after']['sessions']:.0f} |",
                  f"| event-loop tasks | {idle['before']['tasks']:.0f} "
                  f"| {idle['after']['tasks']:.0f} |"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--soak-seconds", type=float, default=180.0,
                        help="length of the run (the target is 3600)")
    parser.add_argument("--session-seconds", type=float, default=30.0,
                        help="audio per client session before it ends and a new one starts")
    parser.add_argument("--frame-ms", type=int, default=100)
    parser.add_argument("--ramp-seconds", type=float, default=10.0,
                        help="spread the session starts over this long")
    parser.add_argument("--warmup-seconds", type=float, default=20.0,
                        help="latencies before this are not counted")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/server.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(f"{result['sessions']} sessions x {result['soak_seconds']:.0f} s soak, "
          f"{result['sessions_completed']} sessions completed, {result['frames_sent']} frames "
          f"sent, {result['messages_received']} messages received, errors: {result['errors']}")
    print(table(result))
    print(f"CPU: server {result['server_cpu_s'] / result['wall_s']:.2f} cores, client "
          f"{result['client_cpu_s'] / result['wall_s']:.2f} cores, load average at the end "
          f"{result['load_average_end'][0]:.1f} on {result['cpu_count']} cores")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
