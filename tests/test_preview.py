"""Caption preview: which words of the revisable translation are shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dragoman.corpus import prompts
from dragoman.errors import DragomanError
from dragoman.translate import CanvasEngine, CaptionPreview, PreviewConfig, create_backend
from dragoman.translate.apertium import ApertiumBackend


@pytest.fixture(scope="module")
def apertium() -> Iterator[ApertiumBackend]:
    backend = create_backend("apertium")
    assert isinstance(backend, ApertiumBackend)
    backend.start()
    yield backend
    backend.close()


def test_new_words_wait_for_confirmation_and_the_tail_is_hidden() -> None:
    preview = CaptionPreview(PreviewConfig(new_words=2, hidden_tail=1))
    # Four new words: two may show, and never the last one.
    assert preview.show("", "le mot de passe") == "le mot"
    # The same block again: all four are confirmed now, the tail too.
    assert preview.show("", "le mot de passe") == "le mot de passe"
    # Committed words leave the block; one revised word and a new one follow.
    assert preview.show("le mot", "de passes a") == "de passes"
    # A revision that changes an early word un-confirms everything after it.
    assert preview.show("", "du passe a été") == "du passe"
    assert preview.show(" du passe", "a été changé", final=False) == "a été"
    # The final update shows everything (the canvas commits it all).
    assert preview.show(" a été changé", "", final=True) == ""


def test_without_new_words_only_confirmed_words_show() -> None:
    preview = CaptionPreview(PreviewConfig(new_words=0, hidden_tail=0))
    assert preview.show("", "bonjour à tous") == ""
    assert preview.show("", "bonjour à toutes") == "bonjour à"
    assert preview.show("", "bonjour à toutes et") == "bonjour à toutes"


def test_settings_are_checked() -> None:
    with pytest.raises(DragomanError):
        PreviewConfig(new_words=-1)
    with pytest.raises(DragomanError):
        PreviewConfig(hidden_tail=-2)


def _erased(before: list[str], after: list[str]) -> int:
    common = 0
    for old, new in zip(before, after, strict=False):
        if old != new:
            break
        common += 1
    return len(before) - common


def test_preview_on_the_apertium_canvas_erases_less_and_commits_the_same(
    apertium: ApertiumBackend,
) -> None:
    """Real Spanish prompts word by word, as an interim recognizer hears them: the
    word at the buffer's edge comes cut short ("contrase" for "contraseñas") and is
    heard whole by the next update."""
    sentences = [p.text.split() for p in prompts("es") if len(p.text.split()) >= 6][:12]
    assert len(sentences) == 12
    erased = {"whole": 0, "preview": 0}
    for words in sentences:
        engine = CanvasEngine(apertium, "es", "fr")
        preview = CaptionPreview()
        shown = {"whole": [], "preview": []}  # type: dict[str, list[str]]
        committed = ""
        for i in range(1, len(words) + 1):
            heard = [*words[: i - 1], words[i - 1][: max(1, len(words[i - 1]) // 2)]]
            split = max(0, i - 3)
            update = engine.update(" ".join(words[:split]), " ".join(heard[split:]))
            committed += update.committed_delta
            block = update.uncommitted.split()
            previewed = preview.show(update.committed_delta, update.uncommitted).split()
            assert previewed == block[: len(previewed)], "the preview is a prefix of the block"
            for name, part in (("whole", block), ("preview", previewed)):
                now = committed.split() + part
                erased[name] += _erased(shown[name], now)
                shown[name] = now
        final = engine.finish(" ".join(words))
        assert preview.show(final.committed_delta, final.uncommitted, final=True) == ""
        assert (committed + final.committed_delta).split() == final.committed_text.split()
    assert erased["preview"] < erased["whole"] / 2, erased
