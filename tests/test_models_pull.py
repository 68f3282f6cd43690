"""`dragoman models pull` for translation models, offline.

The hub is the only thing replaced: `hub_stand_in` serves, from local directories,
what the hub would serve (a transformers checkpoint built at test time by
`dragoman.translate.build`, or a CTranslate2 conversion without its SentencePiece
model). Conversion, the store layout and the resolver are the real ones, and the
pulled model is then loaded and run by the CTranslate2 backend with downloads off.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dragoman import models
from dragoman.corpus import prompt
from dragoman.errors import ModelNotFoundError
from dragoman.models import ModelStore, PullStage
from dragoman.translate import CanvasEngine
from dragoman.translate.build import build_transformers_seq2seq
from dragoman.translate.ct2_backend import CTranslate2Backend

WORDS = prompt("es", "conf-adminmenu-18").text.split()[:6]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the stand-in hub holds, by repo id."""
    root = tmp_path_factory.mktemp("hub")
    m2m = build_transformers_seq2seq(root / "m2m", "m2m100")
    nllb = build_transformers_seq2seq(root / "nllb", "nllb")
    # A community CTranslate2 conversion (no SentencePiece model in the repo) and the
    # official repo that has it.
    ct2 = root / "ct2"
    models.convert_transformers_to_ctranslate2(nllb, ct2)
    (ct2 / "sentencepiece.bpe.model").unlink()
    return {
        "facebook/m2m100_418M": m2m,
        "JustFrederik/nllb-200-distilled-600M-ct2-int8": ct2,
        "facebook/nllb-200-distilled-600M": nllb,
    }


@pytest.fixture
def online_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: dict[str, Path]
) -> tuple[ModelStore, list[tuple[str, list[str] | None]]]:
    calls: list[tuple[str, list[str] | None]] = []

    def hub_stand_in(repo_id: str, local_dir: Path,
                     allow_patterns: list[str] | None = None) -> Path:
        """Stand-in for the hub download: copies the repo's files (matching the
        patterns, as snapshot_download would) from a local directory."""
        calls.append((repo_id, allow_patterns))
        local_dir.mkdir(parents=True, exist_ok=True)
        for path in hub[repo_id].iterdir():
            if allow_patterns is None or any(path.match(p) for p in allow_patterns):
                shutil.copy(path, local_dir / path.name)
        return local_dir

    def weight_patterns(repo_id: str) -> list[str]:
        files = [p.name for p in hub[repo_id].iterdir()]
        return ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]

    for var in ("DRAGOMAN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DRAGOMAN_HOME", str(tmp_path))
    monkeypatch.setattr(models, "hub_download", hub_stand_in)
    monkeypatch.setattr(models, "_weight_patterns", weight_patterns)
    return ModelStore(), calls


def _translate_offline(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DRAGOMAN_OFFLINE", "1")
    monkeypatch.setattr(models, "hub_download", _no_network)
    backend = CTranslate2Backend(name)
    backend.start()
    engine = CanvasEngine(backend, "es", "fr")
    engine.update(" ".join(WORDS[:3]))
    text = engine.finish(" ".join(WORDS)).committed_text
    backend.close()
    return text


def _no_network(*args: object, **kwargs: object) -> Path:
    raise AssertionError("tried to download after the model was pulled")


def test_transformers_checkpoint_is_converted_and_then_found_offline(
    online_store: tuple[ModelStore, list[tuple[str, list[str] | None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, calls = online_store
    assert store.find("m2m100_418M") is None
    stages: list[PullStage] = []
    resolved = store.pull("m2m100_418M", progress=stages.append)
    assert [s.step for s in stages] == ["download", "convert", "done"]
    assert calls and calls[0][0] == "facebook/m2m100_418M"
    patterns = calls[0][1]
    assert patterns is not None and "*.safetensors" in patterns and "*.bin" not in patterns
    assert resolved.source == "hub" and resolved.directory == store.root / "m2m100_418M"
    assert {"model.bin", "config.json", "sentencepiece.bpe.model"} <= set(resolved.files)
    assert not (store.root / ".downloads" / "m2m100_418M").exists()  # staging removed
    assert not (store.root / "m2m100_418M.partial").exists()
    # Offline afterwards: the resolver finds the converted model in the store, the
    # backend loads it, and it produces text (not a translation: random weights).
    assert ModelStore().find("m2m100_418M") is not None
    assert ModelStore().find("m2m100_418M").source == "store"  # type: ignore[union-attr]
    assert _translate_offline("m2m100_418M", monkeypatch).strip()
    # Pulling again finds it and downloads nothing.
    monkeypatch.delenv("DRAGOMAN_OFFLINE")
    assert ModelStore().pull("m2m100_418M").source == "store"


def test_community_conversion_gets_its_tokenizer_from_the_official_repo(
    online_store: tuple[ModelStore, list[tuple[str, list[str] | None]]],
    hub: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, calls = online_store
    stages: list[PullStage] = []
    resolved = store.pull("nllb-200-distilled-600M", progress=stages.append)
    assert [c[0] for c in calls] == ["JustFrederik/nllb-200-distilled-600M-ct2-int8",
                                     "facebook/nllb-200-distilled-600M"]
    assert calls[1][1] == ["sentencepiece.bpe.model"]  # only the missing file
    assert "convert" not in [s.step for s in stages]
    official = hub["facebook/nllb-200-distilled-600M"] / "sentencepiece.bpe.model"
    assert resolved.files["sentencepiece.bpe.model"][0].read_bytes() == official.read_bytes()
    assert _translate_offline("nllb-200-distilled-600M", monkeypatch).strip()


def test_failed_conversion_leaves_nothing_the_resolver_accepts(
    online_store: tuple[ModelStore, list[tuple[str, list[str] | None]]],
    hub: dict[str, Path], tmp_path: Path,
) -> None:
    store, _ = online_store
    broken = tmp_path / "broken-hub"
    shutil.copytree(hub["facebook/m2m100_418M"], broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()  # a checkpoint without weights cannot be converted
    original = hub["facebook/m2m100_418M"]
    hub["facebook/m2m100_418M"] = broken
    try:
        with pytest.raises(ModelNotFoundError, match="could not convert"):
            store.pull("m2m100_418M")
    finally:
        hub["facebook/m2m100_418M"] = original
    assert store.find("m2m100_418M") is None
    assert not (store.root / "m2m100_418M.partial").exists()

