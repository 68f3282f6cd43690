"""DiffusionGemma block-diffusion backend (transformers `DiffusionGemmaForBlockDiffusion`).

The encoder reads a translation prompt followed by the committed target prefix;
the decoder denoises one canvas (the uncommitted block). Scoring is one decoder
pass over the current draft: each token's probability under the denoiser's
distribution. Re-noising replaces unconfident positions by uniform random tokens
(the model's own noise); denoising is `generate` warm-started from that canvas
(`decoder_input_ids`). GPU first (the real 26B-A4B model); the tiny random config
of `dragoman.translate.build` runs on CPU for tests.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dragoman.errors import BackendError, ModelNotFoundError
from dragoman.languages import all_languages, language
from dragoman.translate.base import FillRequest, ScoreRequest

logger = logging.getLogger(__name__)

PROMPT = "Translate from {source_name} to {target_name}.\n{source}\n{target_name}:"


class _Tokenizer:
    """SentencePiece `tokenizer.model` when present, else the transformers tokenizer."""

    def __init__(self, directory: Path) -> None:
        spm_path = directory / "tokenizer.model"
        self._spm: Any = None
        self._hf: Any = None
        if spm_path.is_file():
            import sentencepiece

            self._spm = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
        else:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(str(directory))

    def pieces(self, text: str) -> list[str]:
        if self._spm is not None:
            return list(self._spm.encode(text, out_type=str))
        return list(self._hf.tokenize(text))

    def ids(self, pieces: Sequence[str]) -> list[int]:
        if self._spm is not None:
            return [int(self._spm.piece_to_id(p)) for p in pieces]
        return list(self._hf.convert_tokens_to_ids(list(pieces)))

    def piece(self, token_id: int) -> str:
        if self._spm is not None:
            return str(self._spm.id_to_piece(token_id))
        return str(self._hf.convert_ids_to_tokens(token_id))


class DiffusionBackend:
    """DiffusionGemma as a canvas backend. `model` is a transformers model directory."""

    name = "diffusion"
    has_scores = True

    def __init__(
        self,
        model: str | Path = "diffusiongemma-26B-A4B-it",
        *,
        device: str | None = None,
        denoising_steps: int = 16,
        seed: int = 0,
        max_source_tokens: int = 512,
    ) -> None:
        self.model = model
        self.device = device
        self.denoising_steps = denoising_steps
        self.seed = seed
        self.max_source_tokens = max_source_tokens
        self._model: Any = None
        self._tok: _Tokenizer | None = None
        self._lock = threading.Lock()
        self.canvas_length = 0
        self.eos_id = 1
        self.bos_id = 2
        self.vocab_size = 0
        self.warm_starts = 0

    def start(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import DiffusionGemmaForBlockDiffusion

        loader: Any = DiffusionGemmaForBlockDiffusion.from_pretrained

        directory = Path(self.model).expanduser()
        if not directory.is_dir():
            from dragoman.models import ModelStore

            directory = ModelStore().resolve(str(self.model)).directory or directory
        if not (directory / "config.json").is_file():
            raise ModelNotFoundError(f"{directory} holds no DiffusionGemma model (config.json)")
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            model = loader(str(directory)).to(device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load DiffusionGemma from {directory}: {exc}") from exc
        model.eval()
        self._tok = _Tokenizer(directory)
        text_config = model.config.text_config
        self.canvas_length = int(model.config.canvas_length)
        eos = text_config.eos_token_id
        self.eos_id = int(eos[0] if isinstance(eos, list) else eos)
        self.bos_id = int(text_config.bos_token_id)
        self.vocab_size = int(text_config.vocab_size)
        self.device = device
        self._model = model

    def close(self) -> None:
        self._model = None

    def languages(self) -> tuple[str, ...]:
        # An instruction-following LLM: any language we can name in the prompt.
        return tuple(lang.code for lang in all_languages())

    def supports(self, source_lang: str, target_lang: str) -> bool:
        return source_lang != target_lang

    def tokenize(self, text: str, lang: str) -> tuple[str, ...]:
        return tuple(self._require_tok().pieces(text))

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens).replace("\u2581", " ").strip()

    def is_word_start(self, token: str) -> bool:
        return token.startswith("\u2581")

    # -- model calls ------------------------------------------------------------------

    def _require_tok(self) -> _Tokenizer:
        if self._tok is None or self._model is None:
            raise BackendError("diffusion backend is not started: call start()", retryable=False)
        return self._tok

    def _prompt_ids(self, source: str, source_lang: str, target_lang: str,
                    prefix: Sequence[str]) -> list[int]:
        tok = self._require_tok()
        text = PROMPT.format(source_name=language(source_lang).name,
                             target_name=language(target_lang).name, source=source)
        src = tok.pieces(text)[: self.max_source_tokens]
        return [self.bos_id, *tok.ids(src), *tok.ids(list(prefix))]

    def _canvas(self, ids: Sequence[int], keep: Sequence[bool]) -> Any:
        """Canvas tensor: kept draft ids in place, uniform noise everywhere else."""
        import torch

        canvas = torch.randint(0, self.vocab_size, (1, self.canvas_length))
        for i, (token_id, kept) in enumerate(zip(ids[: self.canvas_length], keep, strict=False)):
            if kept:
                canvas[0, i] = token_id
        return canvas.to(self.device)

    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        import torch

        tok = self._require_tok()
        out = []
        with self._lock, torch.no_grad():
            for req in requests:
                prompt = self._prompt_ids(req.source, req.source_lang, req.target_lang, req.prefix)
                block = tok.ids(req.block)[: self.canvas_length]
                canvas = self._canvas(block, [True] * len(block))
                logits = self._model(
                    input_ids=torch.tensor([prompt], device=self.device), decoder_input_ids=canvas
                ).logits[0]
                probs = torch.softmax(logits.float(), dim=-1)
                scores = [float(probs[i, t]) for i, t in enumerate(block)]
                # Tokens beyond one canvas were not seen by the denoiser: unknown.
                scores += [0.0] * (len(req.block) - len(block))
                out.append(tuple(scores))
        return out

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        import torch

        tok = self._require_tok()
        out = []
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for req in requests:
                prompt = self._prompt_ids(req.source, req.source_lang, req.target_lang, req.prefix)
                draft = tok.ids(req.draft)
                canvas = self._canvas(draft, req.keep)
                if any(req.keep):
                    self.warm_starts += 1
                source_len = len(tok.pieces(req.source))
                canvases = max(1, min(8, math.ceil(2 * source_len / self.canvas_length)))
                result = self._model.generate(
                    torch.tensor([prompt], device=self.device),
                    decoder_input_ids=canvas,
                    max_new_tokens=self.canvas_length * canvases,
                    max_denoising_steps=self.denoising_steps,
                )
                generated = [int(t) for t in result.sequences[0, len(prompt):].tolist()]
                if self.eos_id in generated:
                    generated = generated[: generated.index(self.eos_id)]
                pad = self._model.config.text_config.pad_token_id
                out.append(tuple(tok.piece(t) for t in generated if t != pad))
        return out
