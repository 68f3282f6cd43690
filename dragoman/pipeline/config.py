"""Configuration of one translation session."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from dragoman.asr import RecognizerConfig
from dragoman.captions import PreviewConfig
from dragoman.errors import DragomanError
from dragoman.languages import normalize_language
from dragoman.translate import CanvasConfig


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """What a session translates and how.

    source_language: the speaker's language, or None to detect it per utterance.
    target_languages: languages to translate into (more can be added mid-session).
    prosody: impose the speaker's pitch, pace and loudness on the translated speech.
    voice: force a TTS voice (default: the voice closest to the speaker).
    tts_backend: force a TTS backend ("kokoro", "espeak-ng"; default: routed per language).
    speak: synthesize speech (False: captions only).
    cut_inside_clauses: with prosody transfer, start speaking a phrase once its first
        few words are rendered even inside a clause (`SynthesisConfig.cut_inside_clauses`;
        default: a clause is rendered whole, one contour, later first audio).
    speak_source_language: also speak an utterance into its own language (a lane whose
        target is the language just spoken re-voices the speaker's words; a listener who
        hears the speaker directly, as in a face-to-face conversation, does not need it).
    preview: which revisable words the source and translation captions show
        (`dragoman.captions.PreviewConfig`: confirmed words and at most one new one,
        never the last unconfirmed word); None sends every revision whole. Only the
        events that leave are trimmed: translation and speech see every word.
    catch_up_after_s: speech a live listener may still have to hear before the next
        phrase is spoken faster, up to 1.25x (`SynthesisConfig.catch_up_after_s`);
        None means nobody listens live (a dub track made faster than real time): every
        phrase keeps the speaker's pace and the neural voice, whatever the backlog.
    session_id: feeds the watermark payload (service id + session hash).
    service_id: 16-bit id of this deployment in the watermark payload.
    lag_report_ms: how often a `Lag` event reports each stage's backlog.
    max_pending_chunks: input audio chunks queued before `push_audio` waits.
    """

    source_language: str | None = None
    target_languages: tuple[str, ...] = ()
    prosody: bool = True
    voice: str | None = None
    tts_backend: str | None = None
    speak: bool = True
    cut_inside_clauses: bool = False
    speak_source_language: bool = True
    catch_up_after_s: float | None = 0.5
    session_id: str = ""
    service_id: int = 0x0D6A
    lag_report_ms: int = 1000
    max_pending_chunks: int = 256
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    canvas: CanvasConfig = field(default_factory=CanvasConfig)
    preview: PreviewConfig | None = field(default_factory=PreviewConfig)

    def __post_init__(self) -> None:
        if self.source_language is not None:
            normalize_language(self.source_language)
        for target in self.target_languages:
            normalize_language(target)
        if not 0 <= self.service_id <= 0xFFFF:
            raise DragomanError("service_id must fit in 16 bits")

    @property
    def watermark_payload(self) -> int:
        """32 bits: service id (high 16) and a hash of the session id (low 16)."""
        digest = hashlib.blake2s(self.session_id.encode("utf-8"), digest_size=2).digest()
        return (self.service_id << 16) | int.from_bytes(digest, "big")
