"""The WebSocket server: protocol v1 sessions, rooms, limits, resume, HTTP endpoints.

    server = DragomanServer(ServerConfig(port=8765), pipeline_factory, KeyStore.load())
    await server.start(); ...; await server.shutdown()

One handler per connection; all state hangs off `Session`/`Room` objects owned by the
server instance. A handler that fails closes its own connection (1011) and logs with
`exc_info`; other sessions go on. Plain HTTP on the same port: `/healthz`, `/metrics`
(Prometheus), and the static browser client at `/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import mimetypes
import ssl
from collections import Counter, defaultdict
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from dragoman.audio import pcm16_to_float
from dragoman.errors import DragomanError
from dragoman.events import SAMPLE_RATE, Clock, Error, FloatAudio, MonotonicClock
from dragoman.web import protocol
from dragoman.web.auth import ApiKey, KeyStore
from dragoman.web.config import ServerConfig
from dragoman.web.metrics import ServerMetrics
from dragoman.web.pipelines import PipelineFactory
from dragoman.web.protocol import WireError
from dragoman.web.session import Room, Session, SpeakerFeed

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011


class DragomanServer:
    """Serves protocol v1 over `websockets` (see the module doc)."""

    def __init__(self, config: ServerConfig, pipeline_factory: PipelineFactory,
                 keys: KeyStore | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.keys = keys if keys is not None else KeyStore()
        if config.require_auth and not len(self.keys):
            raise DragomanError("no API keys configured: set DRAGOMAN_API_KEYS or --keys "
                                "(or disable authentication for local use)")
        self.metrics = ServerMetrics()
        self.sessions: dict[str, Session] = {}
        self.rooms: dict[str, Room] = {}
        self._factory = pipeline_factory
        self._ssl = ssl_context
        self._clock = clock or MonotonicClock()
        self._active: Counter[str] = Counter()  # open sessions per key name
        self._audio_used: defaultdict[str, float] = defaultdict(float)  # s per key
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self._server = await serve(
            self._handler, cfg.host, cfg.port, process_request=self._process_request,
            max_size=4 * cfg.max_message_bytes, max_queue=16, write_limit=64 * 1024,
            ping_interval=20, ping_timeout=20, close_timeout=2, ssl=self._ssl,
            server_header="dragoman",
        )
        self._ticker = asyncio.create_task(self._tick(), name="dragoman-ticker")
        logger.info("serving protocol v%d on %s:%d%s", protocol.VERSION, cfg.host, self.port,
                    cfg.ws_path)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.wait_closed()

    async def shutdown(self) -> None:
        """Stop accepting, let speakers' pipelines flush, end every session, close."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close(close_connections=False)
        speakers = [s for s in self.sessions.values() if s.feed is not None]
        await asyncio.gather(*(self._finish(s, protocol.SERVER_SHUTDOWN, flush=True,
                                            close_code=CLOSE_GOING_AWAY) for s in speakers))
        rest = list(self.sessions.values())
        await asyncio.gather(*(self._finish(s, protocol.SERVER_SHUTDOWN,
                                            close_code=CLOSE_GOING_AWAY) for s in rest))
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DragomanServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def _now(self) -> float:
        return self._clock.now()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(),
                         exc_info=task.exception())

    # -- plain HTTP ----------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            status = http.HTTPStatus.SERVICE_UNAVAILABLE if self._closing else http.HTTPStatus.OK
            body = json.dumps({"status": "closing" if self._closing else "ok",
                               "sessions": len(self.sessions), "rooms": len(self.rooms),
                               "protocol": protocol.VERSION}).encode()
            return _response(status, body, "application/json")
        if path == "/metrics":
            self.metrics.tasks.set(len(asyncio.all_tasks()))
            body = await asyncio.to_thread(self.metrics.exposition)
            return _response(http.HTTPStatus.OK, body, ServerMetrics.CONTENT_TYPE)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._static(path)
        if path != self.config.ws_path:
            return _json_error(http.HTTPStatus.NOT_FOUND, protocol.BAD_REQUEST,
                               f"the WebSocket endpoint is {self.config.ws_path}")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request.headers.get("Host")):
            self.metrics.errors.labels(protocol.ORIGIN_NOT_ALLOWED).inc()
            return _json_error(http.HTTPStatus.FORBIDDEN, protocol.ORIGIN_NOT_ALLOWED,
                               "this origin is not allowed")
        token = _bearer(request.headers.get("Authorization"))
        if token is not None and self.keys.authenticate(token) is None:
            self.metrics.errors.labels(protocol.UNAUTHORIZED).inc()
            return _json_error(http.HTTPStatus.UNAUTHORIZED, protocol.UNAUTHORIZED,
                               "invalid API key")
        return None

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        return host is not None and urlsplit(origin).netloc == host

    async def _static(self, path: str) -> Response:
        root = self.config.static_dir
        if root is None:
            return _json_error(http.HTTPStatus.NOT_FOUND, "not_found", "no such page")
        relative = path.lstrip("/") or "index.html"
        file = (root / relative).resolve()
        if not file.is_relative_to(root.resolve()) or not file.is_file():
            return _json_error(http.HTTPStatus.NOT_FOUND, "not_found", "no such page")
        body = await asyncio.to_thread(file.read_bytes)
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        return _response(http.HTTPStatus.OK, body, kind)

    # -- connections ---------------------------------------------------------------------

    async def _handler(self, connection: ServerConnection) -> None:
        session: Session | None = None
        try:
            session = await self._open(connection)
            if session is None:
                return
            sender = asyncio.create_task(session.run_sender(connection, self._now),
                                         name=f"send-{session.id}")
            try:
                await self._read_loop(connection, session)
            finally:
                if not sender.done():
                    sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await sender
        except ConnectionClosed:
            pass
        except Exception:
            logger.error("connection handler failed", exc_info=True)
            if session is not None and not session.ending:
                self._spawn(self._finish(session, protocol.INTERNAL, error=(
                    protocol.INTERNAL, "internal server error", True),
                    close_code=CLOSE_INTERNAL), "finish-internal")
            await connection.close(CLOSE_INTERNAL, "internal error")
        finally:
            if session is not None and session.connection is connection and not session.ending:
                if connection.close_code == CLOSE_NORMAL and not self._closing:
                    self._spawn(self._finish(session, "client_closed"), "finish-closed")
                else:
                    session.detach(self._now())
                    logger.info("session %s detached (close code %s); resumable for %.0f s",
                                session.id, connection.close_code, self.config.resume_grace_s)

    async def _send_direct(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        """A message outside any session's sequence (`seq` 0): before start, rejections."""
        if message.get("type") == "error":
            self.metrics.errors.labels(str(message["code"])).inc()
        await connection.send(protocol.dumps({**message, "seq": 0}))

    async def _open(self, connection: ServerConnection) -> Session | None:
        """Wait for `session.start` or `session.resume`; None when the client is refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):  # wait_for may swallow a cancel
                    data = await connection.recv()
            except TimeoutError:
                await self._send_direct(connection, protocol.error_message(
                    protocol.IDLE_TIMEOUT, "no session.start received in time", fatal=True))
                await connection.close(CLOSE_POLICY, protocol.IDLE_TIMEOUT)
                return None
            try:
                message = self._parse(data)
                if message is None:
                    raise WireError(protocol.NO_SESSION,
                                    "send session.start (or session.resume) before audio")
                if not isinstance(message, protocol.StartRequest | protocol.ResumeRequest):
                    raise WireError(protocol.NO_SESSION,
                                    "send session.start (or session.resume) first")
                key = self._authenticate(connection, message.token)
                if isinstance(message, protocol.StartRequest):
                    return await self._create(connection, key, message)
                return await self._resume(connection, key, message)
            except WireError as exc:
                await self._send_direct(connection, exc.to_message())
                if exc.fatal:
                    await connection.close(CLOSE_POLICY, exc.code)
                    return None
            except DragomanError as exc:  # e.g. an unsupported language: start again
                await self._send_direct(connection, protocol.error_message(
                    exc.code, exc.message, retryable=exc.retryable))

    def _parse(self, data: str | bytes) -> protocol.ClientMessage | None:
        if len(data) > self.config.max_message_bytes:
            raise WireError(protocol.MESSAGE_TOO_LARGE,
                            f"message of {len(data)} bytes exceeds the limit of "
                            f"{self.config.max_message_bytes}")
        if isinstance(data, bytes):
            return None
        return protocol.parse_client_text(data)

    def _authenticate(self, connection: ServerConnection, token: str | None) -> ApiKey | None:
        header = _bearer(connection.request.headers.get("Authorization")
                         if connection.request is not None else None)
        key = self.keys.authenticate(header or token)
        if key is None and self.config.require_auth:
            raise WireError(protocol.UNAUTHORIZED, "a valid API key is required", fatal=True)
        return key

    async def _create(self, connection: ServerConnection, key: ApiKey | None,
                      request: protocol.StartRequest) -> Session:
        if self._closing:
            raise WireError(protocol.SERVER_SHUTDOWN, "the server is shutting down",
                            retryable=True, fatal=True)
        key_name = key.name if key is not None else ""
        if key is not None and self._active[key_name] >= key.max_sessions:
            raise WireError(protocol.SESSION_LIMIT,
                            f"this key may hold {key.max_sessions} sessions at once",
                            retryable=True, fatal=True)
        self._check_quota(key, 0)
        namespace = key.room_namespace if key is not None else "-"
        now = self._now()
        room_id = f"{namespace}/{request.room}" if request.room else ""
        room = self.rooms.get(room_id) if room_id else None
        if room is None:
            room = Room(room_id, self.metrics)
            room.last_activity = now
        session = Session(key=key, request=request, room=room, config=self.config,
                          metrics=self.metrics, now=now, on_slow=self._on_slow)
        if not room_id:
            room.id = f"private/{session.id}"
        self.rooms[room.id] = room  # before any await: concurrent joiners find this room
        added: list[str] = []
        try:
            for language in session.targets:
                await room.add_language(language)
                added.append(language)
            if request.role == "speaker":
                await self._add_speaker(session, room)
        except BaseException:
            for language in added:
                await room.release_language(language)
            if not room.members and not room.speakers:
                self.rooms.pop(room.id, None)
            raise
        room.members.add(session)
        self.sessions[session.id] = session
        self._active[key_name] += 1
        self.metrics.sessions.labels(session.role).inc()
        self.metrics.sessions_started.labels(session.role).inc()
        self.metrics.rooms.set(len(self.rooms))
        session.attach(connection)
        session.send_json({
            "type": "session.started", "version": protocol.VERSION, "session_id": session.id,
            "resume_token": session.resume_token, "role": session.role,
            "room": request.room, "speaker": session.feed.label if session.feed else None,
            "source": request.source or "auto", "targets": sorted(session.targets),
            "format": {"encoding": request.format.encoding,
                       "sample_rate": request.format.sample_rate, "channels": 1},
            "output": {"encoding": "pcm_s16le", "sample_rate": "per chunk header",
                       "watermark": self.config.watermarked},
            "batch": session.batch,
            "limits": {"max_message_bytes": self.config.max_message_bytes,
                       "idle_timeout": self.config.idle_timeout_s,
                       "max_session": self.config.max_session_s,
                       "resume_grace": self.config.resume_grace_s,
                       "rate_factor": None if session.batch else self.config.rate_factor},
        }, committed=True, now=now)
        logger.info("session %s started (%s, room %s)", session.id, session.role,
                    request.room or "private")
        return session

    async def _add_speaker(self, session: Session, room: Room) -> None:
        from dragoman.pipeline import PipelineConfig

        request = session.request
        config = PipelineConfig(
            source_language=request.source, target_languages=tuple(room.languages),
            prosody=request.prosody, voice=request.voice, speak=request.speak,
            session_id=session.id, service_id=self.config.service_id,
            # Audio sent faster than real time is nobody's live speech: no catch-up.
            catch_up_after_s=None if session.batch else PipelineConfig().catch_up_after_s)
        pipeline = self._factory(config)
        await pipeline.start()
        feed = SpeakerFeed(session, pipeline, room.next_index())
        if request.format.encoding == "opus":
            feed.decoder = OpusDecoder()
        session.feed = feed
        room.speakers[session.id] = feed
        feed.pump = asyncio.create_task(self._pump(feed), name=f"pump-{session.id}")

    async def _resume(self, connection: ServerConnection, key: ApiKey | None,
                      request: protocol.ResumeRequest) -> Session:
        session = self.sessions.get(request.session_id)
        if (session is None or session.ending
                or not session.check_resume_token(request.resume_token)):
            raise WireError(protocol.RESUME_FAILED, "no such session to resume (expired?)",
                            fatal=True)
        if session.key is not None and key is not session.key:
            raise WireError(protocol.UNAUTHORIZED, "the session belongs to another key",
                            fatal=True)
        old = session.connection
        if old is not None:  # the client noticed the drop before we did
            session.detach(self._now())
            self._spawn(old.close(CLOSE_POLICY, "replaced by a resumed connection"),
                        "close-replaced")
        if not session.can_replay_from(request.last_seq):
            self._spawn(self._finish(session, protocol.RESUME_FAILED), "finish-gap")
            raise WireError(protocol.RESUME_FAILED,
                            "messages after last_seq are no longer kept", fatal=True)
        received = session.feed.received if session.feed is not None else 0
        await self._send_direct(connection, {
            "type": "session.resumed", "session_id": session.id,
            "audio_received": received / SAMPLE_RATE, "audio_received_samples": received,
        })
        session.attach(connection)
        session.last_activity = self._now()
        replayed = session.replay_from(request.last_seq)
        session.summary.resumes += 1
        self.metrics.resumes.inc()
        logger.info("session %s resumed (%d messages replayed)", session.id, replayed)
        return session

    async def _read_loop(self, connection: ServerConnection, session: Session) -> None:
        async for data in connection:
            if session.ending:
                break
            now = self._now()
            session.last_activity = now
            try:
                message = self._parse(data)
                if message is None:
                    assert isinstance(data, bytes)
                    await self._audio(session, data, now)
                else:
                    await self._control(session, message, now)
            except WireError as exc:
                session.send_error(exc.code, exc.message, retryable=exc.retryable,
                                   fatal=exc.fatal, now=now)
                if exc.fatal:
                    self._spawn(self._finish(session, exc.code, flush=True), "finish-fatal")
            except DragomanError as exc:
                session.send_error(exc.code, exc.message, retryable=exc.retryable, now=now)

    async def _control(self, session: Session, message: protocol.ClientMessage,
                       now: float) -> None:
        if isinstance(message, protocol.StartRequest | protocol.ResumeRequest):
            raise WireError(protocol.BAD_REQUEST, "this connection already has a session")
        if isinstance(message, protocol.Ack):
            session.ack(message.seq)
        elif isinstance(message, protocol.AudioEnd):
            feed = session.feed
            if feed is None:
                self._spawn(self._finish(session, "completed"), "finish-listener")
            elif not feed.input_ended:
                feed.input_ended = True
                await feed.pipeline.end_input()  # the pump ends the session when flushed
        elif isinstance(message, protocol.TargetChange):
            if message.add and message.language not in session.targets:
                await session.room.add_language(message.language)
                session.targets.add(message.language)
            elif not message.add and message.language in session.targets:
                session.targets.discard(message.language)
                await session.room.release_language(message.language)

    async def _audio(self, session: Session, data: bytes, now: float) -> None:
        feed = session.feed
        if feed is None:
            raise WireError(protocol.BAD_REQUEST, "listeners do not send audio")
        if feed.input_ended:
            raise WireError(protocol.BAD_REQUEST, "audio after audio.end")
        samples = feed.decoder.decode(data) if feed.decoder is not None else _pcm16(data)
        if samples.size == 0:
            return
        if not feed.session.batch:
            started = feed.first_audio_at if feed.first_audio_at is not None else now
            allowed = ((now - started) * self.config.rate_factor
                       + self.config.rate_burst_s) * SAMPLE_RATE
            if feed.received + samples.size > allowed:
                if now - feed.last_rate_error >= 1.0:
                    feed.last_rate_error = now
                    raise WireError(protocol.RATE_LIMITED,
                                    "audio arrives faster than real time: frames dropped; "
                                    "pace the input (or use a key with batch mode)",
                                    retryable=True)
                return
        self._check_quota(session.key, samples.size / SAMPLE_RATE)
        feed.record_arrival(samples.size, now)
        session.summary.audio_in_samples += samples.size
        if session.key is not None:
            self._audio_used[session.key.name] += samples.size / SAMPLE_RATE
        self.metrics.audio_in.inc(samples.size / SAMPLE_RATE)
        await feed.pipeline.push_audio(samples)

    def _check_quota(self, key: ApiKey | None, adding: float) -> None:
        if key is None or key.audio_minutes is None:
            return
        if self._audio_used[key.name] + adding > key.audio_minutes * 60:
            raise WireError(protocol.QUOTA_EXCEEDED,
                            f"this key's {key.audio_minutes:g} audio minutes are used up",
                            fatal=True)

    async def _pump(self, feed: SpeakerFeed) -> None:
        room = feed.session.room
        try:
            async for event in feed.pipeline:
                room.broadcast(feed, event, self._now())
        except Exception:
            logger.error("pipeline of session %s failed", feed.session.id, exc_info=True)
            room.broadcast(feed, Error(protocol.INTERNAL, "the pipeline failed", True),
                           self._now())
        finally:
            if not feed.session.ending:
                self._spawn(self._finish(feed.session, "completed"), "finish-pump")

    # -- ending ----------------------------------------------------------------------------

    def _on_slow(self, session: Session) -> None:
        self._spawn(self._drop_slow(session), "drop-slow")

    async def _drop_slow(self, session: Session) -> None:
        if session.ending:
            return
        session.drop_outbox()
        connection = session.connection
        logger.warning("session %s reads too slowly: dropped", session.id)
        self.metrics.errors.labels(protocol.SLOW_CONSUMER).inc()
        if connection is not None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await asyncio.wait_for(connection.send(protocol.dumps({
                    **protocol.error_message(protocol.SLOW_CONSUMER,
                                             "this client read too slowly and was dropped",
                                             retryable=True, fatal=True), "seq": 0})), 1.0)
            # Its buffers are full: a closing handshake would only wait. Cut it off.
            connection.transport.abort()
        await self._finish(session, protocol.SLOW_CONSUMER, close_code=CLOSE_POLICY)

    async def _finish(self, session: Session, reason: str, *,
                      error: tuple[str, str, bool] | None = None, flush: bool = False,
                      close_code: int = CLOSE_NORMAL) -> None:
        """End a session: flush its pipeline if asked, send `session.end`, close, forget."""
        if session.ending:
            return
        session.ending = True
        try:
            feed = session.feed
            if feed is not None:
                await self._stop_feed(feed, flush)
            now = self._now()
            if error is not None:
                code, message, retryable = error
                session.send_error(code, message, retryable=retryable, fatal=True, now=now)
            session.send_json({"type": "session.end", "reason": reason,
                               "summary": session.summary.to_dict(now - session.created_at)},
                              committed=True, now=now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await session.flush()
            connection = session.connection
            if connection is not None:
                if close_code == CLOSE_NORMAL and reason not in ("completed", "client_closed"):
                    close_code = CLOSE_POLICY if reason != protocol.SERVER_SHUTDOWN else \
                        CLOSE_GOING_AWAY
                await connection.close(close_code, reason[:120])
        finally:
            await self._forget(session)

    async def _stop_feed(self, feed: SpeakerFeed, flush: bool) -> None:
        pump = feed.pump
        if flush and not feed.input_ended:
            feed.input_ended = True
            with contextlib.suppress(DragomanError):
                await feed.pipeline.end_input()
        if pump is not None and flush:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), self.config.drain_timeout_s)
        if pump is None or not pump.done():
            await feed.pipeline.aclose()
            if pump is not None:
                try:
                    await asyncio.wait_for(pump, 5.0)
                except TimeoutError:
                    logger.error("pipeline of session %s did not stop", feed.session.id)
        feed.session.room.speakers.pop(feed.session.id, None)

    async def _forget(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            session.ended.set()
            return
        room = session.room
        room.members.discard(session)
        room.speakers.pop(session.id, None)
        for language in list(session.targets):
            with contextlib.suppress(DragomanError):
                await room.release_language(language)
        if not room.members and not room.speakers:
            self.rooms.pop(room.id, None)
        key_name = session.key.name if session.key is not None else ""
        self._active[key_name] -= 1
        if self._active[key_name] <= 0:
            del self._active[key_name]
        self.metrics.sessions.labels(session.role).dec()
        self.metrics.rooms.set(len(self.rooms))
        session.drop_outbox()
        session.ended.set()
        logger.info("session %s ended", session.id)

    async def _tick(self) -> None:
        cfg = self.config
        period = max(0.05, min(cfg.idle_timeout_s, cfg.resume_grace_s, 1.0) / 4)
        while True:
            await asyncio.sleep(period)
            now = self._now()
            for session in list(self.sessions.values()):
                if session.ending:
                    continue
                if session.detached_at is not None:
                    if now - session.detached_at > cfg.resume_grace_s:
                        self._spawn(self._finish(session, "resume_expired"), "finish-expired")
                    continue
                if now - session.created_at > cfg.max_session_s:
                    self._spawn(self._finish(session, protocol.SESSION_TIMEOUT, error=(
                        protocol.SESSION_TIMEOUT, "the maximum session length was reached",
                        False), flush=True), "finish-timeout")
                    continue
                feed = session.feed
                if feed is not None and feed.input_ended:
                    continue
                last = session.last_activity
                if feed is None:
                    last = max(last, session.room.last_activity)
                if now - last > cfg.idle_timeout_s:
                    self._spawn(self._finish(session, protocol.IDLE_TIMEOUT, error=(
                        protocol.IDLE_TIMEOUT, f"nothing received for {cfg.idle_timeout_s:g} s",
                        True), flush=True), "finish-idle")


class OpusDecoder:
    """One Opus packet per binary message, decoded with PyAV and resampled to 16 kHz."""

    def __init__(self) -> None:
        import av

        self._codec = av.CodecContext.create("opus", "r")
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def decode(self, data: bytes) -> FloatAudio:
        import av

        try:
            frames = self._codec.decode(av.Packet(data))
            parts = [out.to_ndarray().reshape(-1) for frame in frames
                     for out in self._resampler.resample(frame)]
        except (av.FFmpegError, ValueError) as exc:
            raise WireError(protocol.BAD_AUDIO, f"cannot decode Opus packet: {exc}") from None
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)


def _pcm16(data: bytes) -> FloatAudio:
    if len(data) % 2:
        raise WireError(protocol.BAD_AUDIO,
                        f"pcm_s16le frames need an even number of bytes, got {len(data)}")
    return pcm16_to_float(data)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(body))), ("Content-Type", content_type),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body)


def _json_error(status: http.HTTPStatus, code: str, message: str) -> Response:
    body = protocol.dumps(protocol.error_message(code, message, fatal=True)).encode()
    return _response(status, body, "application/json")

