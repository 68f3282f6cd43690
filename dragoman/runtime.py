"""Process-level settings for the native runtimes under the models.

CTranslate2 (Whisper, NLLB) and PyTorch each bring their own OpenMP runtime, and
onnxruntime (Kokoro) its own thread pool. On a small machine they share the same few
cores, and OpenMP's default of spinning while it waits for work burns CPU that another
stage needs: the end-to-end pipeline on 2 cores used about 15 % less CPU with passive
waiting at the same latency (docs/benchmarks.md). OpenMP reads the setting when the
library loads, so it must be set before the first model is loaded.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

_OPENMP_USERS = ("ctranslate2", "torch")


def prefer_passive_openmp() -> bool:
    """Make OpenMP threads sleep instead of spin while they wait, unless the user chose
    (`OMP_WAIT_POLICY` is left alone when set). Returns whether the policy is passive
    for the runtimes loaded from now on; logs when one is already loaded (too late)."""
    policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    loaded = [name for name in _OPENMP_USERS if name in sys.modules]
    if loaded:
        logger.debug("OpenMP wait policy set after %s loaded: it keeps its own",
                     ", ".join(loaded))
    return policy.upper() == "PASSIVE"
