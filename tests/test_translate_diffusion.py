"""The DiffusionGemma backend on the tiny random config of MODELS.md (CPU).

Random weights: the output is not a translation. The tests check the mechanics:
the canvas is warm-started from the previous draft, the denoiser's distribution
gives per-token confidences, and the committed prefix is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dragoman.corpus import prompt
from dragoman.translate import CanvasConfig, CanvasEngine, FillRequest, ScoreRequest, create_backend
from dragoman.translate.build import build_diffusion
from dragoman.translate.diffusion import DiffusionBackend

WORDS = prompt("es", "conf-adminmenu-18").text.split()


@pytest.fixture(scope="session")
def diffusion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiffusionBackend]:
    directory = build_diffusion(tmp_path_factory.mktemp("diffusion") / "tiny")
    backend = create_backend("diffusion", model=directory, denoising_steps=4)
    assert isinstance(backend, DiffusionBackend)
    backend.start()
    yield backend
    backend.close()


def test_scores_come_from_the_denoiser(diffusion: DiffusionBackend) -> None:
    source = " ".join(WORDS[:5])
    block = diffusion.fill([FillRequest("es", "fr", source, ())])[0]
    assert 0 < len(block) <= 16 * 8
    scores = diffusion.score([ScoreRequest("es", "fr", source, (), block)])[0]
    assert len(scores) == len(block)
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
    # Same seed, same canvas: deterministic.
    assert diffusion.fill([FillRequest("es", "fr", source, ())])[0] == block


def test_warm_started_canvas_and_untouched_committed_prefix(
    diffusion: DiffusionBackend,
) -> None:
    config = CanvasConfig(keep_threshold=0.0, max_uncommitted_words=2)
    engine = CanvasEngine(diffusion, "es", "fr", config)
    warm_before = diffusion.warm_starts
    committed = ""
    for i in range(3, 7):
        update = engine.update(" ".join(WORDS[: i - 1]), WORDS[i - 1])
        assert update.committed_text.startswith(committed)
        committed = update.committed_text
    assert diffusion.warm_starts - warm_before >= 3  # every later update reused the draft
    assert committed  # the lag bound committed the head
    # The committed prefix goes to the encoder: the new canvas only follows it.
    final = engine.finish(" ".join(WORDS[:8]))
    assert final.committed_text.startswith(committed) and final.uncommitted == ""
