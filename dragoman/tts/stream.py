"""`SynthesisStream`: the asyncio face of `Synthesizer`.

Same shape as the other stages: `push_text()` / `push_source()` / `say()`, `flush()`,
`end_input()`, `aclose()`, and `async for chunk in stream`. Synthesis runs in a worker
thread (`asyncio.to_thread`) one request at a time; chunks flow out through a bounded
queue, so a slow consumer holds synthesis back instead of growing memory.

Chunks leave as soon as each segment of a phrase is marked (the synthesizer's sink
puts them on the queue from the worker thread), not when the whole phrase is done:
the first audio of a phrase waits only for its first segment. `aclose()` also stops
a phrase in progress at its next segment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dragoman.errors import BackendError, DragomanError
from dragoman.events import AudioChunk, FloatAudio, Span, TranslationText
from dragoman.tts.synthesizer import Synthesizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _End:
    pass


class _Closed(Exception):
    """Raised inside the worker thread when the stream closed under a phrase."""


_POLL_S = 0.1


class SynthesisStream:
    """Async stream over a started or unstarted `Synthesizer`."""

    def __init__(self, synthesizer: Synthesizer, *, max_queue: int = 16) -> None:
        self._core = synthesizer
        self._requests: asyncio.Queue[Callable[[], list[AudioChunk]] | _End] = (
            asyncio.Queue(maxsize=max_queue)
        )
        self._out: asyncio.Queue[AudioChunk | DragomanError | _End] = (
            asyncio.Queue(maxsize=max_queue)
        )
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_task(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._core.set_sink(self._deliver)
            self._task = self._loop.create_task(self._run())

    def _deliver(self, chunks: list[AudioChunk]) -> None:
        """Sink for the synthesizer, on the worker thread: queue each chunk now,
        waiting while the queue is full (backpressure) unless the stream closes."""
        assert self._loop is not None
        for chunk in chunks:
            future = asyncio.run_coroutine_threadsafe(self._out.put(chunk), self._loop)
            while True:
                if self._closed:
                    future.cancel()
                    raise _Closed
                try:
                    future.result(timeout=_POLL_S)
                    break
                except concurrent.futures.TimeoutError:
                    continue

    async def _submit(self, work: Callable[[], list[AudioChunk]]) -> None:
        if self._ended:
            raise DragomanError("input already ended")
        self._ensure_task()
        await self._requests.put(work)

    async def push_text(self, update: TranslationText) -> None:
        def work() -> list[AudioChunk]:
            self._core.push_text(update)
            return self._core.events()

        await self._submit(work)

    async def push_source(self, samples: FloatAudio, start: int) -> None:
        def work() -> list[AudioChunk]:
            self._core.push_source(samples, start)
            return []

        await self._submit(work)

    async def say(self, text: str, *, source_span: Span | None = None,
                  prosody_from: FloatAudio | None = None) -> None:
        def work() -> list[AudioChunk]:
            self._core.say(text, source_span=source_span, prosody_from=prosody_from)
            return self._core.events()

        await self._submit(work)

    async def flush(self) -> None:
        def work() -> list[AudioChunk]:
            self._core.flush()
            return self._core.events()

        await self._submit(work)

    async def end_input(self) -> None:
        """No more input: speak what is waiting, then end the iteration."""
        if self._ended:
            return
        self._ensure_task()
        self._ended = True
        await self._requests.put(_End())

    async def _run(self) -> None:
        while True:
            request = await self._requests.get()
            try:
                if isinstance(request, _End):
                    chunks = await asyncio.to_thread(self._core.finish)
                else:
                    chunks = await asyncio.to_thread(request)
            except DragomanError as exc:
                await self._out.put(exc)
                chunks = []
            except _Closed:
                return
            except Exception as exc:  # a bug in a backend: end the stream, never hang it
                logger.exception("synthesis failed")
                await self._out.put(BackendError(f"synthesis failed: {exc!r}"))
                chunks = []
            for chunk in chunks:
                await self._out.put(chunk)
            if isinstance(request, _End):
                await self._out.put(_End())
                return

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AudioChunk]:
        self._ensure_task()
        while True:
            item = await self._out.get()
            if isinstance(item, _End):
                return
            if isinstance(item, DragomanError):
                raise item
            yield item

    async def aclose(self) -> None:
        """Stop now: cancel pending synthesis; a phrase in progress stops at its next
        segment (its worker thread finishes that segment first)."""
        self._ended = True
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=5.0)
            self._task = None
