"""Models and data the slow learning checks train once, shared by every pytest process of a run.

CI runs the slow checks in two lanes (two pytest processes side by side, ``.ci/run``) and some
lanes need what another trains (the pipeline's stage 1 and SyncNet, their data). ``trained_once``
keeps each artefact in ``EMOFACE_SLOW_MODELS/<key>`` (``.ci/run`` makes one fresh directory per
run; unset, a directory private to the pytest session): the first process to ask builds it under
an exclusive file lock, any other process asking meanwhile waits on the lock, then reuses it.
Keys name what was built and with which seed; the directory is not keyed by code version, so give
each run of changed code a fresh one.

The lanes share the machine's two cores, one thread each, until one lane is done; then ``.ci/run``
writes 2 into ``EMOFACE_CI_THREADS_FILE`` and the other lane's scoring takes both
(:func:`use_lane_threads`). Trainings keep one thread (:func:`use_training_threads`), so a model
and its figures do not depend on which lane finishes first.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

_PRIVATE_ROOT = Path(tempfile.mkdtemp(prefix="emoface-slow-models-"))
DONE = "done.txt"


def store_root() -> Path:
    """``EMOFACE_SLOW_MODELS`` (shared by the processes of a CI run) or this session's own directory."""
    root = Path(os.environ.get("EMOFACE_SLOW_MODELS") or _PRIVATE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def trained_once(key: str, build: Callable[[Path], Path]) -> Path:
    """The artefact ``build(folder)`` returns (a path inside ``folder``), built once per store.

    ``folder`` is ``<store>/<key>``; a build that raises leaves no trace (the next caller builds
    again), and one that finished is marked by ``done.txt`` holding the artefact's path relative
    to the folder and the seconds it took.
    """
    root = store_root()
    folder, done = root / key, root / key / DONE
    with open(root / f"{key}.lock", "w") as lock:
        waited = time.time()
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building it: wait for it
        waited = time.time() - waited
        if done.is_file():
            relative, seconds = done.read_text().split("\n")[:2]
            if waited > 1:
                print(f"[trained_once] {key}: waited {waited:.0f} s for another process that built it in {seconds} s")
            return folder / relative
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir()
        start = time.time()
        try:
            artefact = Path(build(folder))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        seconds = time.time() - start
        done.write_text(f"{artefact.relative_to(folder)}\n{seconds:.0f}\n")
        print(f"[trained_once] {key}: built in {seconds:.0f} s -> {artefact}")
        return artefact


THREADS_FILE = "EMOFACE_CI_THREADS_FILE"


def lane_threads() -> int:
    """The threads this process may use now: the number in ``$EMOFACE_CI_THREADS_FILE`` (``.ci/run``
    writes 1 while both lanes run, 2 once one is done), else ``OMP_NUM_THREADS``."""
    path = os.environ.get(THREADS_FILE)
    if path:
        try:
            return max(1, int(Path(path).read_text()))
        except (OSError, ValueError):
            pass  # being rewritten, or gone with the run: keep the run's own setting
    return int(os.environ.get("OMP_NUM_THREADS", "2"))


def use_lane_threads() -> None:
    """``torch.set_num_threads(lane_threads())`` when that changes the threads."""
    threads = lane_threads()
    if threads != torch.get_num_threads():
        print(f"[trained_once] {threads} threads from now on (step time changes with them)")
        torch.set_num_threads(threads)


def use_training_threads() -> None:
    """The threads a model trains with: 1 under ``.ci/run`` (``$EMOFACE_CI_THREADS_FILE`` set), the
    benchmarks' ``--threads 1``, whichever lane finishes first; else ``OMP_NUM_THREADS`` (2 unless
    set). The thread count changes a training's float rounding, and with it the model and its
    figures: CI's stage 2, on two threads in one run (the other lane was done) and on one in the
    next, scored 0.757 and 0.665 in tests/test_renderer_learning.py's generate check."""
    threads = 1 if os.environ.get(THREADS_FILE) else int(os.environ.get("OMP_NUM_THREADS", "2"))
    if threads != torch.get_num_threads():
        print(f"[trained_once] training with {threads} thread(s)")
        torch.set_num_threads(threads)
