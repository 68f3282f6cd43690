"""Dragoman: self-hostable real-time speech-to-speech translation.

`dragoman.Pipeline`, `dragoman.PipelineConfig` and `dragoman.Resources` are the
in-process API (see `dragoman.pipeline`); they are imported on first use so that
`import dragoman` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Pipeline", "PipelineConfig", "Resources", "__version__"]

if TYPE_CHECKING:
    from dragoman.pipeline import Pipeline, PipelineConfig, Resources


def __getattr__(name: str) -> Any:
    if name in ("Pipeline", "PipelineConfig", "Resources"):
        from dragoman import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'dragoman' has no attribute {name!r}")
