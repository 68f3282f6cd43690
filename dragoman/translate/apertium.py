"""Apertium (rule-based, GPL) as a translation backend, run as separate processes.

One persistent null-flush pipeline per language pair: the programs of the pair's
mode file (``/usr/share/apertium/modes/es-fr.mode``) are started once, each with
``-z``; a request is the deformatted text followed by ``\\0`` and its answer is read
up to the next ``\\0`` (the ``apertium -z`` wrapper drops the separators, so it cannot
be used). A pipeline that dies or stops answering is restarted. Apertium gives no
token scores, so the canvas commits its output by agreement across updates.
"""

from __future__ import annotations

import difflib
import logging
import os
import select
import shlex
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dragoman.errors import BackendError, UnsupportedLanguageError
from dragoman.languages import normalize_language
from dragoman.translate.base import FillRequest, ScoreRequest

logger = logging.getLogger(__name__)

MODES_DIR = Path("/usr/share/apertium/modes")
_SPECIAL = set("\\[]^$@/<>{}")


@dataclass(frozen=True, slots=True)
class ApertiumPair:
    source: str
    target: str
    mode: Path


def installed_pairs(modes_dir: Path = MODES_DIR) -> dict[tuple[str, str], ApertiumPair]:
    """Direct pairs of the installed ``apertium-xx-yy`` packages (variants skipped)."""
    pairs: dict[tuple[str, str], ApertiumPair] = {}
    if not modes_dir.is_dir():
        return pairs
    for mode in sorted(modes_dir.glob("*.mode")):
        parts = mode.stem.split("-")
        if len(parts) != 2 or not all(p.isalpha() and 2 <= len(p) <= 3 for p in parts):
            continue  # variants (es-pt_BR, spa-cat_valencia) and debug modes (eco-es-fr)
        try:
            src, tgt = (normalize_language(p) for p in parts)
        except UnsupportedLanguageError:
            continue
        missing = [argv[0] for argv in pipeline_commands(mode) if shutil.which(argv[0]) is None]
        if missing:
            logger.warning("apertium mode %s needs %s (not installed)", mode.stem, missing)
            continue
        pairs.setdefault((src, tgt), ApertiumPair(src, tgt, mode))
    return pairs


def deformat(text: str) -> bytes:
    """Plain text as Apertium stream input: one line, specials escaped, a blank at the end.

    The trailing blank matters: the analyser holds back a final word until it sees
    what follows it.
    """
    flat = " ".join(text.replace("\0", " ").split())
    escaped = "".join("\\" + c if c in _SPECIAL else c for c in flat)
    return (escaped + " \0").encode("utf-8")


def reformat(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    out: list[str] = []
    escaped = False
    for c in text:
        if escaped:
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        else:
            out.append(c)
    return " ".join("".join(out).split())


def pipeline_commands(mode: Path) -> list[list[str]]:
    """The programs of a mode file, each with ``-z`` (null flush) added."""
    line = " ".join(mode.read_text(encoding="utf-8").split())
    # $1: generator mode (-n: no unknown-word marks); $2: tagger option (none).
    line = line.replace("$1", "-n").replace("$2", "")
    commands = []
    for stage in line.split("|"):
        argv = shlex.split(stage)
        if not argv:
            raise BackendError(f"empty stage in Apertium mode {mode}")
        commands.append([argv[0], "-z", *argv[1:]])
    return commands


class ApertiumPipeline:
    """One persistent null-flush pipeline for one pair. Thread-safe (one request at a time)."""

    def __init__(self, pair: ApertiumPair, timeout_s: float = 20.0) -> None:
        self.pair = pair
        self.timeout_s = timeout_s
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self.restarts = 0
        self.requests = 0
        self._spawned = False

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self._procs)

    def start(self) -> None:
        with self._lock:
            if not self._alive():
                self._spawn()

    def close(self) -> None:
        with self._lock:
            self._kill()

    def translate(self, text: str) -> str:
        if not text.strip():
            return ""
        with self._lock:
            for attempt in (1, 2):
                if not self._alive():
                    if self._spawned:
                        self.restarts += 1
                        logger.warning("apertium %s pipeline died; restarting", self.pair.mode.stem)
                    self._spawn()
                try:
                    out = self._request(deformat(text))
                    self.requests += 1
                    return out
                except (OSError, BackendError) as exc:
                    logger.warning("apertium %s request failed (%s)", self.pair.mode.stem, exc)
                    self._kill()
                    if attempt == 2:
                        raise BackendError(
                            f"apertium {self.pair.mode.stem} failed twice: {exc}"
                        ) from exc
            raise AssertionError("unreachable")

    def _alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def _spawn(self) -> None:
        self._kill()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i, argv in enumerate(pipeline_commands(self.pair.mode)):
                stdin = subprocess.PIPE if i == 0 else procs[-1].stdout
                proc = subprocess.Popen(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
                if i > 0 and procs[-1].stdout is not None:
                    procs[-1].stdout.close()  # only the next stage reads it now
                procs.append(proc)
        except OSError as exc:
            for proc in procs:
                proc.kill()
            raise BackendError(f"cannot start Apertium ({exc}): apt-get install apertium") from exc
        self._procs = procs
        self._spawned = True

    def _kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("apertium process %d did not exit", proc.pid)
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []

    def _request(self, payload: bytes) -> str:
        first, last = self._procs[0], self._procs[-1]
        assert first.stdin is not None and last.stdout is not None
        first.stdin.write(payload)
        first.stdin.flush()
        fd = last.stdout.fileno()
        buf = b""
        while b"\0" not in buf:
            ready, _, _ = select.select([fd], [], [], self.timeout_s)
            if not ready:
                raise BackendError(f"no answer within {self.timeout_s:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BackendError("pipeline closed its output")
            buf += chunk
        answer, _, rest = buf.partition(b"\0")
        if not answer.strip() or not self._alive():
            # A stage died mid-request: its successors flush and exit, which can
            # produce a spurious empty answer (Apertium echoes even unknown words, so
            # a non-empty request never has an empty answer). Never trust it.
            raise BackendError("a pipeline stage exited during the request")
        if rest.strip():
            raise BackendError("pipeline answered more than asked (out of sync)")
        return reformat(answer)


def strip_prefix(prefix: Sequence[str], full: Sequence[str]) -> tuple[str, ...]:
    """The words of `full` after the part that corresponds to the committed `prefix`.

    Apertium cannot be forced to continue a prefix; when later source context
    changed an already committed word, align the prefix's end in the new output.
    """
    n = len(prefix)
    if tuple(full[:n]) == tuple(prefix):
        return tuple(full[n:])
    if n == 0:
        return tuple(full)
    matcher = difflib.SequenceMatcher(a=list(prefix), b=list(full), autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return tuple(full[n:])
    last = blocks[-1]
    end = last.b + last.size + (n - (last.a + last.size))
    return tuple(full[min(max(end, 0), len(full)) :])


class ApertiumBackend:
    """Rule-based direct translation through installed Apertium pairs."""

    name = "apertium"
    has_scores = False
    max_source_tokens = 400

    def __init__(self, modes_dir: Path = MODES_DIR, timeout_s: float = 20.0) -> None:
        self.modes_dir = modes_dir
        self.timeout_s = timeout_s
        self._pairs: dict[tuple[str, str], ApertiumPair] | None = None
        self._pipelines: dict[tuple[str, str], ApertiumPipeline] = {}
        self._lock = threading.Lock()

    def pairs(self) -> tuple[tuple[str, str], ...]:
        if self._pairs is None:
            self._pairs = installed_pairs(self.modes_dir)
        return tuple(sorted(self._pairs))

    def start(self) -> None:
        if not self.pairs():
            raise BackendError(
                "no Apertium pairs are installed: apt-get install apertium apertium-fr-es"
            )

    def close(self) -> None:
        with self._lock:
            for pipe in self._pipelines.values():
                pipe.close()
            self._pipelines.clear()

    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({lang for pair in self.pairs() for lang in pair}))

    def supports(self, source_lang: str, target_lang: str) -> bool:
        return (source_lang, target_lang) in self.pairs()

    def pipeline(self, source_lang: str, target_lang: str) -> ApertiumPipeline:
        """The persistent pipeline of a pair, started on first use."""
        key = (source_lang, target_lang)
        with self._lock:
            pipe = self._pipelines.get(key)
            if pipe is None:
                self.pairs()
                assert self._pairs is not None
                if key not in self._pairs:
                    raise UnsupportedLanguageError(
                        f"no Apertium pair {source_lang}->{target_lang} is installed "
                        f"(have: {', '.join(f'{a}-{b}' for a, b in self.pairs())})"
                    )
                pipe = ApertiumPipeline(self._pairs[key], self.timeout_s)
                self._pipelines[key] = pipe
        return pipe

    def translate(self, text: str, source_lang: str, target_lang: str) -> str:
        return self.pipeline(source_lang, target_lang).translate(text)

    def tokenize(self, text: str, lang: str) -> tuple[str, ...]:
        return tuple(text.split())

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def is_word_start(self, token: str) -> bool:
        return True

    def score(self, requests: Sequence[ScoreRequest]) -> list[tuple[float, ...]]:
        raise BackendError("Apertium gives no token scores (has_scores is False)")

    def fill(self, requests: Sequence[FillRequest]) -> list[tuple[str, ...]]:
        out = []
        for req in requests:
            full = self.translate(req.source, req.source_lang, req.target_lang).split()
            out.append(strip_prefix(req.prefix, full))
        return out
