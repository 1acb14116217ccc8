"""Stage 1 through the ``emoface`` CLI on a tiny embedded mini-MEAD: fit, resume, test, predict."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from emoface.cli import main

REPO = Path(__file__).resolve().parents[1]
S2L = [str(REPO / "configs/s2l.yaml"), str(REPO / "configs/tests/tiny_s2l.yaml")]
CLASSIFIER = [str(REPO / "configs/cue_emotion_classifier.yaml"), str(REPO / "configs/tests/tiny_cue_emotion_classifier.yaml")]


def configs(files: list[str]) -> list[str]:
    return [arg for path in files for arg in ("--config", path)]


def emoface(*args: str) -> None:
    assert main(list(args)) == 0


def read_metrics(root: Path) -> list[dict[str, str]]:
    files = sorted(root.rglob("metrics.csv"))
    assert files, f"no metrics.csv under {root}"
    with open(files[-1], newline="") as handle:
        return list(csv.DictReader(handle))


def losses_by_step(rows: list[dict[str, str]]) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary directory: the configs' relative ``runs/...`` paths land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_print_config_resolves_every_class(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs([str(REPO / "configs/s2l.yaml")]), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "emoface.lightning_modules.SpeechToLandmarks" in printed
    assert "T_max: 60" in printed  # omegaconf interpolation of ${trainer.max_epochs}


def test_fit_fast_dev_run(in_tmp: Path) -> None:
    emoface("fit", *configs(S2L), "--trainer.fast_dev_run", "true")


def test_fit_writes_checkpoints_metrics_and_figures_and_resume_continues(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_in(name: str, *args: str) -> Path:
        folder = in_tmp / name
        folder.mkdir()
        monkeypatch.chdir(folder)  # the configs write to runs/s2l/... relative to the working directory
        emoface(*args)
        return folder / "runs/s2l"

    # straight run: 2 epochs x 2 batches = 4 steps
    straight_dir = run_in("straight", "fit", *configs(S2L), "--model.init_args.video_every_n_epochs", "2")
    rows = read_metrics(straight_dir)
    straight = losses_by_step(rows)
    logged = set().union(*[{k for k, v in r.items() if v} for r in rows])
    for key in ("val/lmd", "val/m_lmd", "val/f_lmd", "val/gaze_error", "val/rotation_error",
                "val/translation_error", "val/emotion_accuracy", "val/posed_lmd", "train/landmark",
                "train/motion", "val/motion/std_ratio/head_yaw", "val/motion/std_ratio/gaze_pitch",
                "val/motion/velocity_ratio/head_pitch", "val/motion_fd", "val/motion_energy_corr",
                "val/motion_energy_corr_real"):  # fmt: skip
        assert key in logged, key
    assert list(straight_dir.rglob("figures/val_cues_epoch001.png"))
    assert list(straight_dir.rglob("figures/val_motion_epoch001.png"))  # generated beside real motion per emotion
    assert list(straight_dir.rglob("figures/val_cue_frames_epoch001_step000004.png"))  # landmarks/gaze/pose grid
    videos = [p.name for p in straight_dir.rglob("figures/val_cue_video_*.mp4")]
    assert videos == ["val_cue_video_epoch000_step000002.mp4"]  # every 2 epochs: epoch 0 only
    last_path = straight_dir / "checkpoints/last.ckpt"
    last = torch.load(last_path, map_location="cpu", weights_only=True)
    assert last["global_step"] == 4

    # interrupted after epoch 1, then resumed from its last checkpoint
    # (T_max follows max_epochs by interpolation: the interrupted run keeps the 2-epoch schedule)
    first_dir = run_in("first", "fit", *configs(S2L), "--trainer.max_epochs", "1",
                       "--model.init_args.scheduler.init_args.T_max", "2")  # fmt: skip
    resumed_dir = run_in("resumed", "fit", *configs(S2L), "--ckpt_path", str(first_dir / "checkpoints/last.ckpt"))
    resumed_ckpt = torch.load(resumed_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert resumed_ckpt["global_step"] == 4 and resumed_ckpt["epoch"] == 1
    first = losses_by_step(read_metrics(first_dir))
    resumed = losses_by_step(read_metrics(resumed_dir))
    assert sorted(first) == [0, 1] and sorted(resumed) == [2, 3]  # the resumed run continues the step count
    for step in (0, 1):
        assert first[step] == pytest.approx(straight[step], rel=1e-5)
    for step in (2, 3):  # ... and follows the uninterrupted loss curve (same windows, weights, random draws)
        assert resumed[step] == pytest.approx(straight[step], rel=1e-5)

    # test and predict with the checkpoint
    tested_dir = run_in("tested", "test", *configs(S2L), "--ckpt_path", str(last_path))
    values = {k: float(v) for r in read_metrics(tested_dir) for k, v in r.items() if v and k.startswith("test/")}
    assert {"test/m_lmd", "test/gaze_error", "test/rotation_error", "test/emotion_accuracy"} <= set(values)
    assert all(np.isfinite(v) for v in values.values())

    cues = run_in("predicted", "predict", *configs(S2L), "--ckpt_path", str(last_path)) / "predictions"
    files = sorted(cues.rglob("*.npz"))
    assert len(files) == 3  # limit_predict_batches: 3 whole clips, one file each
    with np.load(files[0]) as data:
        frames = data["normalized_landmarks"].shape[0]
        assert frames == 25  # a whole 1-second clip at 25 fps
        assert data["relocated"].shape == (frames, 70, 3)
        assert data["gaze"].shape == (frames, 2, 2) and data["rotation"].shape == (frames, 3, 3)
        assert data["translation"].shape == (frames, 3) and data["scale"].shape == (frames,)
        assert str(data["clip"]) == files[0].relative_to(cues).with_suffix("").as_posix()
        assert np.isfinite(data["relocated"]).all()
        assert int(data["motion_seed"]) == 0
        rotation = data["rotation"].copy()
    # another motion seed: the same clip's pose is another sample (configs/tests/tiny_s2l.yaml is stochastic)
    other = run_in("reseeded", "predict", *configs(S2L), "--ckpt_path", str(last_path),
                   "--model.init_args.motion_seed", "1") / "predictions"  # fmt: skip
    with np.load(other / files[0].relative_to(cues)) as data:
        assert int(data["motion_seed"]) == 1 and np.abs(data["rotation"] - rotation).max() > 1e-5


def test_frozen_classifier_from_a_cli_checkpoint(in_tmp: Path) -> None:
    emoface("fit", *configs(CLASSIFIER))
    checkpoint = in_tmp / "runs/cue_emotion_classifier/checkpoints/last.ckpt"
    assert checkpoint.is_file()
    emoface("fit", *configs(S2L), "--trainer.fast_dev_run", "true",
            "--model.init_args.emotion_classifier_checkpoint", str(checkpoint))  # fmt: skip


def test_missing_classifier_checkpoint_is_a_clear_error(in_tmp: Path) -> None:
    # jsonargparse re-raises the module's FileNotFoundError as a ValueError carrying its message
    with pytest.raises((FileNotFoundError, ValueError), match="cue_emotion_classifier.yaml"):
        main(["fit", *configs(S2L), "--trainer.fast_dev_run", "true",
              "--model.init_args.emotion_classifier_checkpoint", "nowhere.ckpt"])  # fmt: skip
