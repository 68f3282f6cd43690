"""Caption preview: which revisable words of the source and translation are shown."""

from __future__ import annotations

import pytest

from dragoman.captions import CaptionPreview, PreviewConfig
from dragoman.corpus import prompts
from dragoman.errors import DragomanError
from dragoman.events import SourceText, Span, TranslationText, Word
from dragoman.translate import CanvasEngine
from dragoman.translate.apertium import ApertiumBackend


def test_new_words_wait_for_confirmation_and_the_tail_is_hidden() -> None:
    preview = CaptionPreview(PreviewConfig(new_words=2, hidden_tail=1))

    def show(committed: str, block: str, utterance: int = 0) -> str:
        update = TranslationText(utterance, "fr", committed, block, Span(0, 1))
        return preview.translation(update).uncommitted

    # Four new words: two may show, and never the last one.
    assert show("", "le mot de passe") == "le mot"
    # The same block again: all four are confirmed now, the tail too.
    assert show("", "le mot de passe") == "le mot de passe"
    # Committed words leave the block; a revised word and a new one follow.
    assert show("le mot", "de passes a") == "de passes"
    # A revision of an early word un-confirms everything after it.
    assert show("", "du passe a été") == "du passe"
    assert show(" du passe", "a été changé") == "a été"
    # A new utterance starts afresh.
    assert show("", "a été changé", utterance=1) == "a été"


def test_without_new_words_only_confirmed_words_show() -> None:
    preview = CaptionPreview(PreviewConfig(new_words=0, hidden_tail=0))
    assert preview.count(0, [], ["bonjour", "à", "tous"], final=False) == 0
    assert preview.count(0, [], ["bonjour", "à", "toutes"], final=False) == 2
    assert preview.count(0, [], ["bonjour", "à", "toutes", "et"], final=False) == 3
    assert preview.count(0, ["bonjour"], ["à", "toutes", "et"], final=False) == 3
    # The final update shows everything.
    assert preview.count(0, ["à"], ["toutes", "et", "tous"], final=True) == 3


def test_source_tentative_words_are_trimmed_the_same_way() -> None:
    preview = CaptionPreview()

    def words(*texts: str) -> tuple[Word, ...]:
        return tuple(Word(" " + t, i * 1600, (i + 1) * 1600, 0.9) for i, t in enumerate(texts))

    first = SourceText(0, "es", (), words("sus", "contra", "se"), final=False)
    shown = preview.source(first)
    assert [w.text for w in shown.tentative] == [" sus"]  # one new word by default
    assert shown.committed == first.committed and shown.language == "es"
    second = SourceText(0, "es", words("sus"), words("contrasenas", "han", "sido"), final=False)
    assert [w.text.strip() for w in preview.source(second).tentative] == ["contrasenas"]
    final = SourceText(0, "es", words("contrasenas", "han", "sido", "cambiadas"), (), final=True)
    assert preview.source(final) == final


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
            previewed = preview.translation(
                TranslationText(0, "fr", update.committed_delta, update.uncommitted, Span(0, 1))
            ).uncommitted.split()
            assert previewed == block[: len(previewed)], "the preview is a prefix of the block"
            for name, part in (("whole", block), ("preview", previewed)):
                now = committed.split() + part
                erased[name] += _erased(shown[name], now)
                shown[name] = now
        final = engine.finish(" ".join(words))
        assert (committed + final.committed_delta).split() == final.committed_text.split()
    assert erased["preview"] < erased["whole"] / 2, erased
