"""Listening mode on the real PortAudio path, with the real pipeline.

PortAudio captures from and plays to virtual devices on a private PulseAudio
(dragoman/listen/virtual.py; the only stand-in here: null sinks instead of sound
cards): real Spanish (and French) speech is played into the "microphone", and what
Dragoman plays on the "earpiece" (and the conversation's "speaker") is recorded and
checked for the watermark of the key the test configured. In-process, and through a
real `dragoman serve` with the `dragoman listen --server --token --json` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import wait_for_server

from dragoman.asr import WhisperConfig
from dragoman.audio import load_audio
from dragoman.corpus import prompt
from dragoman.events import (
    AudioChunk,
    Error,
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
from dragoman.listen.devices import DeviceInfo, choose_rate, find_device, list_devices, refresh
from dragoman.listen.ear import EarShaper, profile
from dragoman.listen.routing import UtteranceRouter
from dragoman.listen.session import Caption, DeviceStatus, ListenUpdate, Played
from dragoman.listen.streams import Capture, SampleClock, level_dbfs
from dragoman.listen.transport import ServerUnreachableError, Translator
from dragoman.listen.tui import ListenView, level_meter
from dragoman.listen.virtual import SYSTEM_ALSA_CONF, VirtualAudio, available, speech_wav
from dragoman.pipeline import PipelineConfig, Resources
from dragoman.textnorm import normalize_text
from dragoman.tts import speakable
from dragoman.watermark import WatermarkKey, detect

PASSPHRASE = "listen tests"
KEY = WatermarkKey.from_passphrase(PASSPHRASE)
REPO = Path(__file__).resolve().parents[1]
DRAGOMAN = (sys.executable, "-m", "dragoman.cli")


def _cli_env(audio: VirtualAudio, **extra: str) -> dict[str, str]:
    """The environment of a `dragoman` process: the virtual devices, this checkout."""
    env = audio.full_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    env.update(DRAGOMAN_OFFLINE="1", HF_HUB_OFFLINE="1", DRAGOMAN_WATERMARK_KEY=PASSPHRASE)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
    found = {lang: speech_wav(prompt(lang, "vm-passchanged").path, folder / f"{lang}.wav")
             for lang in ("es", "fr")}
    # "Por el momento no hay conferencias vacias": Spanish from its first 0.6 s (Whisper
    # base hears the opening of "Sus contrasenas..." as French, p 0.64 among es/fr).
    found["es-clear"] = speech_wav(prompt("es", "conf-noempty").path, folder / "es-clear.wav")
    return found


async def _proc(*command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*command, env=env,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)


class Recording:
    """Collects a session's updates; waits for conditions on them."""

    def __init__(self, session: ListenSession) -> None:
        self.updates: list[ListenUpdate] = []
        self.last_played = 0.0
        """When the latest chunk played ends (time.monotonic())."""
        self._task = asyncio.create_task(self._collect(session))

    async def _collect(self, session: ListenSession) -> None:
        async for update in session.updates():
            self.updates.append(update)
            if isinstance(update, Played):  # reported as its first sample plays
                self.last_played = time.monotonic() + update.seconds

    async def wait_for(self, test: Any, within: float, since: int = 0) -> Any:
        """The first update from number `since` on that passes `test`."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [u for u in self.updates[since:] if test(u)]
            if found:
                return found[0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out; last updates: {self.updates[-8:]}")

    async def settle(self, finals: int, within: float, played: set[str]) -> None:
        """Until `finals` final translations were captioned, every utterance with
        committed source words has its final translation (the recognizer may split a
        clip in two), speech in every language of `played` was played up to the end of
        the last committed translation with words, and playback went quiet."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            finished = [u.event.utterance for u in self.captions()
                        if isinstance(u.event, TranslationText) and u.event.final]
            spoken = {u.event.utterance for u in self.captions()
                      if isinstance(u.event, SourceText) and u.event.committed}
            if (len(finished) >= finals and spoken <= set(finished)
                    and all(self._caught_up(language) for language in played)
                    and time.monotonic() - self.last_played > 1.5):
                return
            await asyncio.sleep(0.2)
        played_now = {u.language for u in self.updates if isinstance(u, Played)}
        other = [u for u in self.updates if not isinstance(u, Caption | Played)][-8:]
        raise AssertionError(f"translations did not finish (played: {played_now}, "
                             f"other updates: {other}); got {self.captions()[-4:]}")

    def _caught_up(self, language: str) -> bool:
        """Whether a chunk was played in `language` and the chunks played reach the
        source end of the last committed translation that has words to say (its
        speech may still be rendering after the caption)."""
        said = [u.event.source_span.end for u in self.captions()
                if isinstance(u.event, TranslationText) and u.event.language == language
                and speakable(u.event.committed_delta)]
        heard = [u.source_span.end for u in self.updates
                 if isinstance(u, Played) and u.language == language]
        return bool(heard) and max(heard) >= max(said, default=0)

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
        # Hot-unplug the microphone, then the earpiece: each is reported (which device,
        # why), then found again by name once it is back.
        for sink, role, name in (("mic_feed", "input", "dragoman_mic"),
                                 ("ear", "output:fr", "dragoman_ear")):
            seen = len(log.updates)
            audio.unplug(sink)
            lost = await log.wait_for(lambda u, r=role: isinstance(u, DeviceStatus)
                                      and u.state == "lost" and u.role == r, 15, seen)
            assert lost.code in ("device_lost", "no_device") and lost.device == name
            assert name in lost.message, lost
            seen = len(log.updates)
            audio.add_sink(sink)
            await log.wait_for(lambda u, r=role: isinstance(u, DeviceStatus)
                               and u.state == "open" and u.role == r, 20, seen)
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


async def _converse(audio: VirtualAudio, log: Recording, outputs: dict[str, Path],
                    turns: list[tuple[str, Path]],
                    before: Callable[[str], None] | None = None) -> None:
    """Record each virtual output (role -> wav) while the clips are played into the
    virtual microphone one after the other, 1.5 s apart; return once both directions
    were translated and played."""
    env = audio.full_env()
    recorders = [await _proc(*audio.record_command(role, path), env=env)
                 for role, path in outputs.items()]
    await asyncio.sleep(0.5)
    for name, clip in turns:
        if before is not None:
            before(name)
        player = await _proc(*audio.play_command(clip), env=env)
        await player.wait()
        await asyncio.sleep(1.5)
    await log.settle(2, 120, {"fr", "es"})
    for recorder in recorders:
        recorder.terminate()
        await recorder.wait()


def _assert_marked(*recordings: Path) -> None:
    for path in recordings:
        found = detect(load_audio(path, 24_000), KEY, sample_rate=24_000)
        assert found.detected and found.p_value < 1e-6, (path, found)


def test_conversation_sends_each_translation_to_the_other_persons_output(
    audio: VirtualAudio, resources: Resources, clips: dict[str, Path], tmp_path: Path
) -> None:
    # You speak French (earpiece); the other person speaks Spanish (speaker), passing
    # the turn by push-to-talk (automatic turns: the next test).
    config = ListenConfig(None, (Route("fr", "dragoman_ear", "earpiece"),
                                 Route("es", "dragoman_spk", "speaker")),
                          turns="ptt", input_device="dragoman_mic", session_id="talk-test")
    ear, spk = tmp_path / "ear.wav", tmp_path / "spk.wav"

    async def scenario() -> Recording:
        session = ListenSession(config, in_process(resources))
        await session.start()
        log = Recording(session)

        def pass_turn(lang: str) -> None:
            if config.routes_languages[session.speaker] != lang:
                session.toggle_speaker()  # space in the terminal UI

        await _converse(audio, log, {"ear": ear, "spk": spk},
                        [(lang, clips[lang]) for lang in ("es", "fr")], pass_turn)
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
    _assert_marked(ear, spk)


def test_conversation_with_automatic_turns_then_swapped_outputs(
    audio: VirtualAudio, resources: Resources, clips: dict[str, Path], tmp_path: Path
) -> None:
    # No push-to-talk: one session finds each utterance by voice activity and its
    # language among the two (Whisper limited to es/fr), and the router sends its
    # translation to the other person's output. Then `s` (swap) exchanges the outputs.
    # An utterance's language is settled on its first confident decode of at least
    # 1.5 s (RecognizerConfig.language_lock_ms); the final decode of a shorter utterance
    # decides alone, so the Spanish prompt here is one whose opening is clearly Spanish.
    config = ListenConfig(None, (Route("fr", "dragoman_ear", "earpiece"),
                                 Route("es", "dragoman_spk", "speaker")),
                          turns="auto", input_device="dragoman_mic", session_id="auto-test")
    ear, spk = tmp_path / "ear.wav", tmp_path / "spk.wav"

    async def scenario() -> tuple[Recording, dict[str, float]]:
        session = ListenSession(config, in_process(resources))
        await session.start()
        log = Recording(session)
        # Nobody presses anything between the speakers.
        await _converse(audio, log, {"ear": ear, "spk": spk},
                        [(lang, clips[lang]) for lang in ("es-clear", "fr")])
        stats = session.stats()
        seen = len(log.updates)
        await session.swap()
        for role, device in (("output:fr", "dragoman_spk"), ("output:es", "dragoman_ear")):
            await log.wait_for(lambda u, r=role, d=device: isinstance(u, DeviceStatus)
                               and u.role == r and u.state == "open" and u.device == d,
                               15, seen)
        await session.stop()
        await log.close()
        return log, stats

    log, stats = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert "conferencia" in normalize_text(log.heard("es>fr")), log.captions()[-6:]
    assert "conference" in normalize_text(log.said("es>fr"))  # "... des conferences vides"
    assert "cambi" in normalize_text(log.said("fr>es"))
    assert not log.said("es>es") and not log.said("fr>fr")
    assert stats["passthrough_dropped"] > 0  # each speaker's own language never plays
    played = [p for p in log.updates if isinstance(p, Played)]
    assert {(p.language, p.device) for p in played} == {("fr", "dragoman_ear"),
                                                        ("es", "dragoman_spk")}
    _assert_marked(ear, spk)


def test_a_swap_that_cannot_reconnect_reports_an_error_and_still_stops(
    audio: VirtualAudio, resources: Resources
) -> None:
    """A swap whose new translation session fails to open (a server that went away:
    here a stand-in connect that refuses the second session) used to die silently in
    its task; it must say so, keep the devices, and let the session stop."""
    config = ListenConfig("es", (Route("fr", "dragoman_ear", "earpiece"),),
                          input_device="dragoman_mic", session_id="swap-fail-test")
    real = in_process(resources)
    opened: list[PipelineConfig] = []

    async def refuse_the_second(pipeline_config: PipelineConfig) -> Translator:
        opened.append(pipeline_config)
        if len(opened) > 1:
            raise ServerUnreachableError("cannot reach the Dragoman server (stand-in)")
        return await real(pipeline_config)

    async def scenario() -> Recording:
        session = ListenSession(config, refuse_the_second)
        await session.start()
        log = Recording(session)

        def input_open(u: ListenUpdate) -> bool:
            return isinstance(u, DeviceStatus) and u.role == "input" and u.state == "open"

        first = log.updates.index(await log.wait_for(input_open, 15))
        await asyncio.wait_for(session.swap(), 30)
        await log.wait_for(input_open, 15, first + 1)  # the devices open again
        await asyncio.wait_for(session.stop(), 30)
        await log.close()
        return log

    log = asyncio.run(asyncio.wait_for(scenario(), 120))
    errors = [u for u in log.updates if isinstance(u, Error)]
    assert [e.code for e in errors] == ["server_unreachable"], log.updates[-8:]
    assert "swap failed" in errors[0].message and errors[0].retryable
    assert [c.source_language for c in opened] == ["es", "fr"]  # it tried the other way


def test_device_errors_are_clear_and_stable(audio: VirtualAudio, resources: Resources) -> None:
    with pytest.raises(NoDeviceError, match="no input device named") as missing:
        find_device("no such microphone", "input")
    assert missing.value.code == "no_device" and "dragoman_mic" in missing.value.message
    with pytest.raises(NoDeviceError, match="index 999"):
        find_device(999, "output")
    mic = find_device("dragoman_mic", "input")
    assert find_device(mic.index, "input") == mic == find_device(str(mic.index), "input")
    assert find_device("dragoman_e", "output").name == "dragoman_ear"  # a unique part
    with pytest.raises(NoDeviceError, match="no audio input device found"):
        find_device(None, "input", devices=())  # a machine without any sound device
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


def test_command_device_errors_exit_2_with_a_clear_message(
    audio: VirtualAudio, tmp_path: Path
) -> None:
    # No PulseAudio to reach and (on a machine without a sound card) nothing else.
    bare = {"ALSA_CONFIG_PATH": str(SYSTEM_ALSA_CONF), "PULSE_SERVER": f"unix:{tmp_path}/x"}
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (["--input", "no such microphone"], {}, "[no_device]: no input device named "
         "'no such microphone'; inputs: 0: dragoman_mic"),
        (["--input", "dragoman_mic", "--input-rate", "1234567"], {},
         "[unsupported_sample_rate]: input device 'dragoman_mic' cannot run at 1234567 Hz"),
    ]
    mic = find_device("dragoman_mic", "input")
    listed = subprocess.run([*DRAGOMAN, "listen", "--list-devices"], env=_cli_env(audio),
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"{mic.index:3d} dragoman_mic (ALSA, " in listed.stdout
    assert "dragoman_ear" in listed.stdout and "dragoman_spk" in listed.stdout
    listing = subprocess.run([*DRAGOMAN, "listen", "--list-devices"], env=_cli_env(audio, **bare),
                             capture_output=True, text=True, timeout=60)
    if listing.returncode == 0 and listing.stdout.count("\n") == 1:  # only the legend
        cases.append(([], bare, "[no_device]: no audio input device found"))
    for args, extra, message in cases:
        done = subprocess.run([*DRAGOMAN, "listen", "--from", "es", "--to", "fr", "--output",
                               "dragoman_ear", *args], env=_cli_env(audio, **extra),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert f"dragoman: error {message}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_listen_command_through_a_server_with_a_token_writes_json(
    audio: VirtualAudio, clips: dict[str, Path], tmp_path: Path
) -> None:
    # `dragoman listen --server --token --json`, devices chosen by index and by name,
    # against a real `dragoman serve` (the SDK path); a script drives it on stdin.
    env = _cli_env(audio, DRAGOMAN_API_KEYS="listen-token")
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/v1"
    mic = find_device("dragoman_mic", "input").index
    ear = tmp_path / "ear.wav"
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen([*DRAGOMAN, "serve", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env, stdout=log, stderr=log)
    command = [*DRAGOMAN, "listen", "--server", url, "--from", "es", "--to", "fr",
               "--input", str(mic), "--output", "dragoman_ear", "--json"]

    async def scenario() -> list[dict[str, Any]]:
        listen = await asyncio.create_subprocess_exec(
            *command, "--token", "listen-token", env={**env, "PYTHONFAULTHANDLER": "1"},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert listen.stdin is not None and listen.stdout is not None
        records: list[dict[str, Any]] = []

        async def read_until(test: Any, within: float) -> None:
            deadline = time.monotonic() + within
            while True:
                assert listen.stdout is not None
                line = await asyncio.wait_for(listen.stdout.readline(),
                                              max(0.1, deadline - time.monotonic()))
                assert line, f"dragoman listen ended early: {records[-5:]}"
                records.append(json.loads(line))
                if test(records[-1]):
                    return

        await read_until(lambda r: r["type"] == "DeviceStatus" and r["role"] == "output:fr",
                         180)
        recorder = await _proc(*audio.record_command("ear", ear), env=env)
        await asyncio.sleep(0.5)
        player = await _proc(*audio.play_command(clips["es"]), env=env)
        await player.wait()
        quiet_since = time.monotonic()

        def translated(record: dict[str, Any]) -> bool:
            # Every utterance with committed source words has its final translation (the
            # recognizer may split the clip in two) and no source text came for 2 s;
            # input levels arrive every 100 ms, so this is checked often.
            nonlocal quiet_since
            if record["type"] == "SourceText":
                quiet_since = time.monotonic()
            finished = {r["utterance"] for r in records
                        if r["type"] == "TranslationText" and r["final"]}
            spoken = {r["utterance"] for r in records
                      if r["type"] == "SourceText" and r["committed"]}
            return bool(finished) and spoken <= finished and (
                time.monotonic() - quiet_since > 2.0)

        await read_until(translated, 120)
        if not any(r["type"] == "Played" for r in records):
            await read_until(lambda r: r["type"] == "Played", 60)
        await asyncio.sleep(4.0)  # the rest of the phrase plays
        listen.stdin.write(b"m")  # keys work on a pipe too
        await listen.stdin.drain()
        await asyncio.sleep(0.5)
        listen.stdin.write(b"q")
        await listen.stdin.drain()
        try:
            out, err = await asyncio.wait_for(listen.communicate(), 60)
        except TimeoutError:  # say where it is stuck: faulthandler dumps every thread
            listen.send_signal(signal.SIGABRT)
            _, err = await listen.communicate()
            raise AssertionError("dragoman listen did not exit after 'q':\n"
                                 + err.decode()[-6000:]) from None
        recorder.terminate()
        await recorder.wait()
        assert listen.returncode == 0, err.decode()[-2000:]
        records.extend(json.loads(line) for line in out.decode().splitlines() if line)
        return records

    try:
        wait_for_server(server, port, tmp_path / "serve.log", timeout=60)
        refused = subprocess.run([*command, "--token", "wrong"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "dragoman: error [unauthorized]" in refused.stderr
        records = asyncio.run(asyncio.wait_for(scenario(), 360))
    finally:
        server.terminate()
        server.wait(30)
    kinds = {r["type"] for r in records}
    assert {"DeviceStatus", "InputLevel", "SourceText", "TranslationText", "Played",
            "Notice", "Summary"} <= kinds
    opened = {r["role"]: r["device"] for r in records
              if r["type"] == "DeviceStatus" and r["state"] == "open"}
    assert opened == {"input": "dragoman_mic", "output:fr": "dragoman_ear"}
    said = "".join(r["committed_delta"] for r in records if r["type"] == "TranslationText")
    heard = " ".join(w["text"] for r in records if r["type"] == "SourceText"
                     for w in r["committed"])
    assert "chang" in normalize_text(said), (said, heard)
    assert all(r["direction"] == "es>fr" for r in records if "direction" in r)
    played = [r for r in records if r["type"] == "Played"]
    assert all(r["device"] == "dragoman_ear" and 0 < r["mouth_to_ear"] < 60 for r in played)
    assert any(r["type"] == "Notice" and r["message"] == "microphone muted" for r in records)
    summary = records[-1]
    assert summary["type"] == "Summary" and summary["mouth_to_ear_median_s"] > 0
    found = detect(load_audio(ear, 24_000), KEY, sample_rate=24_000)
    assert found.detected and found.p_value < 1e-6, found


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


def test_capture_read_honours_a_cancel_that_meets_a_block() -> None:
    """A block arriving in the same loop step as a cancel must not swallow the cancel
    (Python 3.11's `wait_for` did: the device loop never stopped, swap and quit hung)."""
    device = DeviceInfo(0, "test-input", "none", 1, 0, 16_000)

    async def scenario() -> bool:
        capture = Capture(device, sample_rate=16_000)
        reader = asyncio.create_task(capture.read())
        await asyncio.sleep(0)  # the reader now waits for a block
        capture._deliver(np.zeros(320, dtype=np.float32), time.monotonic())
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        return reader.cancelled()

    assert asyncio.run(scenario()), "the cancel was lost"


def test_terminal_ui_in_tmux_shows_captions_mutes_swaps_and_quits(
    audio: VirtualAudio, clips: dict[str, Path], tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/apt-packages.txt)")
    server = f"dragoman-listen-{os.getpid()}"
    env = " ".join(f"{k}='{v}'" for k, v in _cli_env(audio).items()
                   if k in (*audio.env, "PYTHONPATH") or k.startswith(("DRAGOMAN", "HF_")))
    err = tmp_path / "listen.stderr"  # logs (asyncio debug: slow callbacks) and stacks
    command = (f"env {env} PYTHONFAULTHANDLER=1 {' '.join(DRAGOMAN)} listen --from es --to fr "
               f"--input dragoman_mic --output dragoman_ear 2> {err}; echo EXITED=$?; sleep 60")

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "listen")

    def wait_screen(text: str, timeout: float, after: str = "") -> str:
        """The screen once `text` shows (below `after`, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = screen()
            if text in (shown.partition(after)[2] if after else shown):
                return shown
            time.sleep(0.3)
        shown = screen()
        # Say where it is stuck: faulthandler dumps every thread's stack on SIGABRT.
        subprocess.run(["pkill", "-ABRT", "-f", "listen --from es --to fr --input dragoman_mic"],
                       timeout=10)
        time.sleep(2)
        log = err.read_text(errors="replace")[-8000:] if err.exists() else ""
        raise AssertionError(f"{text!r} never appeared:\n{shown}\n-- stderr:\n{log}")

    tmux("new-session", "-d", "-s", "listen", "-x", "110", "-y", "30", command)
    try:
        wait_screen("open dragoman_mic", 90)
        subprocess.run(audio.play_command(clips["es"]), env=audio.full_env(), check=True,
                       timeout=30)
        shown = wait_screen("chang", 90)
        assert "said:" in shown and "es>fr" in shown and "latency" in shown
        tmux("send-keys", "-t", "listen", "m")
        wait_screen("MUTED", 10)
        # Swap: now French is heard and Spanish spoken; unmute and speak French.
        tmux("send-keys", "-t", "listen", "s")
        wait_screen("now translating fr > es", 60)
        tmux("send-keys", "-t", "listen", "m")
        wait_screen("microphone on", 10)
        subprocess.run(audio.play_command(clips["fr"]), env=audio.full_env(), check=True,
                       timeout=30)
        shown = wait_screen("cambi", 90, after="-- fr>es")
        assert "-- es>fr" in shown  # both directions' captions stay on screen
        tmux("send-keys", "-t", "listen", "q")
        shown = wait_screen("EXITED=", 90)  # shutdown waits for a running decode
        assert "EXITED=0" in shown
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True, timeout=10)
