"""Real-time virtual audio devices (tests, benchmarks, trying listening mode headless).

A private PulseAudio daemon (no hardware) with null sinks, seen by PortAudio
through the ALSA `pulse` plugin as ordinary ALSA devices, defined in an ALSA
configuration file added to the system one by `ALSA_CONFIG_PATH` (HOME is left
alone, so the model store and Kokoro's voices under ~/.cache stay visible):

    dragoman_mic  capture: the monitor of sink `mic_feed` (we play speech into it)
    dragoman_ear  playback: sink `ear` (we record its monitor)
    dragoman_spk  playback: sink `spk` (the other person's output in a conversation)

Null sinks run on PulseAudio's real-time clock, so capture and playback advance
at real speed, unlike ALSA's `null`/`file` plugins, which run as fast as they are
read. Everything stays on Unix sockets in the given directory. Needs Debian `pulseaudio`,
`pulseaudio-utils` and `libasound2-plugins` (scripts/apt-packages.txt).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
ASOUND_CONF = """\
pcm.dragoman_mic { type pulse; device "mic_feed.monitor" }
pcm.dragoman_ear { type pulse; device "ear" }
pcm.dragoman_spk { type pulse; device "spk" }
"""

SINKS = {"mic_feed": 16_000, "ear": 48_000, "spk": 48_000}


def available() -> str | None:
    """Why virtual audio cannot run here, or None."""
    for program in ("pulseaudio", "pactl", "paplay", "parecord"):
        if shutil.which(program) is None:
            return f"{program} is not installed (scripts/apt-packages.txt)"
    if not SYSTEM_ALSA_CONF.is_file():
        return f"{SYSTEM_ALSA_CONF} is missing (libasound2-data)"
    if not Path("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so").exists() \
            and not list(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_pulse.so")):
        return "the ALSA pulse plugin (libasound2-plugins) is not installed"
    return None


class VirtualAudio:
    """A running private PulseAudio with the devices above.

    `env` is what a client process needs to see them (PULSE_SERVER, ALSA_CONFIG_PATH);
    only the daemon gets its own HOME and XDG_RUNTIME_DIR."""

    def __init__(self, root: Path) -> None:
        self.root = root
        runtime = root / "run"
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        conf = root / "asound.conf"
        conf.write_text(ASOUND_CONF)
        self.socket = runtime / "native"
        self.cli_socket = runtime / "cli"
        self.env = {"PULSE_SERVER": f"unix:{self.socket}",
                    "ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{conf}"}
        self._daemon_env = {"HOME": str(root), "XDG_RUNTIME_DIR": str(runtime)}
        self._daemon: subprocess.Popen[bytes] | None = None
        self._modules: dict[str, str] = {}

    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> None:
        self._daemon = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
             "--use-pid-file=no", "--log-target=file:" + str(self.root / "pulse.log"),
             "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
             "-L", f"module-cli-protocol-unix socket={self.cli_socket}"],
            env={**self.full_env(), **self._daemon_env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while self.pactl("info", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PulseAudio did not start: "
                                   + (self.root / "pulse.log").read_text()[-2000:])
            time.sleep(0.1)
        for sink in SINKS:
            self.add_sink(sink)

    def add_sink(self, name: str) -> None:
        out = self.pactl("load-module", "module-null-sink", f"sink_name={name}",
                         f"rate={SINKS[name]}", "channels=1")
        self._modules[name] = out.stdout.decode().strip()

    def remove_sink(self, name: str) -> None:
        self.pactl("unload-module", self._modules.pop(name))

    def unplug(self, sink: str) -> None:
        """Remove a device ("mic_feed": the microphone, "ear", "spk"); streams on it are cut.

        (PulseAudio would otherwise move a stream to another device, as a desktop
        does, which an application cannot tell from a silent microphone.)
        """
        mic = sink == "mic_feed"
        devices, kind = ("sources", "source-output") if mic else ("sinks", "sink-input")
        device = f"{sink}.monitor" if mic else sink
        index = next(line.split()[0] for line in self._short(devices)
                     if line.split()[1] == device)
        streams = [line.split()[0] for line in self._short(kind + "s")
                   if line.split()[1] == index]
        self.remove_sink(sink)
        for stream in streams:  # pactl has no kill command: the CLI protocol
            with socket.socket(socket.AF_UNIX) as cli:
                cli.connect(str(self.cli_socket))
                cli.sendall(f"kill-{kind} {stream}\n".encode())
                time.sleep(0.2)

    def _short(self, what: str) -> list[str]:
        return self.pactl("list", "short", what).stdout.decode().splitlines()

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["pactl", *args], env=self.full_env(), capture_output=True,
                              check=check, timeout=10)

    def play_command(self, wav: Path) -> list[str]:
        return ["paplay", "-d", "mic_feed", str(wav)]

    def record_command(self, sink: str, wav: Path) -> list[str]:
        # A record stream's default fragment is about 2 s, and what is still in it when
        # the recorder is stopped never reaches the file: ask for small fragments.
        return ["parecord", "-d", f"{sink}.monitor", "--file-format=wav", "--rate=24000",
                "--channels=1", "--latency-msec=50", str(wav)]

    def stop(self) -> None:
        if self._daemon is not None:
            self._daemon.terminate()
            try:
                self._daemon.wait(10)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait(10)
            self._daemon = None


def speech_wav(source: Path, out: Path) -> Path:
    """Convert a corpus prompt (G.722) to a 16 kHz mono PCM WAV paplay can read."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-ar", "16000",
                    "-ac", "1", "-c:a", "pcm_s16le", str(out)], check=True, timeout=60)
    return out
