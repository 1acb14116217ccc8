"""The evaluators trained with ``emoface fit`` reach the metrics: fit -> checkpoint -> load -> metric.

``configs/emotion_classifier.yaml`` and ``configs/syncnet.yaml`` run a couple of steps on the
session's small mini-MEAD cache; the checkpoints then load with no arguments (the networks are
rebuilt from the config saved in them) and feed :class:`EmotionAccuracy` / :class:`SyncScore`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from metrics_support import talking_videos

from emoface.cli import main
from emoface.emotions import NUM_EMOTIONS
from emoface.lightning_modules import EmotionClassifier, SyncNetTrainer
from emoface.metrics import EmotionAccuracy, SyncScore
from emoface.networks import EmotionFAN, SyncNet

REPO = Path(__file__).resolve().parents[1]


def fit_briefly(config: str, cache: Path) -> Path:
    """``emoface fit --config CONFIG`` for two steps on ``cache``; the checkpoint it wrote."""
    args = ["fit", "--config", str(REPO / "configs" / config), "--data.init_args.cache_dir", str(cache),
            "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    assert main(args) == 0
    checkpoints = sorted(Path("runs").rglob("*.ckpt"))
    assert len(checkpoints) == 1, checkpoints
    return checkpoints[0]


def test_emotion_classifier_from_the_cli_exports_weights_for_emotion_accuracy(
    mead_cache_128: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_briefly("emotion_classifier.yaml", mead_cache_128)

    system = EmotionClassifier.load_from_checkpoint(checkpoint, map_location="cpu")  # no net argument needed
    assert isinstance(system.net, EmotionFAN) and system.net.image_size == 96
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(value, saved[f"net.{key}"]) for key, value in system.net.state_dict().items())

    weights = tmp_path / "emotion_fan_mead.pth"
    system.export(weights)
    metric = EmotionAccuracy(weights=weights)
    videos, _ = talking_videos(3, 4, 64, seed=0)
    labels = torch.tensor([0, 3, 7])
    metric.update(videos, labels)
    expected = system.net.eval()(videos).argmax(-1) == labels
    out = metric.compute()
    assert out["accuracy"].item() == pytest.approx(expected.double().mean().item())
    assert out["per_class"].shape == (NUM_EMOTIONS,)


def test_syncnet_from_the_cli_scores_lse(mead_cache_128: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_briefly("syncnet.yaml", mead_cache_128)

    system = SyncNetTrainer.load_from_checkpoint(checkpoint, map_location="cpu")
    assert isinstance(system.net, SyncNet) and system.net.image_size == 64
    videos, audio = talking_videos(2, 30, 64, seed=0)
    metric = SyncScore(net=system.net)
    metric.update(videos, audio, 16000)
    out = metric.compute()
    assert set(out) == {"lse_c", "lse_d", "offset"}
    assert all(torch.isfinite(value).all() for value in out.values())
