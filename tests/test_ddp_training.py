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


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_s2l_trains_under_ddp_with_disjoint_shards(mead_cache_128: Path, tmp_path: Path) -> None:
    data = MEADDataModule(
        cache_dir=str(mead_cache_128),
        window=8,
        batch_size=4,
        fields=["audio", "normalized_landmarks", "landmarks", "pose", "gaze", "reference"],
    )
    model = SpeechToLandmarks(
        network=SpeechToLandmarksNet(audio_dim=16, emotion_dim=8, identity_dim=8, hidden=32, gaze_bins=6),
        emotion_classifier=CueEmotionClassifierNet(hidden=16),
        figure_every_n_epochs=0,
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[RecordWindows(str(tmp_path))],
    )
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
