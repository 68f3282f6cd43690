"""Feeding a recorded signal into a stream the way a microphone would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dragoman.audio import frames
from dragoman.events import SAMPLE_RATE, FloatAudio


async def feed(
    push: Callable[[FloatAudio], Awaitable[None]],
    samples: FloatAudio,
    *,
    chunk_ms: int = 20,
    realtime: bool = True,
) -> None:
    """Push `samples` in `chunk_ms` chunks; with `realtime`, each once it was "recorded".

    Pacing is against the loop clock from the first chunk, so time spent waiting in
    `push` (backpressure) is caught up rather than accumulated.
    """
    loop = asyncio.get_running_loop()
    chunk = chunk_ms * SAMPLE_RATE // 1000
    start = loop.time()
    for index, block in enumerate(frames(samples, chunk)):
        if realtime:
            delay = start + (index + 1) * chunk / SAMPLE_RATE - loop.time()  # recorded, then sent
            if delay > 0:
                await asyncio.sleep(delay)
        await push(block)
