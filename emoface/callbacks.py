"""Trainer callbacks shared by every emoface system."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback


class SeedEveryStep(Callback):
    """Reseed every random generator from ``(seed, global_step, rank)`` before each training batch.

    Dropout masks, scheduled sampling, augmentation draws ... then depend only on the step, not on
    how many random numbers were drawn before it. This is what makes a run resumed from a
    checkpoint follow the uninterrupted loss curve exactly: Lightning restores weights, optimizer,
    scheduler and loop counters, but not the global RNG streams, and validation or a new
    DataLoader iterator consume random numbers at points that differ between the two runs.
    Ranks get different streams (``rank`` is part of the seed), so DDP replicas still draw
    different dropout masks.

    Args:
        seed: base seed (the config's ``seed_everything`` is a good choice).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def step_seed(self, global_step: int, rank: int) -> int:
        """The 32-bit seed of a (step, rank) pair."""
        return zlib.crc32(f"{self.seed}/{global_step}/{rank}".encode())

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int) -> None:
        seed = self.step_seed(trainer.global_step, trainer.global_rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # seeds CUDA devices too


class SaveConfigToLoggers(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` beside the logs, and the resolved config in experiment trackers.

    Weights & Biases runs get the whole config (``trainer``, ``model``, ``data`` ...) as their run
    config, so a run can be filtered by the same dotted keys a sweep sets
    (``model.init_args.use_gaze``), and the YAML file itself among the run's files
    (``lightning_config.yaml``, usable as ``--config``). CSV and TensorBoard logs keep the file only.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        text = self.parser.dump(self.config, skip_unset=False)
        config = yaml.safe_load(text)
        for logger in loggers:
            run = logger.experiment
            run.config.update(config, allow_val_change=True)
            path = Path(run.dir) / "lightning_config.yaml"
            path.write_text(text)
            run.save(str(path), base_path=run.dir, policy="now")
