"""Language codes: one canonical code per language, accepting what users type.

The canonical code is ISO 639-1 where one exists (``es``), else ISO 639-3
(``haw``, ``yue``). `normalize_language` accepts ISO 639-1, ISO 639-3 (including
the bibliographic variants people still use), BCP-47 tags (``es-MX``,
``zh-Hant-TW``, ``pt_BR``) and English names (``Spanish``), and raises
`UnsupportedLanguageError` for anything else. Backends map canonical codes to their
own (Whisper uses the canonical code; NLLB uses ``<iso639-3>_<Script>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from dragoman.errors import UnsupportedLanguageError


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    """Canonical code: ISO 639-1 if it exists, else ISO 639-3."""
    iso3: str
    name: str
    script: str
    """ISO 15924 script of the usual written form (NLLB's suffix)."""


# code, ISO 639-3, English name, script. Covers every language Whisper recognizes
# plus languages that translation or speech backends add.
_TABLE = """
af afr Afrikaans Latn|am amh Amharic Ethi|ar arb Arabic Arab|as asm Assamese Beng
az azj Azerbaijani Latn|ba bak Bashkir Cyrl|be bel Belarusian Cyrl|bg bul Bulgarian Cyrl
bn ben Bengali Beng|bo bod Tibetan Tibt|br bre Breton Latn|bs bos Bosnian Latn
ca cat Catalan Latn|cs ces Czech Latn|cy cym Welsh Latn|da dan Danish Latn
de deu German Latn|el ell Greek Grek|en eng English Latn|eo epo Esperanto Latn
es spa Spanish Latn|et est Estonian Latn|eu eus Basque Latn|fa pes Persian Arab
fi fin Finnish Latn|fo fao Faroese Latn|fr fra French Latn|ga gle Irish Latn
gl glg Galician Latn|gu guj Gujarati Gujr|ha hau Hausa Latn|haw haw Hawaiian Latn
he heb Hebrew Hebr|hi hin Hindi Deva|hr hrv Croatian Latn|ht hat Haitian_Creole Latn
hu hun Hungarian Latn|hy hye Armenian Armn|id ind Indonesian Latn|is isl Icelandic Latn
it ita Italian Latn|ja jpn Japanese Jpan|jv jav Javanese Latn|ka kat Georgian Geor
kk kaz Kazakh Cyrl|km khm Khmer Khmr|kn kan Kannada Knda|ko kor Korean Hang
la lat Latin Latn|lb ltz Luxembourgish Latn|ln lin Lingala Latn|lo lao Lao Laoo
lt lit Lithuanian Latn|lv lvs Latvian Latn|mg plt Malagasy Latn|mi mri Maori Latn
mk mkd Macedonian Cyrl|ml mal Malayalam Mlym|mn khk Mongolian Cyrl|mr mar Marathi Deva
ms zsm Malay Latn|mt mlt Maltese Latn|my mya Burmese Mymr|ne npi Nepali Deva
nl nld Dutch Latn|nn nno Norwegian_Nynorsk Latn|no nob Norwegian Latn|oc oci Occitan Latn
pa pan Punjabi Guru|pl pol Polish Latn|ps pbt Pashto Arab|pt por Portuguese Latn
ro ron Romanian Latn|ru rus Russian Cyrl|sa san Sanskrit Deva|sd snd Sindhi Arab
si sin Sinhala Sinh|sk slk Slovak Latn|sl slv Slovenian Latn|sn sna Shona Latn
so som Somali Latn|sq als Albanian Latn|sr srp Serbian Cyrl|su sun Sundanese Latn
sv swe Swedish Latn|sw swh Swahili Latn|ta tam Tamil Taml|te tel Telugu Telu
tg tgk Tajik Cyrl|th tha Thai Thai|tk tuk Turkmen Latn|tl tgl Tagalog Latn
tr tur Turkish Latn|tt tat Tatar Cyrl|uk ukr Ukrainian Cyrl|ur urd Urdu Arab
uz uzn Uzbek Latn|vi vie Vietnamese Latn|yi ydd Yiddish Hebr|yo yor Yoruba Latn
zh zho Chinese Hans|yue yue Cantonese Hant|ast ast Asturian Latn|an arg Aragonese Latn
sc srd Sardinian Latn|ig ibo Igbo Latn|zu zul Zulu Latn|xh xho Xhosa Latn
rw kin Kinyarwanda Latn|ky kir Kyrgyz Cyrl|ku kmr Kurdish Latn|gd gla Scottish_Gaelic Latn
or ory Odia Orya|ug uig Uyghur Arab|wo wol Wolof Latn|ff fuv Fula Latn
"""

# Other ISO 639 spellings people use for the same languages.
_ALIASES = {
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro",
    "ara": "ar", "fas": "fa", "per": "fa", "zsm": "ms", "msa": "ms", "may": "ms",
    "nor": "no", "nb": "no", "nob": "no", "cmn": "zh", "chi": "zh", "zho": "zh",
    "ger": "de", "fre": "fr", "dut": "nl", "gre": "el", "cze": "cs", "slo": "sk",
    "rum": "ro", "mac": "mk", "alb": "sq", "sqi": "sq", "arm": "hy", "geo": "ka",
    "baq": "eu", "wel": "cy", "ice": "is", "bur": "my", "tib": "bo", "lav": "lv",
    "est": "et", "aze": "az", "uzb": "uz", "pus": "ps", "mon": "mn", "nep": "ne",
    "swa": "sw", "kur": "ku", "ori": "or", "fil": "tl", "hbs": "sr",
}


@cache
def _languages() -> dict[str, Language]:
    table: dict[str, Language] = {}
    for entry in _TABLE.replace("\n", "|").split("|"):
        if not entry.strip():
            continue
        code, iso3, name, script = entry.split()
        table[code] = Language(code, iso3, name.replace("_", " "), script)
    return table


@cache
def _lookup() -> dict[str, str]:
    index: dict[str, str] = {}
    for lang in _languages().values():
        index[lang.code] = lang.code
        index[lang.iso3] = lang.code
        index[lang.name.lower()] = lang.code
    index.update(_ALIASES)
    return index


def all_languages() -> tuple[Language, ...]:
    """Every language Dragoman knows, sorted by canonical code."""
    return tuple(sorted(_languages().values(), key=lambda lang: lang.code))


def normalize_language(tag: str) -> str:
    """Map a user-supplied language tag to its canonical code.

    >>> normalize_language("es-MX"), normalize_language("fra"), normalize_language("pt_BR")
    ('es', 'fr', 'pt')
    """
    if not isinstance(tag, str) or not tag.strip():
        raise UnsupportedLanguageError("language code is empty")
    cleaned = tag.strip().replace("_", "-").lower()
    index = _lookup()
    if cleaned in index:
        return index[cleaned]
    primary = cleaned.split("-", 1)[0]
    if primary in index and primary.isalpha() and 2 <= len(primary) <= 3:
        return index[primary]
    raise UnsupportedLanguageError(
        f"unknown language code {tag!r}: use ISO 639-1/639-3 or BCP-47, e.g. 'es', 'spa', 'es-MX'"
    )


def language(tag: str) -> Language:
    """The `Language` record for a tag (any accepted spelling)."""
    code = normalize_language(tag)
    known = _languages()
    if code not in known:
        raise UnsupportedLanguageError(f"language {tag!r} has no entry in the language table")
    return known[code]
