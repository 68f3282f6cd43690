"""Streaming Python SDK for a Dragoman server (protocol v1, docs/protocol.md).

    async with DragomanClient("ws://host:8765/v1", token) as client:
        session = await client.start(source="es", targets=["fr"])
        await session.send_audio(float32_mono_16k)   # or PCM16 bytes
        await session.end_input()
        async for event in session:                  # dragoman.events objects
            ...

It mirrors the in-process `dragoman.pipeline.Pipeline` (`send_audio` ~ `push_audio`,
`end_input`, `add_target`/`remove_target`, `async for`, `aclose`) and yields the same
typed events: `SpeechStarted`, `SpeechEnded`, `SourceText`, `TranslationText`,
`AudioChunk` (24 kHz float32, watermarked by the server), `Lag`, `Error`. A dropped
connection is resumed automatically: the client reconnects within the server's grace
period, receives every committed event it missed and re-sends the audio the server had
not received. `translate_file()` is a synchronous convenience for whole files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dragoman.errors import DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Error,
    Event,
    FloatAudio,
    SourceText,
    TranslationText,
    join_words,
)
from dragoman.web import protocol

logger = logging.getLogger(__name__)


class ClientError(DragomanError):
    """The server refused or ended a session; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.code = code


@dataclass(frozen=True, slots=True)
class Delivered:
    """An event with its envelope: sequence number and speaker (rooms)."""

    event: Event
    seq: int
    speaker: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What `session.started` said."""

    session_id: str
    role: str
    room: str | None
    source: str
    targets: tuple[str, ...]
    batch: bool
    resume_grace: float
    raw: dict[str, Any] = field(repr=False)


_END = None


class ClientSession:
    """One session on its own connection (see the module doc). Not thread-safe."""

    def __init__(self, client: DragomanClient, start: dict[str, Any]) -> None:
        self._client = client
        self._start = start
        self._ws: ClientConnection | None = None
        self.info: SessionInfo | None = None
        self.summary: dict[str, Any] | None = None
        self.end_reason: str | None = None
        self.error: Error | None = None
        """The fatal error that ended the session, if one did."""
        self.reconnects = 0
        self._resume_token = ""
        self._last_seq = 0
        self._acked = 0
        self._queue: asyncio.Queue[Delivered | None] = asyncio.Queue(client.queue_size)
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._sent = 0  # samples sent
        self._resend: deque[tuple[int, bytes]] = deque()  # (first sample, pcm16)
        self._resend_bytes = 0
        self._input_ended = False
        self._closed = False

    @property
    def session_id(self) -> str:
        return self.info.session_id if self.info else ""

    # -- opening and resuming -------------------------------------------------------

    async def _open(self) -> None:
        ws = await self._client._connect()
        await ws.send(json.dumps(self._start))
        first = await self._first_message(ws)
        if first.get("type") != "session.started":
            await ws.close()
            raise ClientError(str(first.get("code", "bad_request")),
                              str(first.get("message", first)),
                              retryable=bool(first.get("retryable", False)))
        self._ws = ws
        self._accept(first)
        self._ready.set()
        self._reader = asyncio.create_task(self._read(), name=f"dragoman-client-{self.session_id}")

    async def _first_message(self, ws: ClientConnection) -> dict[str, Any]:
        while True:
            data = await ws.recv()
            if isinstance(data, str):
                message: dict[str, Any] = json.loads(data)
                return message

    def _accept(self, message: dict[str, Any]) -> None:
        self._last_seq = max(self._last_seq, int(message.get("seq", 0)))
        limits = message.get("limits", {})
        self._resume_token = str(message["resume_token"])
        self.info = SessionInfo(
            session_id=str(message["session_id"]), role=str(message["role"]),
            room=message.get("room"), source=str(message["source"]),
            targets=tuple(message.get("targets", ())), batch=bool(message.get("batch")),
            resume_grace=float(limits.get("resume_grace", 30.0)), raw=message)

    async def _resume(self) -> bool:
        """Reconnect within the grace period; True when the session goes on."""
        assert self.info is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.info.resume_grace
        delay = 0.05
        while loop.time() < deadline and not self._closed:
            try:
                ws = await self._client._connect()
                await ws.send(json.dumps({
                    "type": "session.resume", "version": protocol.VERSION,
                    "session_id": self.info.session_id, "resume_token": self._resume_token,
                    "last_seq": self._last_seq}))
                first = await self._first_message(ws)
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if first.get("type") != "session.resumed":
                await ws.close()
                self._fail(Error(str(first.get("code", protocol.RESUME_FAILED)),
                                 str(first.get("message", "resume refused"))))
                return False
            self._ws = ws
            self.reconnects += 1
            await self._resend_from(int(first.get("audio_received_samples", self._sent)))
            if self._input_ended:
                await ws.send(json.dumps({"type": "audio.end"}))
            self._ready.set()
            logger.info("session %s resumed after a dropped connection", self.session_id)
            return True
        self._fail(Error(protocol.RESUME_FAILED, "could not reconnect within the grace period",
                         retryable=True))
        return False

    async def _resend_from(self, received: int) -> None:
        assert self._ws is not None
        for start, pcm in list(self._resend):
            end = start + len(pcm) // 2
            if end <= received:
                continue
            skip = max(0, received - start)
            await self._ws.send(pcm[2 * skip:])

    # -- reading ------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for data in ws:
                        if await self._handle(data):
                            return
                except ConnectionClosed:
                    pass
                if self._closed or self.end_reason is not None:
                    return
                if self.error is not None or not self._client.reconnect:
                    self._fail(self.error or Error(protocol.INTERNAL, "connection lost", True))
                    return
                self._ready.clear()
                if not await self._resume():
                    return
        finally:
            self._ready.set()  # wake senders: they will see the session is over
            await self._queue.put(_END)

    async def _handle(self, data: str | bytes) -> bool:
        """Deliver one server message; True when the session is over."""
        if isinstance(data, bytes):
            header, chunk = protocol.parse_audio_frame(data)
            if header.seq <= self._last_seq:
                return False  # already delivered before a reconnect
            self._last_seq = header.seq
            await self._queue.put(Delivered(chunk, header.seq, str(header.speaker)))
            await self._maybe_ack()
            return False
        message = json.loads(data)
        seq = int(message.get("seq", 0))
        if seq:
            if seq <= self._last_seq:
                return False
            self._last_seq = seq
        kind = message.get("type")
        if kind == "session.end":
            self.end_reason = str(message.get("reason"))
            self.summary = message.get("summary")
            return True
        event = protocol.parse_event(message)
        if event is not None:
            if isinstance(event, Error) and message.get("fatal"):
                self.error = event
            await self._queue.put(Delivered(event, seq, str(message.get("speaker", ""))))
        await self._maybe_ack()
        return False

    async def _maybe_ack(self) -> None:
        if self._last_seq - self._acked >= 32 and self._ws is not None:
            self._acked = self._last_seq
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps({"type": "ack", "seq": self._acked}))

    def _fail(self, error: Error) -> None:
        self.error = error
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(Delivered(error, 0, ""))

    # -- the Pipeline-like API -----------------------------------------------------

    async def send_audio(self, audio: FloatAudio | bytes) -> None:
        """Send mono 16 kHz audio: float32 samples in [-1, 1], or PCM16 LE bytes."""
        pcm = audio if isinstance(audio, bytes | bytearray) else protocol.encode_pcm16(
            np.asarray(audio, dtype=np.float32))
        if len(pcm) % 2:
            raise ClientError(protocol.BAD_AUDIO, "PCM16 data needs an even number of bytes")
        limit = self._client.max_frame_bytes
        for offset in range(0, len(pcm), limit):
            await self._send_frame(bytes(pcm[offset:offset + limit]))

    async def _send_frame(self, pcm: bytes) -> None:
        self._remember(pcm)
        await self._ready.wait()
        if self._ws is None or self.end_reason is not None or self.error is not None:
            raise ClientError(self.error.code if self.error else "session_ended",
                              self.error.message if self.error else "the session has ended")
        with contextlib.suppress(ConnectionClosed):  # resume re-sends what was lost
            await self._ws.send(pcm)

    def _remember(self, pcm: bytes) -> None:
        self._resend.append((self._sent, pcm))
        self._sent += len(pcm) // 2
        self._resend_bytes += len(pcm)
        while self._resend_bytes > self._client.resend_seconds * SAMPLE_RATE * 2:
            self._resend_bytes -= len(self._resend.popleft()[1])

    async def end_input(self) -> None:
        """No more audio: the server flushes, delivers the rest, then ends the session."""
        self._input_ended = True
        await self._control({"type": "audio.end"})

    async def add_target(self, language: str) -> None:
        await self._control({"type": "target.add", "language": language})

    async def remove_target(self, language: str) -> None:
        await self._control({"type": "target.remove", "language": language})

    async def _control(self, message: dict[str, Any]) -> None:
        await self._ready.wait()
        if self._ws is not None and self.end_reason is None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(message))

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for item in self.delivered():
            yield item.event

    async def delivered(self) -> AsyncIterator[Delivered]:
        """Events with their sequence numbers and speakers; ends with the session."""
        while True:
            item = await self._queue.get()
            if item is None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(_END)  # later iterations end at once too
                return
            yield item

    async def aclose(self) -> None:
        """End the session now (normal close: the server does not wait for a resume)."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class DragomanClient:
    """Opens sessions on one Dragoman server (see the module doc)."""

    def __init__(self, url: str, token: str | None = None, *, origin: str | None = None,
                 reconnect: bool = True, resend_seconds: float = 60.0, queue_size: int = 4096,
                 max_frame_bytes: int = 64 * 1024, open_timeout: float = 10.0) -> None:
        self.url = url
        self._token = token
        self.origin = origin
        self.reconnect = reconnect
        self.resend_seconds = resend_seconds
        self.queue_size = queue_size
        self.max_frame_bytes = max_frame_bytes
        self.open_timeout = open_timeout
        self._sessions: list[ClientSession] = []

    def __repr__(self) -> str:  # never show the token
        return f"DragomanClient({self.url!r})"

    async def __aenter__(self) -> DragomanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for session in self._sessions:
            await session.aclose()
        self._sessions.clear()

    async def _connect(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            return await connect(self.url, additional_headers=headers, origin=self.origin,  # type: ignore[arg-type]
                                 open_timeout=self.open_timeout, max_size=2**24)
        except InvalidStatus as exc:
            body = exc.response.body or b""
            try:
                info = json.loads(body)
            except ValueError:
                raise
            raise ClientError(str(info.get("code")), str(info.get("message"))) from None

    async def start(self, source: str | None = None, targets: Sequence[str] = (), *,
                    room: str | None = None, name: str = "", voice: str | None = None,
                    prosody: bool = True, speak: bool = True,
                    batch: bool = False) -> ClientSession:
        """Start a speaker session (private, or publishing into `room`)."""
        request = protocol.StartRequest(source=source, targets=tuple(targets), room=room,
                                        name=name, voice=voice, prosody=prosody, speak=speak,
                                        batch=batch)
        return await self._open(protocol.start_message(request))

    async def join(self, room: str, targets: Sequence[str], *, name: str = "") -> ClientSession:
        """Listen to `room` in `targets` languages."""
        request = protocol.StartRequest(targets=tuple(targets), room=room, role="listener",
                                        name=name)
        return await self._open(protocol.start_message(request))

    async def _open(self, start: dict[str, Any]) -> ClientSession:
        session = ClientSession(self, start)
        await session._open()
        self._sessions.append(session)
        return session


@dataclass(frozen=True, slots=True)
class FileTranslation:
    """The result of `translate_file`."""

    source_text: str
    translations: dict[str, str]
    audio: dict[str, FloatAudio] = field(repr=False)
    sample_rate: int
    events: tuple[Event, ...] = field(repr=False)
    summary: dict[str, Any] | None


def translate_file(path: str | Path, url: str, token: str | None = None, *,
                   source: str | None = None, targets: Sequence[str] = ("en",),
                   realtime: bool = True, chunk_seconds: float = 0.1,
                   batch: bool = False) -> FileTranslation:
    """Stream a file through a server and collect text and speech (blocking).

    `realtime` paces the audio like a live speaker; without it the file is sent as fast
    as the server takes it, which needs a key with batch mode (`batch=True`).
    """
    return asyncio.run(_translate_file(Path(path), url, token, source, tuple(targets),
                                       realtime, chunk_seconds, batch))


async def _translate_file(path: Path, url: str, token: str | None, source: str | None,
                          targets: tuple[str, ...], realtime: bool, chunk_seconds: float,
                          batch: bool) -> FileTranslation:
    from dragoman.audio import load_audio

    audio = await asyncio.to_thread(load_audio, path)
    step = max(1, round(chunk_seconds * SAMPLE_RATE))
    async with DragomanClient(url, token) as client:
        session = await client.start(source=source, targets=targets, batch=batch)

        async def feed() -> None:
            loop = asyncio.get_running_loop()
            began = loop.time()
            for start in range(0, audio.size, step):
                await session.send_audio(audio[start:start + step])
                if realtime:
                    await asyncio.sleep(max(0.0, began + (start + step) / SAMPLE_RATE
                                            - loop.time()))
            await session.end_input()

        sender = asyncio.create_task(feed())
        events = [event async for event in session]
        await sender
    words: list[str] = []
    texts: dict[str, list[str]] = {t: [] for t in targets}
    pcm: dict[str, list[FloatAudio]] = {t: [] for t in targets}
    rate = 24_000
    for event in events:
        if isinstance(event, SourceText) and event.committed:
            words.append(join_words(event.committed))
        elif isinstance(event, TranslationText):
            texts.setdefault(event.language, []).append(event.committed_delta)
        elif isinstance(event, AudioChunk):
            pcm.setdefault(event.language, []).append(event.pcm)
            rate = event.sample_rate
    if session.error is not None and session.end_reason is None:
        raise ClientError(session.error.code, session.error.message)
    return FileTranslation(
        source_text=" ".join(w for w in words if w),
        translations={k: "".join(v).strip() for k, v in texts.items()},
        audio={k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in pcm.items()},
        sample_rate=rate, events=tuple(events), summary=session.summary)
