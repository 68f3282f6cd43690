"""Parallel-prefix seq2seq backend: NLLB-200 through PyTorch (int8 on CPU).

CTranslate2's `Translator` forwards a forced target prefix one decoder step per token,
so every canvas update pays for the committed and kept text again, token by token
(bench/translate.py: 58 CPU ms per prefix token at NLLB-600M size). This backend runs
the decoder over ``committed + block`` in one parallel pass instead, and that pass
serves both halves of an update:

- `score` takes the block's token probabilities from it, and keeps the pass (encoder
  states, decoder cache, the hidden state after each block position) for the fill
  that the canvas engine makes next with the same source, prefix and draft;
- `fill` crops that cache to ``prefix + kept head``, reads the first new token off the
  stored hidden state, and generates only the new tokens, one cached step each.

A fill with nothing to reuse (the first update, or a different source) runs its own
pass over ``prefix + kept head``. Weights: a transformers checkpoint directory
(``config.json``, weights, ``tokenizer.json``, ``sentencepiece.bpe.model``), as the
hub's ``facebook/nllb-200-distilled-600M`` or ``dragoman models pull
nllb-200-distilled-600M-hf``. On CPU the linear layers are quantized to int8
(dynamic, per channel). One started backend serves many engines; model calls are
serialised by a lock (each uses every intra-op thread).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dragoman.errors import BackendError, ModelNotFoundError, UnsupportedLanguageError
from dragoman.translate.base import FillRequest, ScoreRequest
from dragoman.translate.ct2_backend import (
    EOS,
    SentencePieceTokens,
    find_spm,
    language_tokens,
    resolve_model_dir,
)

logger = logging.getLogger(__name__)

DECODER_START = EOS
"""NLLB and M2M100 start decoding from ``</s>``, then the forced target language token."""
MEMO_SIZE = 16
"""Score passes kept for the fill that follows them (a few MB each at NLLB-600M size)."""


@dataclass(slots=True)
class _Pass:
    """One decoder pass over ``start + prefix + block``, kept for the following fill."""

    encoder: Any  # (1, source, d_model)
    cache: Any  # the decoder's EncoderDecoderCache after the pass
    after: Any  # (len(block) + 1, d_model): hidden state after the last start/prefix/block token
    start_len: int  # decoder start + language token + prefix


def read_checkpoint_vocabulary(directory: Path) -> dict[str, int]:
    """Token -> id of a transformers checkpoint (its ``tokenizer.json``)."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{directory} holds no tokenizer.json (a transformers checkpoint)")
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab: dict[str, int] = {}
    model = data.get("model", {})
    raw = model.get("vocab", {})
    if isinstance(raw, dict):  # WordLevel / BPE
        vocab.update({str(t): int(i) for t, i in raw.items()})
    else:  # Unigram: a list of [piece, score]
        vocab.update({str(entry[0]): i for i, entry in enumerate(raw)})
    for token in data.get("added_tokens", []):
        vocab[str(token["content"])] = int(token["id"])
    return vocab


@cache
def _cached_codes(directory: str) -> frozenset[str]:
    return frozenset(language_tokens(list(read_checkpoint_vocabulary(Path(directory)))))


def checkpoint_language_codes(model: str | Path) -> frozenset[str]:
    """Canonical codes a checkpoint can read and write (from its tokenizer; no loading)."""
    return _cached_codes(str(resolve_model_dir(model)))


class TorchSeq2SeqBackend(SentencePieceTokens):
    """NLLB-200 with a parallel-prefix decoder (PyTorch; any NLLB/M2M100-shaped
    checkpoint that ships a ``tokenizer.json``).

    `threads`: intra-op threads (PyTorch's setting is process-wide). One by default:
    at NLLB-600M size a median canvas update took 163 ms on one thread, 126 ms on two
    with OpenMP's default (spinning) wait but 192 ms on two with the passive wait the
    pipeline sets (`dragoman.runtime`), and one thread leaves the other core to
    recognition and speech (bench/translate.py)."""

    name = "torch"
    has_scores = True

    def __init__(
        self,
        model: str | Path = "nllb-200-distilled-600M-hf",
        *,
        device: str = "cpu",
        quantize: bool = True,
        threads: int = 1,
        max_source_tokens: int = 256,
    ) -> None:
        self.model = model
        self.device = device
        self.quantize = quantize and device == "cpu"
        self.threads = threads
        self.max_source_tokens = max_source_tokens
        self.directory: Path | None = None
        self.reused = 0
        """Fills that continued a score pass instead of running their own."""
        self._net: Any = None
        self._spm: Any = None
        self._vocab: dict[str, int] = {}
        self._tokens: list[str] = []
        self._codes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[object, ...], _Pass] = OrderedDict()

    def start(self) -> None:
        if self._net is not None:
            return
        import sentencepiece
        import torch
        from transformers import AutoModelForSeq2SeqLM

        directory = resolve_model_dir(self.model)
        self._vocab = read_checkpoint_vocabulary(directory)
        self._tokens = [""] * (max(self._vocab.values()) + 1)
        for token, index in self._vocab.items():
            self._tokens[index] = token
        self._codes = language_tokens(list(self._vocab))
        if not self._codes:
            raise ModelNotFoundError(f"{directory}: no NLLB/M2M100 language tokens in vocabulary")
        try:
            net: Any = AutoModelForSeq2SeqLM.from_pretrained(str(directory))
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load transformers model {directory}: {exc}") from exc
        net.eval()
        if self.quantize:
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice
                net = quantize_dynamic(  # type: ignore[no-untyped-call]
                    net, {torch.nn.Linear: per_channel_dynamic_qconfig}
                )
        self._net = net.to(self.device)
        torch.set_num_threads(self.threads)
        self._spm = sentencepiece.SentencePieceProcessor(model_file=str(find_spm(directory)))
        self.directory = directory
        logger.info("torch seq2seq model %s loaded (%d languages, int8=%s)",
                    directory, len(self._codes), self.quantize)

    def close(self) -> None:
        with self._lock:
            self._net = None
            self._memo.clear()

    def languages(self) -> tuple[str, ...]:
        if not self._codes:
            return tuple(sorted(checkpoint_language_codes(self.model)))
        return tuple(sorted(self._codes))



    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        self._require()
        with self._lock:
            return [self._score_one(r) for r in requests]

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        self._require()
        with self._lock:
            return [self._fill_one(r) for r in requests]

    # -- model calls (under the lock) ---------------------------------------------------

    def _require(self) -> None:
        if self._net is None:
            raise BackendError("torch backend is not started: call start() first",
                               retryable=False)

    def _id(self, token: str) -> int:
        return self._vocab.get(token, self._vocab.get("<unk>", 3))

    def _language_id(self, lang: str) -> int:
        try:
            return self._vocab[self._codes[lang]]
        except KeyError:
            raise UnsupportedLanguageError(f"model {self.model} has no language {lang!r}") from None

    def _encode(self, source: str, lang: str) -> Any:
        import torch

        pieces = list(self._spm.encode(source, out_type=str))[: self.max_source_tokens]
        ids = [self._language_id(lang), *map(self._id, pieces), self._id(EOS)]
        with torch.inference_mode():
            tensor = torch.tensor([ids], device=self.device)
            return self._net.get_encoder()(input_ids=tensor).last_hidden_state

    def _decode(self, encoder: Any, ids: list[int], cache: Any = None) -> tuple[Any, Any]:
        """Run the decoder over `ids` (after `cache`); (hidden states (n, d), cache)."""
        import torch

        with torch.inference_mode():
            out = self._net.get_decoder()(
                input_ids=torch.tensor([ids], device=self.device),
                encoder_hidden_states=encoder, past_key_values=cache, use_cache=True,
            )
        return out.last_hidden_state[0], out.past_key_values

    def _logits(self, hidden: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._net.get_output_embeddings()(hidden)

    def _start_ids(self, request: ScoreRequest | FillRequest) -> list[int]:
        return [self._id(DECODER_START), self._language_id(request.target_lang),
                *map(self._id, request.prefix)]

    def _score_one(self, request: ScoreRequest) -> tuple[float, ...]:
        import torch

        encoder = self._encode(request.source, request.source_lang)
        start = self._start_ids(request)
        block = [self._id(t) for t in request.block]
        hidden, cache = self._decode(encoder, start + block)
        after = hidden[len(start) - 1 :]  # predicts block[0], ..., and the token after
        with torch.inference_mode():
            log_probs = torch.log_softmax(self._logits(after[:-1]).float(), dim=-1)
            picked = log_probs[torch.arange(len(block)), torch.tensor(block, dtype=torch.long)]
        key = (request.source_lang, request.target_lang, request.source, request.prefix,
               request.block)
        self._memo[key] = _Pass(encoder, cache, after, len(start))
        self._memo.move_to_end(key)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return tuple(float(v) for v in picked.exp())

    def _fill_one(self, request: FillRequest) -> tuple[str, ...]:
        head = request.kept_head()
        key = (request.source_lang, request.target_lang, request.source, request.prefix,
               request.draft)
        memo = self._memo.pop(key, None)
        if memo is not None:
            self.reused += 1
            encoder, cache = memo.encoder, memo.cache
            surplus = cache.get_seq_length() - (memo.start_len + len(head))
            if surplus > 0:
                cache.crop(-surplus)  # drop the block's positions after the kept head
            last = memo.after[len(head)]
        else:
            encoder = self._encode(request.source, request.source_lang)
            ids = self._start_ids(request) + [self._id(t) for t in head]
            hidden, cache = self._decode(encoder, ids)
            last = hidden[-1]
        limit = request.max_new_tokens
        if limit is None:
            limit = 2 * encoder.shape[1] + 8
        eos = self._id(EOS)
        new: list[int] = []
        while len(new) < limit:
            token = int(self._logits(last[None]).argmax())
            if token == eos:
                break
            new.append(token)
            if len(new) == limit:
                break
            hidden, cache = self._decode(encoder, [token], cache)
            last = hidden[-1]
        return (*head, *(self._tokens[t] for t in new))
