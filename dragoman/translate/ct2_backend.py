"""CTranslate2 seq2seq backend: NLLB-200 (default) and M2M100, int8 on CPU.

Scoring is a teacher-forced pass (`Translator.score_batch`, all positions in one
parallel pass); continuation is prefix-constrained greedy decoding
(`translate_batch(target_prefix=...)`), bounded to `FillRequest.max_new_tokens` new
tokens on interim updates. CTranslate2 forwards a target prefix one token per
decoder step (measured: a forced prefix token costs as much as a generated one), so
an update's cost grows with the committed + kept prefix: bench/translate.py
measures each term. One
started backend (one loaded model) serves many canvas engines: concurrent calls
from different threads are coalesced into one batch (`Coalescer`).

Model directory: a CTranslate2 conversion (``model.bin``, ``config.json``,
``shared_vocabulary.txt`` or ``.json``) plus the SentencePiece model of the
original (``sentencepiece.bpe.model``). Language tokens are read from the
vocabulary: NLLB writes ``spa_Latn`` (ISO 639-3 + script), M2M100 ``__es__``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from dragoman.errors import BackendError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.languages import language, normalize_language
from dragoman.translate.base import FillRequest, ScoreRequest

logger = logging.getLogger(__name__)

SPM_NAMES = ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model", "tokenizer.model")
_NLLB_TOKEN = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")
_M2M_TOKEN = re.compile(r"^__([a-z]{2,3})__$")
EOS = "</s>"

Req = TypeVar("Req")
Res = TypeVar("Res")


def read_vocabulary(directory: Path) -> list[str]:
    """The target vocabulary of a CTranslate2 model directory."""
    for name in ("shared_vocabulary.json", "target_vocabulary.json"):
        path = directory / name
        if path.is_file():
            tokens = json.loads(path.read_text(encoding="utf-8"))
            return [str(t) for t in tokens]
    for name in ("shared_vocabulary.txt", "target_vocabulary.txt"):
        path = directory / name
        if path.is_file():
            return path.read_text(encoding="utf-8").split("\n")
    raise ModelNotFoundError(f"{directory} holds no CTranslate2 vocabulary file")


def language_tokens(vocabulary: Sequence[str]) -> dict[str, str]:
    """Canonical language code -> the model's language token, from its vocabulary."""
    found: dict[str, str] = {}
    for token in vocabulary:
        nllb = _NLLB_TOKEN.match(token)
        m2m = _M2M_TOKEN.match(token)
        code = nllb.group(1) if nllb else m2m.group(1) if m2m else None
        if code is None:
            continue
        try:
            canonical = normalize_language(code)
        except UnsupportedLanguageError:
            continue
        if nllb:
            # Prefer the script our language table names (zho_Hans over zho_Hant).
            preferred = f"{language(canonical).iso3}_{language(canonical).script}"
            if canonical in found and found[canonical] == preferred:
                continue
        found[canonical] = token
    return found


def find_spm(directory: Path) -> Path:
    for name in SPM_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise ModelNotFoundError(f"{directory} holds no SentencePiece model ({', '.join(SPM_NAMES)})")


def resolve_model_dir(model: str | Path) -> Path:
    """A model directory from a path or a catalogue name (never downloads here)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from dragoman.models import ModelStore

    store = ModelStore()
    resolved = store.find(str(model))
    if resolved is None or resolved.directory is None:
        store.resolve(str(model))  # raises the error naming `dragoman models pull`
        resolved = store.find(str(model))
    if resolved is None or resolved.directory is None:
        raise ModelNotFoundError(f"model {model!r} is not a directory on disk")
    return resolved.directory


@cache
def _cached_codes(directory: str) -> frozenset[str]:
    return frozenset(language_tokens(read_vocabulary(Path(directory))))


def model_language_codes(model: str | Path) -> frozenset[str]:
    """Canonical codes a model can read and write (from its vocabulary; no loading)."""
    return _cached_codes(str(resolve_model_dir(model)))


@dataclass(slots=True)
class _Slot(Generic[Req, Res]):
    items: list[Req]
    results: list[Res] | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass(slots=True)
class Coalescer(Generic[Req, Res]):
    """Runs `fn` on batches gathered from concurrent callers (one model, many sessions).

    The first caller to find the model idle becomes the leader: it waits up to
    `wait_s` for others to join, runs one batch of at most `max_batch` items, and
    hands each caller its own results.
    """

    fn: Callable[[list[Req]], list[Res]]
    max_batch: int = 32
    wait_s: float = 0.002
    batches: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _pending: list[_Slot[Req, Res]] = field(default_factory=list)
    _busy: bool = False

    def __call__(self, items: list[Req]) -> list[Res]:
        slot: _Slot[Req, Res] = _Slot(items)
        with self._cond:
            self._pending.append(slot)
            while not slot.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                if self.wait_s > 0 and len(self._pending) == 1:
                    self._cond.wait(self.wait_s)
                batch: list[_Slot[Req, Res]] = []
                size = 0
                while self._pending and (not batch or size + len(self._pending[0].items)
                                         <= self.max_batch):
                    taken = self._pending.pop(0)
                    batch.append(taken)
                    size += len(taken.items)
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.results is not None
        return slot.results

    def _run(self, batch: list[_Slot[Req, Res]]) -> None:
        flat = [item for slot in batch for item in slot.items]
        try:
            results = self.fn(flat)
            self.batches += 1
        except BaseException as exc:  # handed to every waiting caller
            for slot in batch:
                slot.error, slot.done = exc, True
            return
        at = 0
        for slot in batch:
            slot.results = results[at : at + len(slot.items)]
            slot.done = True
            at += len(slot.items)


class SentencePieceTokens:
    """What the NLLB/M2M100 backends share: SentencePiece pieces as canvas tokens
    (U+2581 starts a word) and direct pairs among the model's languages."""

    _spm: Any

    def _require(self) -> None:
        raise NotImplementedError

    def languages(self) -> tuple[str, ...]:
        raise NotImplementedError

    def supports(self, source_lang: str, target_lang: str) -> bool:
        langs = set(self.languages())
        return source_lang in langs and target_lang in langs and source_lang != target_lang

    def tokenize(self, text: str, lang: str) -> tuple[str, ...]:
        self._require()
        return tuple(self._spm.encode(text, out_type=str))

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens).replace("\u2581", " ").strip()

    def is_word_start(self, token: str) -> bool:
        return token.startswith("\u2581")


class CTranslate2Backend(SentencePieceTokens):
    """NLLB-200 / M2M100 through CTranslate2."""

    name = "ctranslate2"
    has_scores = True

    def __init__(
        self,
        model: str | Path = "nllb-200-distilled-600M",
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 2,
        max_source_tokens: int = 256,
        max_batch: int = 32,
        batch_wait_s: float = 0.002,
    ) -> None:
        self.model = model
        self.device = device
        self.compute_type = compute_type
        self.threads = threads
        self.max_source_tokens = max_source_tokens
        self._max_batch = max_batch
        self._batch_wait_s = batch_wait_s
        self._translator: Any = None
        self._spm: Any = None
        self._codes: dict[str, str] = {}
        self._score: Coalescer[ScoreRequest, tuple[float, ...]] | None = None
        self._fill: Coalescer[FillRequest, tuple[str, ...]] | None = None
        self.directory: Path | None = None

    def start(self) -> None:
        if self._translator is not None:
            return
        import ctranslate2
        import sentencepiece

        directory = resolve_model_dir(self.model)
        spm_path = find_spm(directory)
        self._codes = language_tokens(read_vocabulary(directory))
        if not self._codes:
            raise ModelNotFoundError(f"{directory}: no NLLB/M2M100 language tokens in vocabulary")
        try:
            self._translator = ctranslate2.Translator(
                str(directory), device=self.device, compute_type=self.compute_type,
                inter_threads=1, intra_threads=self.threads,
            )
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"cannot load CTranslate2 model {directory}: {exc}") from exc
        self._spm = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
        self._score = Coalescer(self._score_batch, self._max_batch, self._batch_wait_s)
        self._fill = Coalescer(self._fill_batch, self._max_batch, self._batch_wait_s)
        self.directory = directory
        logger.info("ctranslate2 model %s loaded (%d languages)", directory, len(self._codes))

    def close(self) -> None:
        self._translator = None
        self._spm = None

    def languages(self) -> tuple[str, ...]:
        if not self._codes:
            return tuple(sorted(model_language_codes(self.model)))
        return tuple(sorted(self._codes))

    def language_token(self, lang: str) -> str:
        try:
            return self._codes[lang]
        except KeyError:
            raise UnsupportedLanguageError(
                f"model {self.model} has no language {lang!r}"
            ) from None

    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        self._require()
        assert self._score is not None
        return self._score(list(requests))

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        self._require()
        assert self._fill is not None
        return self._fill(list(requests))

    # -- batched model calls ----------------------------------------------------------

    def _require(self) -> None:
        if self._translator is None:
            raise BackendError("ctranslate2 backend is not started: call start() first",
                               retryable=False)

    def _source(self, text: str, lang: str) -> list[str]:
        pieces = list(self._spm.encode(text, out_type=str))[: self.max_source_tokens]
        return [self.language_token(lang), *pieces, EOS]

    def _score_batch(self, requests: list[ScoreRequest]) -> list[tuple[float, ...]]:
        import math

        sources = [self._source(r.source, r.source_lang) for r in requests]
        targets = [[self.language_token(r.target_lang), *r.prefix, *r.block] for r in requests]
        results = self._translator.score_batch(sources, targets)
        out = []
        for req, res in zip(requests, results, strict=True):
            start = 1 + len(req.prefix)
            logp = list(res.log_probs)[start : start + len(req.block)]
            out.append(tuple(math.exp(v) for v in logp))
        return out

    def _fill_batch(self, requests: list[FillRequest]) -> list[tuple[str, ...]]:
        sources = [self._source(r.source, r.source_lang) for r in requests]
        prefixes = [
            [self.language_token(r.target_lang), *r.prefix, *r.kept_head()] for r in requests
        ]
        # Each request's own decoding length (CTranslate2 counts the forced prefix):
        # an interim update continues at most `max_new_tokens` past its kept head;
        # the end of an utterance decodes to the end of the sentence.
        limits = [
            len(prefix) + (r.max_new_tokens if r.max_new_tokens is not None
                           else 2 * len(source) + 8)
            for r, prefix, source in zip(requests, prefixes, sources, strict=True)
        ]
        results = self._translator.translate_batch(
            sources,
            target_prefix=prefixes,
            beam_size=1,
            max_decoding_length=max(limits),
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
        )
        out = []
        for req, res, limit in zip(requests, results, limits, strict=True):
            tokens = list(res.hypotheses[0])
            skip = 1 + len(req.prefix)
            if tokens[:1] != [self.language_token(req.target_lang)]:
                skip -= 1  # some CTranslate2 versions drop the forced language token
            # The decoding bound is per batch; apply each request's own bound so a
            # result never depends on which other sessions shared the batch.
            own_limit = limit - 1 - len(req.prefix)
            out.append(tuple(t for t in tokens[skip:] if t != EOS)[:own_limit])
        return out
