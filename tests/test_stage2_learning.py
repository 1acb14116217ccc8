"""Stage 2 and the whole pipeline learn (slow): issue 25's pipeline criteria
(benchmarks/pipeline_learning.py) on the two held-out actors (44 clips), all asserted.

Stage 2 (configs/l2k.yaml, 3000 steps) trains on the renderer of tests/test_renderer_learning.py
(configs/renderer_small.yaml as it ships) and the free-motion data; from audio, the pipeline's
stage 1 (configs/s2l.yaml, 12 epochs on the default data) writes the held-out clips' stage-1 files,
stage 2's predict path renders them, and the pipeline's SyncNet (trained on the default data's
training actors; tests/test_pipeline_stage1_and_judge.py checks it on the real clips) judges lip
sync. Each model is trained once per CI run (tests/trained_once.py): ``.ci/run`` trains stage 1 and
the SyncNet in its other lane, and this lane reuses them (or waits for them).

The benchmark's run as CI trains it (one thread, seed 0, the shipped configs, a stage 1 and SyncNet
trained by this suite's functions; 2-core Intel Xeon, 2026-12-05): L2K 24.82 dB against 21.10 for
"source frame repeated" and 21.66 held still, keypoint error 0.0522 against 0.2037, generated yaw
against stage 1's r 0.929, AV offset found within a frame on 93 % of the generated clips (60 %
asked). A later `.ci/run` (the same code and settings on a later fresh install; its renderer scored
higher, tests/test_renderer_learning.py): L2K 24.98 dB against 21.10 / 21.68, keypoint error 0.0564
against 0.1804, yaw r 0.954, AV offset found on 100 % of the generated clips (LSE-C 7.3, real videos
14.1) and on 91 % of the renderer's reconstructions. Lip sync was the last criterion met: with the
renderer's expression prior at 5 (the config before) CI's runs found the offset on 27 % and 52 % of
clips, because the renderer's keypoints carried little of the mouth's opening
(benchmarks/renderer_learning.py, "Where the mouth is lost"). Then a `.ci/run` of the same config
with the renderer's convolutions channels-last on the CPU and its Adam fused (2026-12-06: the same
maths, other float rounding, so another training trajectory): L2K 24.35 dB against 21.10 / 21.71,
keypoint error 0.0564 against 0.1659, yaw r 0.907, and the AV offset found on **11 %** of the
generated clips (median offset +10, LSE-C 2.2 against 2.7 with the audio shifted) and on 20 % of
the reconstructions: that renderer drew no mouth that follows the speech (a second run of the same
code: 9 %, 20 %). So the renderer's landmark guide now also pays for the mouth's shape
(``landmark_guide_shape_weight`` 16, configs/renderer_small.yaml), and its inner-lip keypoints
follow the opening with r 0.74 / 0.83 (seeds 0 / 1, one thread): L2K 24.53 / 25.25 dB against
21.10 for the still source and 21.90 / 21.51 held still, keypoint error 0.0548 / 0.0550 against 0.1753 / 0.1745, yaw r
0.908 / 0.866, the AV offset found on 91 % / 100 % of the generated clips and 64 % / 82 % of the
reconstructions (2026-12-06, the benchmark scripts with this suite's stage 1 and SyncNet).

The generated videos' emotion accuracy is reported by the benchmark, not judged; CI does not train
the emotion classifier (about 6 minutes), so these checks leave it out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from benchmark_support import load_benchmark, print_checks
from trained_once import use_lane_threads


@pytest.fixture(scope="session")
def pipeline_bench() -> Any:
    return load_benchmark("pipeline_learning")


@pytest.fixture(scope="session")
def l2k_result(
    pipeline_bench: Any, trained_l2k: Path, trained_renderer: Path, free_motion_cache: Path
) -> dict[str, Any]:
    """Stage 2's table: held-out clips rendered from their real relocated landmarks."""
    use_lane_threads()  # scoring, not training: the other lane's core once it is free
    system = pipeline_bench.load_l2k(trained_l2k, trained_renderer)
    result = pipeline_bench.evaluate_l2k(system, free_motion_cache, torch.device("cpu"), None)
    print(pipeline_bench.l2k_table(result))
    return result


@pytest.fixture(scope="session")
def pipeline_result(pipeline_bench: Any, trained_l2k: Path, trained_renderer: Path, free_motion_cache: Path,
                    pipeline_cache: Path, pipeline_s2l: Path, pipeline_syncnet: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # fmt: skip
    """The pipeline's table: the held-out clips generated from their audio through both predict
    paths (stage 1 on the default data, stage 2 from each free-motion clip's first frame)."""
    bench = pipeline_bench
    use_lane_threads()
    bench.check_same_held_out(pipeline_cache, free_motion_cache)
    out = tmp_path_factory.mktemp("pipeline-from-audio")
    stage1 = bench.predict_stage1(pipeline_s2l, pipeline_cache, out / "stage1", "cpu", None)
    videos = bench.render_stage2(trained_l2k, trained_renderer, stage1, free_motion_cache, out / "videos", "cpu", None)
    renderer = bench.load_l2k(trained_l2k, trained_renderer).inference_renderer()
    nets = {"syncnet": bench.load_syncnet(pipeline_syncnet).eval()}
    result = bench.evaluate_pipeline(videos, stage1, nets, renderer, pipeline_cache, free_motion_cache, None)
    print(bench.pipeline_table(result))
    return result


def assert_all(checks: list[tuple[str, bool]]) -> None:
    failed = print_checks(checks)
    assert not failed, "; ".join(failed)


@pytest.mark.slow
def test_stage2_criteria(pipeline_bench: Any, l2k_result: dict[str, Any]) -> None:
    """L2K-rendered frames 2 dB above "source frame repeated" and 1 dB above the renderer driven by
    the source's keypoints held still; keypoint error at most half of held still's."""
    assert l2k_result["clips"] == 44
    checks = pipeline_bench.l2k_criteria(l2k_result)
    assert len(checks) == 3
    assert_all(checks)


@pytest.mark.slow
def test_videos_from_audio_turn_the_head_with_stage1(pipeline_bench: Any, pipeline_result: dict[str, Any]) -> None:
    """From audio, the video's head (as the renderer's estimator reads it) turns with stage 1's yaw
    (r >= 0.7), and the lip-sync judge is fair on these clips (the real videos are found in sync)."""
    assert pipeline_result["clips"] == 44
    checks = pipeline_bench.pipeline_criteria(pipeline_result)
    assert len(checks) == 2
    assert_all([check for check in checks if "yaw" in check[0]])
    assert pipeline_result[pipeline_bench.REAL]["offset_within"] >= 0.9


@pytest.mark.slow
def test_videos_from_audio_lip_sync(pipeline_bench: Any, pipeline_result: dict[str, Any]) -> None:
    """The SyncNet finds the AV offset within one frame on >= 60 % of the generated clips (the
    renderer's reconstructions of the real frames are reported beside it: how much of the mouth the
    renderer draws at all)."""
    checks = [check for check in pipeline_bench.pipeline_criteria(pipeline_result) if "offset" in check[0]]
    assert len(checks) == 1
    reconstruction = pipeline_result[pipeline_bench.RECONSTRUCTED]["offset_within"]
    print(f"the renderer's reconstructions of the real frames: in sync on {reconstruction:.0%} of clips")
    assert_all(checks)
