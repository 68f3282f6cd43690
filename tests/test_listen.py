"""Listening mode on the real PortAudio path, with the real pipeline.

PortAudio captures from and plays to virtual devices on a private PulseAudio
(dragoman/listen/virtual.py): real Spanish (and French) speech is played into the
"microphone", and what Dragoman plays on the "earpiece" is recorded and checked
for the watermark of the key the test configured.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dragoman.asr import WhisperConfig
from dragoman.audio import load_audio
from dragoman.corpus import prompt
from dragoman.events import (
    AudioChunk,
    Event,
    SourceText,
    Span,
    SpeechEnded,
    SpeechStarted,
    TranslationText,
    Word,
)
from dragoman.listen import (
    DeviceError,
    ListenConfig,
    ListenSession,
    NoDeviceError,
    Route,
    UnsupportedRateError,
    in_process,
)
from dragoman.listen.devices import choose_rate, find_device, list_devices, refresh
from dragoman.listen.ear import EarShaper, profile
from dragoman.listen.routing import UtteranceRouter
from dragoman.listen.session import Caption, DeviceStatus, ListenUpdate, Played
from dragoman.listen.streams import SampleClock, level_dbfs
from dragoman.listen.tui import ListenView, level_meter
from dragoman.listen.virtual import VirtualAudio, available, speech_wav
from dragoman.pipeline import Resources
from dragoman.textnorm import normalize_text
from dragoman.watermark import WatermarkKey, detect

PASSPHRASE = "listen tests"
KEY = WatermarkKey.from_passphrase(PASSPHRASE)


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualAudio]:
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    devices = VirtualAudio(tmp_path_factory.mktemp("pulse"))
    devices.start()
    saved = {name: os.environ.get(name) for name in devices.env}
    os.environ.update(devices.env)
    refresh()  # PortAudio enumerates the virtual devices now
    yield devices
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    devices.stop()


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    shared = Resources(whisper=WhisperConfig(candidate_languages=("es", "fr")),
                       watermark_key=KEY)
    asyncio.run(shared.start())
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("speech")
    return {lang: speech_wav(prompt(lang, "vm-passchanged").path, folder / f"{lang}.wav")
            for lang in ("es", "fr")}


async def _proc(*command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*command, env=env,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)


class Recording:
    """Collects a session's updates; waits for conditions on them."""

    def __init__(self, session: ListenSession) -> None:
        self.updates: list[ListenUpdate] = []
        self.last_played = 0.0
        self._task = asyncio.create_task(self._collect(session))

    async def _collect(self, session: ListenSession) -> None:
        async for update in session.updates():
            self.updates.append(update)
            if isinstance(update, Played):
                self.last_played = time.monotonic()

    async def wait_for(self, test: Any, within: float) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [u for u in self.updates if test(u)]
            if found:
                return found[0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out; last updates: {self.updates[-8:]}")

    async def settle(self, finals: int, within: float, played: set[str]) -> None:
        """Until `finals` final translations were captioned, speech in every language
        of `played` was played, and playback went quiet."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            done = len([u for u in self.captions() if isinstance(u.event, TranslationText)
                        and u.event.final])
            heard = {u.language for u in self.updates if isinstance(u, Played)}
            if (done >= finals and heard >= played
                    and time.monotonic() - self.last_played > 1.5):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"translations did not finish; got {self.captions()[-4:]}")

    def captions(self) -> list[Caption]:
        return [u for u in self.updates if isinstance(u, Caption)]

    def said(self, direction: str) -> str:
        return "".join(u.event.committed_delta for u in self.captions()
                       if u.direction == direction and isinstance(u.event, TranslationText))

    def heard(self, direction: str) -> str:
        return " ".join(w.text for u in self.captions() if u.direction == direction
                        and isinstance(u.event, SourceText) for w in u.event.committed)

    async def close(self) -> None:
        await asyncio.wait_for(self._task, 10)


def test_listening_mode_survives_unplug_and_plays_watermarked_translation(
    audio: VirtualAudio, resources: Resources, clips: dict[str, Path], tmp_path: Path
) -> None:
    config = ListenConfig("es", (Route("fr", "dragoman_ear", "earpiece"),),
                          input_device="dragoman_mic", session_id="listen-test",
                          reconnect_s=0.5, stall_s=2.0)
    recorded = tmp_path / "ear.wav"

    async def scenario() -> tuple[Recording, dict[str, float]]:
        session = ListenSession(config, in_process(resources))
        await session.start()
        log = Recording(session)
        await log.wait_for(lambda u: isinstance(u, DeviceStatus) and u.state == "open"
                           and u.role == "input", 5)
        # Hot-unplug the microphone: reported, then found again once it is back.
        audio.unplug_microphone()
        lost = await log.wait_for(lambda u: isinstance(u, DeviceStatus) and u.state == "lost",
                                  15)
        assert lost.code in ("device_lost", "no_device", "device_error") and lost.message
        seen = len(log.updates)
        audio.add_sink("mic_feed")
        await log.wait_for(lambda u: u in log.updates[seen:] and isinstance(u, DeviceStatus)
                           and u.state == "open" and u.role == "input", 20)
        recorder = await _proc(*audio.record_command("ear", recorded), env=audio.full_env())
        await asyncio.sleep(0.5)
        player = await _proc(*audio.play_command(clips["es"]), env=audio.full_env())
        await player.wait()
        await log.settle(1, 90, {"fr"})
        recorder.terminate()
        await recorder.wait()
        stats = session.stats()
        await session.stop()
        await log.close()
        return log, stats

    log, stats = asyncio.run(asyncio.wait_for(scenario(), 150))
    # "Sus contrasenas han sido cambiadas" (Whisper base sometimes hears "concesiones").
    assert "cambiad" in normalize_text(log.heard("es>fr"))
    said = log.said("es>fr")
    assert "chang" in normalize_text(said), said
    played = [u for u in log.updates if isinstance(u, Played)]
    assert played and {p.device for p in played} == {"dragoman_ear"}
    latencies = [p.mouth_to_ear for p in played if p.mouth_to_ear is not None]
    assert latencies and all(0 < x < 30 for x in latencies)
    assert set(stats) >= {"input_dropped_blocks", "output_underruns"}  # counted, not hidden
    out = load_audio(recorded, 24_000)
    assert float(np.sqrt(np.mean(out**2))) > 0.002, "the translation must be audible"
    assert float(np.max(np.abs(out))) <= 10 ** (profile("earpiece").ceiling_dbfs / 20) + 0.02
    found = detect(out, KEY, sample_rate=24_000)
    assert found.detected and found.p_value < 1e-6, found
    # (The 32-bit payload needs more marked audio than one short phrase to decode reliably.)
    assert not detect(out, WatermarkKey.from_passphrase("not the key"),
                      sample_rate=24_000).detected


def test_conversation_sends_each_translation_to_the_other_persons_output(
    audio: VirtualAudio, resources: Resources, clips: dict[str, Path], tmp_path: Path
) -> None:
    # You speak French (earpiece); the other person speaks Spanish (speaker). Push-to-
    # talk keeps the routing deterministic here; automatic turns (language detection)
    # route through UtteranceRouter, tested on its own below.
    config = ListenConfig(None, (Route("fr", "dragoman_ear", "earpiece"),
                                 Route("es", "dragoman_spk", "speaker")),
                          turns="ptt", input_device="dragoman_mic", session_id="talk-test")
    ear, spk = tmp_path / "ear.wav", tmp_path / "spk.wav"

    async def scenario() -> Recording:
        session = ListenSession(config, in_process(resources))
        await session.start()
        log = Recording(session)
        env = audio.full_env()
        recorders = [await _proc(*audio.record_command("ear", ear), env=env),
                     await _proc(*audio.record_command("spk", spk), env=env)]
        await asyncio.sleep(0.5)
        for lang in ("es", "fr"):
            if config.routes_languages[session.speaker] != lang:
                session.toggle_speaker()  # space in the terminal UI
            player = await _proc(*audio.play_command(clips[lang]), env=env)
            await player.wait()
            await asyncio.sleep(1.5)
        await log.settle(2, 120, {"fr", "es"})
        for recorder in recorders:
            recorder.terminate()
            await recorder.wait()
        assert session.stats()["passthrough_dropped"] == 0  # ptt: one way per session
        await session.stop()
        await log.close()
        return log

    log = asyncio.run(asyncio.wait_for(scenario(), 150))
    texts = {(c.direction, type(c.event).__name__) for c in log.captions()}
    assert "chang" in normalize_text(log.said("es>fr")), texts  # "... ont ete changes"
    assert "cambi" in normalize_text(log.said("fr>es"))  # "... ha sido cambiada"
    played = {(p.language, p.device) for p in log.updates if isinstance(p, Played)}
    assert played == {("fr", "dragoman_ear"), ("es", "dragoman_spk")}
    for path in (ear, spk):
        found = detect(load_audio(path, 24_000), KEY, sample_rate=24_000)
        assert found.detected and found.p_value < 1e-6, (path, found)


def test_device_errors_are_clear_and_stable(audio: VirtualAudio, resources: Resources) -> None:
    with pytest.raises(NoDeviceError, match="no input device named") as missing:
        find_device("no such microphone", "input")
    assert missing.value.code == "no_device" and "dragoman_mic" in missing.value.message
    with pytest.raises(NoDeviceError, match="index 999"):
        find_device(999, "output")
    mic = find_device("dragoman_mic", "input")
    with pytest.raises(UnsupportedRateError) as rate:
        choose_rate(mic, "input", 1_234_567, 16_000, 1)
    assert rate.value.code == "unsupported_sample_rate" and "1234567 Hz" in rate.value.message
    assert choose_rate(mic, "input", None, 16_000, 1) == 16_000
    names = {d.name for d in list_devices()}
    assert {"dragoman_mic", "dragoman_ear", "dragoman_spk"} <= names

    async def bad_start() -> None:
        config = ListenConfig("es", (Route("fr", "no such headset"),),
                              input_device="dragoman_mic")
        await ListenSession(config, in_process(resources)).start()

    with pytest.raises(NoDeviceError, match="no such headset"):
        asyncio.run(bad_start())
    with pytest.raises(DeviceError, match="different languages"):
        ListenConfig(None, (Route("fr"), Route("fr")))


def _word(text: str, start: int, end: int) -> Word:
    return Word(text, start, end)


def test_router_drops_passthrough_and_routes_by_utterance_language() -> None:
    router = UtteranceRouter(("fr", "es"))
    events: list[Event] = [
        SpeechStarted(1000, 0), SourceText(0, "es", (_word("hola", 1200, 4000),), ()),
              SpeechEnded(9000, 0), SpeechStarted(20_000, 1),
              SourceText(1, "fr", (_word("bonjour", 20_500, 24_000),), ())]
    for event in events:
        router.observe(event)
    pcm = np.zeros(240, dtype=np.float32)
    assert router.target_of(AudioChunk("fr", pcm, 24_000, 0, Span(1200, 4000))) == "fr"
    assert router.target_of(AudioChunk("es", pcm, 24_000, 0, Span(1200, 4000))) is None
    assert router.target_of(AudioChunk("es", pcm, 24_000, 0, Span(20_500, 24_000))) == "es"
    text = TranslationText(1, "fr", "bonjour", "", Span(20_500, 24_000))
    assert router.target_of(text) is None and router.dropped_passthrough == 2
    assert UtteranceRouter(("fr",)).target_of(text) == "fr"  # listening: everything plays


def test_ear_profile_band_level_and_ceiling() -> None:
    rate = 48_000
    t = np.arange(rate) / rate
    loud = (0.9 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    shaper = EarShaper(profile("earpiece"), rate)
    out = np.concatenate([shaper.process(block) for block in np.split(loud, 10)])
    assert np.max(np.abs(out)) <= 10 ** (-10 / 20) + 1e-3
    assert abs(level_dbfs(out[rate // 2:]) - (-26)) < 2.0
    band_only = replace(profile("earpiece"), target_dbfs=None)
    hum = (0.3 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    low = EarShaper(band_only, rate).process(hum)
    tone = EarShaper(band_only, rate).process((0.3 * np.sin(
        2 * np.pi * 1000 * t)).astype(np.float32))
    assert level_dbfs(low[rate // 2:]) < level_dbfs(tone[rate // 2:]) - 30, "bass is cut"
    flat = EarShaper(profile("flat"), rate).process(hum)
    assert np.allclose(flat, hum, atol=1e-6), "flat only guards the -1 dBFS ceiling"


def test_sample_clock_and_view() -> None:
    clock = SampleClock()
    clock.anchor(0, 100.0)
    clock.anchor(16_000, 101.05)
    assert clock.time_of(8_000) == pytest.approx(100.5)
    assert clock.time_of(24_000) == pytest.approx(101.55)
    assert level_meter(0.0, width=4) == "####" and level_meter(-120.0, width=4) == "...."
    view = ListenView("t")
    view.show(Caption("es>fr", TranslationText(0, "fr", "Bonjour", " à", Span(0, 1))))
    assert view.targets["es>fr"].committed == "Bonjour"


def test_terminal_ui_in_tmux_shows_captions_mutes_and_quits(
    audio: VirtualAudio, clips: dict[str, Path], tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/apt-packages.txt)")
    socket = f"dragoman-listen-{os.getpid()}"
    env = " ".join(f"{k}={v}" for k, v in audio.env.items())
    command = (f"env {env} DRAGOMAN_WATERMARK_KEY='{PASSPHRASE}' DRAGOMAN_OFFLINE=1 "
               f"HF_HUB_OFFLINE=1 dragoman listen --from es --to fr --input dragoman_mic "
               f"--output dragoman_ear; echo EXITED=$?; sleep 60")

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "listen")

    def wait_screen(text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.3)
        raise AssertionError(f"{text!r} never appeared:\n{screen()}")

    tmux("new-session", "-d", "-s", "listen", "-x", "110", "-y", "30", command)
    try:
        wait_screen("open dragoman_mic", 90)
        subprocess.run(audio.play_command(clips["es"]), env=audio.full_env(), check=True,
                       timeout=30)
        shown = wait_screen("chang", 90)
        assert "said:" in shown and "es>fr" in shown and "latency" in shown
        tmux("send-keys", "-t", "listen", "m")
        wait_screen("MUTED", 10)
        tmux("send-keys", "-t", "listen", "q")
        shown = wait_screen("EXITED=", 90)  # shutdown waits for a running decode
        assert "EXITED=0" in shown
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)
