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


def test_scoring_follows_the_threads_file_and_training_keeps_one_thread(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """.ci/run writes 1 while both lanes run and 2 once one is done: scoring takes it up (no file, or
    one being rewritten, keeps the run's setting); trainings keep one thread under .ci/run whatever
    the file says, and ``OMP_NUM_THREADS`` elsewhere."""
    import torch
    from trained_once import THREADS_FILE, lane_threads, use_training_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv(THREADS_FILE, raising=False)
    assert lane_threads() == 1
    threads_file = tmp_path / "threads-per-lane"
    monkeypatch.setenv(THREADS_FILE, str(threads_file))
    assert lane_threads() == 1  # not written yet
    threads_file.write_text("")
    assert lane_threads() == 1  # being rewritten
    threads_file.write_text("2\n")
    assert lane_threads() == 2

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        use_training_threads()
        assert torch.get_num_threads() == 1  # under .ci/run, although the file says 2
        monkeypatch.delenv(THREADS_FILE)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        use_training_threads()
        assert torch.get_num_threads() == 2  # elsewhere: the run's own setting
    finally:
        torch.set_num_threads(before)
