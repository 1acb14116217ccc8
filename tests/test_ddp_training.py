"""Real multi-process training: stage 1 on the MEADDataModule under DDP with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from emoface.datamodules import MEADDataModule
from emoface.lightning_modules import SpeechToLandmarks
from emoface.networks import CueEmotionClassifierNet, SpeechToLandmarksNet


class RecordWindows(Callback):
    """Write the (clip, start) of every training window each rank sees to ``folder/rank<k>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[list[object]] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: dict, batch_idx: int) -> None:
        self.seen += [[clip, int(start)] for clip, start in zip(batch["clip"], batch["start"])]

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        weights = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        record = {"windows": self.seen, "world_size": trainer.world_size, "step": trainer.global_step,
                  "weights": weights.double().sum().item(), "weights_abs": weights.double().abs().sum().item()}
        Path(self.folder, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def two_process_trainer(callback: Callback, strategy: str = "ddp_spawn", **kwargs: object) -> Trainer:
    """A quiet trainer running DDP with 2 CPU processes (gloo), recording through ``callback``."""
    return Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        **kwargs,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_s2l_trains_under_ddp_with_disjoint_shards(mead_cache_128: Path, tmp_path: Path) -> None:
    data = MEADDataModule(
        cache_dir=str(mead_cache_128),
        window=8,
        batch_size=4,
        fields=["audio", "normalized_landmarks", "landmarks", "pose", "gaze", "reference"],
    )
    model = SpeechToLandmarks(
        # Stochastic, as configs/s2l.yaml: every parameter of the motion branch and of the
        # landmark stream must get a gradient, or DDP fails on unused parameters.
        network=SpeechToLandmarksNet(audio_dim=16, emotion_dim=8, identity_dim=8, hidden=32, gaze_bins=6, noise_dim=4),
        emotion_classifier=CueEmotionClassifierNet(hidden=16),
        figure_every_n_epochs=0,
    )
    trainer = two_process_trainer(RecordWindows(str(tmp_path)), max_epochs=1, limit_val_batches=1)
    trainer.fit(model, datamodule=data)

    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(r["world_size"] == 2 for r in records)
    shards = [{tuple(w) for w in r["windows"]} for r in records]
    data.setup("fit")
    total = len(data.datasets["train"])
    # Lightning's distributed sampler splits the windows between the ranks: together they see
    # every window; they overlap only by the padding that evens out the shard sizes.
    assert len(shards[0] | shards[1]) == total
    assert len(shards[0] & shards[1]) <= 1
    assert abs(len(records[0]["windows"]) - len(records[1]["windows"])) == 0
    assert records[0]["step"] == records[1]["step"] > 0
    # Gradients were all-reduced: both replicas end with the same weights.
    assert records[0]["weights"] == pytest.approx(records[1]["weights"], rel=1e-9)
    assert records[0]["weights_abs"] == pytest.approx(records[1]["weights_abs"], rel=1e-9)


class RecordRendererRun(Callback):
    """Write each rank's world size, step, weight sums and validation PSNR to ``folder/rank<k>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.psnr: list[float] = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # after the module logged
        value = trainer.callback_metrics.get("val/psnr")
        if value is not None:
            self.psnr.append(float(value))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        weights = torch.cat([p.detach().flatten() for p in pl_module.parameters() if p.requires_grad])
        record = {"world_size": trainer.world_size, "step": trainer.global_step, "psnr": self.psnr,
                  "weights": weights.double().sum().item(), "weights_abs": weights.double().abs().sum().item()}
        Path(self.folder, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_renderer_manual_optimization_under_ddp(mead_cache_128: Path, tmp_path: Path) -> None:
    """FaceRenderer (two optimizers, manual optimization) keeps its replicas identical under DDP."""
    from emoface.lightning_modules import FaceRenderer
    from emoface.networks.face_vid2vid import (
        CanonicalKeypointDetector,
        HeadExpressionEstimator,
        MultiScaleDiscriminator,
        OcclusionAwareGenerator,
    )

    data = MEADDataModule(cache_dir=str(mead_cache_128), window=1, stride=8, batch_size=2,
                          fields=["frames", "pose", "source_frame"])  # fmt: skip
    torch.manual_seed(0)
    model = FaceRenderer(
        CanonicalKeypointDetector(block_expansion=8, feature_channel=4, max_features=32, reshape_channel=128,
                                  reshape_depth=4, num_blocks=2),
        HeadExpressionEstimator(block_expansion=8, feature_channel=4, max_features=64),
        OcclusionAwareGenerator(block_expansion=8, feature_channel=4, max_features=16, reshape_channel=4,
                                reshape_depth=4, num_resblocks=1,
                                dense_motion_params=dict(block_expansion=8, max_features=16, num_blocks=2,
                                                         reshape_depth=4, compress=2)),
        MultiScaleDiscriminator(scales=[1], block_expansion=8, max_features=32),
        perceptual_backbone=None, scales=[1, 0.5], image_log_every_n_epochs=0,
    )  # fmt: skip
    # Plain DDP would fail at the discriminator's first backward: the system says so before training.
    model.trainer = Trainer(accelerator="cpu", devices=1, strategy="ddp", logger=False)
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        model.setup("fit")
    model.trainer = None
    # With a discriminator, each batch steps both optimizers: 2 batches = global step 4.
    trainer = two_process_trainer(RecordRendererRun(str(tmp_path)), strategy="ddp_spawn_find_unused_parameters_true",
                                  max_epochs=1, limit_train_batches=2, limit_val_batches=2)  # fmt: skip
    trainer.fit(model, datamodule=data)

    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(r["world_size"] == 2 for r in records)
    assert records[0]["step"] == records[1]["step"] == 4
    # Both optimizers' gradients were all-reduced: the replicas end with the same weights ...
    assert records[0]["weights"] == pytest.approx(records[1]["weights"], rel=1e-9)
    assert records[0]["weights_abs"] == pytest.approx(records[1]["weights_abs"], rel=1e-9)
    # ... and the validation metrics were synced: every rank logs the same PSNR over both shards.
    assert records[0]["psnr"] and records[0]["psnr"] == pytest.approx(records[1]["psnr"])
