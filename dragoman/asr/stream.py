"""The asyncio face of the recognizer: push audio, iterate events.

Decodes run in a worker thread (`asyncio.to_thread`); the event loop only moves
buffers. Input is a bounded queue: `push_audio` waits when the recognizer is
behind (backpressure). When several chunks are waiting, the worker hands them to
the recognizer in one block, so a slow machine decodes less often instead of
drifting further behind real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np

from dragoman.asr.recognizer import StreamingRecognizer
from dragoman.audio import check_audio
from dragoman.errors import DragomanError
from dragoman.events import Error, FloatAudio, SourceEvent

logger = logging.getLogger(__name__)

_END = None


class RecognizeStream:
    """One recognition stream over one `StreamingRecognizer`."""

    def __init__(self, recognizer: StreamingRecognizer, *, max_pending_chunks: int = 256) -> None:
        self._recognizer = recognizer
        self._input: asyncio.Queue[FloatAudio | None] = asyncio.Queue(max_pending_chunks)
        self._output: asyncio.Queue[SourceEvent | None] = asyncio.Queue(1024)
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._stopped = False  # the worker is gone (finished, failed or cancelled)

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dragoman-asr")

    async def push_audio(self, samples: FloatAudio) -> None:
        """Queue mono float32 16 kHz audio; raises `AudioError` for bad samples."""
        if self._ended:
            raise DragomanError("push_audio after end_input")
        audio = check_audio(samples, allow_empty=True)
        self._ensure_started()
        if self._stopped:
            raise DragomanError("recognition has stopped (its Error event says why)")
        await self._input.put(audio)

    async def end_input(self) -> None:
        """No more audio: the recognizer flushes and the event iteration ends."""
        if not self._ended:
            self._ended = True
            self._ensure_started()
            await self._input.put(_END)

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop now: cancel pending work, waiting at most `grace` seconds."""
        self._ended = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, grace)

    def __aiter__(self) -> AsyncIterator[SourceEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SourceEvent]:
        self._ensure_started()
        while True:
            event = await self._output.get()
            if event is None:
                return
            yield event

    async def _run(self) -> None:
        try:
            await self._recognize()
        finally:
            # Nobody reads the input any more: free the queue so that a push waiting
            # on it returns (the next one raises) instead of waiting forever.
            self._stopped = True
            while not self._input.empty():
                self._input.get_nowait()

    async def _recognize(self) -> None:
        try:
            await asyncio.to_thread(self._recognizer.start)
            finished = False
            while not finished:
                blocks = [await self._input.get()]
                while not self._input.empty():
                    blocks.append(self._input.get_nowait())
                finished = blocks[-1] is _END
                audio = [b for b in blocks if b is not None]
                if audio:
                    joined = np.concatenate(audio) if len(audio) > 1 else audio[0]
                    await asyncio.to_thread(self._recognizer.feed, joined)
                    for event in self._recognizer.events():
                        await self._output.put(event)
            for event in await asyncio.to_thread(self._recognizer.finish):
                await self._output.put(event)
        except asyncio.CancelledError:
            with contextlib.suppress(asyncio.QueueFull):
                self._output.put_nowait(None)
            raise
        except DragomanError as exc:
            logger.warning("recognition failed: %s", exc.message)
            await self._output.put(exc.to_event())
        except Exception as exc:
            logger.error("recognition crashed", exc_info=True)
            await self._output.put(Error("internal", f"recognition failed: {exc}", retryable=True))
        await self._output.put(None)
