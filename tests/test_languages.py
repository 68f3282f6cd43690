from __future__ import annotations

import pytest

from dragoman.errors import UnsupportedLanguageError
from dragoman.languages import all_languages, language, normalize_language


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("es", "es"),
        ("spa", "es"),
        ("es-MX", "es"),
        ("pt_BR", "pt"),
        ("zh-Hant-TW", "zh"),
        ("FRA", "fr"),
        ("fre", "fr"),
        ("Spanish", "es"),
        ("iw", "he"),
        ("yue", "yue"),
        ("haw", "haw"),
        ("nb-NO", "no"),
    ],
)
def test_accepts_common_spellings(tag: str, code: str) -> None:
    assert normalize_language(tag) == code


@pytest.mark.parametrize("tag", ["", "  ", "xx", "klingon", "e", "zz-ES", "123"])
def test_rejects_unknown(tag: str) -> None:
    with pytest.raises(UnsupportedLanguageError):
        normalize_language(tag)


def test_table_is_consistent() -> None:
    langs = all_languages()
    assert len(langs) >= 100
    assert len({lang.code for lang in langs}) == len(langs)
    assert language("es").iso3 == "spa" and language("zh").script == "Hans"
