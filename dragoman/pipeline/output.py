"""Turning a session's events into files: a dubbed track and WebVTT captions.

The dubbed track follows the source timeline: each translated phrase starts where
its source speech started, or right after the previous phrase if that one is still
playing, so the output lines up with the original recording. Captions hold one
cue per utterance with its committed translation, timed on the same timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dragoman.events import SAMPLE_RATE, AudioChunk, Event, FloatAudio, Span, TranslationText

MAX_CUE_CHARS = 84
"""Two caption lines of 42 characters, the usual subtitle limit."""


@dataclass(slots=True)
class _Utterance:
    span: Span
    text: str = ""
    audio_start: float | None = None
    audio_end: float | None = None


@dataclass(slots=True)
class DubTrack:
    """Collects one target language's events; `audio()` and `webvtt()` render them."""

    language: str
    sample_rate: int = 24_000
    _phrases: list[tuple[Span, list[FloatAudio]]] = field(default_factory=list)
    _utterances: dict[int, _Utterance] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        if isinstance(event, AudioChunk) and event.language == self.language:
            self.sample_rate = event.sample_rate
            if self._phrases and self._phrases[-1][0] == event.source_span:
                self._phrases[-1][1].append(event.pcm)
            else:
                self._phrases.append((event.source_span, [event.pcm]))
        elif isinstance(event, TranslationText) and event.language == self.language:
            item = self._utterances.setdefault(event.utterance, _Utterance(event.source_span))
            item.span = Span(min(item.span.start, event.source_span.start),
                             max(item.span.end, event.source_span.end))
            item.text += event.committed_delta

    def _layout(self) -> list[tuple[int, FloatAudio, Span]]:
        placed, cursor = [], 0
        for span, pieces in self._phrases:
            audio = np.concatenate(pieces)
            start = max(cursor, round(span.start * self.sample_rate / SAMPLE_RATE))
            placed.append((start, audio, span))
            cursor = start + audio.size
        return placed

    def audio(self, min_seconds: float = 0.0) -> FloatAudio:
        """The dubbed track (silence where nobody speaks)."""
        placed = self._layout()
        end = max([s + a.size for s, a, _ in placed] + [round(min_seconds * self.sample_rate)])
        track = np.zeros(end, dtype=np.float32)
        for start, audio, _ in placed:
            track[start : start + audio.size] = audio
        return track

    def webvtt(self) -> str:
        """Captions of the committed translation, one cue per utterance."""
        for start, audio, span in self._layout():
            for item in self._utterances.values():
                if item.span.start <= span.start <= item.span.end or span.start == item.span.start:
                    t0, t1 = start / self.sample_rate, (start + audio.size) / self.sample_rate
                    item.audio_start = t0 if item.audio_start is None else item.audio_start
                    item.audio_end = t1
                    break
        lines, cue = ["WEBVTT", ""], 0
        for item in sorted(self._utterances.values(), key=lambda u: u.span.start):
            text = item.text.strip()
            if not text:
                continue
            begin = item.span.start / SAMPLE_RATE if item.audio_start is None else item.audio_start
            end = item.span.end / SAMPLE_RATE if item.audio_end is None else item.audio_end
            end = max(end, begin + 0.5)
            pieces = _cue_texts(text)
            total, done = sum(len(p) for p in pieces), 0
            for piece in pieces:  # long utterances become several cues, timed by length
                first = begin + (end - begin) * done / total
                done += len(piece)
                last = begin + (end - begin) * done / total
                cue += 1
                lines += [str(cue), f"{_stamp(first)} --> {_stamp(last)}", piece, ""]
        return "\n".join(lines)


def _cue_texts(text: str, limit: int = MAX_CUE_CHARS) -> list[str]:
    """Split caption text into cues of at most `limit` characters, at word boundaries."""
    pieces, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > limit:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*pieces, current] if current else pieces


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"
