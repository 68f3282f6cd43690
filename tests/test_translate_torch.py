"""The parallel-prefix PyTorch backend on a tiny NLLB-shaped checkpoint built at test time.

Random weights (SentencePiece trained on the Asterisk transcripts): the output is not
a translation, so these tests check mechanics against an independent implementation:
CTranslate2 running the same weights (float32 both) must give the same scores and the
same greedy continuations, whether or not a fill continues the score pass's cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman import models
from dragoman.corpus import prompt
from dragoman.errors import BackendError, UnsupportedLanguageError
from dragoman.models import ModelStore
from dragoman.translate import CanvasConfig, CanvasEngine, FillRequest, ScoreRequest
from dragoman.translate.build import build_transformers_seq2seq
from dragoman.translate.ct2_backend import CTranslate2Backend
from dragoman.translate.registry import backend_for_pair, can_translate, create_backend
from dragoman.translate.replay import replay_words
from dragoman.translate.torch_backend import TorchSeq2SeqBackend

WORDS = prompt("es", "conf-adminmenu-18").text.split()[:12]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_transformers_seq2seq(tmp_path_factory.mktemp("hf") / "nllb", "nllb")


@pytest.fixture(scope="module")
def exact(checkpoint: Path) -> Iterator[TorchSeq2SeqBackend]:
    backend = TorchSeq2SeqBackend(checkpoint, quantize=False)
    backend.start()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[CTranslate2Backend]:
    out = tmp_path_factory.mktemp("ct2") / "nllb-f32"
    models.convert_transformers_to_ctranslate2(checkpoint, out, quantization="float32")
    backend = CTranslate2Backend(out, compute_type="float32", batch_wait_s=0.0)
    backend.start()
    yield backend
    backend.close()


def test_scores_match_ctranslate2(exact: TorchSeq2SeqBackend,
                                  reference: CTranslate2Backend) -> None:
    source = " ".join(WORDS[:8])
    block = reference.fill([FillRequest("es", "fr", source, (), max_new_tokens=8)])[0]
    assert len(block) >= 4
    for prefix, rest in ((), block), (block[:2], block[2:]):
        request = ScoreRequest("es", "fr", source, prefix, rest)
        ours = exact.score([request])[0]
        theirs = reference.score([request])[0]
        assert len(ours) == len(rest)
        assert ours == pytest.approx(theirs, rel=2e-3, abs=1e-6)


@pytest.mark.parametrize("kept", [0, 2, 5])
def test_fill_continues_the_score_pass_like_a_fresh_decode(
    exact: TorchSeq2SeqBackend, reference: CTranslate2Backend, kept: int
) -> None:
    source = " ".join(WORDS[:9])
    prefix = reference.fill([FillRequest("es", "fr", source, (), max_new_tokens=2)])[0]
    draft = exact.fill([FillRequest("es", "fr", " ".join(WORDS[:7]), prefix,
                                    max_new_tokens=6)])[0]
    assert len(draft) == 6
    keep = tuple(i < kept for i in range(len(draft)))
    request = FillRequest("es", "fr", source, prefix, draft, keep, max_new_tokens=4)
    fresh = exact.fill([request])[0]  # nothing to reuse: its own pass
    reused_before = exact.reused
    exact.score([ScoreRequest("es", "fr", source, prefix, draft)])
    continued = exact.fill([request])[0]
    assert exact.reused == reused_before + 1, "the fill must continue the score pass"
    assert continued == fresh == reference.fill([request])[0]
    assert continued[:kept] == draft[:kept]  # the kept head is not regenerated
    assert len(continued) == kept + 4


def test_end_of_utterance_decodes_to_the_end(exact: TorchSeq2SeqBackend,
                                             reference: CTranslate2Backend) -> None:
    request = FillRequest("es", "fr", " ".join(WORDS), ())
    assert exact.fill([request])[0] == reference.fill([request])[0]


def test_canvas_on_the_int8_model(checkpoint: Path) -> None:
    backend = create_backend("torch", model=checkpoint)
    assert isinstance(backend, TorchSeq2SeqBackend)
    backend.start()
    assert set(backend.languages()) == {"en", "es", "fr"}
    # Unbounded continuations: random weights run on for many words, so the 3-word lag
    # bound has to force commits before the end.
    config = CanvasConfig(max_uncommitted_words=3, max_block_tokens=None)
    engine = CanvasEngine(backend, "es", "fr", config)
    steps = replay_words(engine, WORDS, tentative_words=2)
    texts = [step.update.committed_text for step in steps]
    for before, after in zip(texts, texts[1:], strict=False):
        assert after.startswith(before)  # committed text only grows
    assert all(len(s.update.uncommitted.split()) <= 3 for s in steps)
    assert any(s.update.forced for s in steps) and texts[-2].strip()
    assert steps[-1].update.final and not steps[-1].update.uncommitted
    assert backend.reused > 0  # updates reuse their score pass
    with pytest.raises(UnsupportedLanguageError):
        CanvasEngine(backend, "es", "de")
    backend.close()
    with pytest.raises(BackendError, match="not started"):
        backend.fill([FillRequest("es", "fr", "hola", ())])


def test_pulled_checkpoint_runs_offline(checkpoint: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`dragoman models pull nllb-200-distilled-600M-hf` keeps the checkpoint as it is.
    The hub is the only stand-in: it copies files from the checkpoint built above."""
    fetched: list[list[str] | None] = []

    def hub_stand_in(repo_id: str, local_dir: Path,
                     allow_patterns: list[str] | None = None) -> Path:
        assert repo_id == "facebook/nllb-200-distilled-600M"
        fetched.append(allow_patterns)
        local_dir.mkdir(parents=True, exist_ok=True)
        for path in checkpoint.iterdir():
            if allow_patterns is None or any(path.match(p) for p in allow_patterns):
                (local_dir / path.name).write_bytes(path.read_bytes())
        return local_dir

    for var in ("DRAGOMAN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DRAGOMAN_HOME", str(tmp_path))
    monkeypatch.setattr(models, "hub_download", hub_stand_in)
    monkeypatch.setattr(models, "_weight_patterns", lambda repo: ["*.safetensors"])
    resolved = ModelStore().pull("nllb-200-distilled-600M-hf")
    assert fetched and fetched[0] is not None and "*.bin" not in fetched[0]
    assert resolved.directory is not None and (resolved.directory / "config.json").is_file()
    monkeypatch.setenv("DRAGOMAN_OFFLINE", "1")
    # Routing prefers the installed checkpoint, with the parallel-prefix backend.
    assert can_translate("spa", "fr-FR") == "torch"
    backend = backend_for_pair("es", "fr")
    assert isinstance(backend, TorchSeq2SeqBackend)
    assert backend.model == "nllb-200-distilled-600M-hf"
    backend.start()
    assert backend.fill([FillRequest("es", "fr", " ".join(WORDS[:4]), (),
                                     max_new_tokens=3)])[0]
