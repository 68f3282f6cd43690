"""Shared fixtures: real speech, the real Whisper model, and a network guard.

Every test runs with downloads disabled (DRAGOMAN_OFFLINE=1, HF_HUB_OFFLINE=1)
and with outbound connections to anything but loopback refused, so a test that
tried to reach a model hub would fail loudly instead of passing by luck.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dragoman.audio import load_audio
from dragoman.corpus import Prompt, prompt
from dragoman.events import SAMPLE_RATE, FloatAudio
from dragoman.translate import create_backend
from dragoman.translate.apertium import ApertiumBackend


class NetworkBlockedError(RuntimeError):
    """Raised by the guard when a test tries to leave the machine."""


def _is_local(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DRAGOMAN_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise NetworkBlockedError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local((name, 0)):
            raise NetworkBlockedError(f"test tried to resolve {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield


@pytest.fixture(scope="session")
def whisper() -> Any:
    """The real embedded Whisper base model, loaded once per test session."""
    from dragoman.asr import WhisperTranscriber

    transcriber = WhisperTranscriber()
    transcriber.start()
    return transcriber


class Speech:
    """Real recorded Asterisk prompts (CC-BY-SA 3.0) and helpers to build streams."""

    @staticmethod
    def clip(language: str, prompt_id: str) -> tuple[Prompt, FloatAudio]:
        item = prompt(language, prompt_id)
        return item, load_audio(item.path)

    @staticmethod
    def silence(seconds: float) -> FloatAudio:
        return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)

    def stream(
        self, language: str, prompt_ids: list[str], gap: float = 1.0
    ) -> tuple[list[Prompt], FloatAudio]:
        """Prompts one after another with `gap` seconds of silence after each."""
        items, parts = [], []
        for prompt_id in prompt_ids:
            item, audio = self.clip(language, prompt_id)
            items.append(item)
            parts += [audio, self.silence(gap)]
        return items, np.concatenate(parts)


@pytest.fixture(scope="session")
def speech() -> Speech:
    return Speech()


def wait_for_server(proc: subprocess.Popen[bytes], port: int, log: Path,
                    timeout: float = 300) -> None:
    """Until `proc` (a `dragoman serve`) accepts connections on the loopback `port`;
    fails with its log if it exits first or never listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dragoman serve exited ({proc.returncode}): {log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"dragoman serve did not start listening in {timeout:.0f} s")


@pytest.fixture(scope="module")
def apertium() -> Iterator[ApertiumBackend]:
    """The real Apertium backend (its pair pipelines start on first use)."""
    backend = create_backend("apertium")
    assert isinstance(backend, ApertiumBackend)
    backend.start()
    yield backend
    backend.close()
