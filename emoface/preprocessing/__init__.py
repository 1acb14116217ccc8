"""Raw MEAD -> feature cache (``emoface preprocess``): landmarks, pose, gaze, crops, audio features.

See docs/data_format.md ("Feature cache") for the files written and :mod:`.pipeline` for the run.
The names below load on first use (PEP 562), so ``emoface preprocess --help`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PreprocessOptions", "RunSummary", "preprocess"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("emoface.preprocessing.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
