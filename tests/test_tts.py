"""TTS stage: routing, errors, watermarking of every output sample, streaming, CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from watermark_check import assert_watermarked

from dragoman import corpus
from dragoman.audio import load_audio
from dragoman.cli import main
from dragoman.errors import BackendError, DragomanError, UnsupportedLanguageError
from dragoman.events import AudioChunk, FloatAudio, ManualClock, Span, TranslationText
from dragoman.languages import all_languages
from dragoman.tts import (
    OUTPUT_RATE,
    Router,
    SynthesisConfig,
    SynthesisInputError,
    SynthesisStream,
    Synthesizer,
    Voice,
    language_support,
)
from dragoman.tts.espeak import EspeakBackend
from dragoman.tts.segments import split_phrase
from dragoman.tts.xtts import XTTS_LANGUAGES, XttsBackend
from dragoman.watermark import WatermarkKey, detect, embed

KEY = WatermarkKey.from_passphrase("test")
PAYLOAD = 0x1234ABCD


@pytest.fixture(scope="module")
def router() -> Router:
    router = Router()
    router.start()
    return router


def make(router: Router, language: str, *, backend: str | None = None,
         voice: str | None = None, rate: float = 1.0) -> Synthesizer:
    config = SynthesisConfig(language, backend=backend, voice=voice, rate=rate, payload=PAYLOAD)
    synth = Synthesizer(config, KEY, router)
    synth.start()
    return synth


def joined(chunks: list[AudioChunk]) -> FloatAudio:
    return np.concatenate([c.pcm for c in chunks])


def test_routing_covers_seventy_languages_and_prefers_neural(router: Router) -> None:
    coverage = router.coverage()
    known = {lang.code for lang in all_languages()}
    assert len(coverage.keys() & known) >= 70
    for code in ("en", "es", "fr", "it", "pt", "hi", "zh"):
        assert router.route(code).backend == "kokoro"
    for code in ("de", "sw", "ru", "ar", "fi"):
        route = router.route(code)
        assert route.backend == "espeak-ng" and not route.neural


def test_capability_table_counts_end_to_end(router: Router) -> None:
    rows = language_support(router, translatable=lambda: ["en", "es", "fr", "de", "xx"])
    by_code = {r.code: r for r in rows}
    assert by_code["es"].hear and by_code["es"].translate and by_code["es"].speak == "neural"
    assert by_code["de"].speak == "formant" and by_code["de"].end_to_end
    assert by_code["sw"].translate is False and not by_code["sw"].end_to_end
    unknown = language_support(router)  # no translation hook: counted as possible
    assert sum(r.end_to_end for r in unknown) >= 70


@pytest.mark.parametrize("language", ["en", "sw"])
def test_every_output_sample_is_watermarked(router: Router, language: str) -> None:
    text = corpus.prompt("en", "auth-incorrect").text if language == "en" else (
        "Habari ya asubuhi rafiki yangu, karibu sana kwenye mkutano wetu wa leo.")
    synth = make(router, language)
    synth.say(text)
    synth.say(text)
    audio = joined(synth.finish())
    assert_watermarked(audio, KEY, OUTPUT_RATE, PAYLOAD)
    other = WatermarkKey.from_passphrase("other")
    assert not detect(audio, other, sample_rate=OUTPUT_RATE).detected


class RecordingEspeak(EspeakBackend):
    """The real espeak-ng backend, keeping a copy of the unmarked audio it hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_out: list[FloatAudio] = []

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        for piece in super().render_unmarked(text, voice, rate=rate):
            self.handed_out.append(piece.copy())
            yield piece


def assert_one_phrase_of_chunks(chunks: list[AudioChunk]) -> None:
    """One phrase, then `finish()`: back-to-back 200 ms chunks, then the phrase's
    shorter last chunk (out with the phrase), then the embedder's delay line."""
    pts = 0
    for chunk in chunks:
        assert chunk.pts == pts
        pts += chunk.pcm.size
    full = round(0.2 * OUTPUT_RATE)
    assert all(c.pcm.size == full for c in chunks[:-2])
    assert 0 < chunks[-2].pcm.size <= full
    assert chunks[-1].pcm.size <= full


def test_output_is_the_backend_audio_marked_by_the_embedder() -> None:
    """Exactly what the backend produced, passed through the watermark embedder."""
    espeak = RecordingEspeak()
    synth = make(Router([espeak]), "fr")
    synth.say("Bonjour et bienvenue.")
    chunks = synth.finish()
    out = joined(chunks)
    raw = np.concatenate(espeak.handed_out)
    gap = np.zeros(round(0.032 * OUTPUT_RATE), dtype=np.float32)
    expected = embed(np.concatenate([raw, gap]), KEY, PAYLOAD, OUTPUT_RATE)
    assert out.size == expected.size
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert not np.allclose(out[: raw.size], raw, atol=1e-4)  # the mark is really there
    assert_one_phrase_of_chunks(chunks)
    assert {c.sample_rate for c in chunks} == {OUTPUT_RATE}


@pytest.mark.parametrize(
    ("text", "options", "error"),
    [
        ("", {}, SynthesisInputError),
        ("   \n ", {}, SynthesisInputError),
        ("?!...", {}, SynthesisInputError),
        ("x" * 5000, {}, SynthesisInputError),
        ("hello", {"rate": 50.0}, SynthesisInputError),
        ("hello", {"rate": 0.0}, SynthesisInputError),
        ("hello", {"rate": float("nan")}, SynthesisInputError),
    ],
)
def test_bad_input_is_a_clear_error(
    router: Router, text: str, options: dict[str, float], error: type[DragomanError]
) -> None:
    with pytest.raises(error):
        synth = make(router, "en", rate=options.get("rate", 1.0))
        synth.say(text)


def test_unknown_or_unspeakable_language_is_a_clear_error(router: Router) -> None:
    with pytest.raises(UnsupportedLanguageError):
        SynthesisConfig("xx")
    with pytest.raises(UnsupportedLanguageError):
        make(router, "yo")  # known language that no installed backend speaks
    with pytest.raises(SynthesisInputError):
        make(router, "en", voice="no_such_voice")


def test_committed_text_is_spoken_at_phrase_boundaries(router: Router) -> None:
    # Words gather whenever anything still plays (gather_while_s 0), and time stands still.
    config = SynthesisConfig("es", backend="espeak-ng", payload=PAYLOAD, gather_while_s=0.0)
    synth = Synthesizer(config, KEY, router, clock=ManualClock())
    synth.push_text(TranslationText(0, "es", "Hola", "a todos", Span(0, 8_000)))
    assert synth.events()  # the listener hears nothing: one word goes at once
    synth.push_text(TranslationText(0, "es", "a todos", "", Span(8_000, 16_000)))
    assert synth.events() == []  # "Hola" still plays: two words wait for more
    synth.push_text(TranslationText(0, "es", "amigos.", "", Span(16_000, 24_000)))
    first = synth.events()  # punctuation ends the phrase
    assert first and all(c.source_span == Span(8_000, 24_000) for c in first)
    synth.push_text(TranslationText(1, "es", "Gracias", "", Span(30_000, 40_000), final=True))
    rest = synth.finish()
    # A phrase's last, shorter chunk leaves with it, not with the next phrase.
    assert rest and all(c.source_span == Span(30_000, 40_000) for c in rest)
    assert rest[0].pts == first[-1].pts + first[-1].pcm.size


def test_punctuation_committed_after_its_phrase_is_not_an_error(router: Router) -> None:
    # End to end, fr -> es: Apertium's "¿... ?" came in two commits, the words (spoken at
    # once) and then the "?" alone, which failed as a phrase with nothing to speak and
    # reached clients as an Error event, several times per 100 prompts.
    synth = make(router, "es", backend="espeak-ng")
    synth.push_text(TranslationText(0, "es", "¿Dónde está la sala", "", Span(0, 16_000)))
    spoken = synth.events()
    assert spoken
    synth.push_text(TranslationText(0, "es", "?", "", Span(16_000, 17_000), final=True))
    assert synth.events() == []
    with pytest.raises(SynthesisInputError):
        synth.say("?")  # asked for directly, it is still refused


def test_an_idle_listener_hears_short_phrases_a_busy_one_longer(router: Router) -> None:
    clock = ManualClock()
    config = SynthesisConfig("es", backend="espeak-ng", payload=PAYLOAD)
    synth = Synthesizer(config, KEY, router, clock=clock)
    synth.start()
    assert synth.buffered_s == 0.0
    long = "Por favor, escuche con atención las siguientes opciones del menú principal"
    synth.push_text(TranslationText(0, "es", long, "", Span(0, 48_000)))
    first = synth.events()  # nothing plays: words go at once
    heard = sum(c.pcm.size for c in first) / OUTPUT_RATE
    assert first and synth.buffered_s == pytest.approx(heard)
    assert heard > config.gather_while_s + 1.0
    clock.advance(0.5)  # more than gather_while_s still to hear: words gather
    synth.push_text(TranslationText(0, "es", " marque el", "", Span(48_000, 56_000)))
    assert synth.events() == []
    synth.push_text(TranslationText(0, "es", " número", "", Span(56_000, 60_000)))
    assert synth.events() == []
    synth.push_text(TranslationText(0, "es", " uno", "", Span(60_000, 64_000)))
    second = synth.events()  # four words
    assert second and all(c.source_span == Span(48_000, 64_000) for c in second)
    # Under gather_while_s left to hear: a phrase that waited for more words would
    # come after the speech ran out, so a single word goes at once.
    clock.advance(synth.buffered_s - config.gather_while_s / 2)
    synth.push_text(TranslationText(0, "es", " para", "", Span(64_000, 68_000)))
    assert synth.events()
    clock.advance(60.0)  # all heard: a single word goes at once
    synth.push_text(TranslationText(0, "es", " continuar", "", Span(68_000, 72_000)))
    assert synth.events()
    with pytest.raises(DragomanError, match="idle_phrase_words"):
        SynthesisConfig("es", min_phrase_words=2, idle_phrase_words=3)
    with pytest.raises(DragomanError, match="gather_while_s"):
        SynthesisConfig("es", gather_while_s=-1.0)


def test_a_listener_far_behind_hears_the_next_phrase_faster(router: Router) -> None:
    """With more than `catch_up_after_s` still to hear, the next phrase is spoken faster
    (and shorter); once the listener has caught up, at the set rate again; with the
    catch-up off, never faster."""
    clock = ManualClock()

    def synthesizer(after: float | None) -> Synthesizer:
        config = SynthesisConfig("es", backend="espeak-ng", payload=PAYLOAD,
                                 catch_up_after_s=after)
        synth = Synthesizer(config, KEY, router, clock=clock)
        synth.start()
        return synth

    backlog = "Por favor, escuche con atención las siguientes opciones del menú principal."
    phrase = "Marque el número uno para continuar."

    def seconds(synth: Synthesizer) -> float:
        return sum(c.pcm.size for c in synth.events()) / OUTPUT_RATE

    idle = synthesizer(1.0)
    idle.say(phrase)
    at_pace = seconds(idle)
    assert idle.phrase_rate == 1.0
    synth = synthesizer(1.0)
    synth.say(backlog)
    assert seconds(synth) > 3.0  # the listener now has over 3 s to hear
    synth.say(phrase)
    assert synth.phrase_rate == pytest.approx(1.25)  # the most it may catch up
    assert seconds(synth) < 0.9 * at_pace
    clock.advance(60.0)  # all heard
    synth.say(phrase)
    assert synth.phrase_rate == 1.0 and seconds(synth) == pytest.approx(at_pace, rel=0.02)
    off = synthesizer(None)
    off.say(backlog)
    off.say(phrase)
    assert off.phrase_rate == 1.0
    assert off.events() and off.buffered_s > 3.0
    with pytest.raises(DragomanError, match="max_catch_up"):
        SynthesisConfig("es", max_catch_up=3.0)


def test_prosody_uses_buffered_source_audio(router: Router) -> None:
    source = load_audio(corpus.prompt("es", "agent-pass").path)
    synth = make(router, "es")
    synth.push_source(source, start=0)
    synth.push_text(TranslationText(0, "es", corpus.prompt("es", "agent-pass").text, "",
                                    Span(0, source.size), final=True))
    out = joined(synth.finish())
    assert synth.route is not None and synth.route.voice.gender == "female"
    assert abs(out.size / OUTPUT_RATE - source.size / 16_000) < 0.6


async def test_stream_yields_marked_chunks(router: Router) -> None:
    stream = SynthesisStream(make(router, "en", backend="espeak-ng"))
    await stream.say("Good morning everyone.")
    await stream.push_text(TranslationText(0, "en", "See you soon.", "", Span(0, 8000)))
    await stream.end_input()
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    assert len(chunks) > 3 and all(c.language == "en" for c in chunks)
    assert detect(joined(chunks), KEY, sample_rate=OUTPUT_RATE).detected


async def test_stream_reports_errors_and_closes() -> None:
    stream = SynthesisStream(make(Router([EspeakBackend()]), "en"))
    await stream.say("")
    await stream.end_input()
    with pytest.raises(SynthesisInputError):
        async for _ in stream:
            pass
    await stream.aclose()


async def test_a_phrase_that_crashes_is_reported_and_the_stream_goes_on(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in synthesis (here a stand-in RuntimeError on the first phrase) used to kill
    the stream's worker silently, and whoever iterated it waited forever."""
    synth = make(router, "en", backend="espeak-ng")
    real_say, calls = synth.say, []

    def say(text: str, **kwargs: Any) -> None:
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("vocoder exploded")
        real_say(text, **kwargs)

    monkeypatch.setattr(synth, "say", say)
    stream = SynthesisStream(synth)
    await stream.say("First phrase.")
    await stream.say("Second phrase.")
    await stream.end_input()
    with pytest.raises(BackendError, match="vocoder exploded"):
        async for _ in stream:
            pass
    chunks = await asyncio.wait_for(_collect(stream), 30)
    await stream.aclose()
    assert calls == ["First phrase.", "Second phrase."]
    assert chunks and detect(joined(chunks), KEY, sample_rate=OUTPUT_RATE).detected


async def _collect(stream: SynthesisStream) -> list[AudioChunk]:
    return [chunk async for chunk in stream]


class FakeXtts(XttsBackend):
    """FAKE of the XTTS-v2 runtime: coqui-tts cannot import on this CPU-only machine.

    Only the model call is replaced (a 220 Hz tone); routing, checks and marking are real.
    """

    def available(self) -> bool:
        return True

    def start(self) -> None:
        self._tts = self

    def tts(self, text: str, language: str, speed: float, speaker: str) -> list[float]:
        t = np.arange(round(24_000 * 0.05 * len(text))) / 24_000
        return list(0.3 * np.sin(2 * np.pi * 220 * t))


def test_xtts_adapter_routes_first_and_is_marked() -> None:
    router = Router([FakeXtts(), EspeakBackend()])
    router.start()
    assert len(XTTS_LANGUAGES) == 17 and router.route("de").backend == "xtts"
    assert router.route("sw").backend == "espeak-ng"
    synth = make(router, "de")
    synth.say("Guten Morgen, wie geht es Ihnen heute?")
    assert detect(joined(synth.finish()), KEY, sample_rate=OUTPUT_RATE).detected
    real = XttsBackend()
    if not real.available():
        assert not any(b.name == "xtts" for b in Router([real, EspeakBackend()]).backends)


def test_cli_say_and_languages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DRAGOMAN_WATERMARK_KEY", "test")
    out = tmp_path / "out.wav"
    source = corpus.prompt("es", "agent-pass").path
    code = main(["say", "--lang", "es", "Escriba su contraseña.", "--prosody-from",
                 str(source), "-o", str(out)])
    assert code == 0
    audio = load_audio(out, OUTPUT_RATE)
    assert audio.size > OUTPUT_RATE // 2
    assert detect(audio, KEY, sample_rate=OUTPUT_RATE).detected
    assert main(["say", "--lang", "xx", "hi", "-o", str(out)]) == 2
    assert main(["say", "--lang", "en", "--rate", "9", "hi", "-o", str(out)]) == 2
    capsys.readouterr()
    assert main(["languages", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert "| es | Spanish | yes |" in text and "end to end" in text


def test_voice_list_is_typed(router: Router) -> None:
    voices = router.backend("kokoro").voices("en")
    assert voices[0].name == "af_heart" and all(isinstance(v, Voice) for v in voices)
    assert all(v.neural and v.language == "en" for v in voices)


def test_phrase_is_split_short_first_then_growing_at_clause_ends() -> None:
    text = ("Please enter your password, followed by the pound key. The person at "
            "extension two hundred is not available right now, please try again later.")
    segments = split_phrase(text, first_words=3)
    assert " ".join(s.text for s in segments) == text
    assert segments[0].text == "Please enter your password,"  # clause end within reach
    assert all(s.clause_end for s in segments[:2])
    assert segments[0].start == 0.0 and segments[-1].end == 1.0
    assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
    sizes = [len(s.text.split()) for s in segments]
    assert sizes[0] <= 5 and max(sizes[1:]) > sizes[0]
    assert [s.text for s in split_phrase(text, first_words=0)] == [text]
    assert [s.text for s in split_phrase("Hola a todos", first_words=3)] == ["Hola a todos"]
    inside = split_phrase("uno dos tres cuatro cinco seis siete ocho nueve diez", first_words=3)
    assert inside[0].text == "uno dos tres" and not inside[0].clause_end
    # With prosody transfer the synthesizer cuts at clause punctuation only.
    clauses = split_phrase(text, first_words=3, inside_clauses=False)
    assert all(s.clause_end for s in clauses) and len(clauses) == 2
    assert clauses[0].text == "Please enter your password,"
    assert len(split_phrase(" ".join(inside[0].text.split() * 4), inside_clauses=False)) == 1


class CountingEspeak(RecordingEspeak):
    """The real espeak-ng backend, counting its render calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        self.calls += 1
        yield from super().render_unmarked(text, voice, rate=rate)


LONG_FR = ("Bonjour à tous, merci d'être venus si nombreux ce matin pour cette réunion "
           "importante sur le budget de l'année prochaine.")


def test_first_segment_leaves_before_the_rest_is_rendered() -> None:
    espeak = CountingEspeak()
    synth = make(Router([espeak]), "fr")
    seen: list[tuple[int, list[AudioChunk]]] = []
    synth.set_sink(lambda chunks: seen.append((espeak.calls, chunks)))
    span = Span(16_000, 64_000)
    synth.say(LONG_FR, source_span=span)
    segments = split_phrase(LONG_FR)
    assert len(segments) >= 3 and espeak.calls == len(segments)
    assert seen[0][0] == 1  # chunks out after the first segment's render only
    assert synth.events() == []  # the sink took them all
    synth.set_sink(None)
    chunks = [c for _, batch in seen for c in batch] + synth.finish()
    assert all(c.source_span == span for c in chunks)
    assert_one_phrase_of_chunks(chunks)
    assert_watermarked(joined(chunks), KEY, OUTPUT_RATE, PAYLOAD)


@pytest.mark.parametrize("inside", [True, False])
def test_with_prosody_a_clause_is_rendered_whole_unless_cuts_inside_are_asked(
    inside: bool,
) -> None:
    """With prosody transfer (real speech as the source) a phrase without punctuation
    is rendered in one call; `cut_inside_clauses=True` streams it in segments."""
    prompt = corpus.prompt("es", "agent-newlocation")  # one clause, no punctuation
    espeak = CountingEspeak()
    router = Router([espeak])
    synth = Synthesizer(SynthesisConfig("es", cut_inside_clauses=inside, payload=PAYLOAD),
                        KEY, router)
    synth.start()
    synth.say(prompt.text, prosody_from=load_audio(prompt.path))
    audio = joined(synth.finish())
    segments = len(split_phrase(prompt.text))
    assert segments >= 2
    assert espeak.calls == (segments if inside else 1)
    assert_watermarked(audio, KEY, OUTPUT_RATE, PAYLOAD)


class GatedEspeak(EspeakBackend):
    """The real espeak-ng backend; every render after the first waits for `gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.calls = 0

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        self.calls += 1
        if self.calls > 1 and not self.gate.wait(timeout=30):
            raise AssertionError("gate never opened")
        yield from super().render_unmarked(text, voice, rate=rate)


async def test_stream_hands_out_the_first_segment_while_the_rest_renders() -> None:
    espeak = GatedEspeak()
    stream = SynthesisStream(make(Router([espeak]), "fr"))
    await stream.say(LONG_FR, source_span=Span(0, 48_000))
    await stream.end_input()
    chunks = stream.__aiter__()
    first = await asyncio.wait_for(chunks.__anext__(), timeout=30)
    await asyncio.sleep(0.2)
    assert espeak.calls == 2  # audio is out while the second segment is still held
    espeak.gate.set()
    rest = [chunk async for chunk in chunks]
    await stream.aclose()
    out = [first, *rest]
    assert all(c.source_span == Span(0, 48_000) for c in out)
    assert detect(joined(out), KEY, sample_rate=OUTPUT_RATE).detected


async def test_stream_close_stops_a_phrase_between_segments() -> None:
    espeak = GatedEspeak()
    stream = SynthesisStream(make(Router([espeak]), "fr"), max_queue=1)
    await stream.say(LONG_FR)
    chunks = stream.__aiter__()
    await asyncio.wait_for(chunks.__anext__(), timeout=30)
    await stream.aclose()  # first segment's chunks still queued, worker waiting
    espeak.gate.set()
    await asyncio.sleep(0.3)
    assert espeak.calls <= 2  # it did not go on rendering the rest of the phrase


def test_fast_voice_speaks_with_espeak_and_stays_marked() -> None:
    """The pipeline's last resort under lag: the neural voice gives way to espeak-ng
    while `fast` is set, and every sample is still watermarked."""
    from dragoman.tts.kokoro import KokoroBackend

    espeak = RecordingEspeak()
    router = Router([KokoroBackend(), espeak])
    router.start()
    synth = make(router, "fr")
    text = corpus.prompt("fr", "vm-passchanged").text
    synth.say(text)
    assert synth.route is not None and synth.route.backend == "kokoro"
    assert not espeak.handed_out
    synth.fast = True
    synth.say(text)
    assert espeak.handed_out, "the fast voice must be espeak-ng"
    synth.fast = False
    rendered = len(espeak.handed_out)
    synth.say(text)
    assert len(espeak.handed_out) == rendered  # back to Kokoro
    assert synth.route.backend == "kokoro"
    audio = joined(synth.finish())
    assert_watermarked(audio, KEY, OUTPUT_RATE, PAYLOAD)
