"""tests/trained_once.py: what the slow checks of CI's two lanes train once and share."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from trained_once import trained_once


def _build_slowly(folder: Path) -> Path:
    """Counts its builds in the store's ``builds.txt``; takes long enough for the other process to ask."""
    with open(folder.parent / "builds.txt", "a") as log:
        log.write("built\n")
    time.sleep(0.5)
    artefact = folder / "model.ckpt"
    artefact.write_text("weights")
    return artefact


def _ask(store: str, results: multiprocessing.Queue) -> None:
    import os

    os.environ["EMOFACE_SLOW_MODELS"] = store
    results.put(str(trained_once("model-s0", _build_slowly)))


def test_two_processes_asking_at_once_build_it_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_ask, args=(str(tmp_path), results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    paths = {results.get(timeout=5) for _ in workers}
    assert paths == {str(tmp_path / "model-s0" / "model.ckpt")}
    assert (tmp_path / "builds.txt").read_text() == "built\n"
    assert (tmp_path / "model-s0" / "model.ckpt").read_text() == "weights"


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("EMOFACE_SLOW_MODELS", str(tmp_path))

    def fail(folder: Path) -> Path:
        (folder / "half-written.ckpt").write_text("")
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="training diverged"):
        trained_once("model-s0", fail)
    assert not (tmp_path / "model-s0").exists()
    assert trained_once("model-s0", _build_slowly) == tmp_path / "model-s0" / "model.ckpt"
    # Built: asked again, it is reused, not rebuilt.
    assert trained_once("model-s0", fail) == tmp_path / "model-s0" / "model.ckpt"
    assert (tmp_path / "builds.txt").read_text() == "built\n"
