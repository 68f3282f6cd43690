"""Per-session and per-room state: outboxes, resume buffers, speakers and fan-out.

A `Session` outlives its connection: when the socket drops, committed messages keep
collecting in a bounded resume buffer until the client comes back with
`session.resume` (or the grace period ends). A `Room` holds every member and the
speakers' pipelines; each speaker's events are encoded once and fanned out to the
members whose target languages they concern. Nothing here blocks: fan-out only
appends to bounded outboxes, and a member whose outbox overflows is marked slow.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import secrets
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection

from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Error,
    Event,
    FloatAudio,
    Lag,
    SourceText,
    TranslationText,
)
from dragoman.web import protocol
from dragoman.web.auth import ApiKey
from dragoman.web.config import ServerConfig
from dragoman.web.metrics import ServerMetrics
from dragoman.web.pipelines import PipelineLike

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Outgoing:
    seq: int
    data: str | bytes
    committed: bool
    enqueued_at: float

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class Summary:
    """What a session delivered, for `session.end`."""

    audio_in_samples: int = 0
    utterances: int = 0
    source_words: int = 0
    translation_chars: Counter[str] = field(default_factory=Counter)
    audio_out_seconds: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float))
    errors: int = 0
    resumes: int = 0

    def to_dict(self, duration: float) -> dict[str, Any]:
        return {
            "duration": round(duration, 3),
            "audio_in": round(self.audio_in_samples / SAMPLE_RATE, 3),
            "utterances": self.utterances,
            "source_words": self.source_words,
            "translation_chars": dict(self.translation_chars),
            "audio_out": {k: round(v, 3) for k, v in self.audio_out_seconds.items()},
            "errors": self.errors,
            "resumes": self.resumes,
        }


class Session:
    """One client session: identity, targets, outbox, resume buffer, connection."""

    def __init__(self, *, key: ApiKey | None, request: protocol.StartRequest, room: Room,
                 config: ServerConfig, metrics: ServerMetrics, now: float,
                 on_slow: Callable[[Session], None]) -> None:
        self.id = "s_" + secrets.token_urlsafe(12)
        self.resume_token = secrets.token_urlsafe(24)
        self.key = key
        self.request = request
        self.role = request.role
        self.room = room
        self.targets: set[str] = set(request.targets)
        self.feed: SpeakerFeed | None = None
        self.config = config
        self.metrics = metrics
        self.created_at = now
        self.last_activity = now
        self.summary = Summary()
        self.connection: ServerConnection | None = None
        self.detached_at: float | None = None
        self.ending = False
        self.ended = asyncio.Event()
        self._on_slow = on_slow
        self._seq = 0
        self._outbox: deque[Outgoing] = deque()
        self._outbox_bytes = 0
        self._retained: deque[Outgoing] = deque()
        self._retained_bytes = 0
        self._forgotten_seq = 0  # highest committed seq dropped from the resume buffer
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._sending = False
        self._warned_slow = False
        self.slow = False

    @property
    def batch(self) -> bool:
        """Whether this session may send audio faster than real time: it asked for batch
        mode and its key allows it."""
        return bool(self.request.batch and self.key is not None and self.key.batch)

    # -- producing -------------------------------------------------------------------

    def send_json(self, message: dict[str, Any], *, committed: bool, now: float) -> None:
        self._push(lambda seq: protocol.dumps({**message, "seq": seq}), committed, now)

    def send_encoded(self, body: str, *, committed: bool, now: float) -> None:
        """`body` is a JSON object without `seq`; the seq goes first (no re-encoding)."""
        self._push(lambda seq: f'{{"seq":{seq},{body[1:]}', committed, now)

    def send_audio(self, chunk: AudioChunk, pcm: bytes, speaker: int, now: float) -> None:
        self._push(lambda seq: protocol.audio_header(chunk, seq=seq, speaker=speaker) + pcm,
                   True, now)
        self.summary.audio_out_seconds[chunk.language] += chunk.pcm.size / chunk.sample_rate

    def send_error(self, code: str, message: str, *, now: float, retryable: bool = False,
                   fatal: bool = False) -> None:
        self.summary.errors += 1
        self.metrics.errors.labels(code).inc()
        self.send_json(protocol.error_message(code, message, retryable=retryable, fatal=fatal),
                       committed=fatal, now=now)

    def _push(self, encode: Callable[[int], str | bytes], committed: bool, now: float) -> None:
        if self.slow:
            return
        if self.connection is None and not committed:
            return  # detached: transient updates are superseded anyway
        self._seq += 1
        item = Outgoing(self._seq, encode(self._seq), committed, now)
        if self.connection is None:
            self._retain(item)
            return
        self._outbox.append(item)
        self._outbox_bytes += item.size
        self._wakeup.set()
        count, size = len(self._outbox), self._outbox_bytes
        limit_count, limit_bytes = self.config.outbox_max_messages, self.config.outbox_max_bytes
        if count > limit_count or size > limit_bytes:
            self.slow = True
            self._on_slow(self)
        elif not self._warned_slow and (count > limit_count // 2 or size > limit_bytes // 2):
            self._warned_slow = True
            self.send_error(protocol.SLOW_CONSUMER,
                            "this client reads too slowly: it will be dropped if it falls "
                            "further behind", now=now, retryable=True)

    def _retain(self, item: Outgoing) -> None:
        self._retained.append(item)
        self._retained_bytes += item.size
        while self._retained_bytes > self.config.resume_buffer_bytes and self._retained:
            old = self._retained.popleft()
            self._retained_bytes -= old.size
            self._forgotten_seq = old.seq

    def ack(self, seq: int) -> None:
        while self._retained and self._retained[0].seq <= seq:
            self._retained_bytes -= self._retained.popleft().size

    @property
    def outbox_bytes(self) -> int:
        return self._outbox_bytes

    @property
    def retained_bytes(self) -> int:
        return self._retained_bytes

    # -- connection ------------------------------------------------------------------

    def attach(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.detached_at = None

    def detach(self, now: float) -> None:
        """The socket is gone: keep what is committed and unsent for a resume."""
        self.connection = None
        self.detached_at = now
        for item in self._outbox:
            if item.committed:
                self._retain(item)
        self._outbox.clear()
        self._outbox_bytes = 0
        self._wakeup.set()
        self._drained.set()

    def can_replay_from(self, last_seq: int) -> bool:
        return last_seq >= self._forgotten_seq

    def replay_from(self, last_seq: int) -> int:
        """Queue every retained message after `last_seq`; -1 if some were forgotten."""
        if last_seq < self._forgotten_seq:
            return -1
        self.ack(last_seq)
        replay = list(self._retained)
        self._retained.clear()
        self._retained_bytes = 0
        self._outbox.extendleft(reversed(replay))
        self._outbox_bytes += sum(item.size for item in replay)
        self._warned_slow = False
        self._wakeup.set()
        return len(replay)

    async def run_sender(self, connection: ServerConnection, clock: Callable[[], float]) -> None:
        """Write the outbox to `connection` until it is detached or closed."""
        self._sending = True
        try:
            await self._send_loop(connection, clock)
        finally:
            self._sending = False
            self._drained.set()

    async def _send_loop(self, connection: ServerConnection, clock: Callable[[], float]) -> None:
        while self.connection is connection:
            if not self._outbox:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._outbox[0]
            await connection.send(item.data)
            if self.connection is not connection or not self._outbox or self._outbox[0] is not item:
                break  # detached (or dropped) while writing: the item was re-filed
            self._outbox.popleft()
            self._outbox_bytes -= item.size
            self.metrics.send_delay.observe(max(0.0, clock() - item.enqueued_at))
            if item.committed:
                self._retain(item)
            if self._warned_slow and self._outbox_bytes < self.config.outbox_max_bytes // 8:
                self._warned_slow = False

    async def flush(self) -> None:
        """Wait until the outbox is written or the connection is gone (time-box it)."""
        while self._outbox and self.connection is not None and self._sending:
            self._drained.clear()
            await self._drained.wait()

    def drop_outbox(self) -> None:
        self._outbox.clear()
        self._outbox_bytes = 0
        self._drained.set()

    def check_resume_token(self, token: str) -> bool:
        return secrets.compare_digest(self.resume_token.encode(), token.encode())


class AudioDecoder(Protocol):
    def decode(self, data: bytes) -> FloatAudio: ...


class SpeakerFeed:
    """A speaker's pipeline, its input accounting and its event pump."""

    def __init__(self, session: Session, pipeline: PipelineLike, index: int) -> None:
        self.session = session
        self.pipeline = pipeline
        self.index = index
        self.label = session.request.name or f"speaker-{index}"
        self.received = 0  # samples
        self.first_audio_at: float | None = None
        self.pump: asyncio.Task[None] | None = None
        self.input_ended = False
        self.decoder: AudioDecoder | None = None
        self.last_rate_error = float("-inf")
        # (end sample, arrival time) of recent frames, to time commits from the audio.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=4096)

    def record_arrival(self, samples: int, now: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.received += samples
        self._arrivals.append((self.received, now))

    def arrival_of(self, sample: int) -> float | None:
        """When the frame holding `sample` arrived (None if no longer known)."""
        if not self._arrivals:
            return None
        index = bisect.bisect_left(self._arrivals, (sample, float("-inf")))
        if index >= len(self._arrivals):
            return None
        return self._arrivals[index][1]


class Room:
    """Speakers publish, members receive in their languages; one pipeline lane per
    language per speaker whatever the number of members who want it."""

    def __init__(self, room_id: str, metrics: ServerMetrics) -> None:
        self.id = room_id
        self.metrics = metrics
        self.members: set[Session] = set()
        self.speakers: dict[str, SpeakerFeed] = {}
        self.languages: Counter[str] = Counter()
        self._next_index = 0
        self.last_activity = 0.0

    def next_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1

    async def add_language(self, language: str) -> None:
        self.languages[language] += 1
        if self.languages[language] == 1:
            for feed in list(self.speakers.values()):
                await feed.pipeline.add_target(language)

    async def release_language(self, language: str) -> None:
        self.languages[language] -= 1
        if self.languages[language] <= 0:
            del self.languages[language]
            for feed in list(self.speakers.values()):
                await feed.pipeline.remove_target(language)

    def broadcast(self, feed: SpeakerFeed, event: Event, now: float) -> None:
        """Fan one pipeline event out to the members it concerns (encoded once)."""
        self.last_activity = now
        self._observe(feed, event, now)
        members = [m for m in self.members if not m.ending or m.feed is feed]
        if isinstance(event, AudioChunk):
            pcm = protocol.encode_pcm16(event.pcm)
            for member in members:
                if event.language in member.targets:
                    member.send_audio(event, pcm, feed.index, now)
            return
        body = protocol.dumps(protocol.event_message(event, feed.label))
        committed = protocol.is_committed(event)
        for member in members:
            if isinstance(event, TranslationText):
                if event.language not in member.targets:
                    continue
                member.summary.translation_chars[event.language] += len(event.committed_delta)
            elif isinstance(event, SourceText):
                member.summary.source_words += len(event.committed)
                member.summary.utterances += int(event.final)
            elif isinstance(event, Error):
                member.summary.errors += 1
            member.send_encoded(body, committed=committed, now=now)

    def _observe(self, feed: SpeakerFeed, event: Event, now: float) -> None:
        end: int | None = None
        kind = ""
        if isinstance(event, SourceText) and event.committed:
            end, kind = event.committed[-1].end, "source"
        elif isinstance(event, TranslationText) and event.committed_delta:
            end, kind = event.source_span.end, "translation"
        elif isinstance(event, AudioChunk):
            end, kind = event.source_span.end, "audio"
        elif isinstance(event, Lag):
            stage = "asr" if event.stage == "asr" else "target"
            self.metrics.lag.labels(stage).observe(event.behind / SAMPLE_RATE)
        elif isinstance(event, Error):
            self.metrics.errors.labels(event.code).inc()
        if end is not None:
            arrived = feed.arrival_of(max(0, end - 1))
            if arrived is not None:
                self.metrics.commit_latency.labels(kind).observe(max(0.0, now - arrived))
