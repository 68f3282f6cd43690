"""The SDK (`dragoman.client`) against a real server on loopback (stand-in pipeline).

test_web_pipeline.py runs the SDK against the real pipeline; here the stand-in's
deterministic words let us prove that an automatic resume loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from dragoman.audio import write_wav
from dragoman.client import ClientError, ClientSession, DragomanClient, translate_file
from dragoman.events import SAMPLE_RATE, AudioChunk, Event, SourceText, TranslationText
from dragoman.web import protocol
from dragoman.web.auth import ApiKey, KeyStore, hash_token
from dragoman.web.config import ServerConfig
from dragoman.web.pipelines import stand_in_factory
from dragoman.web.server import DragomanServer

TOKEN = "dk_client_tests"


async def make_server() -> DragomanServer:
    keys = KeyStore([ApiKey("client", hash_token(TOKEN), max_sessions=8)])
    srv = DragomanServer(ServerConfig(port=0, resume_grace_s=5.0), stand_in_factory(), keys)
    await srv.start()
    return srv


@pytest.fixture
async def server() -> AsyncIterator[DragomanServer]:
    srv = await make_server()
    yield srv
    await srv.shutdown()


def tone(seconds: float) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


async def paced(session: ClientSession, audio: np.ndarray[tuple[int], np.dtype[np.float32]],
                frame: float = 0.1) -> None:
    step = round(frame * SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, offset in enumerate(range(0, audio.size, step)):
        await session.send_audio(audio[offset:offset + step])
        await asyncio.sleep(max(0.0, began + (index + 1) * frame - loop.time()))


def url(server: DragomanServer) -> str:
    return f"ws://127.0.0.1:{server.port}/v1"


async def test_typed_events_mirror_the_pipeline(server: DragomanServer) -> None:
    async with DragomanClient(url(server), TOKEN) as client:
        session = await client.start(source="es", targets=["fr"])
        await paced(session, tone(1.0))
        await session.add_target("it")
        await paced(session, tone(0.5))
        await session.end_input()
        events = [event async for event in session]
    commits = [e for e in events if isinstance(e, SourceText) and e.committed]
    assert [w.end for e in commits for w in e.committed] == [8000, 16000, 24000]
    assert {e.language for e in events if isinstance(e, TranslationText)} == {"fr", "it"}
    chunk = next(e for e in events if isinstance(e, AudioChunk))
    assert chunk.sample_rate == 24_000 and chunk.pcm.dtype == np.float32
    assert chunk.source_span.end == 8000
    assert session.end_reason == "completed"
    assert session.summary is not None and session.summary["audio_in"] == pytest.approx(1.5)


async def test_bad_token_raises_with_the_protocol_code(server: DragomanServer) -> None:
    async with DragomanClient(url(server), "wrong") as client:
        with pytest.raises(ClientError) as refused:
            await client.start(source="es", targets=["fr"])
    assert refused.value.code == protocol.UNAUTHORIZED


def committed_view(events: list[Event]) -> tuple[list[int], list[str], list[int]]:
    words = [w.end for e in events if isinstance(e, SourceText) for w in e.committed]
    text = [e.committed_delta for e in events
            if isinstance(e, TranslationText) and e.committed_delta]
    pts = [e.pts for e in events if isinstance(e, AudioChunk)]
    return words, text, pts


async def test_automatic_resume_loses_no_committed_event(server: DragomanServer) -> None:
    async with DragomanClient(url(server), TOKEN) as client:
        session = await client.start(source="es", targets=["fr"])
        events: list[Event] = []

        async def read() -> None:
            async for event in session:
                events.append(event)

        reader = asyncio.create_task(read())
        await paced(session, tone(1.2))
        assert session._ws is not None
        session._ws.transport.abort()  # the network drops mid-session
        await paced(session, tone(1.3))  # audio sent meanwhile is re-sent after the resume
        await session.end_input()
        await asyncio.wait_for(reader, 10)
    assert session.reconnects == 1 and session.end_reason == "completed"
    words, text, pts = committed_view(events)
    assert words == [8000 * (i + 1) for i in range(5)]  # every word once, in order
    assert text == [f"fr:{w} " for w in ("hola", "buenos", "dias", "gracias", "por")]
    assert pts == [12_000 * i for i in range(5)]
    assert session.summary is not None and session.summary["resumes"] == 1
    assert session.summary["audio_in"] == pytest.approx(2.5)


@pytest.fixture
def threaded_server() -> Iterator[DragomanServer]:
    """A server on its own event loop thread, for the blocking `translate_file`."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[DragomanServer] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder.append(loop.run_until_complete(make_server()))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder[0]
    asyncio.run_coroutine_threadsafe(holder[0].shutdown(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_translate_file(threaded_server: DragomanServer, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    write_wav(path, tone(1.5), SAMPLE_RATE)
    result = translate_file(path, url(threaded_server), TOKEN, source="es", targets=["fr"])
    assert result.source_text == "hola buenos dias"
    assert result.translations == {"fr": "fr:hola fr:buenos fr:dias"}
    assert result.audio["fr"].size == 3 * 12_000 and result.sample_rate == 24_000
    assert result.summary is not None and result.summary["audio_in"] == pytest.approx(1.5)
