"""The dubbed track and WebVTT captions, and `dragoman translate` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from dragoman.audio import load_audio
from dragoman.corpus import prompt
from dragoman.events import SAMPLE_RATE, AudioChunk, Span, TranslationText
from dragoman.pipeline.output import DubTrack
from dragoman.watermark import WatermarkKey, detect


def chunk(span: Span, seconds: float, pts: int = 0) -> AudioChunk:
    pcm = np.full(round(seconds * 24_000), 0.1, dtype=np.float32)
    return AudioChunk("fr", pcm, 24_000, pts, span)


def test_phrases_follow_the_source_timeline_and_never_overlap() -> None:
    track = DubTrack("fr")
    first, second = Span(1 * SAMPLE_RATE, 3 * SAMPLE_RATE), Span(3 * SAMPLE_RATE, 4 * SAMPLE_RATE)
    track.add(TranslationText(0, "fr", "Bonjour à tous,", "", first))
    track.add(chunk(first, 2.5))
    track.add(
        TranslationText(
            0, "fr", " merci d'être venus.", "", Span(first.start, second.end), final=True
        )
    )
    track.add(chunk(second, 1.0))
    track.add(chunk(Span(9 * SAMPLE_RATE, 10 * SAMPLE_RATE), 0.5))  # a later utterance
    audio = track.audio(min_seconds=12)
    assert audio.size == 12 * 24_000
    loud = np.flatnonzero(audio)
    assert loud[0] == 24_000  # starts where the source speech started (1 s)
    # The second phrase waits for the first (ends at 3.5 s) instead of overlapping it.
    assert np.all(audio[24_000 : round(4.5 * 24_000)] > 0)
    assert np.all(audio[round(4.5 * 24_000) : 9 * 24_000] == 0)
    vtt = track.webvtt()
    assert vtt.startswith("WEBVTT")
    assert "00:00:01.000 --> 00:00:04.500" in vtt
    assert "Bonjour à tous, merci d'être venus." in vtt


def test_long_captions_are_split_into_readable_cues() -> None:
    track = DubTrack("fr")
    text = " ".join(["mot"] * 60)
    track.add(TranslationText(0, "fr", text, "", Span(0, 10 * SAMPLE_RATE), final=True))
    cues = [line for line in track.webvtt().splitlines() if line.startswith("mot")]
    assert len(cues) == 3 and all(len(c) <= 84 for c in cues)
    assert " ".join(cues) == text


def test_translate_command_writes_watermarked_speech_and_captions(tmp_path: Path) -> None:
    source = prompt("es", "conf-noempty").path
    out, vtt = tmp_path / "out.wav", tmp_path / "out.vtt"
    env_key = "dragoman cli test"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dragoman.cli",
            "translate",
            str(source),
            "--from",
            "es",
            "--to",
            "fr",
            "-o",
            str(out),
            "--captions",
            str(vtt),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DRAGOMAN_WATERMARK_KEY": env_key},
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["type"] == "Summary" and records[-1]["errors"] == 0
    speech = load_audio(out, sample_rate=24_000)
    assert speech.size >= load_audio(source).size * 1.5 - 2400  # as long as the source
    found = detect(speech, WatermarkKey.from_string(env_key), sample_rate=24_000)
    assert found.detected
    captions = vtt.read_text(encoding="utf-8")
    assert "conférences" in captions or "conference" in captions
