"""The browser client and the meeting extension in headless Chromium, against a real
`dragoman serve` (Whisper -> Apertium es->fr -> TTS -> watermark) on loopback.

The fake microphone plays real Spanish speech (Asterisk prompt "Sus contrasenas han sido
cambiadas", made into a 48 kHz WAV with ffmpeg; Chromium loops it). The browser is the
system Chromium (/usr/bin/chromium) driven by playwright-core from npm
(tests/js/browser/*.mjs print one JSON result each); never a downloaded browser.
Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("DRAGOMAN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts" / "browser"
SPEECH = Path("/usr/share/asterisk/sounds/es/vm-passchanged.g722")
TOKEN = "dk_browser_test_" + os.urandom(8).hex()
EXTENSION_ID = "cceabbfkgdnhadhfodpickaiachpjhfa"  # from the "key" in extension/manifest.json
FRENCH = [r"mots? de passe", r"chang"]  # Apertium: "Leurs mots de passe ont été changés"


def _ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       check=False, capture_output=True, timeout=600)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (apt-get install chromium)")


def _ensure_node_modules() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["bash", "scripts/install_js.sh"], cwd=ROOT, check=True, timeout=600)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SPEECH.exists() or shutil.which("ffmpeg") is None:
        pytest.skip("needs asterisk-core-sounds-es-g722 and ffmpeg")
    wav = tmp_path_factory.mktemp("speech") / "es-48k.wav"
    # 2.9 s of speech then 2 s of silence (so each loop ends an utterance), 48 kHz mono s16.
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(SPEECH), "-af",
                    "apad=pad_dur=2", "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", str(wav)],
                   check=True)
    return wav


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`dragoman serve` on a free loopback port with a test key; yields its http:// URL."""
    _ensure_chromium()
    _ensure_node_modules()
    subprocess.run(["node", "extension/build.mjs"], cwd=ROOT, check=True, capture_output=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = (ARTIFACTS / "server.log").open("w")
    env = {**os.environ, "DRAGOMAN_API_KEYS": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragoman.cli", "serve", "--port", str(port),
         "--allow-origin", f"chrome-extension://{EXTENSION_ID}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"dragoman serve exited ({proc.returncode}): "
                                     f"{(ARTIFACTS / 'server.log').read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError("dragoman serve did not start listening in 300 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def drive(script: str, options: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    """Run a playwright-core driver; its last stdout line is the JSON result."""
    done = subprocess.run(["node", f"tests/js/browser/{script}", json.dumps(options)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no result: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    (ARTIFACTS / f"{options.get('name', script)}.json").write_text(json.dumps(result, indent=1))
    return result


def ws_url(server: str) -> str:
    return server.replace("http://", "ws://") + "/v1"


def test_web_client_translates_spanish_microphone_speech(server: str, speech_wav: Path) -> None:
    shot = ARTIFACTS / "web-client.png"
    result = drive("web_client.mjs", {
        "name": "web-client", "scenario": "translate", "page": server + "/", "url": ws_url(server),
        "token": TOKEN, "source": "es", "target": "fr", "wav": str(speech_wav),
        "waitWords": FRENCH, "minAudioStarted": 2, "timeoutMs": 150_000, "extraMs": 1500,
        "screenshot": str(shot)})
    assert result.get("exception") is None, result.get("exception")
    assert result["error"] is None, result["error"]
    assert result["ok"], f"no French caption with {FRENCH}: {result['target']!r}"
    for pattern in FRENCH:
        assert re.search(pattern, result["target"], re.I), result["target"]
        assert re.search(pattern, result["captionsText"], re.I)  # on the page, not only in state
    assert re.search(r"contrase", result["source"], re.I), result["source"]
    assert result["audioFrames"] >= 2 and result["audioStarted"] >= 2  # played through the worklet
    assert result["playback"]["playedMs"] > 300
    assert result["watermarkBadge"]
    latency = result["latency"]
    assert latency["count"] >= 1 and 0 < latency["median"] < 60
    assert shot.stat().st_size > 10_000


def test_web_client_resumes_after_a_dropped_connection(server: str, speech_wav: Path) -> None:
    result = drive("web_client.mjs", {
        "name": "web-client-resume", "scenario": "resume", "page": server + "/",
        "url": ws_url(server), "token": TOKEN, "source": "es", "target": "fr",
        "wav": str(speech_wav), "waitWords": FRENCH, "timeoutMs": 150_000})
    assert result.get("exception") is None, result.get("exception")
    assert result["error"] is None, result["error"]
    assert result["ok"] and result["reconnects"] >= 1
    assert result["status"] == "open"


@pytest.mark.parametrize("case", ["wrong_token", "server_down", "mic_denied"])
def test_web_client_error_messages(server: str, speech_wav: Path, case: str) -> None:
    url = ws_url(server)
    token = TOKEN
    scenario = "error"
    if case == "wrong_token":
        token = "dk_wrong"
    elif case == "server_down":
        url = f"ws://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    else:
        scenario = "mic_denied"
    result = drive("web_client.mjs", {
        "name": f"web-client-{case}", "scenario": scenario, "page": server + "/", "url": url,
        "token": token, "wav": str(speech_wav), "timeoutMs": 20_000,
        "screenshot": str(ARTIFACTS / f"web-client-{case}.png")})
    assert result.get("exception") is None, result.get("exception")
    expected = {
        "wrong_token": ("unauthorized", "The server refused the access token"),
        "server_down": ("client.server_unreachable", "Cannot reach the Dragoman server"),
        "mic_denied": ("client.mic_denied", "Microphone access was denied"),
    }[case]
    assert result["error"] is not None and result["error"]["code"] == expected[0]
    assert expected[1] in result["errorText"]  # the visible alert, as the user reads it
    assert result["status"] == "failed"


def test_extension_overlays_french_captions_on_a_meeting_page(server: str,
                                                              speech_wav: Path) -> None:
    """tabCapture needs the user to invoke the extension on the tab (a toolbar click that
    headless Chromium cannot make: the driver records Chromium's refusal). The substitute
    tested here is the extension's documented fallback for any tab: the content script
    captures the meeting page's own <audio> element with captureStream() and streams it
    through the same offscreen session, player and overlay."""
    shot = ARTIFACTS / "extension-overlay.png"
    result = drive("extension.mjs", {
        "name": "extension", "url": ws_url(server), "token": TOKEN, "source": "es",
        "target": "fr", "wav": str(speech_wav), "extension": str(ROOT / "build" / "extension"),
        "waitWords": FRENCH, "timeoutMs": 150_000, "extraMs": 1000, "screenshot": str(shot)})
    assert result.get("exception") is None, result.get("exception")
    assert result["extensionId"] == EXTENSION_ID
    assert result["mode"] == "element", result.get("tabCapture")
    assert "not been invoked" in result["tabCapture"]["error"]
    assert result["start"]["reply"]["ok"], result["start"]
    assert result["ok"], f"overlay never showed {FRENCH}: {result}"
    for pattern in FRENCH:
        assert re.search(pattern, result["target"], re.I), result["target"]
    assert "live" in result["status"] or "ended" in result["status"]
    assert shot.stat().st_size > 10_000
