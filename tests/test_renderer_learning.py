"""The renderer learns (slow): configs/renderer_small.yaml as it ships (5000 steps, the horizontal
flip, the landmark guide on the mouth with its shape term, the expression prior at 1) trained
through `emoface fit` by benchmarks/renderer_learning.py on the free-motion 24-actor, 64 px
mini-MEAD (heads turn, tilt and move; issue 25), scored on the two held-out actors (44 clips) against the issue's criteria, all
asserted: PSNR 3 dB above "source frame repeated", SSIM above it, driven by each frame's keypoints
2 dB above the same renderer driven by the source's keypoints held still, the estimator's yaw and
pitch correlating >= 0.9 with the known pose.

The renderer is trained once per CI run (``trained_renderer``, tests/trained_once.py) and shared
with stage 2's checks (tests/test_stage2_learning.py) and the generate check below. Runs of the
shipped config (2-core Intel Xeon, 2026-12-05; driven / held still / source repeated in dB, SSIM
against the still source's 0.641, estimator pitch r):

    benchmark, seed 0, one thread (as CI)   24.71 / 21.66 / 21.10   0.773   0.919
    benchmark, seed 1, two threads          24.50 / 21.89 / 21.10   0.761   0.926
    .ci/run, seed 0, one thread (fresh)     25.08 / 21.68 / 21.10   0.788   0.913
    benchmark, seed 1, one thread (fresh)   24.60 / 21.92 / 21.10   0.768   0.924

so margins of +0.40 to +0.98 dB over the 3 dB asked, +0.61 to +1.40 dB over the keypoints' 2 and
+0.013 to +0.026 over the pitch's 0.9 (yaw r 0.986-0.991). Training repeats itself to the last digit
with the same install, seed and thread count (CI repeated the benchmark's runs exactly), but the two
seed-0 rows, the same code and settings, differ: the rows marked fresh ran on a later fresh install
of the registry's packages (the cause is not traced further), so CI's figures can move by this much.
The configs before met fewer criteria (benchmarks/renderer_learning.py's docstring has the record:
pitch r 0.865-0.937 and PSNR margins -0.16 to +0.75 dB across seeds and configs), so a change to the
renderer, its data or its config that costs these margins fails here, as it should; the pitch has
the least room. With the guide's shape term (``landmark_guide_shape_weight`` 16, the config since
2026-12-06; the benchmark, one thread, the two seeds side by side):

    benchmark, seed 0, one thread (as CI)   24.59 / 21.90 / 21.10   0.766   0.941
    benchmark, seed 1, one thread           25.08 / 21.51 / 21.10   0.789   **0.873**

seed 0 meets every criterion (+0.49 and +0.68 dB), seed 1 every one but the pitch, which this test
would fail with that seed.

``emoface generate`` draws with it (issue 25, item 6): with stage 2 trained on it and the pipeline's
stage 1 (tests/test_stage2_learning.py's models), a real photo and 4 s of speech give frames with
contrast that move with their cues (CI's models, 2026-12-06: frame contrast 0.29, change between
frames 3.8e-3, correlation of image change with cue change 0.936; see ``MIN_CUE_CORRELATION`` for
the other models and the shorter speech that made the correlation unsteady).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmark_support import load_benchmark, print_checks
from conftest import SLOW_SEED
from trained_once import use_lane_threads


@pytest.fixture(scope="session")
def renderer_run(trained_renderer: Path, free_motion_cache: Path) -> dict[str, Any]:
    """The trained renderer evaluated on the held-out actors (the untrained one, 19.25 dB, is left
    out: the criteria's still source, 21.13 dB, is the higher bar)."""
    bench = load_benchmark("renderer_learning")
    use_lane_threads()  # scoring, not training: the other lane's core once it is free
    result = bench.evaluate(trained_renderer, free_motion_cache)
    print(bench.table(result))
    return {"bench": bench, "result": result}


@pytest.mark.slow
def test_renderer_meets_the_learning_criteria(renderer_run: dict[str, Any]) -> None:
    """Every criterion of benchmarks/renderer_learning.py (issue 25, item 3): held out, the trained
    renderer is well above "source frame repeated" (PSNR and SSIM), its warp follows the keypoints
    (driven by each frame's keypoints against the same renderer driven by the source's keypoints held
    still: the collapse of issue 25 scored the two alike, to 1e-7), and its estimator reads the
    head's yaw and pitch."""
    bench, result = renderer_run["bench"], renderer_run["result"]
    assert result["clips"] == 44
    driven, source, held = result["renderer"], result["source repeated"], result["held still"]
    report(f"PSNR driven - source repeated >= {bench.MIN_PSNR_GAIN_DB:g} dB", driven["psnr"] - source["psnr"],
           bench.MIN_PSNR_GAIN_DB)  # fmt: skip
    report(f"PSNR driven - held still >= {bench.MIN_KEYPOINT_GAIN_DB:g} dB", driven["psnr"] - held["psnr"],
           bench.MIN_KEYPOINT_GAIN_DB)  # fmt: skip
    for name in ("yaw", "pitch"):
        report(f"estimator {name} correlation with preprocessing", result[f"{name}_correlation"],
               bench.MIN_POSE_CORRELATION)  # fmt: skip
    checks = bench.criteria(result)
    assert len(checks) >= 5
    failed = print_checks(checks)
    assert not failed, "issue 25's renderer criteria not met: " + "; ".join(failed)


def report(text: str, value: float, threshold: float) -> None:
    """One criterion with its value over its threshold (how close it passes; issue 24)."""
    print(f"{text}: {value:.3f} vs {threshold:.3f} [value/threshold {value / threshold:.3f}]")


MIN_FRAME_CONTRAST = 0.05  # measured 0.26; a flat grey frame: about 0
MIN_FRAME_MOTION = 1e-3  # measured 2.4e-3; a tiny stage 1's nearly still cues 8e-5; a collapsed warp 1e-7
# Measured over 4 s of speech (99 frames after the first): 0.936 / 0.949 with CI's renderer and its
# stage 2 trained on one / two threads, 0.968 with the seed-1 renderer and its stage 2. Over 1.3 s
# (31 frames, the test's speech until 2026-12-06) the same models gave 0.665 / 0.757 / 0.824: too
# little motion for the statistic, which then turned on whether a wide mouth opening or the head's
# drift came first (earlier: 0.95 benchmark, 0.81 CI with expression prior 5, 0.80 / 0.87 prior 1).
MIN_CUE_CORRELATION = 0.7
GENERATE_SECONDS = 4.0


@pytest.fixture(scope="session")
def generated_video(trained_renderer: Path, trained_l2k: Path, pipeline_s2l: Path, photo: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:  # fmt: skip
    """`emoface generate` with the pipeline's checkpoints (the renderer, stage 2 on it and stage 1,
    trained through `emoface fit` as users train them): a real photo and ``GENERATE_SECONDS`` of
    speech to a video and its cues."""
    from conftest import synthetic_speech

    from emoface.cli import main
    from emoface.io.media import read_video

    speech = synthetic_speech(tmp_path_factory.mktemp("speech-generate"), GENERATE_SECONDS)
    out = tmp_path_factory.mktemp("generate-trained") / "talking.mp4"
    assert main(["generate", "--audio", str(speech), "--image", str(photo), "--emotion", "happy", "--s2l", str(pipeline_s2l),
                 "--l2k", str(trained_l2k), "--renderer", str(trained_renderer), "--landmark-backend", "dlib", "--device", "cpu",
                 "--seed", str(SLOW_SEED), "--save-cues", "--quiet", "-o", str(out)]) == 0  # fmt: skip
    with np.load(out.with_name("talking.cues.npz")) as cues:
        points = np.asarray(cues["relocated"], dtype=np.float64)
    return {"frames": read_video(out).frames.astype(np.float64) / 255.0, "points": points}


@pytest.mark.slow
def test_generate_draws_frames_that_move_with_the_cues(generated_video: dict[str, np.ndarray]) -> None:
    """Issue 25, item 6: with trained checkpoints a photo and speech give a drawn face that moves
    with its cues (before, every generated video was flat grey, or one frame repeated)."""
    frames, points = generated_video["frames"], generated_video["points"]  # (T, H, W, 3), (T, 70, 3)
    count = min(len(frames), len(points))
    frames, points = frames[:count], points[:count]
    contrast = float(frames.std(axis=(1, 2, 3)).min())
    report("least contrast of a frame (pixel std)", contrast, MIN_FRAME_CONTRAST)
    assert contrast >= MIN_FRAME_CONTRAST
    motion = float(np.abs(np.diff(frames, axis=0)).mean())
    report("mean change between consecutive frames", motion, MIN_FRAME_MOTION)
    assert motion >= MIN_FRAME_MOTION
    # How far each frame is from the first follows how far its landmarks are from the first frame's.
    image_change = np.abs(frames - frames[:1]).mean(axis=(1, 2, 3))
    cue_change = np.linalg.norm(points - points[:1], axis=-1).mean(-1)
    correlation = float(np.corrcoef(image_change[1:], cue_change[1:])[0, 1])
    report("correlation of image change with cue change (from frame 0)", correlation, MIN_CUE_CORRELATION)
    assert correlation >= MIN_CUE_CORRELATION


@pytest.mark.slow
def test_a_2d_warp_of_the_source_can_beat_the_still_source(free_motion_cache: Path) -> None:
    """The headroom the renderer criteria assume: on the same held-out clips, the first frame warped
    by a 2D transform fitted to the true landmarks is well above the first frame repeated (measured:
    similarity 24.47 dB, affine 24.81, piecewise affine 26.85, source repeated 21.38)."""
    scores = load_benchmark("renderer_learning").warp_headroom(free_motion_cache)
    print(scores)
    assert scores["affine"] >= scores["source repeated"] + 2.5
    assert scores["piecewise affine"] > scores["affine"] > scores["similarity"] > scores["source repeated"]
