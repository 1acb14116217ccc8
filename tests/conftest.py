"""Shared fixtures: a small mini-MEAD made once per test session, and an offline environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Tests never touch the user's caches, never reach the network, and never log to wandb servers.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="emoface-tests-"))
os.environ["EMOFACE_CACHE"] = str(_SESSION_HOME / "emoface-cache")
os.environ["TORCH_HOME"] = str(_SESSION_HOME / "torch-home")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("OMP_NUM_THREADS", "2")

SLOW_SEED = int(os.environ.get("EMOFACE_SLOW_SEED", "0"))
"""Seed of the slow learning checks (data and training; 0 by default, as CI runs them). Another
seed re-runs every learning check on other data and initialisations, to measure how close its
criteria pass: ``EMOFACE_SLOW_SEED=1 pytest -m slow``."""


@pytest.fixture(scope="session")
def mini_mead_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mini-MEAD tree: 3 actors, one 1-second 64x64 clip per emotion and level."""
    from emoface.datamodules.mini_mead import make_mini_mead

    return make_mini_mead(tmp_path_factory.mktemp("mini-mead"), speakers=3, clips=1, seconds=1.0, size=64, seed=0)


@pytest.fixture(scope="session")
def mini_mead_128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mini-MEAD tree at 128x128 (eyes large enough for image-based gaze): 3 actors, 1 s clips."""
    from emoface.datamodules.mini_mead import make_mini_mead

    return make_mini_mead(tmp_path_factory.mktemp("mini-mead-128"), speakers=3, clips=1, seconds=1.0, size=128, seed=0)


@pytest.fixture(scope="session")
def mead_cache_128(mini_mead_128: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mini_mead_128`` preprocessed with the groundtruth backend into a feature cache (128 px crops)."""
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    cache = tmp_path_factory.mktemp("mead-cache-128")
    summary = preprocess(mini_mead_128, cache, PreprocessOptions(backend="groundtruth", size=128), progress=False)
    assert summary.failed == 0 and summary.ok_total == 66
    return cache


@pytest.fixture(scope="session")
def evaluators_mead_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The feature cache benchmarks/evaluators_learning.py trains the evaluators on (96 px crops).

    24 mini-MEAD actors (22 train, 1 val, 1 test), one 2-second clip per emotion and level, built
    once per session with the benchmark's own ``build_cache`` (about two minutes on 2 CPU cores).
    """
    from benchmark_support import load_benchmark

    return load_benchmark("evaluators_learning").build_cache(
        tmp_path_factory.mktemp("evaluators-mead"), size=96, speakers=24, seconds=2.0, seed=SLOW_SEED
    )


@pytest.fixture(scope="session")
def trained_evaluators(evaluators_mead_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SyncNet and Emotion-FAN trained once per session by benchmarks/evaluators_learning.py (its
    defaults, on ``evaluators_mead_cache``) and scored on held-out actors (about 10 minutes on 2 CPU
    cores). Shared by the evaluators' learning checks and the benchmark's trained-evaluator check.

    Returns:
        ``results`` (with ``networks``: the trained ``syncnet`` and ``emotion`` networks), the
        checked ``criteria`` and the benchmark's default ``args``.
    """
    from benchmark_support import load_benchmark

    bench = load_benchmark("evaluators_learning")
    out = tmp_path_factory.mktemp("evaluators-run")
    args = bench.parse_args(["--out", str(out), "--cache-dir", str(evaluators_mead_cache), "--seed", str(SLOW_SEED)])
    results, checks = bench.run(args)
    print(bench.sync_table(results["sync"]))
    print(bench.emotion_table(results["emotion"]))
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    return {"results": results, "criteria": checks, "args": args}


# ----------------------------------------------------------------- the slow pipeline checks (issue 25)
# Trained once per CI run and shared by its lanes (tests/trained_once.py): the renderer and stage 2
# on the free-motion data (lane 1), stage 1 and the SyncNet that judges lip sync on the default
# data (lane 0 trains them first; lane 1 reuses them, or waits for them).
PIPELINE_L2K_STEPS = 3000  # configs/l2k.yaml's and benchmarks/pipeline_learning.py's default
PIPELINE_S2L_EPOCHS = 12  # benchmarks/pipeline_learning.py's default (benchmarks/s2l_learning.py's)
PIPELINE_SYNC_EPOCHS = 3  # the evaluators' recipe


def _training_threads() -> None:
    """Train with a fixed thread count: 1 under ``.ci/run``, else ``OMP_NUM_THREADS`` (2 unless set;
    tests/trained_once.py's ``use_training_threads``)."""
    from trained_once import use_training_threads

    use_training_threads()


@pytest.fixture(scope="session")
def free_motion_cache() -> Path:
    """benchmarks/renderer_learning.py's cache: 24 free-motion mini-MEAD actors at 64 px (2 held out)."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("renderer_learning")
    return trained_once(f"free-motion-data-s{SLOW_SEED}", lambda root: bench.build_cache(root, seed=SLOW_SEED))


@pytest.fixture(scope="session")
def pipeline_cache() -> Path:
    """benchmarks/pipeline_learning.py's default-data cache: the same 24 actors and clips as
    ``free_motion_cache`` without the free motion (stage 1's and SyncNet's data)."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("pipeline_learning")
    return trained_once(f"pipeline-data-s{SLOW_SEED}", lambda root: bench.build_cache(root, False, SLOW_SEED))


@pytest.fixture(scope="session")
def trained_renderer(free_motion_cache: Path) -> Path:
    """configs/renderer_small.yaml as it ships (its 5000 steps) through `emoface fit`, by
    benchmarks/renderer_learning.py's ``train``: the last checkpoint."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("renderer_learning")
    _training_threads()
    return trained_once(f"renderer-s{SLOW_SEED}", lambda root: bench.train(free_motion_cache, root / "run", SLOW_SEED))


@pytest.fixture(scope="session")
def trained_l2k(trained_renderer: Path, free_motion_cache: Path) -> Path:
    """configs/l2k.yaml on ``trained_renderer`` for ``PIPELINE_L2K_STEPS`` steps, as
    benchmarks/pipeline_learning.py trains it: the last checkpoint."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("pipeline_learning")
    _training_threads()
    return trained_once(f"l2k-s{SLOW_SEED}", lambda root: bench.train_l2k(
        trained_renderer, free_motion_cache, root / "l2k", SLOW_SEED, "cpu", PIPELINE_L2K_STEPS))  # fmt: skip


@pytest.fixture(scope="session")
def pipeline_s2l(pipeline_cache: Path) -> Path:
    """Stage 1 as benchmarks/pipeline_learning.py trains it (configs/s2l.yaml, ``PIPELINE_S2L_EPOCHS``)."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("pipeline_learning")
    _training_threads()
    return trained_once(f"pipeline-s2l-s{SLOW_SEED}", lambda root: bench.train_s2l(
        pipeline_cache, root / "s2l", SLOW_SEED, "cpu", PIPELINE_S2L_EPOCHS))  # fmt: skip


@pytest.fixture(scope="session")
def pipeline_syncnet(pipeline_cache: Path) -> Path:
    """The SyncNet benchmarks/pipeline_learning.py judges lip sync with (64 px, the evaluators'
    recipe, ``PIPELINE_SYNC_EPOCHS`` epochs on the training actors)."""
    from benchmark_support import load_benchmark
    from trained_once import trained_once

    bench = load_benchmark("pipeline_learning")
    _training_threads()
    return trained_once(f"pipeline-syncnet-s{SLOW_SEED}", lambda root: bench.train_syncnet(
        pipeline_cache, root, SLOW_SEED, bench.crop_size(pipeline_cache), PIPELINE_SYNC_EPOCHS, "cpu"))  # fmt: skip


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three stages trained through `emoface fit` as a user runs them, with the tiny overlays of
    configs/tests/, once per session: the renderer (configs/renderer_small.yaml), stage 2 on it
    (configs/l2k.yaml finds it at its default relative path) and stage 1 (configs/s2l.yaml), all
    in one working directory (about a minute on 2 CPU cores).

    Returns:
        ``root`` (the working directory) and the ``renderer``, ``l2k`` and ``s2l`` last checkpoints.
    """
    from emoface.cli import main

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("tiny-pipeline")
    previous = os.getcwd()
    os.chdir(root)
    try:
        for config, overlay, extra in (
            ("renderer_small", "tiny_renderer", ["--trainer.max_epochs", "1"]),
            ("l2k", "tiny_l2k", []),
            ("s2l", "tiny_s2l", ["--trainer.max_epochs", "1"]),
        ):
            args = ["fit", "--config", str(repo / f"configs/{config}.yaml"), "--config", str(repo / f"configs/tests/{overlay}.yaml")]
            assert main([*args, *extra]) == 0, config
    finally:
        os.chdir(previous)
    runs = root / "runs"
    return {
        "root": root,
        "renderer": runs / "renderer_small/checkpoints/last.ckpt",
        "l2k": runs / "l2k/checkpoints/last.ckpt",
        "s2l": runs / "s2l/checkpoints/last.ckpt",
    }


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photo with one face: scikit-image's astronaut (512 x 512 PNG)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def synthetic_speech(folder: Path, seconds: float) -> Path:
    """``seconds`` of mini-MEAD's synthetic speech (actor M003, happy, level 3) as 44.1 kHz AAC in
    ``folder`` (generate resamples to 16 kHz as preprocessing does)."""
    import numpy as np

    from emoface.datamodules.mini_mead import make_identity, synthesize_speech
    from emoface.io.media import write_audio

    wave = synthesize_speech(np.random.default_rng(0), seconds, make_identity("M003", 0), "happy", 3, 44100)[0]
    return write_audio(folder / "speech.m4a", wave, sample_rate=44100)


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.3 s of :func:`synthetic_speech`."""
    return synthetic_speech(tmp_path_factory.mktemp("speech"), 1.3)
