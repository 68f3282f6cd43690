"""Wire protocol v1: client messages, server messages and the binary audio header.

Shared by the server (`dragoman.web.server`) and the SDK (`dragoman.client`); pure
functions and frozen dataclasses, no I/O. docs/protocol.md is the reference; this module
is its executable form. Times on the wire are seconds (floats) in JSON and 16 kHz sample
indices in binary headers.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from dragoman.errors import DragomanError
from dragoman.events import (
    SAMPLE_RATE,
    AudioChunk,
    Error,
    Event,
    FloatAudio,
    Lag,
    SourceText,
    Span,
    SpeechEnded,
    SpeechStarted,
    TranslationText,
    Word,
    to_samples,
    to_seconds,
)

VERSION: Final = 1
"""The protocol version this code speaks (`version` in `session.start`)."""

ENCODINGS: Final = ("pcm_s16le", "opus")
"""Accepted input encodings. Opus: one packet per binary message (any Opus rate)."""

ROLES: Final = ("speaker", "listener")

# -- error codes (stable: clients switch on them) ---------------------------------------
UNAUTHORIZED: Final = "unauthorized"
ORIGIN_NOT_ALLOWED: Final = "origin_not_allowed"
MESSAGE_TOO_LARGE: Final = "message_too_large"
MALFORMED_JSON: Final = "malformed_json"
UNKNOWN_TYPE: Final = "unknown_type"
UNSUPPORTED_VERSION: Final = "unsupported_version"
BAD_REQUEST: Final = "bad_request"
UNSUPPORTED_FORMAT: Final = "unsupported_format"
NO_SESSION: Final = "no_session"
BAD_AUDIO: Final = "bad_audio"
RATE_LIMITED: Final = "rate_limited"
SESSION_LIMIT: Final = "session_limit"
QUOTA_EXCEEDED: Final = "quota_exceeded"
IDLE_TIMEOUT: Final = "idle_timeout"
SESSION_TIMEOUT: Final = "session_timeout"
SLOW_CONSUMER: Final = "slow_consumer"
RESUME_FAILED: Final = "resume_failed"
SERVER_SHUTDOWN: Final = "server_shutdown"
INTERNAL: Final = "internal"


class WireError(DragomanError):
    """A protocol-level error with its stable wire `code` (see the list above)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False,
                 fatal: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.code = code
        self.fatal = fatal

    def to_message(self) -> dict[str, Any]:
        return error_message(self.code, self.message, retryable=self.retryable, fatal=self.fatal)


# -- client -> server ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputFormat:
    """What the binary frames a speaker sends contain."""

    encoding: str = "pcm_s16le"
    sample_rate: int = SAMPLE_RATE
    channels: int = 1


@dataclass(frozen=True, slots=True)
class StartRequest:
    """`session.start`: open a session (a private one, or a seat in a room)."""

    source: str | None = None
    """Source language code, or None for per-utterance detection ("auto" on the wire)."""
    targets: tuple[str, ...] = ()
    role: str = "speaker"
    room: str | None = None
    name: str = ""
    voice: str | None = None
    prosody: bool = True
    speak: bool = True
    format: InputFormat = InputFormat()
    batch: bool = False
    token: str | None = None


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """`session.resume`: reattach to a session after a dropped connection."""

    session_id: str
    resume_token: str
    last_seq: int
    token: str | None = None


@dataclass(frozen=True, slots=True)
class AudioEnd:
    """`audio.end`: no more audio; flush, deliver everything, then `session.end`."""


@dataclass(frozen=True, slots=True)
class TargetChange:
    """`target.add` / `target.remove`: change this session's target languages."""

    language: str
    add: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """`ack`: the client holds every message up to `seq`; the server may forget them."""

    seq: int


ClientMessage = StartRequest | ResumeRequest | AudioEnd | TargetChange | Ack


def parse_client_text(text: str) -> ClientMessage:
    """Parse one JSON control message; raise `WireError` (never fatal) when it is bad.

    Unknown fields are ignored (forward compatibility); unknown types are an error.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise WireError(MALFORMED_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError(MALFORMED_JSON, "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise WireError(BAD_REQUEST, "a message needs a string 'type'")
    if kind == "session.start":
        return _parse_start(data)
    if kind == "session.resume":
        _check_version(data)
        return ResumeRequest(
            session_id=_str(data, "session_id", required=True) or "",
            resume_token=_str(data, "resume_token", required=True) or "",
            last_seq=_int(data, "last_seq", 0, minimum=-1),
            token=_str(data, "token"),
        )
    if kind == "audio.end":
        return AudioEnd()
    if kind in ("target.add", "target.remove"):
        language = _str(data, "language", required=True) or ""
        return TargetChange(language, add=kind == "target.add")
    if kind == "ack":
        return Ack(_int(data, "seq", 0, minimum=0))
    raise WireError(UNKNOWN_TYPE, f"unknown message type {kind!r}")


def _check_version(data: dict[str, Any]) -> None:
    version = data.get("version", VERSION)
    if version != VERSION:
        raise WireError(UNSUPPORTED_VERSION, f"protocol version {version!r} is not "
                        f"supported; this server speaks {VERSION}")


def _parse_start(data: dict[str, Any]) -> StartRequest:
    _check_version(data)
    source = _str(data, "source")
    if source in ("auto", ""):
        source = None
    targets_raw = data.get("targets", [])
    if not isinstance(targets_raw, list) or not all(isinstance(t, str) and t for t in targets_raw):
        raise WireError(BAD_REQUEST, "'targets' must be a list of language codes")
    targets = tuple(dict.fromkeys(targets_raw))
    if len(targets) > 16:
        raise WireError(BAD_REQUEST, "at most 16 target languages per session")
    role = _str(data, "role") or "speaker"
    if role not in ROLES:
        raise WireError(BAD_REQUEST, f"'role' must be one of {ROLES}")
    room = _str(data, "room")
    if role == "listener" and not room:
        raise WireError(BAD_REQUEST, "a listener must name a 'room'")
    if room is not None and not 0 < len(room) <= 128:
        raise WireError(BAD_REQUEST, "'room' must be 1-128 characters")
    if role == "listener" and not targets:
        raise WireError(BAD_REQUEST, "a listener needs at least one target language")
    fmt_raw = data.get("format", {})
    if not isinstance(fmt_raw, dict):
        raise WireError(BAD_REQUEST, "'format' must be an object")
    fmt = InputFormat(
        encoding=_str(fmt_raw, "encoding") or "pcm_s16le",
        sample_rate=_int(fmt_raw, "sample_rate", SAMPLE_RATE, minimum=1),
        channels=_int(fmt_raw, "channels", 1, minimum=1),
    )
    if fmt.encoding not in ENCODINGS:
        raise WireError(UNSUPPORTED_FORMAT,
                        f"encoding {fmt.encoding!r} is not supported; use one of {ENCODINGS}")
    if fmt.channels != 1:
        raise WireError(UNSUPPORTED_FORMAT, "audio must be mono (channels: 1)")
    if fmt.encoding == "pcm_s16le" and fmt.sample_rate != SAMPLE_RATE:
        raise WireError(UNSUPPORTED_FORMAT,
                        f"pcm_s16le audio must be {SAMPLE_RATE} Hz, got {fmt.sample_rate}")
    return StartRequest(
        source=source,
        targets=targets,
        role=role,
        room=room,
        name=(_str(data, "name") or "")[:64],
        voice=_str(data, "voice"),
        prosody=_bool(data, "prosody", True),
        speak=_bool(data, "speak", True),
        format=fmt,
        batch=_bool(data, "batch", False),
        token=_str(data, "token"),
    )


def _str(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise WireError(BAD_REQUEST, f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise WireError(BAD_REQUEST, f"field {key!r} must be a string")
    return value


def _int(data: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WireError(BAD_REQUEST, f"field {key!r} must be an integer >= {minimum}")
    return value


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise WireError(BAD_REQUEST, f"field {key!r} must be true or false")
    return value


def start_message(request: StartRequest) -> dict[str, Any]:
    """The JSON form of a `session.start` (what the SDK sends)."""
    message: dict[str, Any] = {
        "type": "session.start",
        "version": VERSION,
        "source": request.source or "auto",
        "targets": list(request.targets),
        "role": request.role,
        "prosody": request.prosody,
        "speak": request.speak,
        "format": {
            "encoding": request.format.encoding,
            "sample_rate": request.format.sample_rate,
            "channels": request.format.channels,
        },
        "batch": request.batch,
    }
    for key, value in (("room", request.room), ("voice", request.voice),
                       ("token", request.token), ("name", request.name or None)):
        if value is not None:
            message[key] = value
    return message


# -- server -> client ----------------------------------------------------------------------


def error_message(code: str, message: str, *, retryable: bool = False,
                  fatal: bool = False) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message,
            "retryable": retryable, "fatal": fatal}


def _words(words: tuple[Word, ...]) -> list[dict[str, Any]]:
    return [{"text": w.text.strip(), "start": to_seconds(w.start), "end": to_seconds(w.end),
             "probability": round(float(w.probability), 4)} for w in words]


def _span(span: Span) -> dict[str, float]:
    return {"start": to_seconds(span.start), "end": to_seconds(span.end)}


def is_committed(event: Event) -> bool:
    """Whether an event is final (kept for resume) rather than a transient update."""
    if isinstance(event, SourceText):
        return bool(event.committed) or event.final
    if isinstance(event, TranslationText):
        return bool(event.committed_delta) or event.final
    return not isinstance(event, Lag)


def event_message(event: Event, speaker: str) -> dict[str, Any]:
    """The JSON message for a pipeline event (everything but `AudioChunk`)."""
    if isinstance(event, SourceText):
        kind = "source.commit" if is_committed(event) else "source.partial"
        return {"type": kind, "speaker": speaker, "utterance": event.utterance,
                "language": event.language, "committed": _words(event.committed),
                "tentative": _words(event.tentative), "final": event.final,
                "language_probability": round(float(event.language_probability), 4)}
    if isinstance(event, TranslationText):
        kind = "translation.commit" if is_committed(event) else "translation.partial"
        return {"type": kind, "speaker": speaker, "utterance": event.utterance,
                "language": event.language, "committed": event.committed_delta,
                "uncommitted": event.uncommitted, "source_span": _span(event.source_span),
                "final": event.final}
    if isinstance(event, SpeechStarted | SpeechEnded):
        kind = "speech.started" if isinstance(event, SpeechStarted) else "speech.ended"
        return {"type": kind, "speaker": speaker, "utterance": event.utterance,
                "at": to_seconds(event.at)}
    if isinstance(event, Lag):
        return {"type": "lag", "speaker": speaker, "stage": event.stage,
                "behind": to_seconds(event.behind), "degraded": list(event.degraded)}
    if isinstance(event, Error):
        message = error_message(event.code, event.message, retryable=event.retryable)
        message["speaker"] = speaker
        return message
    raise TypeError(f"no JSON form for {type(event).__name__}")


def parse_event(data: dict[str, Any]) -> Event | None:
    """The `dragoman.events` object for a server JSON message (None: not an event)."""
    kind = data.get("type")
    if kind in ("source.commit", "source.partial"):
        return SourceText(
            utterance=int(data["utterance"]), language=str(data["language"]),
            committed=_parse_words(data.get("committed", [])),
            tentative=_parse_words(data.get("tentative", [])),
            final=bool(data.get("final", False)),
            language_probability=float(data.get("language_probability", 1.0)))
    if kind in ("translation.commit", "translation.partial"):
        span = data.get("source_span") or {"start": 0.0, "end": 0.0}
        return TranslationText(
            utterance=int(data["utterance"]), language=str(data["language"]),
            committed_delta=str(data.get("committed", "")),
            uncommitted=str(data.get("uncommitted", "")),
            source_span=Span(to_samples(span["start"]), to_samples(span["end"])),
            final=bool(data.get("final", False)))
    if kind == "speech.started":
        return SpeechStarted(to_samples(float(data["at"])), int(data["utterance"]))
    if kind == "speech.ended":
        return SpeechEnded(to_samples(float(data["at"])), int(data["utterance"]))
    if kind == "lag":
        return Lag(str(data["stage"]), to_samples(float(data["behind"])),
                   tuple(str(d) for d in data.get("degraded", [])))
    if kind == "error":
        return Error(str(data["code"]), str(data.get("message", "")),
                     bool(data.get("retryable", False)))
    return None


def _parse_words(items: list[dict[str, Any]]) -> tuple[Word, ...]:
    return tuple(Word(str(w["text"]), to_samples(float(w["start"])), to_samples(float(w["end"])),
                      float(w.get("probability", 1.0))) for w in items)


# -- binary audio out ------------------------------------------------------------------------

AUDIO_HEADER: Final = struct.Struct("<2sBBHHI8sIQQQ")
"""magic "DG", version, kind (1 = PCM16 LE mono), header size, speaker index, seq,
language (ASCII, NUL-padded), sample rate, pts (samples at that rate), source start and
end (16 kHz session samples). 48 bytes, little-endian; PCM follows."""
AUDIO_MAGIC: Final = b"DG"
AUDIO_KIND_PCM16: Final = 1


@dataclass(frozen=True, slots=True)
class AudioHeader:
    seq: int
    speaker: int
    language: str
    sample_rate: int
    pts: int
    source_span: Span


def encode_pcm16(samples: FloatAudio) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0)
    return (np.round(clipped * 32767.0)).astype("<i2").tobytes()


def audio_header(chunk: AudioChunk, *, seq: int, speaker: int) -> bytes:
    language = chunk.language.encode("ascii", "replace")[:8]
    return AUDIO_HEADER.pack(AUDIO_MAGIC, VERSION, AUDIO_KIND_PCM16, AUDIO_HEADER.size,
                             speaker, seq & 0xFFFFFFFF, language, chunk.sample_rate, chunk.pts,
                             chunk.source_span.start, chunk.source_span.end)


def parse_audio_frame(data: bytes) -> tuple[AudioHeader, AudioChunk]:
    """Split a server binary frame into its header and an `AudioChunk` (float32 PCM)."""
    if len(data) < AUDIO_HEADER.size:
        raise WireError(BAD_AUDIO, f"audio frame of {len(data)} bytes has no header")
    (magic, version, kind, size, speaker, seq, language, rate, pts, start,
     end) = AUDIO_HEADER.unpack_from(data)
    if magic != AUDIO_MAGIC or kind != AUDIO_KIND_PCM16 or size < AUDIO_HEADER.size:
        raise WireError(BAD_AUDIO, "not a Dragoman audio frame")
    del version  # newer minor versions may only append header fields
    pcm = np.frombuffer(data, dtype="<i2", offset=size).astype(np.float32) / 32768.0
    lang = language.rstrip(b"\0").decode("ascii")
    span = Span(start, end)
    header = AudioHeader(seq, speaker, lang, rate, pts, span)
    return header, AudioChunk(lang, pcm.astype(np.float32), rate, pts, span)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
