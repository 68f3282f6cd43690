"""Real human speech for tests and benchmarks: the Asterisk core sound prompts.

Debian's ``asterisk-core-sounds-{en,es,fr}`` packages hold transcripts
(``id: text``) and the ``-g722`` / ``-wav`` packages the recordings (16 kHz G.722 /
8 kHz WAV), parallel across languages by prompt id; English and Spanish share one
voice (Allison Smith). The recordings are CC-BY-SA 3.0 (Digium, Inc.).
`scripts/install.sh` installs them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dragoman.errors import DragomanError

SOUNDS = Path("/usr/share/asterisk/sounds")
DOCS = Path("/usr/share/doc")
LANGUAGES = ("en", "es", "fr")


@dataclass(frozen=True, slots=True)
class Prompt:
    """One recorded prompt: its id (shared across languages), transcript and file."""

    id: str
    language: str
    text: str
    path: Path


@cache
def prompts(language: str) -> tuple[Prompt, ...]:
    """Every prompt of `language` that has both a transcript and a recording.

    Prefers the 16 kHz G.722 recording; skips non-speech entries ("[beep]", and the
    English "(3 seconds of silence)", "(beep)", whose recordings hold no speech).
    """
    if language not in LANGUAGES:
        raise DragomanError(f"no Asterisk prompts for {language!r}; have {LANGUAGES}")
    listing = DOCS / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    if not listing.is_file():
        raise DragomanError(
            f"Asterisk prompts for {language!r} are not installed: run scripts/install.sh"
        )
    found: list[Prompt] = []
    with gzip.open(listing, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(";") or ":" not in line:
                continue
            key, text = (part.strip() for part in line.split(":", 1))
            if not text or text.startswith("[") or (text.startswith("(") and text.endswith(")")):
                continue
            for ext in (".g722", ".wav"):
                path = SOUNDS / language / f"{key}{ext}"
                if path.is_file():
                    found.append(Prompt(key, language, text, path))
                    break
    return tuple(found)


def prompt(language: str, prompt_id: str) -> Prompt:
    """One prompt by id."""
    for item in prompts(language):
        if item.id == prompt_id:
            return item
    raise DragomanError(f"no Asterisk prompt {prompt_id!r} in {language!r}")


def parallel_ids(*languages: str) -> tuple[str, ...]:
    """Prompt ids recorded in every one of `languages`, sorted."""
    sets = [{p.id for p in prompts(lang)} for lang in languages]
    return tuple(sorted(set.intersection(*sets)))
