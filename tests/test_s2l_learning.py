"""The stage-1 learning check: runs benchmarks/s2l_learning.py (slow: ~10 minutes on 2 CPU cores)."""

from __future__ import annotations

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
    print(result.stdout[-5000:])
    assert "S2L learning table" in result.stdout, result.stderr[-5000:]
    assert "S2L motion table" in result.stdout and "S2L, deterministic" in result.stdout
    assert result.returncode == 0, result.stdout[-3000:]
