"""Protocol v1 without sockets: parsing, encoding, the audio header, the JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pytest

from dragoman.events import (
    AudioChunk,
    Error,
    Event,
    Lag,
    SourceText,
    Span,
    SpeechEnded,
    SpeechStarted,
    TranslationText,
    Word,
)
from dragoman.web import protocol
from dragoman.web.auth import KeyStore, hash_token

SCHEMA = json.loads((Path(__file__).parent.parent / "docs/protocol.schema.json").read_text())

EVENTS: list[Event] = [
    SpeechStarted(3200, 0),
    SourceText(0, "es", (Word(" hola", 3200, 8000, 0.91),), (Word("que", 8000, 9600, 0.5),)),
    SourceText(0, "es", (), (Word("tal", 9600, 12000, 0.4),)),
    TranslationText(0, "fr", "bonjour ", "comment", Span(3200, 12000)),
    TranslationText(0, "fr", "", "comment ca va", Span(3200, 12800)),
    SpeechEnded(16000, 0),
    Lag("target:fr", 4000, ("speech_rate:1.10",)),
    Error("backend_failed", "tts died", True),
]


def validate(message: dict[str, Any], kind: str) -> None:
    """Validate against one branch ("client" or "server") of docs/protocol.schema.json."""
    jsonschema.validate(message, {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{kind}"})


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip_and_match_the_schema(event: Event) -> None:
    message = {**protocol.event_message(event, "speaker-0"), "seq": 7}
    validate(message, "server")
    assert protocol.parse_event(json.loads(protocol.dumps(message))) == _wire_view(event)


def _wire_view(event: Event) -> Event:
    """What survives the wire: word text is stripped, probabilities rounded."""
    if isinstance(event, SourceText):
        def strip(words: tuple[Word, ...]) -> tuple[Word, ...]:
            return tuple(Word(w.text.strip(), w.start, w.end, round(w.probability, 4))
                         for w in words)
        return SourceText(event.utterance, event.language, strip(event.committed),
                          strip(event.tentative), event.final, event.language_probability)
    return event


def test_commit_or_partial_follows_the_committed_part() -> None:
    kinds = [protocol.event_message(e, "s")["type"] for e in EVENTS[1:5]]
    assert kinds == ["source.commit", "source.partial", "translation.commit",
                     "translation.partial"]
    assert protocol.is_committed(EVENTS[0]) and not protocol.is_committed(EVENTS[6])


def test_audio_header_round_trip() -> None:
    pcm = (0.5 * np.sin(np.arange(2400) / 10)).astype(np.float32)
    chunk = AudioChunk("fr", pcm, 24_000, 48_000, Span(16_000, 24_000))
    frame = protocol.audio_header(chunk, seq=42, speaker=3) + protocol.encode_pcm16(pcm)
    assert len(frame) == 48 + 2 * pcm.size
    header, decoded = protocol.parse_audio_frame(frame)
    assert (header.seq, header.speaker, header.language, header.sample_rate, header.pts) == (
        42, 3, "fr", 24_000, 48_000)
    assert decoded.source_span == Span(16_000, 24_000)
    assert np.max(np.abs(decoded.pcm - pcm)) < 1e-4


def test_start_message_round_trip_and_schema() -> None:
    request = protocol.StartRequest(source="es", targets=("fr", "it"), room="r", name="Ana",
                                    token="t")
    message = protocol.start_message(request)
    validate(message, "client")
    assert protocol.parse_client_text(json.dumps(message)) == request
    auto = protocol.parse_client_text('{"type": "session.start", "source": "auto", "x": 1}')
    assert isinstance(auto, protocol.StartRequest) and auto.source is None


@pytest.mark.parametrize(("text", "code"), [
    ("[1, 2]", protocol.MALFORMED_JSON),
    ("{", protocol.MALFORMED_JSON),
    ('{"type": 3}', protocol.BAD_REQUEST),
    ('{"type": "nope"}', protocol.UNKNOWN_TYPE),
    ('{"type": "session.start", "version": 2}', protocol.UNSUPPORTED_VERSION),
    ('{"type": "session.start", "targets": "fr"}', protocol.BAD_REQUEST),
    ('{"type": "session.start", "role": "listener", "targets": ["fr"]}', protocol.BAD_REQUEST),
    ('{"type": "session.start", "format": {"channels": 2}}', protocol.UNSUPPORTED_FORMAT),
    ('{"type": "session.start", "prosody": "yes"}', protocol.BAD_REQUEST),
    ('{"type": "session.resume", "session_id": "s"}', protocol.BAD_REQUEST),
    ('{"type": "ack", "seq": -4}', protocol.BAD_REQUEST),
])
def test_bad_client_messages_have_stable_codes(text: str, code: str) -> None:
    with pytest.raises(protocol.WireError) as bad:
        protocol.parse_client_text(text)
    assert bad.value.code == code and not bad.value.fatal


def test_keys_are_matched_by_digest_only() -> None:
    digest = hash_token("secret-two").hex()
    store = KeyStore.load(env=f"secret-one, sha256:{digest}")
    one, two = store.authenticate("secret-one"), store.authenticate("secret-two")
    assert one is not None and two is not None and one.name != two.name
    assert store.authenticate("secret-three") is None and store.authenticate("") is None
    assert "secret" not in repr(one) and digest not in repr(two)
