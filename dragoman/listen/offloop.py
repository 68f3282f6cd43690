"""Blocking audio-device calls, off the event loop, in daemon threads of their own.

PortAudio calls (open, close, re-enumerate) can block for a long time, or for ever,
inside the ALSA/PulseAudio backend. Run in `asyncio.to_thread`, such a call occupies a
worker of the loop's default executor, which model work (recognition, synthesis)
shares, and keeps the process from exiting: the executor's threads are joined at exit.
Here every call gets its own daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def device_call(fn: Callable[[], T], *, name: str = "dragoman-audio-device") -> T:
    """Await `fn()` run in a new daemon thread (cancelling the wait leaves it running)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
