"""The server on the real pipeline: real Spanish speech in, watermarked French out.

Over loopback with a real `websockets` client (protocol level) and with the SDK.
One short Asterisk prompt per session keeps this within a few tens of seconds on CPU.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from watermark_check import assert_watermarked
from websockets.asyncio.client import connect

from dragoman.audio import load_audio
from dragoman.client import DragomanClient
from dragoman.corpus import prompt
from dragoman.events import SAMPLE_RATE, AudioChunk, SourceText, TranslationText, join_words
from dragoman.pipeline import PipelineConfig, Resources
from dragoman.textnorm import normalize_text
from dragoman.watermark import WatermarkKey
from dragoman.web import protocol
from dragoman.web.auth import ApiKey, KeyStore, hash_token
from dragoman.web.config import ServerConfig
from dragoman.web.pipelines import real_pipeline_factory
from dragoman.web.server import DragomanServer

KEY = WatermarkKey.from_passphrase("web pipeline tests")
TOKEN = "dk_real_pipeline"


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    shared = Resources(watermark_key=KEY)
    asyncio.run(shared.start())
    yield shared
    shared.close()


@pytest.fixture
async def server(resources: Resources) -> AsyncIterator[DragomanServer]:
    keys = KeyStore([ApiKey("real", hash_token(TOKEN), batch=True)])
    srv = DragomanServer(ServerConfig(port=0), real_pipeline_factory(resources), keys)
    await srv.start()
    yield srv
    await srv.shutdown()


def speech() -> Any:
    audio = load_audio(prompt("es", "vm-passchanged").path)  # "Sus contrasenas han sido cambiadas."
    return np.concatenate([audio, np.zeros(SAMPLE_RATE, dtype=np.float32)])


def payload_of(session_id: str) -> int:
    return PipelineConfig(session_id=session_id).watermark_payload


async def test_protocol_end_to_end_on_real_speech(server: DragomanServer) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}/v1", max_queue=None,
                       additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send(json.dumps({"type": "session.start", "version": 1, "source": "es",
                                  "targets": ["fr"], "format": {"encoding": "pcm_s16le",
                                                                "sample_rate": 16000}}))
        started = json.loads(await ws.recv())
        assert started["type"] == "session.started"
        audio = speech()
        step = SAMPLE_RATE // 10
        loop = asyncio.get_running_loop()
        began = loop.time()
        for index, offset in enumerate(range(0, audio.size, step)):  # paced like a live mic
            await ws.send(protocol.encode_pcm16(audio[offset:offset + step]))
            await asyncio.sleep(max(0.0, began + (index + 1) / 10 - loop.time()))
        await ws.send(json.dumps({"type": "audio.end"}))
        messages: list[Any] = []
        async with asyncio.timeout(120):
            async for data in ws:
                messages.append(json.loads(data) if isinstance(data, str) else data)
    kinds = {m["type"] for m in messages if isinstance(m, dict)}
    assert {"speech.started", "source.commit", "translation.commit", "session.end"} <= kinds
    source = " ".join(w["text"] for m in messages if isinstance(m, dict)
                      and m["type"] == "source.commit" for w in m["committed"])
    assert "contrasenas" in normalize_text(source) or "cambiadas" in normalize_text(source)
    french = "".join(m["committed"] for m in messages if isinstance(m, dict)
                     and m["type"] == "translation.commit" and m["language"] == "fr")
    assert len(normalize_text(french).split()) >= 3
    chunks = [protocol.parse_audio_frame(m) for m in messages if isinstance(m, bytes)]
    assert chunks and {h.language for h, _ in chunks} == {"fr"}
    assert [h.seq for h, _ in chunks] == sorted(h.seq for h, _ in chunks)
    pcm = np.concatenate([c.pcm for _, c in chunks])
    assert_watermarked(pcm, KEY, chunks[0][1].sample_rate, payload_of(started["session_id"]))
    end = messages[-1]
    assert end["type"] == "session.end" and end["reason"] == "completed"
    assert end["summary"]["audio_out"]["fr"] == pytest.approx(pcm.size / 24_000, abs=0.01)


async def test_sdk_against_the_real_server(server: DragomanServer) -> None:
    async with DragomanClient(f"ws://127.0.0.1:{server.port}/v1", TOKEN) as client:
        session = await client.start(source="es", targets=["fr"], batch=True)
        assert session.info is not None and session.info.batch
        await session.send_audio(speech())  # batch mode: as fast as the server takes it
        await session.end_input()
        events = [event async for event in session]
    assert session.end_reason == "completed" and session.error is None
    words = [w for e in events if isinstance(e, SourceText) for w in e.committed]
    assert "cambiadas" in normalize_text(join_words(words))
    french = "".join(e.committed_delta for e in events
                     if isinstance(e, TranslationText) and e.language == "fr")
    assert french.strip()
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert chunks and all(c.language == "fr" and c.pcm.dtype == np.float32 for c in chunks)
    pcm = np.concatenate([c.pcm for c in chunks])
    assert_watermarked(pcm, KEY, chunks[0].sample_rate, payload_of(session.session_id))
