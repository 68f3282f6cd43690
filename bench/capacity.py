"""How many real-time sessions the real pipeline sustains on this machine.

    python bench/capacity.py --sessions 1 2 3 --seconds 60

Starts `dragoman serve` (the real embedded pipeline: Whisper base, Apertium, Kokoro /
espeak-ng with prosody, watermark) in a child process, then for each N runs N
concurrent speaker sessions es->fr over loopback, each streaming different Spanish
Asterisk prompts (1.5 s apart) at real-time pace in 100 ms PCM16 frames for
`--seconds`, then `audio.end`. Measured per N:

* latency of committed events as the client sees them: arrival minus the sending of
  the audio frame holding the event's last source sample (source.commit,
  translation.commit, audio chunks), p50 / p90, and in the first vs the last third
  of the run (a pipeline that falls behind shows a growing latency);
* drain: from `audio.end` to `session.end` (the backlog left when the speaker stops);
* the server's own `lag` events: the largest `behind` and which degradations it used;
* server CPU (cores) over the run.

N sessions are *sustained* when the audio latency's last-third median is within 2 s of
its first-third median, the drain is under 5 s and source commits reach the client
within 6 s (p90). `translation.commit` latency counts from the end of the source span
the translation covers, which can include words recognized after the last commit, so
it can be shorter than `source.commit`'s. Prints a table, writes
bench/results/capacity.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from server import (
    ROOT,
    TOKEN,
    ack,
    classify,
    cpu_seconds,
    free_port,
    pcm_frames,
    percentile,
    send_paced,
    speaker,
    wait_healthy,
)

from dragoman.audio import load_audio
from dragoman.corpus import prompts
from dragoman.events import SAMPLE_RATE, FloatAudio
from dragoman.web.auth import hash_token

FRAME_S = 0.1
GAP_S = 1.5


@dataclass
class SessionLog:
    latencies: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {
        "source.commit": [], "translation.commit": [], "audio": []})
    """(seconds since the session's first frame, latency) per committed event."""
    lag_behind: dict[str, float] = field(default_factory=dict)
    degraded: set[str] = field(default_factory=set)
    drain_s: float = float("nan")
    errors: list[str] = field(default_factory=list)


def speech(offset: int, seconds: float) -> FloatAudio:
    """Spanish prompts from `offset` on, 1.5 s apart, at least `seconds` long."""
    gap = np.zeros(round(GAP_S * SAMPLE_RATE), np.float32)
    parts: list[FloatAudio] = []
    for item in prompts("es")[offset:]:
        parts += [load_audio(item.path), gap]
        if sum(p.size for p in parts) >= seconds * SAMPLE_RATE:
            break
    return np.concatenate(parts)[: round(seconds * SAMPLE_RATE)]


async def one_session(url: str, audio: FloatAudio) -> SessionLog:
    log = SessionLog()
    sent_at: list[float] = []
    async with speaker(url, open_timeout=60) as (ws, first):
        if first.get("type") != "session.started":
            log.errors.append(str(first.get("code")))
            return log
        ended_input = asyncio.get_running_loop().create_future()
        step = round(FRAME_S * SAMPLE_RATE)
        reader = asyncio.create_task(read(ws, step, sent_at, log, ended_input))
        await send_paced(ws, pcm_frames(audio, FRAME_S), FRAME_S, sent_at)
        ended_input.set_result(time.monotonic())
        await ws.send(json.dumps({"type": "audio.end"}))
        await reader
    return log


async def read(ws: Any, step: int, sent_at: list[float], log: SessionLog,
               ended_input: asyncio.Future[float]) -> None:
    acked = 0
    async for data in ws:
        now = time.monotonic()
        kind, seq, trigger, message = classify(data)
        if kind == "session.end":
            log.drain_s = now - await ended_input
            return
        if kind == "error" and message is not None:
            log.errors.append(message["code"])
        elif kind == "lag" and message is not None:
            stage = message["stage"]
            log.lag_behind[stage] = max(log.lag_behind.get(stage, 0.0), message["behind"])
            log.degraded.update(d.split(":")[0] for d in message.get("degraded", []))
        index = max(0, trigger - 1) // step
        if trigger >= 0 and index < len(sent_at):
            log.latencies[kind].append((sent_at[index] - sent_at[0], now - sent_at[index]))
        acked = await ack(ws, seq, acked)


def sustained(row: dict[str, Any]) -> bool:
    """Keeps up: speech latency does not grow over the run, the backlog at the end drains
    within 5 s, and recognition commits 90 % of its words within 6 s."""
    audio = row["audio"]
    return bool(not row["errors"] and audio["count"] > 0
                and audio["last_third_p50_s"] - audio["first_third_p50_s"] <= 2.0
                and row["drain_s_max"] < 5.0 and row["source.commit"]["p90_s"] <= 6.0)


def summarize(n: int, logs: list[SessionLog], seconds: float, cpu_s: float,
              wall_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"sessions": n, "seconds": seconds,
                           "server_cores": cpu_s / wall_s if wall_s else float("nan")}
    for kind in ("source.commit", "translation.commit", "audio"):
        pairs = [p for log in logs for p in log.latencies[kind]]
        values = [v for _, v in pairs]
        first = [v for t, v in pairs if t < seconds / 3]
        last = [v for t, v in pairs if t >= 2 * seconds / 3]
        row[kind] = {"count": len(values), "p50_s": percentile(values, 50),
                     "p90_s": percentile(values, 90),
                     "first_third_p50_s": percentile(first, 50),
                     "last_third_p50_s": percentile(last, 50)}
    row["drain_s_max"] = max((log.drain_s for log in logs), default=float("nan"))
    row["lag_behind_max_s"] = max((v for log in logs for v in log.lag_behind.values()),
                                  default=0.0)
    row["degraded"] = sorted({d for log in logs for d in log.degraded})
    row["errors"] = [e for log in logs for e in log.errors]
    row["sustained"] = sustained(row)
    return row


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    port = free_port()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.toml"
        keys.write_text(f'[[key]]\nname = "bench"\nsha256 = "{hash_token(TOKEN).hex()}"\n'
                        f"max_sessions = {max(args.sessions) * 2}\n")
        env = {**os.environ, "DRAGOMAN_WATERMARK_KEY": "capacity bench",
               "DRAGOMAN_OFFLINE": "1"}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dragoman.cli", "serve", "--port", str(port),
            "--keys", str(keys), cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL)
        try:
            await wait_healthy(port, within=180.0)
            url = f"ws://127.0.0.1:{port}/v1"
            await one_session(url, speech(0, 4.0))  # warm-up: first decodes, voice load
            for n in args.sessions:
                audios = [speech(40 * i + 10, args.seconds) for i in range(n)]
                cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
                logs = await asyncio.gather(*(one_session(url, a) for a in audios))
                row = summarize(n, list(logs), args.seconds,
                                cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0)
                rows.append(row)
                print(f"{n} sessions: audio p50 {row['audio']['p50_s']:.2f} s, "
                      f"drain {row['drain_s_max']:.1f} s, sustained {row['sustained']}",
                      flush=True)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 60)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| sessions | source.commit p50 / p90 (s) | translation.commit p50 / p90 (s) "
             "| audio p50 / p90 (s) | audio p50 first -> last third (s) | drain (s) "
             "| max lag (s) | degraded | server cores | sustained |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, t, a = r["source.commit"], r["translation.commit"], r["audio"]
        lines.append(
            f"| {r['sessions']} | {s['p50_s']:.2f} / {s['p90_s']:.2f} "
            f"| {t['p50_s']:.2f} / {t['p90_s']:.2f} | {a['p50_s']:.2f} / {a['p90_s']:.2f} "
            f"| {a['first_third_p50_s']:.2f} -> {a['last_third_p50_s']:.2f} "
            f"| {r['drain_s_max']:.1f} | {r['lag_behind_max_s']:.1f} "
            f"| {', '.join(r['degraded']) or '-'} | {r['server_cores']:.2f} "
            f"| {'yes' if r['sustained'] else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seconds", type=float, default=60.0, help="speech per session")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/capacity.json")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=2)
                           + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
