"""benchmarks/pipeline_learning.py end to end in ``--tiny`` mode (plumbing only: tiny networks, a few steps).

The three stages come from the session's ``tiny_pipeline`` fixture (trained through ``emoface fit``
on the embedded 3-actor mini-MEAD, whose cache the script is given); the script trains the two
evaluators for one epoch, renders 4 held-out clips from their real relocated landmarks, generates
them from audio through both predict paths, and prints both tables and the criteria.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from benchmark_support import load_benchmark


def test_pipeline_learning_tiny_prints_tables_and_criteria(
    tiny_pipeline: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emoface.datamodules import MEADDataModule

    bench = load_benchmark("pipeline_learning")
    # The embedded mini-MEAD the tiny overlays of configs/tests/ train on (tiny_pipeline built it).
    cache = MEADDataModule(mini_mead_speakers=3, mini_mead_clips=1, mini_mead_seconds=1.0, size=64).cache_dir
    threads = torch.get_num_threads()
    try:
        status = bench.main([
            "--tiny", "--out", str(tmp_path), "--cache-dir", str(cache), "--device", "cpu",
            "--renderer", str(tiny_pipeline["renderer"]), "--l2k", str(tiny_pipeline["l2k"]),
            "--s2l", str(tiny_pipeline["s2l"]),
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out

    assert "TINY RUN (--tiny)" in printed and "plumbing only" in printed
    for row in ("L2K + renderer (real relocated landmarks)", "renderer reconstruction (estimator keypoints)",
                "source frame repeated", "renderer driven by the source's keypoints held still",
                "generated (S2L -> relocation -> L2K -> renderer)", "real held-out videos",
                "renderer reconstruction of the free-motion videos"):  # fmt: skip
        assert f"| {row} |" in printed, row
    # 4 held-out clips were generated from audio (stage-1 files, then videos with sound) and scored.
    assert "4 held-out clips" in printed
    assert len(list((tmp_path / "stage1").rglob("*.npz"))) == 4
    assert len(list((tmp_path / "videos").rglob("*.mp4"))) == 4
    assert (tmp_path / "evaluators" / "syncnet.pth").is_file() and (
        tmp_path / "evaluators" / "emotion_fan.pth"
    ).is_file()
    # The pipeline rows hold numbers (LSE-C, accuracy), not n/a.
    generated = next(line for line in printed.splitlines() if line.startswith("| generated"))
    cells = [cell.strip() for cell in generated.strip("|").split("|")]
    assert float(cells[1]) >= 0 and 0.0 <= float(cells[-1]) <= 1.0
    # Five criteria, each PASS or FAIL, and the exit status says whether one failed; the emotion
    # accuracy of the generated videos is reported beside the real ones', not judged.
    verdicts = re.findall(r"^\s+\[(PASS|FAIL)\] ", printed, flags=re.MULTILINE)
    assert len(verdicts) == 5, printed
    assert re.search(r"\[info\] emotion accuracy of the generated videos [0-9.]+, of the real ones [0-9.]+", printed)
    assert re.search(r"yaw correlation >= 0.7 \(-?[0-9.]+\)", printed)
    assert status == (1 if "FAIL" in verdicts else 0)
    # The evaluators trained here load back for a rerun (--syncnet / --emotion-fan).
    syncnet = bench.load_syncnet(tmp_path / "evaluators" / "syncnet.pth")
    emotion_fan = bench.load_emotion_fan(tmp_path / "evaluators" / "emotion_fan.pth")
    assert syncnet.image_size == 64 and emotion_fan.image_size == 64
