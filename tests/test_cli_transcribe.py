"""`dragoman transcribe` and `dragoman models` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jiwer

from dragoman.corpus import prompt
from dragoman.textnorm import normalize_text

CLI = [sys.executable, "-m", "dragoman.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_transcribe_json_streams_events() -> None:
    clip = prompt("es", "vm-passchanged")
    result = run("transcribe", "--json", "--lang", "es", str(clip.path))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    types = [r["type"] for r in records]
    assert types[0] == "SpeechStarted" and types[-2:] == ["SpeechEnded", "Summary"]
    words = [w["text"] for r in records if r["type"] == "SourceText" for w in r["committed"]]
    heard = normalize_text(" ".join(words))
    assert heard.endswith("han sido cambiadas")
    assert jiwer.cer(normalize_text(clip.text), heard) <= 0.15, heard
    assert records[-1]["decodes"] >= 1


def test_transcribe_human_output_and_detected_language() -> None:
    clip = prompt("fr", "conf-noempty")
    result = run("transcribe", str(clip.path))
    assert result.returncode == 0, result.stderr
    assert "[fr]" in result.stdout and "conférence" in result.stdout.lower()


def test_errors_exit_with_code_2(tmp_path: Path) -> None:
    missing = run("transcribe", str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "no such audio file" in missing.stderr
    clip = prompt("en", "vm-passchanged")
    bad_lang = run("transcribe", "--lang", "klingon", str(clip.path))
    assert bad_lang.returncode == 2 and "unknown language" in bad_lang.stderr


def test_models_list_and_path() -> None:
    listing = run("models", "list", "--json")
    assert listing.returncode == 0
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["whisper-base"]["source"] == "package"
    path = run("models", "path", "whisper-base")
    assert "model.bin.part1" in path.stdout and "model.bin.part2" in path.stdout
    missing = run("models", "path", "whisper-small")
    assert missing.returncode == 2 and "dragoman models pull whisper-small" in missing.stderr
