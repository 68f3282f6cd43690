"""The CTranslate2 backend on tiny NLLB/M2M100-shaped models built at test time.

The models have random weights (SentencePiece trained on the Asterisk transcripts,
weights from transformers, converted to int8 by CTranslate2's converter): their
output is not a translation, so these tests check mechanics: scores drive what is
kept, the kept prefix is continued (not regenerated), committed text never changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.corpus import prompt
from dragoman.errors import ModelNotFoundError, UnsupportedLanguageError
from dragoman.translate import (
    CanvasConfig,
    CanvasEngine,
    FillRequest,
    ScoreRequest,
    create_backend,
)
from dragoman.translate.build import build_seq2seq
from dragoman.translate.ct2_backend import CTranslate2Backend, model_language_codes
from dragoman.translate.replay import replay_words

WORDS = prompt("es", "conf-adminmenu-18").text.split()[:12]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ct2")
    return {fam: build_seq2seq(root / fam, fam) for fam in ("nllb", "m2m100")}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nllb(tiny_models: dict[str, Path]) -> Iterator[CTranslate2Backend]:
    backend = create_backend("ctranslate2", model=tiny_models["nllb"])
    assert isinstance(backend, CTranslate2Backend)
    backend.start()
    yield backend
    backend.close()


def test_language_codes_come_from_the_model(tiny_models: dict[str, Path],
                                            nllb: CTranslate2Backend) -> None:
    assert model_language_codes(tiny_models["nllb"]) == {"en", "es", "fr"}
    assert nllb.language_token("es") == "spa_Latn"
    m2m = CTranslate2Backend(tiny_models["m2m100"])
    m2m.start()
    assert m2m.language_token("fr") == "__fr__"
    engine = CanvasEngine(m2m, "spa", "fr-CA")
    assert engine.update(" ".join(WORDS[:3])).uncommitted
    with pytest.raises(UnsupportedLanguageError):
        CanvasEngine(nllb, "es", "de")


def test_missing_model_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAGOMAN_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="dragoman models pull nllb-200-distilled-600M"):
        create_backend("ctranslate2", model="nllb-200-distilled-600M").start()


def test_scores_decide_what_is_kept(nllb: CTranslate2Backend) -> None:
    source = " ".join(WORDS[:6])
    block = nllb.fill([FillRequest("es", "fr", source, ())])[0]
    scores = nllb.score([ScoreRequest("es", "fr", " ".join(WORDS[:7]), (), block)])[0]
    assert len(scores) == len(block) and all(0.0 < s < 1.0 for s in scores)
    # A threshold between the scores keeps exactly the run before the first low score.
    order = sorted(set(scores))
    threshold = order[len(order) // 2]
    expected = 0
    while expected < len(scores) and scores[expected] >= threshold:
        expected += 1
    engine = CanvasEngine(nllb, "es", "fr", CanvasConfig(keep_threshold=threshold,
                                                         max_uncommitted_words=1000,
                                                         max_block_tokens=None))
    first = engine.update(source)
    assert first.uncommitted == nllb.detokenize(block)
    second = engine.update(" ".join(WORDS[:7]))
    assert second.kept_tokens == expected


def test_kept_prefix_is_continued_not_regenerated(nllb: CTranslate2Backend) -> None:
    old_source, new_source = " ".join(WORDS[:4]), " ".join(WORDS[:8])
    # A draft of real French (from the French prompts) that these random weights
    # would never produce by themselves.
    draft = nllb.tokenize(prompt("fr", "conf-adminmenu-18").text, "fr")[:9]
    fresh = nllb.fill([FillRequest("es", "fr", new_source, ())])[0]
    assert fresh[:5] != draft[:5]  # unconstrained decoding gives another head
    keep = (True,) * 5 + (False,) * (len(draft) - 5)
    kept = nllb.fill([FillRequest("es", "fr", new_source, (), draft, keep)])[0]
    assert kept[:5] == draft[:5]
    # Through the engine: keep everything (threshold 0) -> the block only extends.
    engine = CanvasEngine(nllb, "es", "fr", CanvasConfig(keep_threshold=0.0,
                                                         max_uncommitted_words=1000))
    before = engine.update(old_source).uncommitted
    after = engine.update(new_source)
    assert after.uncommitted.startswith(before) and after.kept_tokens > 0
    # Keep nothing (threshold 1) -> regenerated from the committed prefix.
    engine = CanvasEngine(nllb, "es", "fr", CanvasConfig(keep_threshold=1.0))
    engine.update(old_source)
    assert engine.update(new_source).kept_tokens == 0


def test_committed_prefix_never_changes_and_is_forced(nllb: CTranslate2Backend) -> None:
    # Unbounded continuations: random weights then run on for many words, so the
    # 3-word lag bound has to force commits.
    config = CanvasConfig(max_uncommitted_words=3, max_block_tokens=None)
    engine = CanvasEngine(nllb, "es", "fr", config)
    steps = replay_words(engine, WORDS)
    committed = ""
    for step in steps:
        text = step.update.committed_text
        assert text.startswith(committed)
        committed = text
        assert len(step.update.uncommitted.split()) <= 3
    assert any(s.update.forced for s in steps)  # random weights are never confident
    assert steps[-1].update.final and steps[-1].update.uncommitted == ""
    # The committed prefix really is the decoder's forced prefix: a continuation
    # for the full source starting from it reproduces the committed words.
    tokens = nllb.tokenize(committed, "fr")
    cont = nllb.fill([FillRequest("es", "fr", " ".join(WORDS), tokens[:6])])[0]
    assert nllb.detokenize(tokens[:6] + cont).startswith(nllb.detokenize(tokens[:6]))


def test_spanish_to_french_never_touches_english(nllb: CTranslate2Backend) -> None:
    seen: list[list[str]] = []
    translator = nllb._translator

    class Spy:
        """Not a fake: forwards to the real CTranslate2 translator, recording tokens."""

        def score_batch(self, sources: list[list[str]], targets: list[list[str]]) -> object:
            seen.extend(sources + targets)
            return translator.score_batch(sources, targets)

        def translate_batch(self, sources: list[list[str]], **kw: object) -> object:
            seen.extend(sources)
            result = translator.translate_batch(sources, **kw)
            seen.extend(list(r.hypotheses[0]) for r in result)
            return result

    nllb._translator = Spy()
    try:
        replay_words(CanvasEngine(nllb, "es", "fr"), WORDS)
    finally:
        nllb._translator = translator
    assert seen
    tokens = {t for seq in seen for t in seq}
    assert "eng_Latn" not in tokens and {"spa_Latn", "fra_Latn"} <= tokens


def test_one_model_serves_concurrent_sessions_in_batches(nllb: CTranslate2Backend) -> None:
    sources = [" ".join(WORDS[: 3 + i]) for i in range(6)]
    alone = [nllb.fill([FillRequest("es", "fr", s, ())])[0] for s in sources]
    assert nllb._fill is not None
    before = nllb._fill.batches
    results: dict[int, tuple[str, ...]] = {}
    barrier = threading.Barrier(len(sources))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = nllb.fill([FillRequest("es", "fr", sources[i], ())])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[i] for i in range(len(sources))] == alone
    assert nllb._fill.batches - before < len(sources)


def test_interim_continuation_is_bounded_and_the_end_completes(
    nllb: CTranslate2Backend,
) -> None:
    source = " ".join(WORDS[:8])
    draft = nllb.tokenize(prompt("fr", "conf-adminmenu-18").text, "fr")[:6]
    keep = (True,) * 3 + (False,) * 3
    full = nllb.fill([FillRequest("es", "fr", source, (), draft, keep)])[0]
    assert len(full) > 3 + 4  # random weights never end the sentence early
    bounded = nllb.fill([FillRequest("es", "fr", source, (), draft, keep, max_new_tokens=4)])[0]
    # Greedy decoding: the bounded block is the kept head plus the first 4 tokens of
    # the unbounded continuation, whichever other request shares the batch.
    assert bounded == full[: 3 + 4] and bounded[:3] == draft[:3]
    mixed = nllb.fill([
        FillRequest("es", "fr", source, (), draft, keep, max_new_tokens=4),
        FillRequest("es", "fr", source, (), draft, keep),
    ])
    assert mixed == [bounded, full]
    with pytest.raises(ValueError):
        FillRequest("es", "fr", source, (), max_new_tokens=0)
    # Through the engine: interim blocks stay within kept head + bound; the final
    # update decodes the whole sentence and commits it.
    config = CanvasConfig(keep_threshold=0.0, max_uncommitted_words=1000, max_block_tokens=3)
    engine = CanvasEngine(nllb, "es", "fr", config)
    lengths = []
    for i in range(2, 7):
        before = len(engine._segment.block)
        update = engine.update(" ".join(WORDS[:i]))
        lengths.append(len(engine._segment.block))
        assert len(engine._segment.block) <= update.kept_tokens + 3
        assert update.kept_tokens == before  # threshold 0: everything kept
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0]
    last = engine.finish(" ".join(WORDS[:6]))
    assert last.uncommitted == "" and len(engine._segment.committed) > lengths[-1] + 3
