"""Session orchestration: recognition -> translation canvas -> speech, per target."""

from dragoman.pipeline.config import PipelineConfig
from dragoman.pipeline.resources import Resources
from dragoman.pipeline.session import Pipeline

__all__ = ["Pipeline", "PipelineConfig", "Resources"]
