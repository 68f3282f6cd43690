"""The WebSocket server over loopback with a real `websockets` client.

The pipeline here is `StandInPipeline` (no ML, real event shapes, real-time pace) so that
protocol, limits, rooms, resume and backpressure are tested in seconds; the real
pipeline behind the same server is tested in test_web_pipeline.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from dragoman.events import SAMPLE_RATE
from dragoman.web import protocol
from dragoman.web.auth import ApiKey, KeyStore, hash_token
from dragoman.web.config import ServerConfig
from dragoman.web.pipelines import StandInPipeline, stand_in_factory
from dragoman.web.server import DragomanServer

TOKEN = "dk_test_token_one"
BATCH_TOKEN = "dk_test_token_batch"
LIMITED_TOKEN = "dk_test_token_limited"


def keys() -> KeyStore:
    return KeyStore([
        ApiKey("main", hash_token(TOKEN), max_sessions=16),
        ApiKey("batch", hash_token(BATCH_TOKEN), max_sessions=16, batch=True, tenant="main"),
        ApiKey("limited", hash_token(LIMITED_TOKEN), max_sessions=1, audio_minutes=0.02),
    ])


async def make_server(**overrides: Any) -> DragomanServer:
    config = ServerConfig(port=0, **{"idle_timeout_s": 5.0, "resume_grace_s": 5.0,
                                     **overrides})
    server = DragomanServer(config, stand_in_factory(), keys())
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[DragomanServer]:
    srv = await make_server()
    yield srv
    await srv.shutdown()


def url(server: DragomanServer) -> str:
    return f"ws://127.0.0.1:{server.port}/v1"


async def open_ws(server: DragomanServer, token: str | None = TOKEN,
                  **kwargs: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    kwargs.setdefault("max_queue", 4096)  # tests read late; never stall the closing handshake
    return await connect(url(server), additional_headers=headers, **kwargs)


async def recv_json(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    """The next JSON message (binary audio frames are skipped)."""
    async with asyncio.timeout(within):
        while True:
            data = await ws.recv()
            if isinstance(data, str):
                message: dict[str, Any] = json.loads(data)
                return message


async def until(ws: ClientConnection, kind: str, within: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            message = await recv_json(ws, within)
            if message["type"] == kind:
                return message


async def start(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "session.start", "version": 1, "source": "es",
                              "targets": ["fr"], **fields}))
    return await recv_json(ws)


def tone(seconds: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


async def send_paced(ws: ClientConnection, seconds: float, frame: float = 0.1) -> None:
    audio = tone(seconds)
    step = round(frame * SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, offset in enumerate(range(0, audio.size, step)):
        await ws.send(protocol.encode_pcm16(audio[offset:offset + step]))
        await asyncio.sleep(max(0.0, began + (index + 1) * frame - loop.time()))


async def collect(ws: ClientConnection, within: float = 10.0) -> list[dict[str, Any] | bytes]:
    """Everything until the connection closes (binary frames kept as bytes)."""
    out: list[dict[str, Any] | bytes] = []
    async with asyncio.timeout(within):
        try:
            async for data in ws:
                out.append(json.loads(data) if isinstance(data, str) else data)
        except ConnectionClosed:
            pass
    return out


async def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    for _ in range(round(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def types(messages: list[dict[str, Any] | bytes]) -> list[str]:
    return ["audio" if isinstance(m, bytes) else str(m["type"]) for m in messages]


async def assert_still_serving(server: DragomanServer) -> None:
    """A brand-new session gets a source commit for half a second of audio."""
    ws = await open_ws(server)
    try:
        assert (await start(ws))["type"] == "session.started"
        await send_paced(ws, 0.6)
        commit = await until(ws, "source.commit")
        assert commit["committed"][0]["end"] == pytest.approx(0.5)
    finally:
        await ws.close()


async def test_session_happy_path(server: DragomanServer) -> None:
    ws = await open_ws(server)
    started = await start(ws, targets=["fr", "it"])
    assert started["type"] == "session.started" and started["version"] == 1
    assert started["targets"] == ["fr", "it"] and started["resume_token"]
    await send_paced(ws, 1.5)
    await ws.send(json.dumps({"type": "audio.end", "future_field": "ignored"}))
    messages = await collect(ws)
    kinds = types(messages)
    for kind in ("speech.started", "source.partial", "source.commit", "translation.partial",
                 "translation.commit", "lag", "speech.ended", "audio"):
        assert kind in kinds, kind
    assert kinds[-1] == "session.end"
    seqs = [protocol.parse_audio_frame(m)[0].seq if isinstance(m, bytes) else m["seq"]
            for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    chunks = [protocol.parse_audio_frame(m) for m in messages if isinstance(m, bytes)]
    assert {h.language for h, _ in chunks} == {"fr", "it"}
    fr = [(h, c) for h, c in chunks if h.language == "fr"]
    assert [h.source_span.end for h, _ in fr] == [8000, 16000, 24000]
    assert fr[0][1].sample_rate == 24_000 and fr[0][1].pcm.size == 12_000
    end = messages[-1]
    assert isinstance(end, dict) and end["reason"] == "completed"
    assert end["summary"]["audio_in"] == pytest.approx(1.5)
    assert end["summary"]["source_words"] == 3
    assert ws.close_code == 1000
    await eventually(lambda: not server.sessions)


async def http_get(server: DragomanServer, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_http_health_metrics_and_static_client(server: DragomanServer) -> None:
    status, body = await http_get(server, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    ws = await open_ws(server)
    await start(ws)
    await send_paced(ws, 0.6)
    await until(ws, "source.commit")
    status, body = await http_get(server, "/metrics")
    assert status == 200
    assert 'dragoman_sessions{role="speaker"} 1.0' in body
    assert "dragoman_commit_latency_seconds_bucket" in body
    assert "dragoman_send_delay_seconds_count" in body
    tasks = re.search(r"^dragoman_event_loop_tasks (\d+)", body, re.M)
    assert tasks is not None and float(tasks.group(1)) >= 2  # at least handler + pipeline
    status, body = await http_get(server, "/")
    assert status == 200 and "<html" in body.lower()
    assert (await http_get(server, "/../../pyproject.toml"))[0] == 404
    assert (await http_get(server, "/nothing-here.js"))[0] == 404
    await ws.close()


async def expect_http_refusal(server: DragomanServer, status: int, code: str,
                              **kwargs: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server, **kwargs)
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body)["code"] == code


@pytest.mark.parametrize("case", [
    "bad_token_header", "bad_token_in_message", "no_token", "bad_origin", "oversized",
    "malformed_json", "unknown_type", "wrong_sample_format", "odd_pcm_bytes",
    "too_fast_audio", "idle_timeout", "session_limit", "quota", "audio_before_start",
    "unsupported_version",
])
async def test_error_paths(case: str) -> None:
    srv = await make_server(idle_timeout_s=0.6, max_message_bytes=4096)
    try:
        healthy = await open_ws(srv)
        await start(healthy)
        feeding = asyncio.create_task(send_paced(healthy, 3.0))
        try:
            await check_error_case(srv, case)
            await assert_still_serving(srv)
            commit = await until(healthy, "source.commit")  # the other session went on
            assert commit["type"] == "source.commit"
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await feeding
        await healthy.close()
    finally:
        await srv.shutdown()


async def check_error_case(srv: DragomanServer, case: str) -> None:
    if case == "bad_token_header":
        await expect_http_refusal(srv, 401, protocol.UNAUTHORIZED, token="wrong")
    elif case == "bad_origin":
        await expect_http_refusal(srv, 403, protocol.ORIGIN_NOT_ALLOWED,
                                  origin="https://evil.example")
    elif case in ("bad_token_in_message", "no_token"):
        ws = await open_ws(srv, token=None)
        extra = {"token": "wrong"} if case == "bad_token_in_message" else {}
        error = await start(ws, **extra)
        assert (error["code"], error["fatal"]) == (protocol.UNAUTHORIZED, True)
        await collect(ws)
        assert ws.close_code == 1008
    elif case in ("oversized", "malformed_json", "unknown_type", "audio_before_start",
                  "unsupported_version"):
        ws = await open_ws(srv)
        payloads: dict[str, str | bytes] = {
            "oversized": json.dumps({"type": "ack", "pad": "x" * 5000}),
            "malformed_json": '{"type": "session.start", ',
            "unknown_type": json.dumps({"type": "session.dance"}),
            "audio_before_start": b"\0\0" * 100,
            "unsupported_version": json.dumps({"type": "session.start", "version": 99}),
        }
        await ws.send(payloads[case])
        error = await recv_json(ws)
        code = {"oversized": protocol.MESSAGE_TOO_LARGE, "malformed_json": protocol.MALFORMED_JSON,
                "unknown_type": protocol.UNKNOWN_TYPE, "audio_before_start": protocol.NO_SESSION,
                "unsupported_version": protocol.UNSUPPORTED_VERSION}[case]
        assert error["type"] == "error" and error["code"] == code and not error["fatal"]
        assert (await start(ws))["type"] == "session.started"  # not a disconnect
        await ws.send(json.dumps({"type": "session.dance"}))  # same, inside a session
        assert (await until(ws, "error"))["code"] == protocol.UNKNOWN_TYPE
        await ws.close()
    elif case == "wrong_sample_format":
        ws = await open_ws(srv)
        error = await start(ws, format={"encoding": "pcm_f32le", "sample_rate": 16000})
        assert error["code"] == protocol.UNSUPPORTED_FORMAT
        error = await start(ws, format={"encoding": "pcm_s16le", "sample_rate": 44100})
        assert error["code"] == protocol.UNSUPPORTED_FORMAT
        assert (await start(ws))["type"] == "session.started"
        await ws.close()
    elif case == "odd_pcm_bytes":
        ws = await open_ws(srv)
        await start(ws)
        await ws.send(b"\0" * 101)
        assert (await until(ws, "error"))["code"] == protocol.BAD_AUDIO
        await ws.close()
    elif case == "too_fast_audio":
        ws = await open_ws(srv)
        started = await start(ws)
        frame = protocol.encode_pcm16(tone(0.1))
        for _ in range(100):  # 10 s of audio at once, beyond the 2 s burst
            await ws.send(frame)
        error = await until(ws, "error")
        assert (error["code"], error["retryable"]) == (protocol.RATE_LIMITED, True)
        received = srv.sessions[started["session_id"]].summary.audio_in_samples
        assert 1.5 * SAMPLE_RATE <= received <= 3 * SAMPLE_RATE  # the rest was dropped
        await ws.close()
    elif case == "idle_timeout":
        ws = await open_ws(srv)
        await start(ws)
        error = await until(ws, "error", within=5)
        assert (error["code"], error["fatal"]) == (protocol.IDLE_TIMEOUT, True)
        assert (await until(ws, "session.end"))["reason"] == protocol.IDLE_TIMEOUT
    elif case == "session_limit":
        first = await open_ws(srv, token=LIMITED_TOKEN)
        assert (await start(first))["type"] == "session.started"
        second = await open_ws(srv, token=LIMITED_TOKEN)
        error = await start(second)
        assert (error["code"], error["retryable"]) == (protocol.SESSION_LIMIT, True)
        await first.close()
    elif case == "quota":  # 0.02 audio minutes = 1.2 s for this key
        ws = await open_ws(srv, token=LIMITED_TOKEN)
        await start(ws)
        feeding = asyncio.create_task(send_paced(ws, 3.0))
        try:
            error = await until(ws, "error", within=8)
            assert (error["code"], error["fatal"]) == (protocol.QUOTA_EXCEEDED, True)
            assert (await until(ws, "session.end"))["reason"] == protocol.QUOTA_EXCEEDED
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await feeding
    else:
        raise AssertionError(case)


def speaker_pipeline(srv: DragomanServer, room: str) -> StandInPipeline:
    feeds = [f for r in srv.rooms.values() if r.id.endswith("/" + room)
             for f in r.speakers.values()]
    assert len(feeds) == 1
    assert isinstance(feeds[0].pipeline, StandInPipeline)
    return feeds[0].pipeline


async def test_room_translates_each_language_once(server: DragomanServer) -> None:
    speaker = await open_ws(server)
    assert (await start(speaker, room="town-hall", targets=[]))["role"] == "speaker"
    listeners = {}
    for name, language in (("ana", "it"), ("ben", "de"), ("cleo", "fr"), ("dan", "fr")):
        ws = await open_ws(server)
        started = await start(ws, role="listener", room="town-hall", targets=[language],
                              name=name)
        assert started["role"] == "listener"
        listeners[name] = ws
    pipeline = speaker_pipeline(server, "town-hall")
    assert sorted(pipeline.targets) == ["de", "fr", "it"]
    assert pipeline.target_changes == [("add", "it"), ("add", "de"), ("add", "fr")]
    await send_paced(speaker, 1.6)
    await speaker.send(json.dumps({"type": "audio.end"}))
    await collect(speaker)
    received: dict[str, list[dict[str, Any] | bytes]] = {}
    for name, ws in listeners.items():
        received[name] = []
        while True:
            data = await asyncio.wait_for(ws.recv(), 5)
            message = json.loads(data) if isinstance(data, str) else data
            received[name].append(message)
            if isinstance(message, dict) and message["type"] == "speech.ended":
                break

    def translations(name: str) -> list[tuple[str, str]]:
        return [(m["language"], m["committed"]) for m in received[name]
                if isinstance(m, dict) and m["type"] == "translation.commit" and m["committed"]]

    assert translations("ana") == [("it", "it:hola "), ("it", "it:buenos "), ("it", "it:dias ")]
    assert {lang for lang, _ in translations("ben")} == {"de"}
    assert translations("cleo") == translations("dan") == [
        ("fr", "fr:hola "), ("fr", "fr:buenos "), ("fr", "fr:dias ")]
    # Translated once per language: fr has as many updates as it, despite two listeners.
    assert pipeline.translations["fr"] == pipeline.translations["it"] > 0
    audio_fr = [protocol.parse_audio_frame(m)[0] for m in received["dan"]
                if isinstance(m, bytes)]
    assert [h.language for h in audio_fr] == ["fr"] * 3
    assert all(m["speaker"] == "speaker-0" for m in received["cleo"]
               if isinstance(m, dict) and "speaker" in m)
    for ws in listeners.values():
        await ws.close()


async def test_listeners_leaving_remove_their_language(server: DragomanServer) -> None:
    speaker = await open_ws(server)
    await start(speaker, room="r2", targets=["it"])
    a, b = await open_ws(server), await open_ws(server)
    await start(a, role="listener", room="r2", targets=["fr"])
    await start(b, role="listener", room="r2", targets=["fr"])
    pipeline = speaker_pipeline(server, "r2")
    await a.close()
    await asyncio.sleep(0.2)
    assert "fr" in pipeline.targets
    await b.close()
    await eventually(lambda: "fr" not in pipeline.targets)
    assert pipeline.target_changes == [("add", "fr"), ("remove", "fr")]
    assert pipeline.targets == ["it"]
    await speaker.close()


async def test_resume_after_dropped_connection_loses_no_commit(server: DragomanServer) -> None:
    ws = await open_ws(server)
    started = await start(ws)
    before: list[dict[str, Any] | bytes] = []
    await send_paced(ws, 1.2)
    async with asyncio.timeout(5):
        while not any(isinstance(m, bytes) for m in before):
            data = await ws.recv()
            before.append(json.loads(data) if isinstance(data, str) else data)
    last_seq = max(protocol.parse_audio_frame(m)[0].seq if isinstance(m, bytes) else m["seq"]
                   for m in before)
    ws.transport.abort()  # the network drops: no closing handshake
    session = server.sessions[started["session_id"]]
    await eventually(lambda: session.connection is None)
    await asyncio.sleep(1.1)  # the pipeline runs on; commits pile up for us meanwhile

    again = await open_ws(server)
    await again.send(json.dumps({"type": "session.resume", "session_id": started["session_id"],
                                 "resume_token": started["resume_token"],
                                 "last_seq": last_seq}))
    resumed = await recv_json(again)
    assert resumed["type"] == "session.resumed"
    assert resumed["audio_received_samples"] == session.feed.received  # type: ignore[union-attr]
    await send_paced(again, 1.0)
    await again.send(json.dumps({"type": "audio.end"}))
    after = await collect(again)
    everything = before + after
    commits = [w for m in everything if isinstance(m, dict) and m["type"] == "source.commit"
               for w in m["committed"]]
    ends = [w["end"] for w in commits]
    assert ends == [0.5 * (i + 1) for i in range(len(ends))]  # every word, once, in order
    assert len(ends) == 4
    pts = [protocol.parse_audio_frame(m)[0].pts for m in everything if isinstance(m, bytes)]
    assert pts == [12_000 * i for i in range(len(pts))] and len(pts) == 4
    assert isinstance(after[-1], dict) and after[-1]["type"] == "session.end"
    assert after[-1]["summary"]["resumes"] == 1


async def test_resume_with_wrong_token_or_unknown_session_fails(server: DragomanServer) -> None:
    ws = await open_ws(server)
    started = await start(ws)
    other = await open_ws(server)
    await other.send(json.dumps({"type": "session.resume", "session_id": started["session_id"],
                                 "resume_token": "guess", "last_seq": 0}))
    error = await recv_json(other)
    assert (error["code"], error["fatal"]) == (protocol.RESUME_FAILED, True)
    await ws.close()


async def test_slow_listener_is_told_then_dropped_with_bounded_memory() -> None:
    limit = 256 * 1024
    srv = await make_server(outbox_max_bytes=limit, outbox_max_messages=10_000,
                            resume_buffer_bytes=limit)
    try:
        speaker = await open_ws(srv, token=BATCH_TOKEN)
        await start(speaker, room="hall", targets=["fr"], batch=True)
        speaker_messages: list[dict[str, Any] | bytes] = []
        drain = asyncio.create_task(collect(speaker, within=60))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        listener = await connect(url(srv), sock=sock, max_queue=1, close_timeout=1,
                                 additional_headers={"Authorization": f"Bearer {TOKEN}"})
        started = await start(listener, role="listener", room="hall", targets=["fr"])
        slow = srv.sessions[started["session_id"]]
        # A slow network path: small kernel buffers on both ends, and the client never reads.
        assert slow.connection is not None
        server_sock = slow.connection.transport.get_extra_info("socket")
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peak = 0
        frame = protocol.encode_pcm16(tone(2.0))
        for _ in range(300):  # up to 10 min of audio, as fast as batch mode allows
            await speaker.send(frame)
            peak = max(peak, slow.outbox_bytes + slow.retained_bytes)
            await asyncio.sleep(0)
            if slow.ended.is_set():
                break
        async with asyncio.timeout(5):
            await slow.ended.wait()
        assert started["session_id"] not in srv.sessions
        assert peak <= 2 * limit + 128 * 1024  # outbox + resume buffer, never more
        assert slow.summary.errors >= 1  # the warning went out before the drop
        assert srv.metrics.errors.labels(protocol.SLOW_CONSUMER)._value.get() >= 1
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(3):
                await collect(listener)  # what it had buffered, then the end
        # The speaker is unaffected.
        await speaker.send(json.dumps({"type": "audio.end"}))
        speaker_messages = await drain
        end = speaker_messages[-1]
        assert isinstance(end, dict) and end["type"] == "session.end"
        assert end["reason"] == "completed"
        await assert_still_serving(srv)
    finally:
        await srv.shutdown()


async def test_graceful_shutdown_drains_sessions() -> None:
    srv = await make_server()
    address = url(srv)
    ws = await open_ws(srv)
    await start(ws)
    await send_paced(ws, 0.8)  # a partial word is under way
    listener_task = asyncio.create_task(collect(ws))
    await srv.shutdown()
    messages = await listener_task
    end = messages[-1]
    assert isinstance(end, dict) and end["type"] == "session.end"
    assert end["reason"] == protocol.SERVER_SHUTDOWN
    finals = [m for m in messages if isinstance(m, dict) and m["type"] == "source.commit"
              and m["final"]]
    assert finals, "the utterance under way was flushed before the end"
    assert ws.close_code == 1001
    assert not srv.sessions and not srv.rooms
    with pytest.raises(OSError):
        await connect(address)


def opus_packets(audio: np.ndarray[Any, np.dtype[np.float32]]) -> list[bytes]:
    """`audio` (16 kHz) as 20 ms Opus packets at 48 kHz, encoded by libopus (PyAV)."""
    import av

    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format, codec.bit_rate = 48000, "mono", "s16", 32000
    pcm = np.repeat(audio, 3)  # 16 -> 48 kHz; the codec band-limits it
    ints = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    packets: list[bytes] = []
    for offset in range(0, ints.size - 959, 960):
        frame = av.AudioFrame.from_ndarray(ints[None, offset:offset + 960], format="s16",
                                           layout="mono")
        frame.sample_rate = 48000
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets


async def test_opus_input_is_decoded_to_16_khz(server: DragomanServer) -> None:
    ws = await open_ws(server)
    try:
        started = await start(ws, format={"encoding": "opus", "sample_rate": 48000})
        assert started["type"] == "session.started"
        for packet in opus_packets(tone(1.2)):
            await ws.send(packet)
        commit = await until(ws, "source.commit")
        assert commit["committed"][0]["end"] == pytest.approx(0.5)
        await ws.send(b"\x03\x00")  # TOC code 3 with a frame count of 0: invalid
        assert (await until(ws, "error"))["code"] == protocol.BAD_AUDIO
        received = server.sessions[started["session_id"]].summary.audio_in_samples
        assert abs(received / SAMPLE_RATE - 1.2) < 0.1  # decoded at 16 kHz, nothing lost
    finally:
        await ws.close()


async def test_session_ends_at_its_maximum_length() -> None:
    srv = await make_server(max_session_s=1.0)
    try:
        ws = await open_ws(srv)
        assert (await start(ws))["type"] == "session.started"
        await send_paced(ws, 0.6)
        error = await until(ws, "error", within=6)
        assert (error["code"], error["fatal"]) == (protocol.SESSION_TIMEOUT, True)
        end = await until(ws, "session.end")
        assert end["reason"] == protocol.SESSION_TIMEOUT
        await ws.close()
        await assert_still_serving(srv)
    finally:
        await srv.shutdown()


@pytest.fixture
def self_signed(tmp_path: Any) -> tuple[Any, Any]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_with_certfile_and_keyfile(self_signed: tuple[Any, Any]) -> None:
    import ssl

    cert, key = self_signed
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    srv = DragomanServer(ServerConfig(port=0), stand_in_factory(), keys(),
                         ssl_context=server_context)
    await srv.start()
    try:
        client_context = ssl.create_default_context(cafile=str(cert))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with connect(f"wss://127.0.0.1:{srv.port}/v1", ssl=client_context,
                           additional_headers=headers) as ws:
            assert (await start(ws))["type"] == "session.started"
        with pytest.raises((ConnectionClosed, InvalidHandshake, OSError, TimeoutError)):
            async with asyncio.timeout(5):
                plain = await connect(f"ws://127.0.0.1:{srv.port}/v1", additional_headers=headers)
                await start(plain)  # a plain-text client never gets a session from it
    finally:
        await srv.shutdown()


async def test_a_batch_speaker_gets_no_live_catch_up() -> None:
    """Audio sent faster than real time (batch mode) is nobody's live speech: its pipeline
    keeps the speaker's pace (`catch_up_after_s` None); a paced speaker's has catch-up."""
    configs: list[Any] = []
    make = stand_in_factory()

    def recording(config: Any) -> Any:
        configs.append(config)
        return make(config)

    srv = DragomanServer(ServerConfig(port=0), recording, keys())
    await srv.start()
    try:
        for token, batch in ((BATCH_TOKEN, True), (TOKEN, False)):
            ws = await open_ws(srv, token=token)
            started = await start(ws, batch=batch)
            assert started["type"] == "session.started" and started["batch"] is batch
            await ws.close()
    finally:
        await srv.shutdown()
    assert [c.catch_up_after_s for c in configs] == [None, 0.5]
