"""Where translation happens: in this process, or on a Dragoman server.

Listening mode talks to a `Translator`: the shape shared by the in-process
`Pipeline` and the SDK's `ClientSession`. `Connect` opens one for a
`PipelineConfig`; the two adapters below are the only transport-specific code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from dragoman.errors import DragomanError
from dragoman.events import Event, FloatAudio
from dragoman.pipeline import Pipeline, PipelineConfig, Resources


class Translator(Protocol):
    """A started streaming session: audio in (16 kHz mono float32), events out."""

    async def push_audio(self, samples: FloatAudio) -> None: ...

    async def end_input(self) -> None: ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...


Connect = Callable[[PipelineConfig], Awaitable[Translator]]


def in_process(resources: Resources) -> Connect:
    """Sessions on this machine, sharing `resources` (models load once)."""

    async def connect(config: PipelineConfig) -> Translator:
        pipeline = Pipeline(config, resources)
        await pipeline.start()
        return pipeline

    return connect


class _RemoteSession:
    """A `ClientSession` seen as a `Translator` (`send_audio` is its `push_audio`)."""

    def __init__(self, client: Any, session: Any) -> None:
        self._client = client
        self._session = session

    async def push_audio(self, samples: FloatAudio) -> None:
        await self._session.send_audio(samples)

    async def end_input(self) -> None:
        await self._session.end_input()

    async def aclose(self) -> None:
        await self._session.aclose()
        await self._client.aclose()

    def __aiter__(self) -> AsyncIterator[Event]:
        iterator: AsyncIterator[Event] = self._session.__aiter__()
        return iterator


class ServerUnreachableError(DragomanError):
    """No Dragoman server answers at the URL given (`--server`)."""

    code = "server_unreachable"
    retryable = True


def remote(url: str, token: str | None) -> Connect:
    """Sessions on a Dragoman server through the SDK (`dragoman.client`).

    A refused token or request is the SDK's `ClientError` (code `unauthorized`, ...);
    a server that cannot be reached is `ServerUnreachableError`."""

    async def connect(config: PipelineConfig) -> Translator:
        from websockets.exceptions import InvalidHandshake, InvalidURI

        from dragoman.client import DragomanClient

        client = DragomanClient(url, token)
        try:
            session = await client.start(
                source=config.source_language, targets=config.target_languages,
                voice=config.voice, prosody=config.prosody, speak=config.speak)
        except (OSError, TimeoutError, InvalidURI, InvalidHandshake) as exc:
            await client.aclose()
            raise ServerUnreachableError(f"cannot reach the Dragoman server at {url}: "
                                         f"{exc or type(exc).__name__}") from exc
        return _RemoteSession(client, session)

    return connect
