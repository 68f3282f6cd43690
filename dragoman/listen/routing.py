"""Which output hears which translation (a core without I/O).

In listening mode every translation goes to the one near-ear output. In a
conversation one session detects each utterance's language among the two and
translates it into both; the translation into the *other* language goes to the
other person's output, and the "translation" into the speaker's own language (a
pass-through of their words) is dropped. `AudioChunk`s carry no utterance, only
the source span they translate, so utterance spans are tracked from
`SpeechStarted`/`SpeechEnded`/`SourceText`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dragoman.events import (
    AudioChunk,
    Event,
    Samples,
    SourceText,
    SpeechEnded,
    SpeechStarted,
    TranslationText,
)
from dragoman.languages import normalize_language


@dataclass(slots=True)
class _Utterance:
    start: Samples
    end: Samples | None = None
    language: str | None = None


class UtteranceRouter:
    """Tracks utterances and says which target language an event should reach.

    `languages`: the output languages in use (one in listening mode, two in a
    conversation). `target_of(event)` returns the language whose output should get
    the event, or None to drop it (or for events that concern no output).
    """

    def __init__(self, languages: tuple[str, ...], keep: int = 64) -> None:
        self.languages = tuple(normalize_language(code) for code in languages)
        self._utterances: OrderedDict[int, _Utterance] = OrderedDict()
        self._keep = keep
        self.dropped_passthrough = 0

    def observe(self, event: Event) -> None:
        if isinstance(event, SpeechStarted):
            self._remember(event.utterance, event.at)
        elif isinstance(event, SpeechEnded):
            self._remember(event.utterance, event.at).end = event.at
        elif isinstance(event, SourceText):
            words = event.committed + event.tentative
            item = self._remember(event.utterance, words[0].start if words else 0)
            item.language = normalize_language(event.language) if event.language else None

    def _remember(self, utterance: int, start: Samples) -> _Utterance:
        item = self._utterances.get(utterance)
        if item is None:
            item = self._utterances[utterance] = _Utterance(start)
            while len(self._utterances) > self._keep:
                self._utterances.popitem(last=False)
        return item

    def language_of(self, utterance: int) -> str | None:
        item = self._utterances.get(utterance)
        return item.language if item is not None else None

    def language_at(self, sample: Samples) -> str | None:
        """The language of the latest utterance that started at or before `sample`."""
        best: _Utterance | None = None
        for item in self._utterances.values():
            if item.start <= sample and (best is None or item.start >= best.start):
                best = item
        return best.language if best is not None else None

    def target_of(self, event: Event) -> str | None:
        if isinstance(event, TranslationText):
            spoken_in = self.language_of(event.utterance)
        elif isinstance(event, AudioChunk):
            spoken_in = self.language_at(event.source_span.start)
        else:
            return None
        target = normalize_language(event.language)
        if target not in self.languages:
            return None
        if len(self.languages) > 1 and spoken_in == target:
            self.dropped_passthrough += 1
            return None
        return target
