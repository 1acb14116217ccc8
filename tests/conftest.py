"""Shared fixtures: a small mini-MEAD made once per test session, and an offline environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never touch the user's caches, never reach the network, and never log to wandb servers.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="emoface-tests-"))
os.environ["EMOFACE_CACHE"] = str(_SESSION_HOME / "emoface-cache")
os.environ["TORCH_HOME"] = str(_SESSION_HOME / "torch-home")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def mini_mead_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mini-MEAD tree: 3 actors, one 1-second 64x64 clip per emotion and level."""
    from emoface.datamodules.mini_mead import make_mini_mead

    return make_mini_mead(tmp_path_factory.mktemp("mini-mead"), speakers=3, clips=1, seconds=1.0, size=64, seed=0)
