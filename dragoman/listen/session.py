"""`ListenSession`: live translation from an input device to near-ear outputs.

    session = ListenSession(ListenConfig("de", (Route("en", "Headset"),)), in_process(res))
    await session.start()                   # opens devices (clear errors), translators
    async for update in session.updates():  # Caption, InputLevel, Played, DeviceStatus...
        ...
    session.toggle_mute(); await session.swap(); await session.stop()

Listening mode: one route, one session translating source -> target, played on
a near-ear device. Conversation mode: two routes (one per person and language).
With `turns="auto"` one session detects each utterance's language among the two
and `UtteranceRouter` sends its translation to the other person's output; with
`turns="ptt"` there is one session per direction and the microphone feeds only
the one whose turn it is (the other hears silence, so its time base keeps up).

A device that disappears mid-stream is reported (`DeviceStatus("lost")`) and
reopened by name every `reconnect_s`; the translation sessions live on. Mouth-to-
ear latency is measured for every played chunk: capture time of the source
audio it translates (from the input callback's timestamps) to the time its first
sample reaches the output converter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from dragoman.errors import DragomanError
from dragoman.events import (
    AudioChunk,
    Error,
    Lag,
    SourceText,
    Span,
    TranslationText,
)
from dragoman.languages import normalize_language
from dragoman.listen.devices import DeviceInfo, choose_rate, find_device, refresh
from dragoman.listen.ear import EarShaper, profile
from dragoman.listen.errors import DeviceError
from dragoman.listen.offloop import device_call
from dragoman.listen.routing import UtteranceRouter
from dragoman.listen.streams import Capture, Marker, Playback, SampleClock, level_dbfs
from dragoman.listen.transport import Connect, Translator
from dragoman.pipeline import PipelineConfig

logger = logging.getLogger(__name__)

TTS_RATE = 24_000


@dataclass(frozen=True, slots=True)
class Route:
    """Translations into `language` play on output `device` (name, index, None: default)."""

    language: str
    device: str | int | None = None
    profile: str = "earpiece"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """A listening session or a two-person conversation.

    source_language: listening mode: the language heard (None: detect).
    routes: one (listening) or two (conversation: one per person, in their language).
    turns: conversation turn-taking: "auto" (voice activity + language detection)
        or "ptt" (push-to-talk: `toggle_speaker()` passes the turn).
    input_device / input_rate / output_rate: None picks the default device and
        16 kHz (input) or 48 kHz (output) when the device takes it, else its own rate.
    block_ms: PortAudio block size. device_latency: PortAudio suggested latency (s).
    max_input_blocks: capture blocks queued before new ones are dropped (counted).
    max_output_seconds: speech queued per output before the oldest is dropped.
    reconnect_s: how often a lost device is looked for again.
    stall_s: an input silent (no callbacks) this long counts as lost.
    prosody / voice / session_id: passed to the pipeline (session_id feeds the
        watermark payload).
    """

    source_language: str | None
    routes: tuple[Route, ...]
    turns: Literal["auto", "ptt"] = "auto"
    input_device: str | int | None = None
    input_rate: int | None = None
    output_rate: int | None = None
    block_ms: int = 20
    device_latency: float = 0.1
    max_input_blocks: int = 200
    max_output_seconds: float = 30.0
    reconnect_s: float = 1.0
    stall_s: float = 3.0
    prosody: bool = True
    voice: str | None = None
    session_id: str = "listen"
    routes_languages: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.routes) <= 2:
            raise DeviceError("listening needs one output route; a conversation two")
        codes = tuple(normalize_language(r.language) for r in self.routes)
        if len(set(codes)) != len(codes):
            raise DeviceError("the two people of a conversation need different languages")
        for route in self.routes:
            profile(route.profile)
        object.__setattr__(self, "routes_languages", codes)

    @property
    def conversation(self) -> bool:
        return len(self.routes) == 2


# -- updates for the terminal UI / JSON --------------------------------------------


@dataclass(frozen=True, slots=True)
class Caption:
    """Recognized or translated text; `direction` like "es>fr"."""

    direction: str
    event: SourceText | TranslationText


@dataclass(frozen=True, slots=True)
class InputLevel:
    dbfs: float
    muted: bool


@dataclass(frozen=True, slots=True)
class Played:
    """A translated chunk reached an output; latencies in seconds (None: unknown)."""

    language: str
    device: str
    seconds: float
    source_span: Span
    """The source audio (session samples at 16 kHz) this chunk translates."""
    mouth_to_ear: float | None
    """From the start of the source phrase leaving the input device."""
    end_to_ear: float | None
    """From the end of the source phrase leaving the input device."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    role: str
    device: str
    state: Literal["open", "lost", "waiting"]
    message: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    message: str


ListenUpdate = Caption | InputLevel | Played | DeviceStatus | Notice | Error | Lag


@dataclass(slots=True)
class _Direction:
    translator: Translator
    source: str | None
    targets: tuple[str, ...]
    task: asyncio.Task[None] | None = None


class ListenSession:
    """See the module doc."""

    def __init__(self, config: ListenConfig, connect: Connect, *,
                 max_updates: int = 2048) -> None:
        self.config = config
        self._connect = connect
        self._updates: asyncio.Queue[ListenUpdate | None] = asyncio.Queue(max_updates)
        self._directions: list[_Direction] = []
        self._router = UtteranceRouter(config.routes_languages)
        self._clock = SampleClock()
        self._index = 0
        self._capture: Capture | None = None
        self._playbacks: dict[str, Playback] = {}
        self._device_task: asyncio.Task[None] | None = None
        self._control = asyncio.Lock()  # swap and stop, one at a time
        self._input_name: str | None = None
        self._output_names: dict[str, str] = {}
        self.muted = False
        self.speaker = 0  # push-to-talk: index of the route whose person speaks
        self._stopping = False
        self._level_every = 0
        self.dropped_updates = 0
        self.dropped_audio_seconds = 0.0
        self.latencies: list[tuple[float, float]] = []  # (mouth_to_ear, end_to_ear), bounded

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Check the devices, start the translators (loads models), open the devices.

        Device problems raise clear `DeviceError`s before any model is loaded.
        """
        await device_call(self._check_devices)
        await self._start_translators()
        try:
            await self._open_devices()
        except BaseException:
            await self._stop_translators()
            raise
        self._start_device_loop()

    async def stop(self) -> None:
        async with self._control:
            self._stopping = True
            await self._stop_device_loop()
            await self._stop_translators()
            await self._close_devices_off_loop()
        with contextlib.suppress(asyncio.QueueFull):
            self._updates.put_nowait(None)

    def _start_device_loop(self) -> None:
        if not self._stopping:
            self._device_task = asyncio.create_task(self._device_loop(), name="listen-devices")

    async def _stop_device_loop(self) -> None:
        task, self._device_task = self._device_task, None
        if task is None:
            return
        # Cancel until it ends: code it awaits may swallow one cancel (Python 3.11's
        # `wait_for` does when its result arrives in the same loop step).
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if not task.cancelled():
            task.result()  # a bug in the loop surfaces here

    async def updates(self) -> AsyncIterator[ListenUpdate]:
        while True:
            item = await self._updates.get()
            if item is None:
                return
            yield item

    def stats(self) -> dict[str, float]:
        capture = self._capture
        return {
            "input_dropped_blocks": capture.dropped_blocks if capture else 0,
            "input_overflows": capture.overflows if capture else 0,
            "output_dropped_seconds": round(self.dropped_audio_seconds + sum(
                p.dropped_seconds for p in self._playbacks.values()), 3),
            "output_underruns": sum(p.underruns for p in self._playbacks.values()),
            "updates_dropped": self.dropped_updates,
            "passthrough_dropped": self._router.dropped_passthrough,
        }

    # -- controls --------------------------------------------------------------------

    def toggle_mute(self) -> bool:
        self.muted = not self.muted
        self._emit(Notice("microphone muted" if self.muted else "microphone on"))
        return self.muted

    def toggle_speaker(self) -> int:
        """Push-to-talk: pass the turn to the other person."""
        if self.config.conversation:
            self.speaker = 1 - self.speaker
            self._emit(Notice(f"turn: {self.config.routes_languages[self.speaker]} speaker"))
        return self.speaker

    async def swap(self) -> None:
        """Listening: translate the other way. Conversation: exchange the two outputs.

        The devices are closed and reopened by the device loop (a failure to reopen
        is reported like an unplugged device)."""
        async with self._control:
            if self._stopping:
                return
            cfg = self.config
            if not cfg.conversation and cfg.source_language is None:
                self._emit(Notice("swap needs a known source language (--from)"))
                return
            await self._stop_device_loop()
            try:
                await self._close_devices_off_loop()
                if cfg.conversation:
                    self._swap_outputs()
                    self._emit(Notice("outputs swapped"))
                else:
                    await self._stop_translators()
                    self._reverse()
                    await self._start_translators()
                    self._emit(Notice(f"now translating {self.config.source_language} > "
                                      f"{self.config.routes_languages[0]}"))
            except DragomanError as exc:  # a server that went away, a model that failed
                logger.warning("swap failed: %s", exc.message)
                self._emit(Error(exc.code, f"swap failed: {exc.message}", exc.retryable))
            finally:
                self._start_device_loop()

    def _swap_outputs(self) -> None:
        cfg = self.config
        a, b = cfg.routes
        self.config = replace(cfg, routes=(replace(a, device=b.device, profile=b.profile),
                                           replace(b, device=a.device, profile=a.profile)))
        code_a, code_b = cfg.routes_languages
        names = self._output_names
        self._output_names = {}  # each language now goes where the other one went
        if code_b in names:
            self._output_names[code_a] = names[code_b]
        if code_a in names:
            self._output_names[code_b] = names[code_a]

    def _reverse(self) -> None:
        cfg = self.config
        assert cfg.source_language is not None
        route = replace(cfg.routes[0], language=cfg.source_language)
        self.config = replace(cfg, source_language=cfg.routes[0].language, routes=(route,))
        self._router = UtteranceRouter(self.config.routes_languages)

    # -- translators -----------------------------------------------------------------

    def _plans(self) -> list[tuple[str | None, tuple[str, ...]]]:
        cfg = self.config
        langs = cfg.routes_languages
        if not cfg.conversation:
            return [(cfg.source_language, langs)]
        if cfg.turns == "ptt":
            return [(langs[0], (langs[1],)), (langs[1], (langs[0],))]
        return [(None, langs)]

    async def _start_translators(self) -> None:
        self._index = 0
        self._clock = SampleClock()
        for source, targets in self._plans():
            # Speech in a listener's own language is heard directly in the room: captions
            # only, never re-voiced (in-process; a server still voices it, and the router
            # drops it).
            pipeline_config = PipelineConfig(
                source_language=source, target_languages=targets, prosody=self.config.prosody,
                voice=self.config.voice, session_id=self.config.session_id,
                speak_source_language=False)
            translator = await self._connect(pipeline_config)
            direction = _Direction(translator, source, targets)
            direction.task = asyncio.create_task(self._pump_output(direction),
                                                 name="listen-output")
            self._directions.append(direction)

    async def _stop_translators(self) -> None:
        directions, self._directions = self._directions, []
        for direction in directions:
            await direction.translator.aclose()
            if direction.task is not None:
                direction.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await direction.task

    def _label(self, source: str | None, target: str | None) -> str:
        if target is None:
            langs = self.config.routes_languages
            target = next((code for code in langs if code != source), langs[0])
        return f"{source or '?'}>{target}"

    async def _pump_output(self, direction: _Direction) -> None:
        router = self._router
        # A direction with one target (listening mode, each push-to-talk direction) sends
        # everything to it. Only the one session of automatic turns, translating into
        # both languages, needs the router. (Push-to-talk directions are separate
        # sessions whose utterance numbers and sample clocks overlap: routing their
        # speech through the shared router once sent one direction's speech nowhere.)
        single = direction.targets[0] if len(direction.targets) == 1 else None
        async for event in direction.translator:
            router.observe(event)
            if isinstance(event, SourceText):
                source = direction.source or normalize_language(event.language)
                self._emit(Caption(self._label(source, single), event))
            elif isinstance(event, TranslationText):
                target = single or router.target_of(event)
                if target is not None:
                    spoken = direction.source or router.language_of(event.utterance)
                    self._emit(Caption(self._label(spoken, target), event))
            elif isinstance(event, AudioChunk):
                self._play(single or router.target_of(event), event)
            elif isinstance(event, Error | Lag):
                self._emit(event)
        self._emit(Notice("translation session ended"))

    def _play(self, target: str | None, chunk: AudioChunk) -> None:
        if target is None:
            return
        playback = self._playbacks.get(target)
        if playback is None:  # device being reopened: stale speech is not kept
            self.dropped_audio_seconds += chunk.pcm.size / chunk.sample_rate
            return
        marker = (target, chunk.source_span.start, chunk.source_span.end,
                  chunk.pcm.size / chunk.sample_rate)
        try:
            playback.write(chunk.pcm, chunk.sample_rate, marker)
        except DeviceError as exc:
            self.dropped_audio_seconds += chunk.pcm.size / chunk.sample_rate
            logger.info("output lost while writing: %s", exc.message)

    def _on_played(self, marker: Marker, played_at: float) -> None:
        assert isinstance(marker, tuple)
        target, start, end, seconds = marker
        began, ended = self._clock.time_of(start), self._clock.time_of(end)
        mouth = played_at - began if began is not None else None
        tail = played_at - ended if ended is not None else None
        if mouth is not None and tail is not None:
            self.latencies.append((mouth, tail))
            del self.latencies[:-1000]
        name = self._output_names.get(target, "?")
        self._emit(Played(target, name, seconds, Span(start, end), mouth, tail))

    # -- devices ---------------------------------------------------------------------

    def _check_devices(self) -> None:
        cfg = self.config
        device = find_device(cfg.input_device, "input")
        choose_rate(device, "input", cfg.input_rate, 16_000, 1)
        for route in cfg.routes:
            output = find_device(route.device, "output")
            choose_rate(output, "output", cfg.output_rate, 48_000,
                        max(1, min(2, output.max_output_channels)))

    async def _open_devices(self) -> None:
        """Open the input and every output in a worker thread (PortAudio blocks)."""
        loop = asyncio.get_running_loop()
        job = asyncio.ensure_future(device_call(lambda: self._open_streams(loop)))
        try:
            capture, playbacks = await asyncio.shield(job)
        except asyncio.CancelledError:  # the streams may open anyway: close them then
            job.add_done_callback(_close_opened)
            raise
        self._capture, self._input_name = capture, capture.device.name
        self._emit(DeviceStatus("input", capture.device.name, "open",
                                f"{capture.sample_rate} Hz"))
        for (code, playback), route in zip(playbacks.items(), self.config.routes, strict=True):
            self._playbacks[code] = playback
            self._output_names[code] = playback.device.name
            self._emit(DeviceStatus(f"output:{code}", playback.device.name, "open",
                                    f"{playback.sample_rate} Hz, {route.profile}"))

    def _open_streams(self, loop: asyncio.AbstractEventLoop
                      ) -> tuple[Capture, dict[str, Playback]]:
        """Worker thread: find and open the devices (by the names they had, if any)."""
        cfg = self.config
        opened: list[Capture | Playback] = []
        try:
            with _role("input"):
                spec = self._input_name if self._input_name is not None else cfg.input_device
                device = find_device(spec, "input")
                rate = choose_rate(device, "input", cfg.input_rate, 16_000, 1)
                capture = Capture(device, sample_rate=rate, block_ms=cfg.block_ms,
                                  latency=cfg.device_latency, max_blocks=cfg.max_input_blocks,
                                  stall_s=cfg.stall_s)
                capture.open(loop)
                opened.append(capture)
            playbacks: dict[str, Playback] = {}
            for route, code in zip(cfg.routes, cfg.routes_languages, strict=True):
                with _role(f"output:{code}"):
                    playbacks[code] = self._open_output(route, code, loop)
                    opened.append(playbacks[code])
        except BaseException:
            for stream in opened:
                stream.close()
            raise
        return capture, playbacks

    def _open_output(self, route: Route, code: str,
                     loop: asyncio.AbstractEventLoop) -> Playback:
        cfg = self.config
        device: DeviceInfo = find_device(self._output_names.get(code, route.device), "output")
        channels = max(1, min(2, device.max_output_channels))
        rate = choose_rate(device, "output", cfg.output_rate, 48_000, channels)
        playback = Playback(device, sample_rate=rate,
                            shaper=EarShaper(profile(route.profile), rate),
                            on_played=self._on_played, block_ms=cfg.block_ms,
                            latency=cfg.device_latency, max_seconds=cfg.max_output_seconds)
        playback.open(loop)
        return playback

    def _detach_devices(self) -> list[Capture | Playback]:
        streams: list[Capture | Playback] = list(self._playbacks.values())
        if self._capture is not None:
            streams.insert(0, self._capture)
        self._capture = None
        self._playbacks.clear()
        return streams

    async def _close_devices_off_loop(self) -> None:
        """Close (possibly dead) streams in a worker: PortAudio may take its time."""
        streams = self._detach_devices()
        if streams:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(device_call(
                    lambda: [stream.close() for stream in streams]), 10)

    def _device_name(self, role: str) -> str:
        if role == "input":
            return self._input_name or ""
        return self._output_names.get(role.removeprefix("output:"), "")

    async def _device_loop(self) -> None:
        while not self._stopping:
            try:
                if self._capture is None:
                    await self._open_devices()
                await self._pump_input()
            except DeviceError as exc:
                role = exc.role or "input"
                self._emit(DeviceStatus(role, self._device_name(role), "lost", exc.message,
                                        exc.code))
                await self._close_devices_off_loop()
                await asyncio.sleep(self.config.reconnect_s)
                try:  # re-enumerate (seconds on some systems): off the loop
                    await asyncio.wait_for(device_call(refresh), 30)
                except (DeviceError, TimeoutError) as again:
                    logger.info("re-enumeration failed: %s", again)
            except DragomanError as exc:  # the translation side failed (a server went away)
                logger.warning("listening stopped: %s", exc.message)
                self._emit(Error(exc.code, exc.message, exc.retryable))
                return

    async def _pump_input(self) -> None:
        capture = self._capture
        assert capture is not None
        while True:
            with _role("input"):
                block = await capture.read()
            for code, playback in self._playbacks.items():
                with _role(f"output:{code}"):
                    playback.check()
            samples = np.zeros_like(block.samples) if self.muted else block.samples
            self._level_every -= 1
            if self._level_every <= 0:
                self._level_every = 5
                self._emit(InputLevel(level_dbfs(block.samples), self.muted))
            self._clock.anchor(self._index, block.captured_at)
            self._index += samples.size
            for number, direction in enumerate(list(self._directions)):
                speaking = (not self.config.conversation or self.config.turns != "ptt"
                            or number == self.speaker)
                await direction.translator.push_audio(samples if speaking
                                                      else np.zeros_like(samples))

    def _emit(self, update: ListenUpdate) -> None:
        try:
            self._updates.put_nowait(update)
        except asyncio.QueueFull:
            self.dropped_updates += 1



@contextlib.contextmanager
def _role(role: str) -> Iterator[None]:
    """Device errors raised inside say which device (`DeviceError.role`) failed."""
    try:
        yield
    except DeviceError as exc:
        if not exc.role:
            exc.role = role
        raise


def _close_opened(job: asyncio.Future[tuple[Capture, dict[str, Playback]]]) -> None:
    if job.cancelled() or job.exception() is not None:
        return
    capture, playbacks = job.result()
    capture.close()
    for playback in playbacks.values():
        playback.close()
