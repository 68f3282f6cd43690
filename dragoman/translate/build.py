"""Build randomly initialized NLLB/M2M100-shaped CTranslate2 models and tiny
DiffusionGemma models, for tests and cost benchmarks (no hub needed).

The SentencePiece model is trained on text the project installs (the Asterisk
prompt transcripts); the weights are random (transformers), converted to int8 with
CTranslate2's Transformers converter (the code behind ``ct2-transformers-converter``).
Outputs are meaningless as translations: they exercise the mechanics and the cost.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dragoman.languages import language

logger = logging.getLogger(__name__)

Family = Literal["nllb", "m2m100"]


@dataclass(frozen=True, slots=True)
class Seq2SeqDims:
    """Model dimensions. The defaults are tiny; `NLLB_600M` is the real size."""

    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn: int = 128
    vocab_size: int | None = None
    """Pad the vocabulary to this size (the real NLLB has 256,206 entries)."""
    spm_vocab: int = 600


NLLB_600M = Seq2SeqDims(d_model=1024, layers=12, heads=16, ffn=4096, vocab_size=256_206,
                        spm_vocab=4000)


def corpus_texts(languages: Sequence[str] = ("es", "fr", "en")) -> list[str]:
    """Asterisk prompt transcripts (installed by scripts/install.sh)."""
    from dragoman.corpus import prompts

    return [p.text for lang in languages for p in prompts(lang)]


def train_sentencepiece(texts: Iterable[str], model_prefix: Path, vocab_size: int) -> Path:
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_prefix=str(model_prefix),
        vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
        pad_id=-1, unk_id=0, bos_id=1, eos_id=2, minloglevel=2,
    )
    return model_prefix.with_suffix(".model")


def language_token(family: Family, code: str) -> str:
    lang = language(code)
    return f"{lang.iso3}_{lang.script}" if family == "nllb" else f"__{lang.code}__"


def build_transformers_seq2seq(
    hf_dir: Path,
    family: Family = "nllb",
    languages: Sequence[str] = ("es", "fr", "en"),
    dims: Seq2SeqDims | None = None,
    texts: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """A random NLLB/M2M100-shaped transformers checkpoint at `hf_dir`, laid out like
    the hub's (config, weights, tokenizer files, ``sentencepiece.bpe.model``)."""
    import sentencepiece
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import (
        M2M100Config,
        M2M100ForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    dims = dims if dims is not None else Seq2SeqDims()
    texts = texts if texts is not None else corpus_texts()
    hf_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dragoman-build-") as tmp:
        spm_path = train_sentencepiece(texts, Path(tmp) / "spm", dims.spm_vocab)
        shutil.copy(spm_path, hf_dir / "sentencepiece.bpe.model")
    spm = sentencepiece.SentencePieceProcessor(model_file=str(hf_dir / "sentencepiece.bpe.model"))
    pieces = [spm.id_to_piece(i) for i in range(3, spm.get_piece_size())]
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *pieces]
    vocab += [language_token(family, code) for code in languages]
    if dims.vocab_size is not None:
        filler = dims.vocab_size - len(vocab) - 1
        vocab += [f"\u2581madeup{i}" for i in range(max(filler, 0))]
    vocab.append("<mask>")
    fast_tokenizer: Any = PreTrainedTokenizerFast
    tokenizer = fast_tokenizer(
        tokenizer_object=Tokenizer(WordLevel({t: i for i, t in enumerate(vocab)}, "<unk>")),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
    )
    config = M2M100Config(
        vocab_size=len(vocab), d_model=dims.d_model,
        encoder_layers=dims.layers, decoder_layers=dims.layers,
        encoder_attention_heads=dims.heads, decoder_attention_heads=dims.heads,
        encoder_ffn_dim=dims.ffn, decoder_ffn_dim=dims.ffn,
        max_position_embeddings=1024, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    torch.manual_seed(seed)
    model: Any = M2M100ForConditionalGeneration(config)
    model.eval()
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    logger.info("built random %s transformers checkpoint (%d tokens) in %s",
                family, len(vocab), hf_dir)
    return hf_dir


def build_seq2seq(
    out_dir: Path,
    family: Family = "nllb",
    languages: Sequence[str] = ("es", "fr", "en"),
    dims: Seq2SeqDims | None = None,
    texts: Sequence[str] | None = None,
    seed: int = 0,
    quantization: str = "int8",
) -> Path:
    """A random NLLB/M2M100-shaped model as a CTranslate2 directory at `out_dir`,
    converted by the same function `dragoman models pull` uses."""
    from dragoman.models import convert_transformers_to_ctranslate2

    with tempfile.TemporaryDirectory(prefix="dragoman-build-") as tmp:
        hf_dir = build_transformers_seq2seq(Path(tmp) / "hf", family, languages, dims,
                                            texts, seed)
        convert_transformers_to_ctranslate2(hf_dir, out_dir, quantization=quantization)
    return out_dir


@dataclass(frozen=True, slots=True)
class DiffusionDims:
    """The tiny DiffusionGemma config of MODELS.md (runs on CPU in seconds)."""

    vocab_size: int = 512
    hidden_size: int = 64
    layers: int = 2
    num_experts: int = 4
    top_k_experts: int = 2
    moe_intermediate_size: int = 32
    canvas_length: int = 16


def build_diffusion(
    out_dir: Path,
    dims: DiffusionDims | None = None,
    texts: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """A random tiny DiffusionGemma (transformers format) + a SentencePiece tokenizer."""
    import torch
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    dims = dims if dims is not None else DiffusionDims()
    texts = texts if texts is not None else corpus_texts()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dragoman-build-") as tmp:
        import sentencepiece

        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_prefix=str(Path(tmp) / "spm"),
            vocab_size=dims.vocab_size, model_type="bpe", character_coverage=1.0,
            pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2,
        )
        shutil.copy(Path(tmp) / "spm.model", out_dir / "tokenizer.model")
    # use_bidirectional_attention stays unset: "all" fails in transformers 5.23.
    config = DiffusionGemmaConfig(
        text_config={
            "vocab_size": dims.vocab_size, "hidden_size": dims.hidden_size,
            "intermediate_size": dims.hidden_size * 2, "num_hidden_layers": dims.layers,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
            "global_head_dim": 32, "num_experts": dims.num_experts,
            "top_k_experts": dims.top_k_experts,
            "moe_intermediate_size": dims.moe_intermediate_size,
            "layer_types": ["sliding_attention"] * (dims.layers - 1) + ["full_attention"],
            "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        },
        canvas_length=dims.canvas_length,
    )
    torch.manual_seed(seed)
    model: Any = DiffusionGemmaForBlockDiffusion(config)
    model.eval()
    model.save_pretrained(out_dir)
    return out_dir
