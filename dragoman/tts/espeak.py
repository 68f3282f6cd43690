"""espeak-ng (formant synthesis, ~119 languages): the universal fallback.

Driven through ctypes on the `libespeak-ng.so` that PyPI `espeakng-loader` bundles
with its data (espeak-ng is GPL-3: it stays its own library, loaded at run time, never
linked into or copied into our code). The library keeps process-global state, so each
engine loads a private copy of the shared object from a temporary directory (the same
trick `phonemizer` uses) and serializes its own calls with a lock.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dragoman.audio import resample
from dragoman.errors import BackendError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.events import FloatAudio
from dragoman.languages import normalize_language
from dragoman.tts.base import OUTPUT_RATE, Gender, Voice, check_rate, check_text

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_DEFAULT_WPM = 175
_MAX_WPM = 450

# espeak's "+fN"/"+mN" variants and the median F0 they land on (measured, espeak 1.52).
_VARIANTS: tuple[tuple[str, Gender, float], ...] = (("m3", "male", 118.0), ("f3", "female", 205.0))

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoiceStruct(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True, slots=True)
class EspeakConfig:
    """Where espeak-ng lives; both default to the `espeakng-loader` package."""

    library: Path | None = None
    data: Path | None = None


def _package_paths() -> tuple[Path, Path] | None:
    try:
        import espeakng_loader
    except ImportError:
        return None
    return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


def _language_entries(address: int | None) -> Iterator[tuple[int, str]]:
    """Walk espeak's `languages` list: (priority byte, NUL-terminated tag)*, then 0.

    Reads byte by byte: the list is short, and reading a fixed-size block past its
    end can touch an unmapped page.
    """
    if not address:
        return
    pos = 0
    while True:
        priority = ctypes.string_at(address + pos, 1)[0]
        if priority == 0:
            return
        tag = ctypes.string_at(address + pos + 1)
        yield priority, tag.decode("ascii", "replace")
        pos += len(tag) + 2


class EspeakBackend:
    """Formant TTS for every language espeak-ng knows (output resampled to 24 kHz)."""

    name = "espeak-ng"
    neural = False

    def __init__(self, config: EspeakConfig | None = None) -> None:
        self.config = config or EspeakConfig()
        self._lib: ctypes.CDLL | None = None
        self._rate = 22_050
        self._lock = threading.Lock()
        self._tags: dict[str, str] = {}

    def _paths(self) -> tuple[Path, Path]:
        found = _package_paths()
        library = self.config.library or (found[0] if found else None)
        data = self.config.data or (found[1] if found else None)
        if library is None or data is None or not library.is_file() or not data.is_dir():
            raise ModelNotFoundError(
                "espeak-ng is not installed: pip install espeakng-loader==0.2.4"
            )
        return library, data

    def available(self) -> bool:
        try:
            self._paths()
        except ModelNotFoundError:
            return False
        return True

    def start(self) -> None:
        with self._lock:
            if self._lib is not None:
                return
            library, data = self._paths()
            # A private copy gives this synthesizer its own instance of espeak-ng's
            # global state. Once loaded, the file is not needed: removing it at once
            # leaves nothing behind even if the process is killed.
            tmp = Path(tempfile.mkdtemp(prefix="dragoman-espeak-"))
            try:
                private = tmp / library.name
                shutil.copy(library, private)
                lib = ctypes.cdll.LoadLibrary(str(private))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [
                ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
            ]
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0
            )
            if rate <= 0:
                raise BackendError(f"espeak-ng failed to initialize with data at {data}")
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            ]
            lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoiceStruct))
            lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
            self._lib, self._rate = lib, rate
            self._tags = self._list_tags(lib)
            logger.info("espeak-ng ready: %d languages at %d Hz", len(self._tags), rate)

    def close(self) -> None:
        with self._lock:
            if self._lib is not None:
                terminate = getattr(self._lib, "espeak_Terminate", None)
                if terminate is not None:
                    terminate()
            self._lib = None

    @staticmethod
    def _list_tags(lib: ctypes.CDLL) -> dict[str, str]:
        """Canonical code -> the espeak language tag that speaks it best."""
        candidates: dict[str, list[tuple[int, str]]] = {}
        voices = lib.espeak_ListVoices(None)
        index = 0
        while voices[index]:
            entry = voices[index].contents
            index += 1
            for priority, tag in _language_entries(entry.languages):
                try:
                    code = normalize_language(tag)
                except UnsupportedLanguageError:
                    continue
                # Prefer the tag that *is* the code, then US English / Brazilian-free
                # defaults, then espeak's own priority.
                rank = 0 if tag == code else 1 if tag in {"en-us", "cmn"} else 2
                candidates.setdefault(code, []).append((rank * 100 + priority, tag))
        return {code: min(tags)[1] for code, tags in candidates.items()}

    def _require(self) -> ctypes.CDLL:
        if self._lib is None:
            self.start()
        assert self._lib is not None
        return self._lib

    def languages(self) -> frozenset[str]:
        self._require()
        return frozenset(self._tags)

    def voices(self, language: str) -> tuple[Voice, ...]:
        self._require()
        code = normalize_language(language)
        tag = self._tags.get(code)
        if tag is None:
            return ()
        return tuple(
            Voice(f"{tag}+{variant}", self.name, code, gender, pitch, neural=False)
            for variant, gender, pitch in _VARIANTS
        )

    def render_unmarked(
        self, text: str, voice: Voice, *, rate: float = 1.0
    ) -> Iterator[FloatAudio]:
        cleaned = check_text(text)
        speed = check_rate(rate)
        lib = self._require()
        if voice.backend != self.name:
            raise UnsupportedLanguageError(f"voice {voice.name!r} is not an espeak-ng voice")
        pieces: list[np.ndarray] = []

        def collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
            if count > 0:
                pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback = _SYNTH_CALLBACK(collect)
        encoded = cleaned.encode("utf-8")
        with self._lock:
            lib.espeak_SetSynthCallback(callback)
            if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise UnsupportedLanguageError(f"espeak-ng has no voice {voice.name!r}")
            lib.espeak_SetParameter(_RATE, min(_MAX_WPM, round(_DEFAULT_WPM * speed)), 0)
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None
            )
            if status != 0:
                raise BackendError(f"espeak-ng synthesis failed (status {status})")
        if not pieces:
            raise BackendError(f"espeak-ng produced no audio for {cleaned!r}")
        pcm = np.concatenate(pieces).astype(np.float32) / 32768.0
        yield resample(pcm, self._rate, OUTPUT_RATE)
