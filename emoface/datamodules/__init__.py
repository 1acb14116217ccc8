"""Data modules: the MEADDataModule shared by both stages, its datasets and splits, mini-MEAD.

The classes load on first use (PEP 562), so ``emoface mini-mead --help`` and other light commands
that import a submodule of this package do not pay for importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchmarkDataModule": "emoface.datamodules.method_videos",
    "MEADDataModule": "emoface.datamodules.mead",
}

__all__ = ["BenchmarkDataModule", "MEADDataModule"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
